"""``check_driver``: the conformance suite every backend must pass (like Gymnasium's ``check_env``).

Run it in a plugin's CI: ``rmskill check-driver my-arm.yaml``. Each check moves the arm a few
centimetres at most, inside the arm file's workspace.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rmskill.config import ArmConfig
from rmskill.errors import RmskillError, SafetyViolation
from rmskill.geometry import Pose
from rmskill.safety import SafeArm


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


class CheckFailed(Exception):
    """A conformance check failed; the message says how."""


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def run_check(results: list[CheckResult], name: str, fn: Callable[[], str]) -> bool:
    """Run one check: its detail line on success, the failure's one line otherwise; appended to ``results``."""
    t0 = time.monotonic()
    try:
        detail, ok = fn(), True
    except (CheckFailed, RmskillError) as err:
        detail, ok = str(err), False
    results.append(CheckResult(name, ok, detail, round(time.monotonic() - t0, 3)))
    return ok


def _check_state(arm: SafeArm) -> str:
    caps = arm.capabilities
    s0 = arm.state()
    expect(s0.q.shape == (caps.dof,) and np.all(np.isfinite(s0.q)), f"q must be {caps.dof} finite values [rad]")
    expect(bool(np.all(np.abs(s0.q) < 4 * math.pi)), f"joint values look like degrees, not radians: {s0.q}")
    expect(s0.dq.shape == (caps.dof,), "dq must have one value per joint")
    expect(bool(np.linalg.norm(s0.base_T_tcp.xyz) < 2.5), f"TCP {s0.base_T_tcp.xyz} is over 2.5 m away: mm, not m?")
    expect(s0.tcp_velocity.shape == (6,), "tcp_velocity must have 6 values")
    expect((s0.wrench is not None) == caps.senses_wrench, "wrench must be present exactly when senses_wrench")
    if s0.wrench is not None:
        expect(bool(np.all(np.isfinite(s0.wrench.force))), "wrench force must be finite")
    arm.servo(s0.base_T_tcp)
    s1 = arm.state()
    deadline = time.monotonic() + 0.1  # a real controller's next state frame may still be on its way
    while s1.time <= s0.time and time.monotonic() < deadline:
        time.sleep(0.002)
        s1 = arm.state()
    expect(s1.time > s0.time, f"state time must advance after a servo period ({s0.time} -> {s1.time})")
    return f"dof {caps.dof}, TCP at {np.round(s0.base_T_tcp.xyz, 4).tolist()} m"


def _check_move_to(arm: SafeArm, config: ArmConfig) -> str:
    start = arm.state().base_T_tcp
    box_lo, box_hi = np.array(config.limits.workspace.min), np.array(config.limits.workspace.max)
    direction = np.where(start.xyz + 0.03 < box_hi, 1.0, -1.0) * np.array([1.0, 0.0, 0.0])
    up = 0.02 if start.xyz[2] + 0.02 < box_hi[2] else -0.02
    target = start.translated(direction * 0.03 + np.array([0.0, 0.0, up]))
    expect(bool(np.all(target.xyz > box_lo) and np.all(target.xyz < box_hi)), "no room in the workspace to move")
    arm.move_to(target, speed=0.05)
    err = arm.state().base_T_tcp.distance_mm(target)
    arm.move_to(start, speed=0.05)
    back = arm.state().base_T_tcp.distance_mm(start)
    expect(err < 1.0 and back < 1.0, f"move_to missed by {err:.3f} mm (and {back:.3f} mm back); limit 1 mm")
    return f"reached 36 mm away within {err:.3f} mm, back within {back:.3f} mm"


def _check_servo(arm: SafeArm, seconds: float = 1.0) -> str:
    rate = arm.capabilities.rate_hz
    n = int(rate * seconds)  # native-rate commands
    start = arm.state()
    wall = time.monotonic()
    worst = 0.0
    for i in range(1, n + 1):
        s = i / n
        target = start.base_T_tcp.translated([0.0, 0.01 * math.sin(math.pi * s), 0.0])  # a 10 mm arc
        arm.servo(target)
        if i % 50 == 0:
            worst = max(worst, arm.state().base_T_tcp.distance_mm(target))
    wall = time.monotonic() - wall
    end = arm.state()
    sim_rate = n / (end.time - start.time)
    if arm.capabilities.realtime:
        # Commands must keep the declared rate of wall time; a quarter of slack for a loaded 2-core
        # CI machine running a simulator beside the caller (whose own clock may then run slow).
        expect(abs(n / wall - rate) / rate < 0.25, f"commands ran at {n / wall:.0f} Hz wall time, declared {rate:.0f}")
    else:  # simulated time advances one native period per command
        expect(abs(sim_rate - rate) / rate < 0.05, f"controller time ran at {sim_rate:.0f} Hz, declared {rate:.0f}")
    expect(worst < 2.0, f"servo tracking error {worst:.2f} mm exceeds 2 mm on a 10 mm sine")
    if arm.capabilities.realtime:
        rates = f"{n / wall:.0f} Hz of wall time ({n / (end.time - start.time):.0f} per controller-clock second)"
    else:
        rates = f"{sim_rate:.0f} Hz of simulated time"
    return f"{n} commands at {rates}, tracking error <= {worst:.3f} mm"


def _check_stop(arm: SafeArm) -> str:
    arm.stop()  # end the previous stream: this one starts from the measured pose
    start = arm.state().base_T_tcp
    period = 1.0 / arm.capabilities.rate_hz
    for i in range(1, int(0.2 / period)):
        arm.servo(start.translated([0.0, 0.05 * i * period, 0.0]))  # 50 mm/s
    arm.stop()
    deadline = arm.state().time + 0.3
    while arm.state().time < deadline:
        if arm.capabilities.simulated:
            arm.unwrapped.advance(0.02)
        else:
            time.sleep(0.02)
    speed = float(np.linalg.norm(arm.state().tcp_velocity[:3]))
    expect(speed < 0.002, f"TCP still moving at {speed * 1000:.1f} mm/s 0.3 s after stop()")
    arm.move_to(start, speed=0.05)
    return f"standstill ({speed * 1000:.2f} mm/s) within 0.3 s"


@contextlib.contextmanager
def _expected_refusals():
    """The envelope's "arm stopped" warnings are the point of a refusal check, not a problem: hush them."""
    safety_log = logging.getLogger("rmskill.safety")
    level = safety_log.level
    safety_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        safety_log.setLevel(level)


def _expect_refusal(arm: SafeArm, command: Callable[[], None], limit: str) -> str:
    with _expected_refusals():
        return _refused(arm, command, limit)


def _refused(arm: SafeArm, command: Callable[[], None], limit: str) -> str:
    before = arm.state().base_T_tcp
    try:
        command()
    except SafetyViolation as err:
        expect(err.limit == limit, f"refused for '{err.limit}', expected '{limit}'")
        try:
            arm.servo(before)
            raise CheckFailed("motion was accepted after a violation without recover()")
        except SafetyViolation:
            pass  # still latched, as it must be
        arm.recover()
        moved = arm.state().base_T_tcp.distance_mm(before)
        expect(moved < 0.5, f"the arm moved {moved:.2f} mm after the refused command")
        return str(err)
    raise CheckFailed("the command was accepted")


def _check_workspace(arm: SafeArm, config: ArmConfig) -> str:
    outside = arm.state().base_T_tcp
    outside = Pose([config.limits.workspace.max[0] + 0.2, outside.xyz[1], outside.xyz[2]], outside.wxyz)
    return _expect_refusal(arm, lambda: arm.move_to(outside), "workspace")


def _check_nan(arm: SafeArm) -> str:
    target = arm.state().base_T_tcp.to_ur()
    target[0] = float("nan")
    return _expect_refusal(arm, lambda: arm.servo(target), "finite")


def _check_gripper(arm: SafeArm) -> str:
    gripper = arm.gripper
    if gripper is None:
        return "no gripper configured"
    closed = gripper.close()
    opened = gripper.open()
    expect(opened.width > closed.width, f"open width {opened.width:.4f} m not above closed {closed.width:.4f} m")
    expect(opened.width > 0.8 * gripper.max_width, f"open width {opened.width:.4f} m, stroke {gripper.max_width}")
    again = gripper.close()
    expect(again.width < opened.width, "gripper did not close again")
    return f"closed {closed.width * 1000:.1f} mm (object: {closed.object_detected}), open {opened.width * 1000:.1f} mm"


def check_driver(arm_file: str | Path | ArmConfig, servo_seconds: float = 1.0) -> list[CheckResult]:
    """Run every check; a failure is recorded and the suite goes on where it safely can."""
    from rmskill.config import load_arm_config
    from rmskill.connect import connect, open_arm

    config = load_arm_config(arm_file)
    open_arm(config)  # an unknown driver or model is a usage error, not a failed check
    results: list[CheckResult] = []

    def run(name: str, fn: Callable[[], str]) -> bool:
        ok = run_check(results, name, fn)
        if not ok and "arm" in holder:
            holder["arm"].recover()  # so one failed check does not fail the rest
        return ok

    holder: dict[str, SafeArm] = {}

    def _connect() -> str:
        holder["arm"] = connect(config, calibrated=False)
        caps = holder["arm"].capabilities
        return f"{config.driver} {caps.model}: {caps.dof} dof, {caps.rate_hz:.0f} Hz, wrench {caps.senses_wrench}"

    if not run("connect", _connect):
        return results
    arm = holder["arm"]
    try:
        run("state", lambda: _check_state(arm))
        run("move_to", lambda: _check_move_to(arm, config))
        run("servo", lambda: _check_servo(arm, servo_seconds))
        run("stop", lambda: _check_stop(arm))
        run("refuse_workspace", lambda: _check_workspace(arm, config))
        run("refuse_nan", lambda: _check_nan(arm))
        run("gripper", lambda: _check_gripper(arm))
    finally:
        def _close() -> str:
            arm.close()
            expect(not arm.connected, "still connected after close()")
            return "closed"

        run("close", _close)
    return results
