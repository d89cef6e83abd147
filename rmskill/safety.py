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
from collections.abc import Callable, Sequence

import numpy as np

from rmskill.arm import AXES, Arm, ArmState, Compliance, Gripper, GripperState
from rmskill.config import ArmConfig, Limits
from rmskill.errors import DriverError, SafetyViolation
from rmskill.geometry import Pose

log = logging.getLogger(__name__)

PoseLike = Pose | Sequence[float] | np.ndarray

#: A ``move_to`` turn is timed as the travel of a point this far from the TCP [m] (``Arm.move_to``).
ROTATION_RADIUS = 0.1
#: Resolution of the ``move_joints`` path check [m]: a TCP this close to a wall counts as on it.
JOINT_PATH_TOLERANCE = 0.0005
#: How far a calibrated TCP may lie beyond the arm file's nominal one, for the path check's reach [m].
TCP_MARGIN = 0.05


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
        self._flange_T_tcp = config.flange_T_tcp
        self._last_servo = 0.0
        self._watchdog: threading.Thread | None = None
        self._closing = threading.Event()
        self._force_norm = getattr(arm, "force_norm", None)  # a cheap force check, where the driver has one

    @property
    def sim(self):
        """The simulator's ground truth (``SimWorld``), or ``None`` on a real arm."""
        return getattr(self.unwrapped, "sim", None)

    @property
    def operator(self):
        """Who resets the cell between episodes without a person (an emulator's), or ``None``."""
        return getattr(self.unwrapped, "operator", None)

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
            return pose  # a Pose is finite and its rotation a unit quaternion by construction
        try:
            values = np.asarray(pose, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            self._violate("input", f"{what} needs a Pose or [x, y, z, rx, ry, rz], got {type(pose).__name__}")
        if values.shape != (6,):
            self._violate("input", f"{what} needs a Pose or [x, y, z, rx, ry, rz], got {values.size} numbers")
        if not np.all(np.isfinite(values)):
            self._violate("finite", f"{what} has a non-finite value: {values.tolist()}")
        return Pose.from_ur(values)

    def _check_workspace(self, pose: Pose, what: str, margin: float = 0.0) -> None:
        """Refuse ``pose`` unless it is at least ``margin`` [m] inside the workspace box."""
        for axis, v, lo, hi in zip("xyz", pose.xyz.tolist(), self._lo, self._hi, strict=True):
            if not lo + margin <= v <= hi - margin:
                bound = lo if v < lo + margin else hi
                self._violate("workspace", f"{what} {axis}={v:.4f} m is outside the workspace "
                              f"[{lo:.3f}, {hi:.3f}] m by {abs(v - bound) * 1000:.1f} mm", float(v), bound)

    def _check_speed(self, speed: float, bound: float, unit: str, what: str) -> None:
        if isinstance(speed, bool) or not isinstance(speed, int | float | np.floating | np.integer):
            self._violate("input", f"{what} speed must be a number, got {type(speed).__name__}")
        if not 0 < speed <= bound:
            self._violate("speed", f"requested {what} speed {speed} {unit} is outside (0, {bound}] {unit}",
                          float(speed), bound)

    def _servo_duration(self, duration: float | None) -> float:
        """The time [s] a servo target is judged over: whole native periods, rounded down."""
        period = 1.0 / self.capabilities.rate_hz
        if duration is None:
            return period
        if isinstance(duration, bool) or not isinstance(duration, int | float | np.floating | np.integer):
            self._violate("input", f"servo duration must be a number of seconds, got {type(duration).__name__}")
        dt, longest = float(duration), self.limits.max_servo_duration
        if not period * 0.999 <= dt <= longest:
            self._violate("duration", f"servo duration {dt} s is outside [{period}, {longest}] s (one native "
                          "period to limits.max_servo_duration)", dt, longest)
        return max(1, math.floor(dt / period + 1e-6)) * period

    def _check_motion(self, pose: Pose, reference: Pose, dt: float, what: str) -> None:
        """Step [m], speed [m/s] and angular speed [rad/s] of moving from ``reference`` to ``pose`` in ``dt`` [s]."""
        lim = self.limits
        step = math.dist(pose.xyz.tolist(), reference.xyz.tolist())
        if step <= lim.max_step and step / dt <= lim.max_speed * 1.0001:  # the common case, in plain floats
            aw, ax, ay, az = pose.wxyz.tolist()
            bw, bx, by, bz = reference.wxyz.tolist()
            turn = 2.0 * math.acos(min(1.0, abs(aw * bw + ax * bx + ay * by + az * bz)))
            if turn / dt <= lim.max_angular_speed * 1.0001:
                return
        if step > lim.max_step:
            self._violate("step", f"{what} jumps {step * 1000:.1f} mm, more than {lim.max_step * 1000:.1f} mm",
                          step, lim.max_step)
        if step / dt > lim.max_speed * 1.0001:
            self._violate("speed", f"{what} moves at {step / dt:.3f} m/s, above {lim.max_speed} m/s",
                          step / dt, lim.max_speed)
        turn = math.radians(pose.angle_deg(reference))
        if turn / dt > lim.max_angular_speed * 1.0001:
            self._violate("angular_speed", f"{what} turns at {turn / dt:.3f} rad/s, above "
                          f"{lim.max_angular_speed} rad/s", turn / dt, lim.max_angular_speed)

    def _check_line(self, start: Pose, pose: Pose, speed: float) -> None:
        """A straight ``move_to``: the driver times a turn as a point ``ROTATION_RADIUS`` from the TCP."""
        turn = math.radians(pose.angle_deg(start))
        if turn == 0.0:
            return
        seconds = max(math.dist(pose.xyz.tolist(), start.xyz.tolist()), ROTATION_RADIUS * turn) / speed
        bound = self.limits.max_angular_speed
        if turn / seconds > bound * 1.0001:
            self._violate("angular_speed", f"move_to turns {math.degrees(turn):.1f} deg at {turn / seconds:.3f} "
                          f"rad/s, above {bound} rad/s (lower the speed)", turn / seconds, bound)

    def _check_joint_path(self, q0: np.ndarray, q1: np.ndarray) -> None:
        """Every TCP pose along the straight joint path from ``q0`` to ``q1`` is in the workspace.

        Bisection: between two joint samples the TCP moves at most ``reach * |dq|_1``, so a segment
        whose ends lie that far inside the box (halved) is inside; others are split.
        """
        fk = self.unwrapped.forward_kinematics
        reach = self.capabilities.reach + float(np.linalg.norm(self._flange_T_tcp.xyz)) + TCP_MARGIN
        segments = [(0.0, 1.0, fk(q0), fk(q1))]
        self._check_workspace(segments[0][3], "move_joints target")
        while segments:
            a, b, pa, pb = segments.pop()
            slack = reach * float(np.abs(q1 - q0).sum()) * (b - a) / 2
            if slack < JOINT_PATH_TOLERANCE:
                self._check_workspace(pa, "TCP along move_joints")
                self._check_workspace(pb, "TCP along move_joints")
                continue
            if self._inside(pa, slack) and self._inside(pb, slack):
                continue
            m = (a + b) / 2
            pm = fk(q0 + (q1 - q0) * m)
            self._check_workspace(pm, "TCP along move_joints")
            segments += [(a, m, pa, pm), (m, b, pm, pb)]

    def _inside(self, pose: Pose, margin: float) -> bool:
        return all(lo + margin <= v <= hi - margin for v, lo, hi in zip(pose.xyz.tolist(), self._lo, self._hi,
                                                                        strict=True))

    def _check_force(self, state: ArmState) -> None:
        if state.wrench is None:
            return
        force = state.wrench.force_norm
        if not math.isfinite(force) or force > self.limits.max_force:
            self._violate("force", f"contact force {force:.1f} N exceeds {self.limits.max_force:.1f} N",
                          force, self.limits.max_force)

    def _check_force_fast(self) -> None:
        fast = self._force_norm
        if fast is None:
            self._check_force(self.unwrapped.state())
            return
        force = fast()
        if not force <= self.limits.max_force:
            self._violate("force", f"contact force {force:.1f} N exceeds {self.limits.max_force:.1f} N",
                          force, self.limits.max_force)

    def _drive(self, what: str, call: Callable[..., None], *args: object) -> None:
        """Send one command to the driver; one that raises ends the stream, stops the arm and latches."""
        try:
            call(*args)
        except BaseException as err:
            self._last_target = None
            self._fault = SafetyViolation("driver", f"the driver's {what} raised {type(err).__name__}: {err}")
            try:
                self.unwrapped.stop()
            except Exception as stop_err:  # the link may be gone: the fault stays latched either way
                log.warning("stopping after a failed %s: %s", what, stop_err)
            log.warning("arm stopped: %s", self._fault)
            raise

    # --- sensing ------------------------------------------------------------------------
    def state(self) -> ArmState:
        with self._lock:
            return self.unwrapped.state()

    # --- motion -------------------------------------------------------------------------
    def move_to(self, pose: PoseLike, speed: float = 0.1) -> None:
        """Straight line to ``pose`` (in the workspace, a convex box: so is the whole line)."""
        with self._lock:
            self._check_ready()
            pose = self._as_pose(pose, "move_to target")
            self._check_workspace(pose, "move_to target")
            self._check_speed(speed, self.limits.max_speed, "m/s", "move_to")
            self._check_line(self.unwrapped.state().base_T_tcp, pose, float(speed))
            self._last_target = None
            self._drive("move_to", self.unwrapped.move_to, pose, float(speed))
            self._check_force(self.unwrapped.state())

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        with self._lock:
            self._check_ready()
            try:
                q = np.asarray(q, dtype=float).reshape(-1)
            except (TypeError, ValueError):
                self._violate("input", f"joint target must be {self.capabilities.dof} numbers, got {q!r:.80}")
            if q.shape != (self.capabilities.dof,) or not np.all(np.isfinite(q)):
                self._violate("input", f"joint target must be {self.capabilities.dof} finite values, got {q.tolist()}")
            self._check_speed(speed, self.limits.max_angular_speed, "rad/s", "joint")
            try:
                self._check_joint_path(np.asarray(self.unwrapped.state().q, dtype=float), q)
            except DriverError as err:
                self._violate("input", f"move_joints cannot be checked along its path ({err})")
            self._last_target = None
            self._drive("move_joints", self.unwrapped.move_joints, q, float(speed))
            state = self.unwrapped.state()
            self._check_workspace(state.base_T_tcp, "TCP after move_joints")
            self._check_force(state)

    def servo(self, pose: PoseLike, duration: float | None = None) -> None:
        """Stream ``pose``, judged against the previous accepted target (or, first in a stream, the
        measured pose) over ``duration`` [s]: step, speed, angular speed."""
        with self._lock:
            if self._fault is not None:
                self._check_ready()
            if not isinstance(pose, Pose):
                pose = self._as_pose(pose, "servo target")
            (x, y, z), lo, hi = pose.xyz.tolist(), self._lo, self._hi
            if not (lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and lo[2] <= z <= hi[2]):
                self._check_workspace(pose, "servo target")
            dt = 1.0 / self.capabilities.rate_hz if duration is None else self._servo_duration(duration)
            now = time.monotonic()
            reference = self._last_target
            if reference is None or (self.capabilities.realtime and now - self._last_servo > self.limits.servo_timeout):
                reference = self.unwrapped.state().base_T_tcp  # a new stream starts from where the arm is
                self._last_target = None
            self._check_motion(pose, reference, dt, "servo target")
            self._last_servo = now
            if self.capabilities.realtime:
                self._ensure_watchdog()
            self._drive("servo", self.unwrapped.servo, pose, None if duration is None else float(duration))
            self._last_target = pose  # the reference only once the driver took it
            self._last_servo = time.monotonic()  # the gap the watchdog measures starts when a call returns
            self._check_force_fast()

    def stop(self) -> None:
        with self._lock:
            self._last_target = None
            try:
                self.unwrapped.stop()
            except BaseException as err:
                self._fault = SafetyViolation("driver", f"the driver's stop raised {type(err).__name__}: {err}")
                raise

    def freedrive(self, on: bool) -> None:
        with self._lock:
            self._check_ready()
            self._last_target = None
            self._drive("freedrive", self.unwrapped.freedrive, on)

    # --- compliance ---------------------------------------------------------------------
    @property
    def compliance(self) -> Compliance | None:
        return self.unwrapped.compliance

    def set_compliance(self, compliance: Compliance | None) -> None:
        """Pass ``compliance`` to the driver once its springs and wrench are within the limits
        (``max_stiffness``, ``max_rotational_stiffness``, ``max_force``, ``max_torque``). Making
        the arm stiff again (``None``) is always allowed, also after a violation."""
        with self._lock:
            if compliance is not None:
                self._check_ready()
                self._check_compliance(compliance)
            self._last_target = None  # the stream's reference was judged under the old behaviour
            self._drive("set_compliance", self.unwrapped.set_compliance, compliance)

    def _check_compliance(self, compliance: Compliance) -> None:
        if not isinstance(compliance, Compliance):
            self._violate("input", f"set_compliance needs a Compliance or None, got {type(compliance).__name__}")
        lim = self.limits
        try:
            k = np.asarray(compliance.stiffness, dtype=float).reshape(-1)
            w = np.asarray(compliance.wrench, dtype=float).reshape(-1)
            zeta = float(compliance.damping_ratio)
        except (TypeError, ValueError):
            self._violate("input", "compliance values must be numbers")
        if k.shape != (6,) or w.shape != (6,):
            self._violate("input", f"compliance needs 6 stiffness and 6 wrench values, got {k.size} and {w.size}")
        if not (np.all(np.isfinite(k)) and np.all(np.isfinite(w)) and math.isfinite(zeta)):
            self._violate("finite", f"compliance has a non-finite value: {compliance}")
        if not 0.05 <= zeta <= 5.0:
            self._violate("compliance", f"damping ratio {zeta} is outside [0.05, 5]", zeta, 5.0)
        for i, axis in enumerate(AXES):
            bound = lim.max_stiffness if i < 3 else lim.max_rotational_stiffness
            unit = "N/m" if i < 3 else "Nm/rad"
            if not 0.0 <= k[i] <= bound:
                self._violate("stiffness", f"compliance stiffness along {axis} {k[i]:g} {unit} is outside "
                              f"[0, {bound:g}] {unit}", float(k[i]), bound)
        free = k == 0.0
        if np.any(w[~free] != 0.0):
            self._violate("input", "a compliance wrench applies only along free axes (stiffness 0); "
                          f"got {w.tolist()} with stiffness {k.tolist()}")
        force, torque = float(np.linalg.norm(w[:3])), float(np.linalg.norm(w[3:]))
        if force > lim.max_force:
            self._violate("force", f"compliance pushes with {force:.1f} N, above {lim.max_force:.1f} N",
                          force, lim.max_force)
        if torque > lim.max_torque:
            self._violate("torque", f"compliance turns with {torque:.2f} Nm, above {lim.max_torque:.2f} Nm",
                          torque, lim.max_torque)

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        with self._lock:
            self._last_target = None  # the stream's reference was through the old TCP
            self._drive("set_tcp", self.unwrapped.set_tcp, flange_T_tcp)
            self._flange_T_tcp = flange_T_tcp

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        """The controller's payload. A call to the controller that may take longer than a servo period
        (a UR runs it through its control script): a running servo stream is ended cleanly first, as
        before a gripper's blocking move, so the watchdog never sees the gap."""
        with self._lock:
            if self._last_target is not None and self.capabilities.realtime:
                self.stop()
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
