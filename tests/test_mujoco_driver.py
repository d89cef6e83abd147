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


def _reference_torques(arm, target_pos, target_quat, previous_pos, previous_quat) -> np.ndarray:
    """The controller's law evaluated directly (numpy, at the state now): the stiff loop's computed
    torque ``bias + M A (Kp e + Kd (v_target - v)) + J^T w_load`` (``A = J^T (J J^T + eps I)^-1``), or the
    impedance ``bias + J^T (K e + D (v_target - v) + w)`` (+ null-space posture on a 7-dof arm)."""
    import mujoco

    from rmskill.drivers.mujoco.controller import GRAVITY, POSTURE_GAINS, SINGULAR_DAMPING

    u = arm.unwrapped
    m, d, c = u.model, u.data, u.ctrl
    n, dt = c.dof, m.opt.timestep
    pos, quat = c.tcp_pose(d)
    jac = c.jacobian(d, pos)
    vel = jac @ d.qvel[:n]
    err, twist = np.zeros(6), np.zeros(6)
    err[:3], twist[:3] = target_pos - pos, (target_pos - previous_pos) / dt
    for out, a, b, scale in ((err[3:], target_quat, quat, 1.0), (twist[3:], target_quat, previous_quat, dt)):
        conj, rel = np.zeros(4), np.zeros(4)
        mujoco.mju_negQuat(conj, b)
        mujoco.mju_mulQuat(rel, a, conj)
        mujoco.mju_quat2Vel(out, rel, scale)
    w = np.zeros(6)
    if c.extra_payload:
        flange = d.xmat[c.body].reshape(3, 3)
        lever = flange @ c.extra_com + d.xpos[c.body] - pos
        w[2] = -c.extra_payload * GRAVITY[2]
        w[3], w[4] = lever[1] * w[2], -lever[0] * w[2]
    inv = np.linalg.solve(jac @ jac.T + SINGULAR_DAMPING * np.eye(6), jac)  # A^T
    if c.position_controlled and not c.compliant:
        mass = np.zeros((m.nv, m.nv))
        mujoco.mj_fullM(m, d, mass)
        acc = c.kp * err + c.kd * (twist - vel)
        return d.qfrc_bias[:n] + mass[:n, :n] @ (inv.T @ acc) + jac.T @ w
    w += c.k * err + c.d * (np.where(c.free, 0.0, twist) - vel) + c.wrench_ff
    tau = d.qfrc_bias[:n] + jac.T @ w
    if n > 6:
        stiffness, damping = POSTURE_GAINS
        tau += (np.eye(n) - jac.T @ inv) @ (stiffness * (c.home - d.qpos[:n]) - damping * d.qvel[:n])
    return tau


@pytest.mark.parametrize("model_file", ["sim-ur5e.yaml", "sim-fr3.yaml"])
@pytest.mark.parametrize("compliance", [None, Compliance.uniform(4000.0, 300.0),
                                        Compliance((2000, 2000, 0, 100, 100, 100), wrench=(0, 0, -5, 0, 0, 0))])
def test_the_controller_in_mujoco_is_the_law(model_file, compliance):
    """The Cartesian actuators MuJoCo evaluates give the controller's torques, stiff or compliant,
    with velocity feed-forward, the held load and a push along a free axis."""
    import mujoco

    with rmskill.connect(f"examples/arms/{model_file}") as arm:
        u = arm.unwrapped
        m, d, c = u.model, u.data, u.ctrl
        arm.set_compliance(compliance)
        d.qvel[: c.dof] = np.random.default_rng(0).normal(0.0, 0.02, c.dof)
        mujoco.mj_forward(m, d)
        pos, quat = c.tcp_pose(d)
        turn = np.zeros(4)
        mujoco.mju_axisAngle2Quat(turn, np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8]), 0.001)
        target_quat, target_pos = np.zeros(4), pos + np.array([0.0002, -0.0001, 0.0003])
        mujoco.mju_mulQuat(target_quat, turn, quat)
        previous = target_pos - np.array([1e-5, 2e-5, -1e-5])
        c.reset_feedforward()
        c.set_target(previous, quat)
        c.prepare()
        c.set_target(target_pos, target_quat)
        c.prepare()
        mujoco.mj_fwdPosition(m, d)
        mujoco.mj_fwdVelocity(m, d)
        c.apply()
        mujoco.mj_fwdActuation(m, d)
        expected = _reference_torques(arm, target_pos, target_quat, previous, quat)
        assert np.all(np.abs(expected) < 0.9 * m.actuator_ctrlrange[: c.dof, 1])  # not clipped
        # (the stiff loop as J^T Lambda acc is M A acc up to J^T A^T = I - O(eps / sigma^2): 1e-4 here)
        np.testing.assert_allclose(d.qfrc_actuator[: c.dof], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model_file", ["sim-ur5e.yaml", "sim-fr3.yaml"])
def test_an_episode_does_not_depend_on_what_ran_before(model_file):
    """The controller's state in the model (gears, gains, mocap target, TCP and load) is set anew at
    a reset: an episode replays exactly after others, compliant or not, in a fresh arm or not."""

    def episode(arm) -> np.ndarray:
        arm.sim.reset(seed=7)
        arm.stop()
        pose = arm.state().base_T_tcp
        for i in range(1, 60):
            arm.servo(pose.translated([0.0001 * i, 0.0, 0.0002 * i]), duration=0.004)
        return np.r_[arm.state().q, arm.sim.plate_pose().xyz, arm.state().wrench.force]

    with rmskill.connect(f"examples/arms/{model_file}") as arm:
        fresh = episode(arm)
    with rmskill.connect(f"examples/arms/{model_file}") as arm:
        arm.sim.reset(seed=1, plate=False)
        arm.unwrapped.set_tcp(arm.unwrapped.flange_T_tcp @ Pose([0.0, 0.0, 0.01]))
        with compliant(arm, Compliance.uniform(2000.0, 100.0)):
            arm.move_to(arm.state().base_T_tcp.translated([0.0, 0.02, -0.02]), 0.1)
        arm.move_joints(arm.state().q + 0.05, 0.5)
        arm.unwrapped.set_tcp(arm.config.flange_T_tcp)
        np.testing.assert_array_equal(episode(arm), fresh)
