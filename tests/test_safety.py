"""The safety envelope: every limit refuses, stops, latches, and names the limit and the value."""

import time

import numpy as np
import pytest

import rmskill
from rmskill import SafetyViolation
from rmskill.config import load_arm_config


@pytest.fixture
def arm(ur5e_file):
    with rmskill.connect(ur5e_file) as a:
        a.set_payload(1.05, [0.0, 0.0, 0.0513])  # gripper and the plate it holds: no static sag
        a.unwrapped.advance(0.3)
        yield a


def _expect(arm, limit: str, command) -> SafetyViolation:
    before = arm.state().base_T_tcp
    with pytest.raises(SafetyViolation) as err:
        command()
    assert err.value.limit == limit
    # Latched: nothing moves until recover(), and nothing has moved.
    with pytest.raises(SafetyViolation, match="recover"):
        arm.servo(before)
    arm.unwrapped.advance(0.2)
    assert arm.state().base_T_tcp.distance_mm(before) < 0.3
    arm.recover()
    return err.value


def test_nan_servo_target(arm):
    target = arm.state().base_T_tcp.to_ur()
    target[2] = float("nan")
    err = _expect(arm, "finite", lambda: arm.servo(target))
    assert "nan" in str(err)


def test_workspace(arm):
    far = arm.state().base_T_tcp.translated([0, 0, -0.5])
    err = _expect(arm, "workspace", lambda: arm.move_to(far))
    assert err.value == pytest.approx(far.xyz[2]) and err.bound == pytest.approx(0.03)


def test_step_and_speed(arm):
    pose = arm.state().base_T_tcp
    arm.servo(pose)
    _expect(arm, "step", lambda: arm.servo(pose.translated([0.02, 0, 0])))
    arm.servo(pose)
    err = _expect(arm, "speed", lambda: arm.servo(pose.translated([0.001, 0, 0])))  # 1 mm in 2 ms
    assert err.value == pytest.approx(0.5, rel=0.01)
    _expect(arm, "speed", lambda: arm.move_to(pose, speed=5.0))


def test_force_limit(ur5e_file):
    cfg = load_arm_config(ur5e_file).with_changes(limits={"max_force": 5.0})
    with rmskill.connect(cfg) as arm:
        nest = cfg.fixture("shelf_2")
        arm.move_to(nest @ rmskill.Pose([0, 0, -0.004]), speed=0.05)
        with pytest.raises(SafetyViolation) as err:
            for i in range(1, 500):
                arm.servo(nest @ rmskill.Pose([0, 0, -0.004 + 0.00002 * i]))
        assert err.value.limit == "force" and err.value.value > 5.0


def test_servo_watchdog_on_a_realtime_arm(ur5e_file):
    cfg = load_arm_config(ur5e_file).with_changes(sim={"realtime": True}, limits={"servo_timeout": 0.05})
    with rmskill.connect(cfg) as arm:
        pose = arm.state().base_T_tcp
        for _ in range(20):
            arm.servo(pose)
        time.sleep(0.2)  # the caller stalls
        assert arm.fault is not None and arm.fault.limit == "servo_timeout"
        with pytest.raises(SafetyViolation, match="servo_timeout"):
            arm.servo(pose)


def test_no_command_bypasses_the_envelope(arm):
    with pytest.raises(SafetyViolation):
        arm.move_joints([np.nan] * 6)
    arm.recover()
    with pytest.raises(SafetyViolation):
        arm.servo([0.0] * 5)


def test_compliance_is_bounded_by_the_arm_files_limits(arm):
    from rmskill.arm import Compliance

    assert _expect(arm, "stiffness", lambda: arm.set_compliance(Compliance.uniform(2e4, 300.0))).bound == 10000.0
    assert _expect(arm, "stiffness", lambda: arm.set_compliance(Compliance.uniform(4000.0, 5000.0))).bound == 1000.0
    assert _expect(arm, "force", lambda: arm.set_compliance(Compliance.free_along("z", -80.0))).value == 80.0
    assert _expect(arm, "finite", lambda: arm.set_compliance(Compliance((np.nan,) * 6))).limit == "finite"
    springs_pushing = Compliance((4e3,) * 3 + (300.0,) * 3, 1.0, (0, 0, 5, 0, 0, 0))  # a wrench needs a free axis
    assert _expect(arm, "input", lambda: arm.set_compliance(springs_pushing))
    arm.set_compliance(Compliance.uniform(4000.0, 300.0))
    assert arm.compliance == Compliance.uniform(4000.0, 300.0) and arm.unwrapped.ctrl.compliant
    arm.set_compliance(None)
    assert arm.compliance is None and not arm.unwrapped.ctrl.compliant
