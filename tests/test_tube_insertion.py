"""The tube insertion skill and its cell: rack geometry and targets, the simulated tube and rack,
one insertion, the arm-measured outcome, the start condition and the rim search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rmskill
from rmskill.calibration.rack_geometry import RackGeometry, rack_of
from rmskill.config import load_arm_config
from rmskill.errors import ConfigError, StartConditionError
from rmskill.runner import episode_targets, run_episode
from rmskill.skill import SkillResult
from rmskill.skills.tube_insertion import TubeInsertion
from rmskill.skills.tube_insertion.skill import insertion_outcome, tube_error

ROOT = Path(__file__).resolve().parents[1]
UR5E = ROOT / "examples" / "arms" / "sim-ur5e-rack.yaml"
PERTURBED = ROOT / "examples" / "arms" / "sim-ur5e-rack-perturbed.yaml"


@pytest.fixture(scope="module")
def skill() -> TubeInsertion:
    return rmskill.load_skill("tube_insertion")


def test_rack_geometry_names_holes_and_refuses_others():
    rack = RackGeometry.from_fixture("rack_1", {"rows": 4, "columns": 6, "pitch": 0.02})
    assert rack.holes()[:3] == ["A1", "A2", "A3"] and rack.holes()[-1] == "D6" and len(rack.holes()) == 24
    assert rack.hole_xy("B3") == pytest.approx([0.04, 0.02])
    with pytest.raises(ConfigError, match=r"no hole 'E1'.*A1 to D6"):
        rack.hole_xy("E1")
    with pytest.raises(ConfigError, match=r"unknown rack geometry \[.diameter.\]"):
        RackGeometry.from_fixture("rack_1", {"diameter": 0.016})


def test_targets_are_the_racks_holes_and_resolve_to_the_hole(skill):
    config = load_arm_config(UR5E)
    targets = skill.targets(config)
    assert targets[0] == "rack_1/A1" and "rack_1/B3" in targets and len(targets) == 24
    with pytest.raises(ConfigError, match="names a rack, not a hole"):
        rack_of(config, "rack_1")
    with rmskill.connect(config) as arm:
        pose, source = skill.resolve_target(arm, "rack_1/B3")
        expected = config.fixture("rack_1") @ RackGeometry.from_fixture("rack_1", {}).rack_T_hole("B3")
        assert source == "nominal" and pose.distance_mm(expected) < 1e-9


def test_the_cell_holds_a_tube_by_friction():
    with rmskill.connect(PERTURBED) as arm:
        state = arm.gripper.state()
        assert state.object_detected and state.width == pytest.approx(0.016, abs=3e-4)
        before = arm.sim.tcp_pose().inverse() @ arm.sim.plate_pose()
        arm.unwrapped.advance(0.5)
        after = arm.sim.tcp_pose().inverse() @ arm.sim.plate_pose()
        assert after.distance_mm(before) < 0.02 and after.angle_deg(before) < 0.05
        assert abs(np.degrees(after.rotvec[1]) - 2.0) < 0.1  # the 2 deg tilt in the fingers stays


def test_one_insertion_on_the_nominal_cell(skill):
    with rmskill.connect(UR5E) as arm:
        ran = run_episode(skill, arm, 7, 0, episode_targets(skill, arm.config))
        _, tilt, short = tube_error(arm.sim, ran.target)
        assert not arm.gripper.state().object_detected  # released
    result = ran.result
    assert result.success, result.message
    assert result.translation_error_mm < 0.2 and short < 0.5 and tilt < 0.5
    out = skill.outcome(result)
    assert out.success and out.reward > 0.5 and out.details["depth_shortfall_mm"] < 0.5


def test_outcome_reads_measurements_only():
    nan = float("nan")
    failed = SkillResult(False, nan, nan, 5.0, 3.0, message="not inserted after 600 steps (12.0 s)")
    assert insertion_outcome(failed).reward == -1.0 and not insertion_outcome(failed).success
    m = {"depth_reached_mm": 24.9, "hole_depth_mm": 25.0, "lateral_force_n": 0.5}
    good = SkillResult(True, nan, nan, 6.0, 3.0, measurements=m)
    short = SkillResult(True, nan, nan, 6.0, 3.0, measurements={**m, "depth_reached_mm": 22.0})
    rubbed = SkillResult(True, nan, nan, 6.0, 3.0, measurements={**m, "lateral_force_n": 5.0})
    assert insertion_outcome(good).success and not insertion_outcome(short).success
    assert insertion_outcome(good).reward > insertion_outcome(rubbed).reward > 0 > insertion_outcome(short).reward


def test_an_empty_gripper_is_refused_before_anything_moves(skill):
    with rmskill.connect(UR5E) as arm:
        skill.sim_start(arm, "rack_1/B3", np.random.default_rng(0), seed=0, ready=False)
        before = arm.state()
        with pytest.raises(StartConditionError, match="needs an object in the gripper"):
            skill.run(arm, "rack_1/B3")
        assert arm.state().time == before.time


def test_a_tube_on_the_rim_searches_and_goes_in(skill, caplog):
    """Uncalibrated, with the rack, TCP and grasp off: the tube lands on the rim, the skill's spiral
    search finds the hole, and the tilt compliance lets the tilted tube in."""
    with rmskill.connect(PERTURBED) as arm:
        with caplog.at_level("INFO", logger="rmskill.skills.tube_insertion.skill"):
            ran = run_episode(skill, arm, 23, 0, episode_targets(skill, arm.config))  # D6: farthest from A1
    assert "searching" in caplog.text
    assert ran.result.success, ran.result.message
