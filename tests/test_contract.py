"""The skill contract as the core reads it, proved on the plate placement skill: its outcome and
labels by feature name, its start condition, settings by name, and the ``check-skill`` suite
(which a deliberately broken skill fails with a clear line)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import rmskill
from rmskill.check_skill import check_skill
from rmskill.errors import ConfigError, SafetyViolation, StartConditionError
from rmskill.evaluate import random_start
from rmskill.learning.episodes import Episode
from rmskill.learning.role_model import role_model_labels
from rmskill.skill import SkillResult
from rmskill.skills.plate_placement import PlatePlacement
from rmskill.skills.plate_placement.skill import (
    FX,
    FY,
    FZ,
    OBSERVATION,
    TZ,
    Z,
    measured_centres,
    placement_outcome,
)
from rmskill.spec import Features, SkillSpec

ROOT = Path(__file__).resolve().parents[1]
UR5E = ROOT / "examples" / "arms" / "sim-ur5e.yaml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmskill.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def skill() -> PlatePlacement:
    return rmskill.load_skill("plate_placement")


@pytest.fixture(scope="module")
def rubbed(tmp_path_factory) -> SkillResult:
    """A real placement whose shelf is 1.2 mm off its calibration: the plate lands on the lead-in."""
    config = yaml.safe_load(UR5E.read_text())
    config["name"] = "sim-ur5e-rub"
    config["sim"]["truth"]["fixture_error"] = [0.0012, 0.0, 0.0, 0.0, 0.0, 0.0]
    skill = rmskill.load_skill("plate_placement")
    with rmskill.connect(config) as arm:
        arm.sim.reset(tcp_pose=arm.config.fixture("shelf_1") @ random_start(np.random.default_rng(3)), seed=3)
        return skill.run(arm, "shelf_1")


def test_wall_rub_is_averaged_from_the_first_contact_on(rubbed):
    """The old outcome took observation column 16 as 'contact'; it is ``phase``, 1 on every policy
    step, so free-space steps diluted the wall-rub cost. Steps before the first contact must not."""
    obs = rubbed.observations
    assert rubbed.success and OBSERVATION.names[16] == "phase" and np.all(obs[:, 16] == 1.0)
    force = np.linalg.norm(obs[:, [FX, FY, FZ]], axis=1)
    first = int(np.flatnonzero(force > 2.0)[0])
    assert 5 < first < len(obs) - 5  # free space first, then the lead-in
    expected = float(np.mean(np.hypot(obs[first:, FX], obs[first:, FY])))
    out = placement_outcome(rubbed)
    assert out.success and out.details["lateral_force_n"] == pytest.approx(expected)
    assert out.details["yaw_torque_nm"] == pytest.approx(float(np.mean(np.abs(obs[first:, TZ]))))
    # More free-space approach (phase 1, no force) changes nothing.
    free = np.zeros((40, obs.shape[1]))
    free[:, 16] = 1.0
    free[:, Z] = obs[0, Z]
    longer = dataclasses.replace(rubbed, trajectory=[{"obs": row} for row in np.vstack([free, obs])])
    assert placement_outcome(longer).reward == pytest.approx(out.reward)


def _result(obs: np.ndarray, **kw) -> SkillResult:
    return SkillResult(True, 0.0, 0.0, kw.pop("peak", 8.0), 1.0, trajectory=[{"obs": o} for o in obs], **kw)


def test_outcome_prefers_a_clean_insertion_and_a_centred_release():
    clean = np.zeros((20, len(OBSERVATION)))
    clean[:, Z] = np.linspace(-15, 0, 20)
    clean[-5:, FZ] = -5.0  # the nest pushes back: seated
    rubbing = clean.copy()
    rubbing[-8:, FX] = 4.0  # a guide wall pushes sideways
    jammed = clean.copy()
    jammed[:, Z] = np.linspace(-15, -6, 20)  # stopped on the wall top
    a, b, c = (placement_outcome(_result(o)) for o in (clean, rubbing, jammed))
    assert a.success and b.success and not c.success
    assert a.reward > b.reward > c.reward

    def touched(off_mm: float, off_deg: float = 0.0):
        return placement_outcome(_result(clean, measurements={"touch_command_offset_mm": off_mm,
                                                              "touch_command_offset_yaw_deg": off_deg}))

    centred, pressed, far, twisted, empty = touched(0.05), touched(0.6), touched(4.0), touched(0.05, 0.4), \
        touched(float("nan"))
    assert centred.reward > pressed.reward > far.reward > empty.reward
    assert centred.reward > twisted.reward and far.success and not empty.success
    assert centred.details["centre_offset_mm"] == pytest.approx(0.05)


def test_seated_is_judged_on_the_last_steps_not_one_wrist_sample():
    """A wrist that rings (the emulated UR's force mode pressing a plate into its seat read -14.8, -19.7,
    -19.9, -27.3, -3.0, -26.5, -9.2, 2.4 N over its last steps) must not turn a seated plate into a
    failure because the last sample happened to swing up; a plate that never pressed stays unseated."""
    seated = np.zeros((20, len(OBSERVATION)))
    seated[:, Z] = -0.02
    seated[-8:, FZ] = [-14.8, -19.7, -19.9, -27.3, -3.0, -26.5, -9.2, 2.4]
    assert placement_outcome(_result(seated)).success
    loose = seated.copy()
    loose[-8:, FZ] = [-0.2, 0.4, 0.1, -0.3, 0.2, -0.1, 0.3, -30.0]  # one spike at the end is no push
    assert not placement_outcome(_result(loose)).success


def test_centre_labels_through_the_skills_refiner(skill):
    """Seated trials' touch checks put shelf_1's centre at x = -2.5 mm, y = 0.4 mm, yaw = 0.1 deg (medians);
    the refiner's lateral labels close half the command's gap (bounded by the learner), depth keeps the
    role model's."""
    rng = np.random.default_rng(3)
    trials = []
    for reward, offset, cx in ((0.9, 0.05, -2.4), (0.3, -0.1, -2.6), (-1.0, 0.0, -9.0)):
        obs = rng.normal(size=(30, len(OBSERVATION)))
        obs[:, :4] = (-2.3, 0.4, -15.0, 0.1)  # the measured TCP; the command equals it
        obs[:, 4:8] = 0.0
        trials.append(Episode(obs, np.zeros((30, 4)), np.full((30, 4), offset), reward,
                              {"target": "shelf_1", "measurements": {"touch_centre_x_mm": cx, "touch_centre_y_mm": 0.4,
                                                                     "touch_centre_yaw_deg": 0.1}}))
    trials[2].info["measurements"] = {}  # not seated: no touch check
    np.testing.assert_allclose(measured_centres(trials)["shelf_1"][[0, 1, 3]], [-2.5, 0.4, 0.1])
    columns = skill.spec.initial_columns
    obs, _base, label = role_model_labels(trials, columns, 2.0, 0.0, 0.2, refine=skill.label_refiner(trials))
    assert len(obs) == 90
    np.testing.assert_allclose(label[:, 0], 0.5 * (-2.5 + 2.3) / 2.0)  # toward -x, a twentieth of a step
    np.testing.assert_allclose(label[:, [1, 3]], 0.0, atol=1e-12)  # already centred in y and yaw
    np.testing.assert_allclose(label[:, 2], 0.05)  # depth: the role model's own correction
    trials[0].obs[:, 0] = 3.0  # far off
    _, _, label = role_model_labels(trials[:1], columns, 2.0, 0.0, 0.2, refine=skill.label_refiner(trials))
    np.testing.assert_allclose(label[:, 0], -0.2)  # the bound
    assert skill.label_refiner([dataclasses.replace(t, info={}) for t in trials]) is None


def test_empty_gripper_is_refused_before_anything_moves(skill):
    with rmskill.connect(UR5E) as arm:
        skill.sim_start(arm, "shelf_1", np.random.default_rng(0), seed=0, ready=False)
        before = arm.state()
        with pytest.raises(StartConditionError, match=r"shelf_1.*holds nothing"):
            skill.run(arm, "shelf_1")
        after = arm.state()
    assert after.time == before.time and np.array_equal(after.q, before.q)


def test_empty_gripper_from_the_cli_is_one_line_and_non_zero(tmp_path):
    """The simulator starts with an empty gripper when the arm file says so: refused, nothing moved."""
    config = yaml.safe_load(UR5E.read_text())
    config["sim"]["plates"] = ["shelf_2"]  # the plate starts in a nest, the gripper empty
    arm_file = tmp_path / "empty.yaml"
    arm_file.write_text(yaml.safe_dump(config))
    r = cli("run", "plate_placement", "--arm", str(arm_file), "--target", "shelf_1", "--json")
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs an object in the gripper" in lines[0], r.stderr


def test_a_safety_violation_raises_with_the_partial_result(skill):
    with rmskill.connect(UR5E) as arm:
        skill.sim_start(arm, "shelf_2", np.random.default_rng(1), seed=1)
        strict = arm.config.with_changes(limits={"max_force": 3.0})  # the lead-in alone breaks it
        arm.limits = strict.limits
        with pytest.raises(SafetyViolation) as err:
            skill.run(arm, "shelf_2")
    assert err.value.limit == "force"
    partial = err.value.result
    assert isinstance(partial, SkillResult) and not partial.success and "force" in partial.message
    assert len(partial.trajectory) > 0


def test_settings_by_name(skill):
    from rmskill.finetune import split_settings

    mine, learner = split_settings(skill, "role-model", {"touch_check": True, "explore_std": 0.05})
    assert mine == {"touch_check": True} and learner.explore_std == 0.05
    _, hybrid = split_settings(skill, "hybrid", {"bc_weight": 5, "explore_std": 0.03})
    assert hybrid.bc_weight == 5.0 and hybrid.role.explore_std == 0.03
    with pytest.raises(ConfigError, match=r"no setting 'explore_sdt'.*explore_std.*touch_check"):
        split_settings(skill, "role-model", {"explore_sdt": 0.05})
    with pytest.raises(ConfigError, match="'touch_check' must be true or false"):
        PlatePlacement(skill.policy).configure(touch_check="yes")
    assert PlatePlacement(skill.policy).configure(contact_stiffness=None).config.contact_stiffness is None
    with pytest.raises(ConfigError, match="'touch_check' must be true or false, got None"):
        PlatePlacement(skill.policy).configure(touch_check=None)  # null only where the setting may be None
    r = cli("eval", "plate_placement", "--arm", str(UR5E), "--episodes", "1", "--set", "touch_chek=true")
    assert r.returncode == 1 and "no setting 'touch_chek'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_check_skill_passes_on_plate_placement():
    r = cli("check-skill", "plate_placement", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert [c["name"] for c in report["checks"]] == ["load", "features", "start_condition", "episode", "outcome",
                                                     "replay", "action"]


class _PeekingPlacement(PlatePlacement):
    """Broken on purpose: its reward is the simulator's error, not an arm measurement."""

    def outcome(self, result):
        out = super().outcome(result)
        return dataclasses.replace(out, reward=out.reward - result.translation_error_mm)


class _MislabelledPlacement(PlatePlacement):
    """Broken on purpose: it declares a feature its weights were not trained on."""

    spec = dataclasses.replace(PlatePlacement.spec, observation=Features(
        ("contact", *PlatePlacement.spec.observation.names[1:]), PlatePlacement.spec.observation.units),
        initial_features=())


def test_check_skill_fails_broken_skills_with_a_clear_line():
    failed = {r.name: r.detail for r in check_skill(_PeekingPlacement) if not r.ok}
    assert list(failed) == ["outcome"] and "arm measurements only" in failed["outcome"]
    failed = {r.name: r.detail for r in check_skill(_MislabelledPlacement) if not r.ok}
    assert list(failed) == ["load"] and "missing ['contact']" in failed["load"], failed


def test_a_spec_names_its_features_consistently():
    with pytest.raises(Exception, match="initial"):
        SkillSpec(OBSERVATION, Features.of([("a", "m")]), (1.0,), 10.0, ("slot",), initial_features=("nope",))
    with pytest.raises(Exception, match="action_scale"):
        SkillSpec(OBSERVATION, Features.of([("a", "m")]), (1.0, 2.0), 10.0, ("slot",))


@pytest.mark.parametrize("name", ["plate_placement", "plate_pick", "tube_insertion"])
def test_shipped_weights_carry_their_digests(name):
    """Every shipped skill's manifest names the sha256 of its weights, and they match (issue 15)."""
    from rmskill.learning.policy import file_sha256
    from rmskill.skill import skill_class

    folder = skill_class(name).weights_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest.get("sha256"), f"{name}: the manifest lists no digests"
    for file, digest in manifest["sha256"].items():
        assert file_sha256(folder / file) == digest


def test_check_skill_picks_a_cell_with_a_fixture_the_skill_accepts():
    from rmskill.check_skill import DEFAULT_ARM, default_arm
    from rmskill.config import load_arm_config
    from rmskill.skill import skill_class

    assert default_arm(PlatePlacement.spec) == DEFAULT_ARM
    rack_cell = load_arm_config(default_arm(skill_class("tube_insertion").spec))
    assert any(f.kind == "rack" for f in rack_cell.fixtures.values())
    assert not any(f.kind == "rack" for f in load_arm_config(DEFAULT_ARM).fixtures.values())
