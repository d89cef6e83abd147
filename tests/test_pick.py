"""Plate pick and transfer on the simulated UR5e: layouts, picks, refusals, the transfer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rmskill
from rmskill.config import load_arm_config
from rmskill.errors import ConfigError, StartConditionError
from rmskill.geometry import Pose
from rmskill.skills.plate_pick.skill import PlatePick, pick_outcome

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("RMSKILL_HOME", str(tmp_path / "home"))  # no stored calibration


@pytest.fixture(scope="module")
def arm():
    config = load_arm_config(ARMS / "sim-ur5e.yaml").with_changes(sim={"plates": ["shelf_1", "shelf_3"]})
    with rmskill.connect(config) as a:
        yield a


def start_above(arm, nest: str, **layout) -> None:
    arm.sim.reset(tcp_pose=arm.config.fixture(nest) @ Pose([0.004, -0.003, -0.04]), seed=2, **layout)
    arm.recover()


def test_layout_from_the_arm_file_and_any_reset(arm):
    arm.sim.reset()
    assert arm.sim.layout() == ["shelf_1", "shelf_3"] and arm.sim.held is None
    assert not arm.gripper.state().object_detected
    assert arm.sim.plate_count >= 4  # one per nest and one for the gripper
    arm.sim.reset(plates=["shelf_2"], plate=True, seed=1)
    assert arm.sim.layout() == ["shelf_2"] and arm.sim.held is not None
    assert arm.gripper.state().object_detected
    arm.sim.reset(plate=False)
    assert arm.sim.layout() == [] and arm.sim.held is None


def test_sim_plates_must_name_different_fixtures():
    with pytest.raises(ConfigError, match="twice"):
        load_arm_config(ARMS / "sim-ur5e.yaml").with_changes(sim={"plates": ["shelf_1", "shelf_1"]})


def test_pick_lifts_the_plate_centred_and_measures_the_grasp(arm):
    start_above(arm, "shelf_1", plates=["shelf_1", "shelf_3"])
    result = rmskill.load_skill("plate_pick").run(arm, target="shelf_1")
    assert result.success, result.message
    assert arm.sim.held is not None and arm.sim.layout() == ["shelf_3"]
    m = result.measurements
    assert m["weight_n"] == pytest.approx(0.15 * 9.81, rel=0.1)
    assert abs(m["width_mm"] - 85.48) < 1.0
    true = arm.sim.grasp.xyz * 1000.0  # the grasp the pick produced, not a random draw
    assert result.translation_error_mm < 0.5
    assert m["grasp_x_mm"] == pytest.approx(true[0], abs=0.1) and m["grasp_y_mm"] == pytest.approx(true[1], abs=0.1)
    assert arm.sim.plate_pose().distance_mm(arm.sim.fixture_pose("shelf_1")) > 20.0  # lifted and retreated
    outcome = PlatePick(policy=lambda o: np.zeros(4)).outcome(result)
    assert outcome.success and outcome.reward > 0.5


def test_pick_from_an_empty_nest_fails_with_a_reason(arm):
    start_above(arm, "shelf_2", plates=["shelf_1"])
    result = rmskill.load_skill("plate_pick").run(arm, target="shelf_2")
    assert not result.success
    assert result.message.startswith("no plate at shelf_2")
    assert arm.sim.layout() == ["shelf_1"] and not arm.gripper.state().object_detected
    assert pick_outcome(result).reward <= -1.0


def test_pick_with_a_plate_held_is_refused_before_anything_moves(arm):
    start_above(arm, "shelf_1", plates=["shelf_1"], plate=True)
    before = arm.state().base_T_tcp
    with pytest.raises(StartConditionError, match="empty gripper"):
        rmskill.load_skill("plate_pick").run(arm, target="shelf_1")
    with pytest.raises(StartConditionError, match="empty gripper"):
        rmskill.transfer(arm, "shelf_1", "shelf_2")
    assert arm.state().base_T_tcp.distance_mm(before) < 0.01


def test_transfer_moves_the_plate_and_hands_the_grasp_to_the_placement(arm):
    start_above(arm, "shelf_1", plates=["shelf_1"])
    result = rmskill.transfer(arm, "shelf_1", "shelf_2")
    assert result.success, result.message
    assert arm.sim.layout() == ["shelf_2"] and arm.sim.held is None
    assert result.translation_error_mm == pytest.approx(arm.sim.placement_error("shelf_2")[0])
    assert result.translation_error_mm < 0.5 and result.rotation_error_deg < 0.5
    summary = result.summary()
    assert summary["pick"]["success"] and summary["place"]["target"] == "shelf_2"
    assert np.isfinite(summary["pick"]["measurements"]["grasp_x_mm"])


def test_transfer_refuses_bad_fixtures_before_moving(arm):
    start_above(arm, "shelf_1", plates=["shelf_1"])
    with pytest.raises(ConfigError, match="shelf_9"):
        rmskill.transfer(arm, "shelf_1", "shelf_9")
    with pytest.raises(ConfigError, match="both"):
        rmskill.transfer(arm, "shelf_1", "shelf_1")
    assert arm.sim.layout() == ["shelf_1"]


def test_placement_aims_the_plate_with_a_measured_grasp_offset():
    from rmskill.skill import SkillResult
    from rmskill.skills.plate_pick.transfer import PlateTransfer

    moved = PlateTransfer()
    picked = SkillResult(True, 0.1, 0.0, 1.0, 1.0, measurements={"grasp_x_mm": 0.4, "grasp_y_mm": -0.2})
    place = moved.handoff(picked, moved.place)
    assert (place.config.grasp_x_mm, place.config.grasp_y_mm) == (0.4, -0.2)


def test_handoff_passes_the_tare_and_asks_for_a_reseat():
    from rmskill.skill import SkillResult
    from rmskill.skills.plate_pick.transfer import PlateTransfer

    moved = PlateTransfer()
    moved.tare = (0.1, -0.2, 0.3, 0.01, -0.02, 0.03)
    picked = SkillResult(True, 0.1, 0.0, 1.0, 1.0, measurements={"grasp_x_mm": 0.4, "grasp_y_mm": -0.2})
    place = moved.handoff(picked, moved.place)
    assert place.config.tare == (0.1, -0.2, 0.3, 0.01, -0.02, 0.03) and place.config.reseat
    moved.tare = None
    blind = moved.handoff(SkillResult(True, 0.1, 0.0, 1.0, 1.0, measurements={}), moved.place)
    assert blind.config.tare is None and (blind.config.grasp_x_mm, blind.config.grasp_y_mm) == (0.0, 0.0)


@pytest.fixture(scope="module")
def off_centre_arm():
    """A plate that starts in the gripper 0.3 mm off the TCP along the fingers' pads (across them,
    the closing fingers centre it)."""
    config = load_arm_config(ARMS / "sim-ur5e.yaml").with_changes(
        sim={"truth": {"grasp_offset": [0.0003, 0.0, 0.0, 0.0, 0.0, 0.0]}})
    with rmskill.connect(config) as a:
        yield a


def test_placement_weighs_the_plate_above_the_nest_where_it_sits_now(off_centre_arm):
    """With the empty wrist's reading, the placement finds the plate's offset in the fingers itself
    (not the stale one it was given) and, set down again on that aim, seats it to micrometres."""
    arm = off_centre_arm
    start_above(arm, "shelf_2", plates=[], plate=True)
    true = arm.sim.grasp.xyz * 1000.0
    tare = tuple(float(v) for v in np.zeros(6))  # the simulated wrist reads 0 with the gripper's payload set
    place = rmskill.load_skill("plate_placement").configure(grasp_x_mm=0.0, grasp_y_mm=0.0, tare=tare, reseat=True)
    result = place.run(arm, target="shelf_2")
    assert result.success, result.message
    m = result.measurements
    assert m["pick_grasp_x_mm"] == 0.0 and m["weight_n"] == pytest.approx(0.15 * 9.81, rel=0.05)
    assert m["grasp_x_mm"] == pytest.approx(true[0], abs=0.01) and m["grasp_y_mm"] == pytest.approx(true[1], abs=0.01)
    assert abs(true[0]) > 0.25  # the stale aim (0, 0) would have been off by that much
    assert m["reseat_offset_mm"] <= place.config.reseat_tolerance_mm
    assert result.translation_error_mm < 0.015


def test_placement_refuses_a_plate_no_longer_held_before_it_touches(arm):
    start_above(arm, "shelf_2", plates=[], plate=True)
    lost = (0.0, 0.0, -0.15 * 9.81, 0.0, 0.0, 0.0)  # a tare that already weighs the plate: it reads as gone
    result = rmskill.load_skill("plate_placement").configure(tare=lost).run(arm, target="shelf_2")
    assert not result.success and "no longer held" in result.message
    assert arm.sim.held is not None and result.peak_force_n < 2.0  # nothing touched, the plate still in hand
