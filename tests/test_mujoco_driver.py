"""The embedded simulator: contact, force sensing, truth effects, reproducibility, rendering."""

import numpy as np
import pytest

import rmskill
from rmskill.arm import Compliance, compliant
from rmskill.config import load_arm_config
from rmskill.geometry import Pose


def _place(arm, fixture: str, offset_x: float, past_seat: float = 0.002) -> float:
    """Lower the held plate into a nest, offset along x, compliant as a contact phase asks (4000 N/m,
    300 Nm/rad); return the peak sensed force [N]."""
    nest = arm.config.fixture(fixture)
    arm.move_to(nest @ Pose([offset_x, 0, -0.01]), speed=0.1)
    peak = 0.0
    steps = round((0.01 + past_seat) / 0.00003)  # down at 15 mm/s
    with compliant(arm, Compliance.uniform(4000.0, 300.0)):
        for i in range(1, steps + 1):
            arm.servo(nest @ Pose([offset_x, 0, -0.01 + (0.01 + past_seat) * i / steps]), duration=0.002)
            peak = max(peak, arm.state().wrench.force_norm)
    return peak


@pytest.mark.parametrize("model_file", ["sim-ur5e.yaml", "sim-fr3.yaml"])
def test_plate_held_by_contact_and_seats_in_nest(model_file):
    with rmskill.connect(f"examples/arms/{model_file}") as arm:
        start = arm.sim.plate_pose()
        arm.unwrapped.advance(0.5)
        assert arm.sim.plate_pose().distance_mm(start) < 0.6  # held by friction, only the arm's sag
        peak = _place(arm, "shelf_2", 0.0)
        seat_force = arm.state().wrench.force[2]
        assert 2.0 < seat_force < 30.0  # the nest pushes back up on the plate: measured, in N
        assert peak < arm.config.limits.max_force
        arm.gripper.open()
        arm.move_to(arm.config.fixture("shelf_2") @ Pose([0, 0, -0.03]), speed=0.05)
        mm, deg = arm.sim.placement_error("shelf_2")
        assert mm < 0.3 and deg < 0.1


def test_chamfer_guides_a_small_miss_and_a_large_miss_jams():
    with rmskill.connect("examples/arms/sim-ur5e.yaml") as arm:
        _place(arm, "shelf_1", 0.0015)  # inside the 2 mm lead-in
        arm.gripper.open()
        arm.move_to(arm.config.fixture("shelf_1") @ Pose([0, 0, -0.03]), speed=0.05)
        assert arm.sim.placement_error("shelf_1")[0] < 0.45
    with rmskill.connect("examples/arms/sim-ur5e.yaml") as arm, pytest.raises(rmskill.SafetyViolation) as err:
        _place(arm, "shelf_1", 0.004, past_seat=0.015)  # on the wall: pushing harder jams it
    assert err.value.limit == "force"


def test_truth_effects_apply(tmp_path):
    cfg = load_arm_config("examples/arms/sim-ur5e.yaml").with_changes(
        sim={"truth": {"tcp_error": [0.002, 0, 0, 0, 0, 0], "fixture_error": [0.001, 0, 0, 0, 0, 0],
                       "grasp_offset": [0.0015, 0, 0, 0, 0, 0]}})
    with rmskill.connect(cfg) as arm:
        measured = arm.state().base_T_tcp
        assert arm.sim.tcp_pose().distance_mm(measured) == pytest.approx(2.0, abs=0.01)
        assert arm.sim.fixture_pose("shelf_1").distance_mm(cfg.fixture("shelf_1")) == pytest.approx(1.0)
        grasp = arm.sim.tcp_pose().inverse() @ arm.sim.plate_pose()
        assert grasp.xyz[0] * 1000 == pytest.approx(1.5, abs=0.05)  # along the fingers, held by friction


def test_latency_delays_the_response():
    """On a 20 mm/s ramp, 10 ms of command latency makes the arm trail by 0.2 mm more."""

    def travel_mm(latency_ms: float) -> float:
        cfg = load_arm_config("examples/arms/sim-ur5e.yaml").with_changes(sim={"truth": {"latency_ms": latency_ms}})
        with rmskill.connect(cfg) as arm:
            start = arm.state().base_T_tcp
            for i in range(1, 201):
                arm.servo(start.translated([0, 0.00004 * i, 0]))
            return arm.state().base_T_tcp.distance_mm(start)

    assert travel_mm(0.0) - travel_mm(10.0) == pytest.approx(0.2, abs=0.05)


def test_seeded_runs_are_reproducible():
    def run() -> np.ndarray:
        cfg = load_arm_config("examples/arms/sim-ur5e-perturbed.yaml")
        with rmskill.connect(cfg) as arm:
            arm.sim.reset(seed=3)
            pose = arm.state().base_T_tcp
            for i in range(50):
                arm.servo(pose.translated([0.0001 * i, 0, 0]))
            return np.r_[arm.sim.plate_pose().xyz, arm.state().wrench.force]

    np.testing.assert_array_equal(run(), run())


def test_render_png(tmp_path):
    path = tmp_path / "cell.png"
    with rmskill.connect("examples/arms/sim-fr3.yaml") as arm:
        arm.sim.render(str(path), width=320, height=240)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


def test_the_simulated_ur_is_stiff_unless_asked_for_compliance(ur5e_file):
    """Pressing the held plate 2 mm into the seat: a stiff position loop (hundreds of newtons, the
    envelope stops it) under servoL; below the force limit with the skill's compliance."""
    from rmskill import SafetyViolation

    with rmskill.connect(ur5e_file) as arm:
        seat = arm.config.fixture("shelf_2")
        above = seat @ Pose((0.0, 0.0, -0.01))
        arm.move_to(above, 0.05)

        def press(depth: float) -> float:
            arm.stop()
            peak = 0.0
            for i in range(1, 701):  # down at 10 mm/s, then hold
                arm.servo(above @ Pose((0.0, 0.0, min(1.0, i / 600) * (0.01 + depth))))
                peak = max(peak, arm.state().wrench.force_norm)
            return peak

        with compliant(arm, Compliance.uniform(4000.0, 300.0)):
            soft = press(0.002)
        arm.move_to(above, 0.05)
        with pytest.raises(SafetyViolation) as err:
            press(0.002)
        assert err.value.limit == "force"
        assert 4.0 < soft < arm.config.limits.max_force
