"""The skill runtime and the plate placement skill, on the simulated arms (no mocks but the one
that hides the simulator's truth to play a real arm)."""

from __future__ import annotations

import importlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

import rmskill
from rmskill.calibration_store import CalibrationStore
from rmskill.errors import ConfigError, SkillError
from rmskill.evaluate import evaluate, random_start
from rmskill.geometry import Pose
from rmskill.learning.policy import MLPPolicy, load_policy, save_policy
from rmskill.skill import SkillResult
from rmskill.skills.plate_placement import PlatePlacement
from rmskill.skills.plate_placement.skill import ACTION_NAMES, OBS_NAMES

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"
UR5E = ARMS / "sim-ur5e.yaml"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """An empty calibration store, so no stored calibration of this machine leaks in."""
    monkeypatch.setenv("RMSKILL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def skill() -> PlatePlacement:
    return rmskill.load_skill("plate_placement")


@pytest.fixture
def ur5e():
    with rmskill.connect(UR5E) as arm:
        yield arm


def test_load_skill_reads_the_shipped_weights(skill):
    assert isinstance(skill, PlatePlacement)
    assert skill.manifest["skill"] == "plate_placement"
    assert skill.manifest["calibration_hash"] == "none"
    assert set(skill.manifest["arm_models"]) >= {"ur5e", "fr3"}
    assert skill.policy.obs_dim == len(OBS_NAMES) and skill.policy.action_dim == len(ACTION_NAMES)
    weights = PlatePlacement.weights_dir / "base.safetensors"
    assert weights.stat().st_size < 1_000_000


def test_places_a_plate_on_the_ur5e(skill, ur5e):
    ur5e.sim.reset(tcp_pose=ur5e.config.fixture("shelf_1") @ random_start(np.random.default_rng(3)), seed=3)
    result = skill.run(ur5e, target="shelf_1")
    assert isinstance(result, SkillResult)
    assert result.success, result.message
    assert result.translation_error_mm < 0.3 and result.rotation_error_deg < 0.3
    assert result.peak_force_n < ur5e.config.limits.max_force
    assert result.measured_by == "simulator truth"
    assert len(result.trajectory) > 10 and {"t", "obs", "action", "force"} <= set(result.trajectory[0])
    json.dumps(result.summary())  # JSON-ready for --json


def test_touch_check_finds_where_the_plate_sits_in_its_clearance(skill, tmp_path):
    """The shelf is really 0.2 mm off along the nest's x (uncalibrated), so the plate goes in 0.2 mm
    off centre without touching a wall; the held plate's touch check finds that, and the free travel
    between the walls (the 0.6 mm clearance, less contact compliance), with the arm alone."""
    import dataclasses

    import yaml

    arm_file = tmp_path / "offset.yaml"
    config = yaml.safe_load(UR5E.read_text())
    config["name"] = "sim-ur5e-offset"
    config.setdefault("sim", {}).setdefault("truth", {})["fixture_error"] = [0.0, 0.0002, 0.0, 0.0, 0.0, 0.0]
    arm_file.write_text(yaml.safe_dump(config))
    checking = PlatePlacement(skill.policy, manifest=skill.manifest,
                              config=dataclasses.replace(skill.config, touch_check=True))
    with rmskill.connect(arm_file) as arm:
        arm.sim.reset(tcp_pose=arm.config.fixture("shelf_2") @ random_start(np.random.default_rng(5)), seed=5)
        result = checking.run(arm, target="shelf_2")
        plate = arm.sim.fixture_pose("shelf_2").inverse() @ arm.sim.plate_pose()
    assert result.success, result.message
    m = result.measurements
    assert 0.35 < m["touch_free_x_mm"] < 0.7 and 0.35 < m["touch_free_y_mm"] < 0.7
    # The nest frame's y: the shelf moved +0.2 mm, so the plate sits 0.2 mm to its -y side.
    assert m["touch_offset_y_mm"] == pytest.approx(-0.2, abs=0.08)
    assert abs(m["touch_offset_x_mm"]) < 0.08 and abs(m["touch_offset_yaw_deg"]) < 0.1
    assert m["touch_offset_y_mm"] == pytest.approx(plate.xyz[1] * 1000, abs=0.08)  # and where it was let go
    assert m["touch_command_offset_mm"] >= m["touch_offset_mm"] - 0.05
    # With touch_centre the arm lets the plate go where its touch check found the middle.
    checking.configure(touch_centre=True)
    with rmskill.connect(arm_file) as arm:
        arm.sim.reset(tcp_pose=arm.config.fixture("shelf_2") @ random_start(np.random.default_rng(5)), seed=5)
        result = checking.run(arm, target="shelf_2")
    assert result.success, result.message
    assert result.translation_error_mm < 0.08, result.measurements


def test_unknown_target_is_refused_before_motion(skill, ur5e):
    before = ur5e.state()
    with pytest.raises(ConfigError, match=r"shelf_9.*fixtures: shelf_1, shelf_2, shelf_3"):
        skill.run(ur5e, target="shelf_9")
    after = ur5e.state()
    assert after.time == before.time and np.array_equal(after.q, before.q)


def test_missing_weights_raise_skill_error_naming_the_path(tmp_path):
    missing = tmp_path / "no-such-weights"
    with pytest.raises(SkillError, match=re.escape(str(missing))):
        rmskill.load_skill("plate_placement", weights=missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SkillError, match=r"base\.safetensors"):
        rmskill.load_skill("plate_placement", weights=empty)


def test_unknown_skill_is_a_config_error():
    with pytest.raises(ConfigError, match="plate_placement"):
        rmskill.load_skill("no_such_skill")


def test_weights_round_trip_through_safetensors(tmp_path):
    rng = np.random.default_rng(0)
    policy = MLPPolicy([(rng.normal(size=(8, 5)), rng.normal(size=8)), (rng.normal(size=(2, 8)), np.zeros(2))],
                       rng.normal(size=5), np.ones(5))
    save_policy(tmp_path, policy, {"skill": "x"})
    loaded, manifest = load_policy(tmp_path)
    obs = rng.normal(size=5)
    assert manifest["skill"] == "x"
    np.testing.assert_allclose(loaded(obs), policy(obs), rtol=1e-5, atol=1e-5)


def test_residual_correction_is_bounded(skill):
    corrected = PlatePlacement(skill.policy, residual=lambda obs, action: np.full(4, 5.0))
    obs = np.zeros(len(OBS_NAMES))
    obs[15] = 85.4
    base = np.clip(skill.policy(obs), -1, 1)
    assert np.all(corrected.act(obs) <= np.clip(base + corrected.residual_scale, -1, 1) + 1e-12)
    with pytest.raises(SkillError, match="non-finite"):
        PlatePlacement(lambda obs: np.full(4, np.nan)).act(obs)


class _RealArm:
    """The simulated arm as a real one looks: no ground truth."""

    sim = None

    def __init__(self, arm):
        self._arm = arm

    def __getattr__(self, name):
        return getattr(self._arm, name)


def test_uncalibrated_real_arm_warns_and_measures_itself(skill, ur5e, caplog):
    ur5e.sim.reset(tcp_pose=ur5e.config.fixture("shelf_2") @ Pose([0.01, -0.01, -0.03]), seed=1)
    with caplog.at_level(logging.WARNING, logger="rmskill.skill"):
        result = skill.run(_RealArm(ur5e), target="shelf_2")
    assert "not calibrated" in caplog.text and "shelf_2" in caplog.text
    assert result.measured_by == "arm measurement"
    assert result.success, result.message
    assert result.translation_error_mm < 0.5
    caplog.clear()  # each episode of a run asks again: warned once per skill, arm and fixture
    ur5e.sim.reset(tcp_pose=ur5e.config.fixture("shelf_2") @ Pose([0.01, -0.01, -0.03]), seed=2)
    with caplog.at_level(logging.WARNING, logger="rmskill.skill"):
        skill.run(_RealArm(ur5e), target="shelf_2")
    assert "not calibrated" not in caplog.text


def test_calibrated_fixture_is_preferred(skill, ur5e, home):
    calibrated = ur5e.config.fixture("shelf_3").translated([0.0005, 0.0, 0.0])
    CalibrationStore(ur5e.config.name).save_entry("fixtures", {"pose": calibrated.to_ur()}, name="shelf_3")
    pose, source = skill.resolve_target(ur5e, "shelf_3")
    assert source == "calibration" and pose.isclose(calibrated, mm=1e-3)


def test_evaluate_cycles_targets_and_reports_statistics(skill):
    seen = []
    report = evaluate(skill, ARMS / "sim-fr3.yaml", episodes=3, seed=1, progress=lambda i, r: seen.append(r["target"]))
    assert seen == ["shelf_1", "shelf_2", "shelf_3"]
    assert report["episodes"] == 3 and 0.0 <= report["success_rate"] <= 1.0
    for key in ("translation_error_mm", "rotation_error_deg"):
        assert set(report[key]) == {"mean", "p50", "p95", "max"}
    assert set(report["peak_force_n"]) == {"mean", "max"}
    assert report["success_rate"] == 1.0, report["failures"]


def test_run_once_from_home_and_refuses_unknown_targets_before_connecting(monkeypatch):
    from rmskill.evaluate import run_once

    connect_module = importlib.import_module("rmskill.connect")

    out = run_once("plate_placement", UR5E, "shelf_2", settings={"touch_check": True})
    assert out["success"] and out["arm"] == "sim-ur5e" and out["measured_by"] == "simulator truth"
    assert out["measurements"]["touch_offset_mm"] < 0.15  # the nominal cell: the plate goes in centred
    json.dumps(out)
    monkeypatch.setattr(connect_module, "connect", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(ConfigError, match="shelf_7"):
        run_once("plate_placement", UR5E, "shelf_7")
    with pytest.raises(ConfigError, match=r"no setting 'touch_chek'.*touch_check"):
        run_once("plate_placement", UR5E, "shelf_2", settings={"touch_chek": True})


def test_a_residual_named_by_the_manifest_must_exist(tmp_path):
    folder = tmp_path / "tuned"
    folder.mkdir()
    (folder / "base.safetensors").write_bytes((PlatePlacement.weights_dir / "base.safetensors").read_bytes())
    manifest = json.loads((PlatePlacement.weights_dir / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "residual": "residual.safetensors"}))
    with pytest.raises(SkillError, match=r"residual\.safetensors"):
        rmskill.load_skill("plate_placement", weights=folder)
