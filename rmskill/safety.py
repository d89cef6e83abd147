"""The safety envelope: one layer above every driver; no command reaches a driver around it.

Checks every command before it is sent (finite values, workspace box, speed, per-command step)
and every measurement after (contact force), and runs a servo watchdog on arms where time passes
on its own. A violation stops the arm, latches, and raises ``SafetyViolation`` naming the limit
and the value; motion stays refused until ``recover()``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence

import numpy as np

from rmskill.arm import Arm, ArmState, Gripper, GripperState
from rmskill.config import ArmConfig, Limits
from rmskill.errors import SafetyViolation
from rmskill.geometry import Pose

log = logging.getLogger(__name__)

PoseLike = Pose | Sequence[float] | np.ndarray


class SafeArm(Arm):
    """Wraps a driver's ``Arm``; same interface. ``unwrapped`` is the driver underneath."""

    def __init__(self, arm: Arm, config: ArmConfig):
        self.unwrapped = arm
        self.config = config
        self.limits: Limits = config.limits
        self.capabilities = arm.capabilities
        self.gripper = GuardedGripper.around(self, arm.gripper)
        box = self.limits.workspace
        self._lo, self._hi = tuple(box.min), tuple(box.max)
        self._lock = threading.RLock()
        self._fault: SafetyViolation | None = None
        self._last_target: Pose | None = None
        self._last_servo = 0.0
        self._watchdog: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def sim(self):
        """The simulator's ground truth (``SimWorld``), or ``None`` on a real arm."""
        return getattr(self.unwrapped, "sim", None)

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        self.unwrapped.connect()

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            if self.unwrapped.connected:
                try:
                    self.unwrapped.stop()
                finally:
                    self.unwrapped.close()
                    GuardedGripper.release(self.gripper)

    @property
    def connected(self) -> bool:
        return self.unwrapped.connected

    # --- faults -------------------------------------------------------------------------
    @property
    def fault(self) -> SafetyViolation | None:
        """The latched violation, if any."""
        return self._fault

    def recover(self) -> None:
        """Clear a latched violation after the cause has been dealt with."""
        self._fault = None
        self._last_target = None

    def _violate(self, limit: str, message: str, value: float | None = None, bound: float | None = None):
        err = SafetyViolation(limit, message, value, bound)
        self._fault = err
        self._last_target = None
        try:
            self.unwrapped.stop()
        finally:
            log.warning("arm stopped: %s", err)
        raise err

    def _check_ready(self) -> None:
        if self._fault is not None:
            raise SafetyViolation(self._fault.limit, f"arm is stopped after an earlier violation ({self._fault}); "
                                  "call recover() first", self._fault.value, self._fault.bound)

    # --- checks -------------------------------------------------------------------------
    def _as_pose(self, pose: PoseLike, what: str) -> Pose:
        if isinstance(pose, Pose):
            return pose
        values = np.asarray(pose, dtype=float).reshape(-1)
        if values.shape != (6,):
            self._violate("input", f"{what} needs a Pose or [x, y, z, rx, ry, rz], got {values.size} numbers")
        if not np.all(np.isfinite(values)):
            self._violate("finite", f"{what} has a non-finite value: {values.tolist()}")
        return Pose.from_ur(values)

    def _check_workspace(self, pose: Pose, what: str) -> None:
        for axis, v, lo, hi in zip("xyz", pose.xyz.tolist(), self._lo, self._hi, strict=True):
            if not lo <= v <= hi:
                bound = lo if v < lo else hi
                self._violate("workspace", f"{what} {axis}={v:.4f} m is outside the workspace "
                              f"[{lo:.3f}, {hi:.3f}] m by {abs(v - bound) * 1000:.1f} mm", float(v), bound)

    def _check_force(self, state: ArmState) -> None:
        if state.wrench is None:
            return
        force = state.wrench.force_norm
        if not math.isfinite(force) or force > self.limits.max_force:
            self._violate("force", f"contact force {force:.1f} N exceeds {self.limits.max_force:.1f} N",
                          force, self.limits.max_force)

    def _check_force_fast(self) -> None:
        fast = getattr(self.unwrapped, "force_norm", None)
        if fast is None:
            self._check_force(self.unwrapped.state())
            return
        force = fast()
        if not force <= self.limits.max_force:
            self._violate("force", f"contact force {force:.1f} N exceeds {self.limits.max_force:.1f} N",
                          force, self.limits.max_force)

    # --- sensing ------------------------------------------------------------------------
    def state(self) -> ArmState:
        with self._lock:
            return self.unwrapped.state()

    # --- motion -------------------------------------------------------------------------
    def move_to(self, pose: PoseLike, speed: float = 0.1) -> None:
        with self._lock:
            self._check_ready()
            pose = self._as_pose(pose, "move_to target")
            self._check_workspace(pose, "move_to target")
            if not 0 < speed <= self.limits.max_speed:
                self._violate("speed", f"requested speed {speed} m/s is outside (0, {self.limits.max_speed}] m/s",
                              speed, self.limits.max_speed)
            self._last_target = None
            self.unwrapped.move_to(pose, speed)
            self._check_force(self.unwrapped.state())

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        with self._lock:
            self._check_ready()
            q = np.asarray(q, dtype=float)
            if q.shape != (self.capabilities.dof,) or not np.all(np.isfinite(q)):
                self._violate("input", f"joint target must be {self.capabilities.dof} finite values, got {q.tolist()}")
            if not 0 < speed <= self.limits.max_angular_speed:
                self._violate("speed", f"joint speed {speed} rad/s is outside (0, {self.limits.max_angular_speed}] "
                              "rad/s", speed, self.limits.max_angular_speed)
            self._last_target = None
            self.unwrapped.move_joints(q, speed)
            state = self.unwrapped.state()
            self._check_workspace(state.base_T_tcp, "TCP after move_joints")
            self._check_force(state)

    def servo(self, pose: PoseLike, duration: float | None = None) -> None:
        with self._lock:
            self._check_ready()
            pose = self._as_pose(pose, "servo target")
            self._check_workspace(pose, "servo target")
            period = 1.0 / self.capabilities.rate_hz
            dt = period if duration is None else float(duration)
            if not dt >= period * 0.999:
                self._violate("input", f"servo duration {dt} s is shorter than one native period ({period} s)")
            now = time.monotonic()
            previous = self._last_target
            starting = previous is None or (
                self.capabilities.realtime and now - self._last_servo > self.limits.servo_timeout)
            if starting:  # a new stream starts from where the arm is; only the jump is bounded
                previous = self.unwrapped.state().base_T_tcp
            step = math.dist(pose.xyz.tolist(), previous.xyz.tolist())
            if step > self.limits.max_step:
                self._violate("step", f"servo target jumps {step * 1000:.1f} mm, more than "
                              f"{self.limits.max_step * 1000:.1f} mm", step, self.limits.max_step)
            if not starting and step / dt > self.limits.max_speed * 1.0001:
                self._violate("speed", f"servo target moves at {step / dt:.3f} m/s, above "
                              f"{self.limits.max_speed} m/s", step / dt, self.limits.max_speed)
            turn = math.radians(pose.angle_deg(previous))
            if not starting and turn / dt > self.limits.max_angular_speed * 1.0001:
                self._violate("angular_speed", f"servo target turns at {turn / dt:.3f} rad/s, above "
                              f"{self.limits.max_angular_speed} rad/s", turn / dt, self.limits.max_angular_speed)
            self._last_target = pose
            self._last_servo = now
            if self.capabilities.realtime:
                self._ensure_watchdog()
            self.unwrapped.servo(pose, duration)
            self._last_servo = time.monotonic()  # the gap the watchdog measures starts when a call returns
            self._check_force_fast()

    def stop(self) -> None:
        with self._lock:
            self._last_target = None
            self.unwrapped.stop()

    def freedrive(self, on: bool) -> None:
        with self._lock:
            self._check_ready()
            self._last_target = None
            self.unwrapped.freedrive(on)

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        with self._lock:
            self.unwrapped.set_tcp(flange_T_tcp)

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        with self._lock:
            self.unwrapped.set_payload(mass, center_of_mass)

    # --- watchdog -----------------------------------------------------------------------
    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, name="rmskill-servo-watchdog", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        timeout = self.limits.servo_timeout
        while not self._closing.wait(timeout / 4):
            if self._last_target is None:
                continue
            gap = time.monotonic() - self._last_servo
            if gap > timeout and self._lock.acquire(timeout=timeout):
                try:
                    if self._last_target is not None and time.monotonic() - self._last_servo > timeout:
                        self._fault = SafetyViolation("servo_timeout", f"no servo command for {gap:.3f} s "
                                                      f"(limit {timeout} s); arm stopped", gap, timeout)
                        self._last_target = None
                        log.warning("%s", self._fault)
                        self.unwrapped.stop()
                finally:
                    self._lock.release()


class GuardedGripper(Gripper):
    """``arm.gripper`` on a ``SafeArm``: a blocking finger motion never starves the servo watchdog.

    Before each blocking call (``move``, ``open``, ``close``) it ends a running servo stream cleanly
    (``SafeArm.stop()``: the arm holds where it is and the watchdog goes idle) and keeps the envelope's
    lock, so no arm command interleaves; the next ``servo`` starts a new stream from where the arm is.
    Anything else (``state``, driver extras such as ``activate``) goes straight to the gripper.
    """

    def __init__(self, arm: SafeArm, gripper: Gripper):
        self._arm, self.wrapped = arm, gripper
        self.max_width = gripper.max_width

    @classmethod
    def around(cls, arm: SafeArm, gripper: Gripper | None) -> GuardedGripper | None:
        return None if gripper is None else cls(arm, gripper)

    @staticmethod
    def release(gripper: Gripper | None) -> None:
        """Close the gripper's link (best effort: the arm is closing anyway)."""
        if gripper is not None:
            try:
                gripper.disconnect()
            except Exception as err:
                log.warning("closing the gripper failed: %s", err)

    def _blocking(self, call, *args):
        arm = self._arm
        with arm._lock:
            if arm._last_target is not None:
                arm.stop()
            return call(*args)

    def state(self) -> GripperState:
        return self.wrapped.state()

    def move(self, width: float, speed: float | None = None, force: float | None = None) -> GripperState:
        return self._blocking(self.wrapped.move, width, speed, force)

    def open(self) -> GripperState:
        return self._blocking(self.wrapped.open)

    def close(self, force: float | None = None) -> GripperState:
        return self._blocking(self.wrapped.close, force)

    def connect(self) -> None:
        self.wrapped.connect()

    def disconnect(self) -> None:
        self.wrapped.disconnect()

    def __getattr__(self, name: str):
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"GuardedGripper({self.wrapped!r})"
