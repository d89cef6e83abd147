"""FrankaArm against franky-sim on loopback (the unmodified libfranka protocol peer).

The simulator runs in a subprocess bound to a free loopback address of its own (127.0.0.91-99); pylibfranka runs in the
driver's control process. The interpolator tests need neither.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rmskill.config import ArmConfig, load_arm_config
from rmskill.drivers.franka import FrankaArm, describe_failure
from rmskill.drivers.franka.follower import CartesianFollower
from rmskill.drivers.franka.simulator import FrankySim, available, free_loopback_host
from rmskill.drivers.franka.tracker import Limits
from rmskill.errors import ConfigError, DriverError
from rmskill.geometry import Pose

ARM_FILE = Path(__file__).resolve().parents[2] / "examples" / "arms" / "franky-sim-fr3.yaml"
UNAVAILABLE = available()
needs_sim = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"franky-sim/pylibfranka {UNAVAILABLE}")


# --- the 1 kHz interpolator, on its own -----------------------------------------------------
def test_follower_stream_is_jerk_limited_and_does_not_overshoot() -> None:
    """100 Hz targets on a line, with an 8 mm jump in the middle, become bounded-jerk commands."""
    linear, angular = Limits(0.25, 2.0, 200.0), Limits(1.0, 5.0, 500.0)
    start = Pose.from_ur([0.5, 0.0, 0.4, np.pi, 0.0, 0.0])
    f = CartesianFollower(start.to_franka(), linear, angular, omega=60.0)
    dt, t, xs, qs = 1e-3, 0.0, [], []
    turn = [Pose.from_ur([0.0, 0.0, 0.0, 0.0, 0.0, 0.004 * k]) for k in range(1, 101)]  # 23 deg
    targets = [start.translated([0.0, 0.0005 * k, 0.0]) @ turn[k - 1] for k in range(1, 101)]
    targets[50:] = [p.translated([0.0, 0.008, 0.0]) for p in targets[50:]]
    for target in targets:
        f.set_target(target.xyz, target.wxyz, t, 0.01)
        for _ in range(10):
            t += dt
            xs.append(np.asarray(f.step(t, dt))[12:15])
            qs.append(f.quat.copy())
    for _ in range(1000):
        t += dt
        xs.append(np.asarray(f.step(t, dt))[12:15])
        qs.append(f.quat.copy())
    x = np.array(xs)
    v = np.linalg.norm(np.diff(x, axis=0), axis=1) / dt
    a = np.linalg.norm(np.diff(x, 2, axis=0), axis=1) / dt**2
    j = np.linalg.norm(np.diff(x, 3, axis=0), axis=1) / dt**3
    assert v.max() <= linear.velocity + 1e-9
    assert a.max() <= linear.acceleration + 1e-6
    assert j.max() <= linear.jerk + 1e-3
    final_y = targets[-1].xyz[1]
    assert x[:, 1].max() - final_y < 1e-5, "overshoot past the last target"
    assert abs(x[-1, 1] - final_y) < 1e-5 and f.at_rest(t)
    angles = [Pose(wxyz=q).angle_deg(Pose(wxyz=q_next)) for q, q_next in itertools.pairwise(qs)]
    assert np.radians(max(angles)) / dt <= angular.velocity + 1e-6
    assert Pose(x[-1], qs[-1]).angle_deg(targets[-1]) < 1e-3


def test_options_errors_name_the_key() -> None:
    config = load_arm_config(ARM_FILE)
    for options, key in [
        ({"realtime": "maybe"}, "options.realtime"),
        ({"collision_thresholds": {"torque": [1.0, 2.0]}}, "options.collision_thresholds.torque"),
        ({"joint_impedanc": [1.0] * 7}, "options.joint_impedanc"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            FrankaArm(config.with_changes(options=options))


@needs_sim
def test_reflex_message_names_libfranka_and_recovery() -> None:
    text = 'libfranka: Move command aborted: motion aborted by reflex! ["cartesian_reflex"]'
    # pylibfranka stays out of this process (it cannot share one with franky, should a test load it)
    code = (
        "import sys, pylibfranka as pf\n"
        "from rmskill.drivers.franka.controller import classify\n"
        "print(classify(pf.ControlException(sys.argv[1])))"
    )
    kind = subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True, check=True).stdout.strip()
    assert kind == "reflex"
    message = describe_failure(load_arm_config(ARM_FILE), kind, text)
    assert "cartesian_reflex" in message and "recover()" in message


# --- against franky-sim -----------------------------------------------------------------------
@pytest.fixture
def sim() -> FrankySim:
    if UNAVAILABLE is not None:
        pytest.skip(f"franky-sim/pylibfranka {UNAVAILABLE}")
    with FrankySim() as server:
        yield server


@pytest.fixture
def config(sim: FrankySim) -> ArmConfig:
    return load_arm_config(ARM_FILE).with_changes(host=sim.host)


@needs_sim
def test_refused_connection_is_a_clear_driver_error() -> None:
    nobody = free_loopback_host()  # a loopback address with nothing listening
    arm = FrankaArm(load_arm_config(ARM_FILE).with_changes(host=nobody))
    with pytest.raises(DriverError, match=rf"Franka at {nobody}: connection error.*refused"):
        arm.connect()
    assert not arm.connected


@needs_sim
def test_non_realtime_kernel_names_the_opt_out(config: ArmConfig) -> None:
    rt = Path("/sys/kernel/realtime")
    if rt.exists() and rt.read_text().strip() == "1":
        pytest.skip("this kernel is real-time")
    options = {**config.options, "realtime": "enforce"}
    with pytest.raises(DriverError, match=r"realtime error.*realtime: ignore"):
        FrankaArm(config.with_changes(options=options)).connect()


@needs_sim
def test_state_move_servo_stop(config: ArmConfig) -> None:
    with FrankaArm(config) as arm:
        s = arm.state()
        assert s.q.shape == (7,) and s.dq.shape == (7,) and s.wrench is not None
        assert s.wrench.force.shape == (3,) and np.all(np.isfinite(s.wrench.force))
        assert s.base_T_tcp.xyz[2] > 0.2

        arm.set_tcp(Pose())  # the flange itself
        base_T_flange = arm.state().base_T_tcp
        arm.set_tcp(config.flange_T_tcp)
        assert arm.state().base_T_tcp.isclose(base_T_flange @ config.flange_T_tcp, mm=0.01, deg=0.01)

        above = s.base_T_tcp.translated([0.03, 0.05, -0.05]) @ Pose.from_ur([0, 0, 0, 0, 0, 0.3])
        arm.move_to(above, speed=0.15)
        assert arm.state().base_T_tcp.distance_mm(above) < 1.0

        # a placement-like stream at 100 Hz: 20 mm down, then 10 mm sideways, over 3 s
        errors, target = [], above
        for k in range(300):
            dz, dy = (-0.02 * k / 200, 0.0) if k < 200 else (-0.02, 0.01 * (k - 200) / 100)
            target = above.translated([0.0, dy, dz])
            arm.servo(target, duration=0.01)
            errors.append(arm.state().base_T_tcp.distance_mm(target))
        assert np.percentile(errors, 95) < 2.0, f"tracking error p95 {np.percentile(errors, 95):.2f} mm"
        arm.stop()
        time.sleep(0.2)
        final = arm.state().base_T_tcp
        assert final.distance_mm(target) < 0.5 and final.angle_deg(target) < 0.2

        cycles, missed = arm.loop_counters()
        assert cycles > 2500 and missed < cycles * 0.05

        arm.move_joints(config.home, speed=0.8)
        assert np.abs(arm.state().q - np.asarray(config.home)).max() < 0.01
    assert not arm.connected


@needs_sim
def test_lost_connection_stops_the_stream_and_says_so() -> None:
    with FrankySim() as own_sim:
        arm = FrankaArm(load_arm_config(ARM_FILE).with_changes(host=own_sim.host))
        with arm:
            start = arm.state().base_T_tcp
            own_sim.stop()
            with pytest.raises(DriverError, match=rf"Franka at {own_sim.host}: connection error"):
                for k in range(500):  # 5 s; libfranka notices within about 1 s
                    arm.servo(start.translated([0.0, 0.00002 * k, 0.0]), duration=0.01)
        assert not arm.connected


@needs_sim
def test_compliance_is_libfrankas_cartesian_impedance(config: ArmConfig) -> None:
    from rmskill.arm import Compliance, compliant

    with FrankaArm(config) as arm:
        start = arm.state().base_T_tcp
        with compliant(arm, Compliance.uniform(2000.0, 150.0)):
            assert arm.compliance == Compliance.uniform(2000.0, 150.0)
            for i in range(1, 101):  # 10 mm up under the robot's Cartesian impedance
                arm.servo(Pose(start.xyz + np.array([0.0, 0.0, 0.0001 * i]), start.wxyz))
            for _ in range(30):  # hold the last target: a loaded machine's late periods leave the spring behind
                arm.servo(Pose(start.xyz + np.array([0.0, 0.0, 0.01]), start.wxyz))
            arm.stop()
        assert arm.compliance is None
        assert arm.state().base_T_tcp.xyz[2] - start.xyz[2] == pytest.approx(0.01, abs=0.002)
        with pytest.raises(DriverError, match="force-controlled"):
            arm.set_compliance(Compliance.free_along("z", -5.0))
        with pytest.raises(DriverError, match="range"):
            arm.set_compliance(Compliance.uniform(5000.0, 150.0))
