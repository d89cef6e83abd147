"""The ur_rtde control script, executed: its main loop and commands, driven through RTDE registers.

ur_rtde uploads a URScript program to port 30003 and then talks to it only through registers:
``input_int_register_0`` carries the command, ``input_double_register_*`` its arguments,
``output_int_register_0`` says ready (1) or done (2), ``output_int_register_2`` reports async
progress. This class runs that protocol on the emulated controller, once per control period.

Every command of ur_rtde 1.6's script is either emulated (``HANDLERS``) or refused: a refused
command is logged once and stops the program with an error, so the client's call returns false
("RTDE control script is not running") and ``isProgramRunning()`` says so; never a silent success.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import numpy as np

from rmskill.geometry import Pose

from .motion import ContactMove, JointMove, LinearMove, Motion, PathMotion, ServoMotion, Setpoint, SpeedMotion

if TYPE_CHECKING:
    from .controller import Controller

log = logging.getLogger(__name__)

READY, DONE = 1, 2
#: Commands the script processes at once and answers with "ready" (streaming and queries); 99 is
#: the watchdog kick, which only has to reach the register.
REALTIME = {24, 11, 9, 10, 6, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71, 99}
MOVES = {1: "movej", 2: "movej_ik", 3: "movel", 4: "movel_fk"}
STOP_SCRIPT = 255
#: Commands of ur_rtde's script this emulator does not execute, by name (refused loudly).
REFUSED = {5: "movec", 12: "servoC", 32: "movep", 55: "setExternalForceTorque", 56: "ftRtdeInputEnable",
           57: "enableExternalFtSensor", 59: "setGravity", 62: "startContactDetection",
           63: "stopContactDetection", 64: "readContactDetection", 66: "directTorque", 67: "getMassMatrix",
           68: "getCoriolisAndCentrifugalTorques", 69: "getTargetJointAccelerations", 70: "getJacobian",
           71: "getJacobianTimeDerivative"}
#: Force above the level when the move began that counts as contact in moveUntilContact/toolContact [N].
CONTACT_FORCE = 8.0
_MOVE = re.compile(r"^\s*(movej|movel|movep)\(\s*(p?)\[([^\]]*)\]\s*,\s*a=([-\d.e+]+)\s*,\s*v=([-\d.e+]+)"
                   r"(?:\s*,\s*r=([-\d.e+]+))?\s*\)\s*$")
_PROGRESS = re.compile(r"^\s*signal_async_progress\((\d+)\)\s*$")


def parse_path(text: str) -> list[tuple[str, bool, list[float], float, float]]:
    """The moves ur_rtde injected into ``exec_move_path`` (movePath, moveL/moveJ with a path):
    (kind, is_pose, 6 values, speed, acceleration) each. ``ValueError`` on anything else."""
    match = re.search(r"def exec_move_path\(\):\n(.*?)\n\s*end\n", text, re.S)
    moves: list[tuple[str, bool, list[float], float, float]] = []
    if match is None:
        return moves
    for line in match.group(1).splitlines():
        if not line.strip() or line.strip().startswith(("#", "textmsg(")) or _PROGRESS.match(line):
            continue
        m = _MOVE.match(line)
        if m is None:
            raise ValueError(f"move path line not understood: {line.strip()[:120]!r}")
        values = [float(v) for v in m.group(3).split(",")]
        if len(values) != 6:
            raise ValueError(f"move path target needs 6 values: {line.strip()[:120]!r}")
        moves.append((m.group(1), m.group(2) == "p", values, float(m.group(5)), float(m.group(4))))
    return moves


class ControlProgram:
    """ur_rtde's ``rtde_control`` program on ``controller``; ``step()`` is one ``sync()`` of it."""

    def __init__(self, controller: Controller, float_offset: int = 0, int_offset: int = 0,
                 path: list | None = None):
        self.c, self.fo, self.io = controller, float_offset, int_offset
        self.path = path or []
        self.executing = False
        self.blocking: Motion | None = None  # a motion the main thread waits on (synchronous move)
        self.async_motion: Motion | None = None
        self.servo: ServoMotion | None = None
        self.speed: SpeedMotion | None = None
        self.wr_count = 0
        self.op_id = 0
        self.watchdog: float | None = None  # [s] longest gap between RTDE input packages
        self.refused_once: set[int] = set()
        c = controller
        c.force_mode.damping, c.force_mode.gain_scaling = 0.025, 0.5  # what the script sets at start
        self._async_progress(-1)
        self._write_int(0, READY)

    # --- registers ---------------------------------------------------------------------------
    def _int(self, i: int) -> int:
        return int(self.c.registers.input["int"][i + self.io])

    def _float(self, i: int) -> float:
        return float(self.c.registers.input["double"][i + self.fo])

    def _floats(self, i: int, n: int = 6) -> list[float]:
        return [self._float(i + k) for k in range(n)]

    def _pose(self, i: int) -> Pose:
        return Pose.from_ur(self._floats(i))

    def _write_int(self, i: int, v: int) -> None:
        self.c.registers.output["int"][i + self.io] = int(v)

    def _write_floats(self, i: int, values) -> None:
        for k, v in enumerate(values):
            self.c.registers.output["double"][i + k + self.fo] = float(v)

    def _async_progress(self, value: int) -> None:
        """The script's async progress register: change count, operation id, running bit, progress."""
        self.wr_count = (self.wr_count + 1) % 128
        if value == 0:
            self.op_id = (self.op_id + 1) % 128
        reg = self.wr_count * 65536 + self.op_id * 16777216
        if value >= 0:
            reg += min(value, 32767) + 32768
        self._write_int(2, reg)

    # --- main loop ---------------------------------------------------------------------------
    def step(self) -> None:
        c = self.c
        if self.watchdog is not None and c.registers.input_age() > self.watchdog:
            self.fail(f"RTDE watchdog: no input for {c.registers.input_age():.3f} s (limit {self.watchdog:.3f} s)")
            return
        if self.async_motion is not None:
            if c.motion is not self.async_motion:
                self.async_motion = None
                self._async_progress(-1)
            elif isinstance(self.async_motion, PathMotion) and self.async_motion.index >= 0:
                self._path_progress(self.async_motion)
        if self.blocking is not None:
            if c.motion is self.blocking and not self.blocking.done:
                return  # the main thread is still inside movel/movej
            self.blocking = None
            self._write_int(0, DONE)
            return
        cmd = self._int(0)
        if cmd in REALTIME:
            if self.process(cmd) and c.program is self:
                self._write_int(0, READY)
        elif cmd == 0:
            self.executing = False
            self._write_int(0, READY)
        elif not self.executing:
            self.executing = True
            if self.process(cmd) and self.blocking is None and c.program is self:
                self._write_int(0, DONE)

    def _path_progress(self, motion: PathMotion) -> None:
        if getattr(self, "_reported", None) != (id(motion), motion.index):
            self._reported = (id(motion), motion.index)
            self._async_progress(motion.index)

    def fail(self, why: str) -> None:
        """Stop the program with an error, as a runtime exception on PolyScope does."""
        log.error("control script stopped: %s", why)
        self.c.stop_program(why)

    def refuse(self, cmd: int, name: str) -> bool:
        if cmd not in self.refused_once:
            self.refused_once.add(cmd)
            log.error("control script command %d (%s) is not emulated: the program stops", cmd, name)
        self.fail(f"{name} is not emulated")
        return False

    def process(self, cmd: int) -> bool:
        """Run one command; False when the program ended (stop script, or a refused command)."""
        c = self.c
        handler = HANDLERS.get(cmd)
        if cmd == STOP_SCRIPT:
            c.stop_program("stop script command")
            return False
        if handler is None:
            return self.refuse(cmd, REFUSED.get(cmd, f"command {cmd}"))
        result = handler(self)
        return result is not False and c.program is self

    # --- moves -------------------------------------------------------------------------------
    def _start(self, motion: Motion, is_async: bool) -> None:
        self.servo = self.speed = None
        self.c.start_motion(motion)
        if is_async:
            self.async_motion = motion
            self._async_progress(0)
        else:
            self.blocking = motion

    def move(self) -> None:
        c, cmd = self.c, self._int(0)
        args, speed, accel, is_async = self._floats(0), self._float(6), self._float(7), self._int(1) == 1
        if cmd == 3:
            motion: Motion = LinearMove(c.state.base_T_tcp, Pose.from_ur(args), speed, accel)
        elif cmd == 4:
            motion = LinearMove(c.state.base_T_tcp, c.kin.forward(args), speed, accel)
        else:
            if cmd == 1:
                q = np.array(args)
            else:
                solved = c.kin.solve(Pose.from_ur(args), c.state.q)
                if solved is None:
                    self.fail(f"get_inverse_kin: no solution for {np.round(args, 4).tolist()}")
                    return
                q = solved
            motion = JointMove(c.state.q, q, speed, accel)
        self._start(motion, is_async)

    def move_path(self) -> None:
        if not self.path:
            self.fail("move_path: the uploaded script has no path injected")
            return
        self._start(PathMotion(self.path, self._path_move), self._int(1) == 1)

    def _path_move(self, entry, last: Setpoint | None) -> Motion:
        kind, is_pose, values, speed, accel = entry
        c = self.c
        start_pose = last.pose if last is not None and last.pose is not None else (
            c.kin.forward(last.q) if last is not None else c.state.base_T_tcp)
        start_q = last.q if last is not None and last.q is not None else c.state.q
        if kind in ("movel", "movep"):
            target = Pose.from_ur(values) if is_pose else c.kin.forward(values)
            return LinearMove(start_pose, target, speed, accel)
        q = np.array(values) if not is_pose else c.kin.solve(Pose.from_ur(values), start_q)
        if q is None:
            raise ValueError(f"movej: no inverse kinematics for {values}")
        return JointMove(np.asarray(start_q), q, speed, accel)

    def move_until_contact(self) -> None:
        c = self.c
        speed, direction, accel = np.array(self._floats(0)), np.array(self._floats(6)), self._float(12)
        axis = direction[:3] if np.any(direction[:3]) else speed[:3]
        axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
        f0 = c.state.wrench.force.copy() if c.state.wrench is not None else np.zeros(3)
        start = c.state.base_T_tcp
        onset: list[Pose] = []

        def touching() -> bool:
            w = c.state.wrench
            push = 0.0 if w is None else -float(np.dot(w.force - f0, axis))  # the world pushes back
            if push > CONTACT_FORCE / 4 and not onset:
                onset.append(c.state.base_T_tcp)
            elif push <= CONTACT_FORCE / 4:
                onset.clear()
            return push > CONTACT_FORCE

        self._start(ContactMove(start, speed, max(accel, 1e-3), touching, lambda: onset[0] if onset else start,
                                lambda: c.state.base_T_tcp), False)

    # --- streaming ---------------------------------------------------------------------------
    def servo_cmd(self) -> None:
        c, cmd = self.c, self._int(0)
        target: Pose | np.ndarray
        if cmd == 24:
            target, start = self._pose(0), c.state.base_T_tcp
        else:
            target, start = np.array(self._floats(0)), c.state.q.copy()
        if self.servo is None or c.motion is not self.servo or type(self.servo.target) is not type(target):
            self.speed = None
            self.servo = ServoMotion(start)
            c.start_motion(self.servo)
        self.servo.set_params(self._float(9), self._float(10))
        self.servo.target = target

    def speed_cmd(self) -> None:
        c, cmd = self.c, self._int(0)
        # ur_rtde's script repeats speedl/speedj with this time in a loop: the motion runs until speedStop
        speed, accel, time = np.array(self._floats(0)), self._float(6), 0.0
        joint = cmd == 9
        running = self.speed is not None and c.motion is self.speed
        if running and isinstance(self.speed.start, Pose) != joint:  # type: ignore[union-attr]
            self.speed.retarget(speed, accel, time)  # type: ignore[union-attr]
            return
        start = c.state.q.copy() if joint else c.state.base_T_tcp
        self.servo = None
        self.speed = SpeedMotion(start, speed, accel, time)
        c.start_motion(self.speed)

    def jog_start(self) -> None:
        c = self.c
        speeds, feature, accel = np.array(self._floats(0)), self._float(6), self._float(7)
        if feature == 1:  # tool frame: the twist turned into the base frame
            rot = c.state.base_T_tcp.rotation_matrix
            speeds = np.r_[rot @ speeds[:3], rot @ speeds[3:]]
        elif feature == 2:
            rot = self._pose(8).rotation_matrix
            speeds = np.r_[rot @ speeds[:3], rot @ speeds[3:]]
        running = self.speed is not None and c.motion is self.speed and isinstance(self.speed.start, Pose)
        if running:
            self.speed.retarget(speeds, accel or 0.5)  # type: ignore[union-attr]
            return
        self.servo = None
        self.speed = SpeedMotion(c.state.base_T_tcp, speeds, accel or 0.5)
        c.start_motion(self.speed)

    def stop_motion(self) -> None:
        self.servo = self.speed = None
        self.c.start_motion(None)

    # --- force -------------------------------------------------------------------------------
    def force_mode(self) -> bool:
        force_type = self._int(1)
        if force_type != 2:
            return self.refuse(6, f"force mode type {force_type} (only type 2 is emulated)")
        selection = np.array([self._int(2 + k) for k in range(6)], dtype=float)
        self.c.force_mode.set(self._pose(0), selection, np.array(self._floats(6)), np.array(self._floats(12)))
        return True

    def force_mode_stop(self) -> None:
        self.servo = self.speed = None
        self.c.end_force_mode()

    def set_damping(self) -> None:
        self.c.force_mode.damping = float(np.clip(self._float(0), 0.0, 1.0))

    def set_gain_scaling(self) -> None:
        self.c.force_mode.gain_scaling = float(np.clip(self._float(0), 0.0, 2.0))

    def tool_contact(self) -> None:
        w = self.c.state.wrench
        self._write_int(1, int(w is not None and w.force_norm > CONTACT_FORCE))

    # --- queries -----------------------------------------------------------------------------
    def ik(self) -> None:
        c, cmd = self.c, self._int(0)
        q_near = self._floats(6) if cmd == 30 else c.state.q
        errors = (self._float(12), self._float(13)) if cmd == 30 else (1e-4, 1e-3)
        q = c.kin.solve(self._pose(0), q_near, max(errors[0], 1e-6), max(errors[1], 1e-6))
        if q is None:
            self.fail(f"get_inverse_kin: no solution for {np.round(self._floats(0), 4).tolist()}")
            return
        self._write_floats(0, q.tolist())

    def ik_has_solution(self) -> None:
        c, cmd = self.c, self._int(0)
        q_near = self._floats(6) if cmd == 61 else c.state.q
        errors = (self._float(12), self._float(13)) if cmd == 61 else (1e-4, 1e-3)
        q = c.kin.solve(self._pose(0), q_near, max(errors[0], 1e-6), max(errors[1], 1e-6))
        self._write_int(1, int(q is not None))

    def fk(self) -> None:
        c = self.c
        if self._int(0) == 43:
            pose = c.kin.forward(c.state.q)
        else:
            saved = c.kin.flange_T_tcp
            c.kin.flange_T_tcp = self._pose(6)
            try:
                pose = c.kin.forward(self._floats(0))
            finally:
                c.kin.flange_T_tcp = saved
        self._write_floats(0, pose.to_ur())

    def safety_limits(self) -> None:
        c = self.c
        ok = c.pose_within_limits(self._pose(0)) if self._int(0) == 36 else c.joints_within_limits(self._floats(0))
        self._write_int(1, int(ok))

    def pose_trans(self) -> None:
        self._write_floats(0, (self._pose(0) @ self._pose(6)).to_ur())

    def flange_pose(self) -> None:
        c = self.c
        self._write_floats(0, (c.state.base_T_tcp @ c.kin.flange_T_tcp.inverse()).to_ur())

    def joint_history(self) -> None:
        hist, steps = self.c.q_history, max(0, self._int(1))
        q = hist[-1 - min(steps, len(hist) - 1)] if hist else self.c.state.q
        self._write_floats(0, q.tolist())

    def joint_torques(self) -> None:
        torques = getattr(self.c.arm, "joint_torques", None)
        if torques is None:
            self.refuse(38, "getJointTorques (this emulator's arm has no dynamics)")
            return
        self._write_floats(0, torques().tolist())

    def is_steady(self) -> None:
        c = self.c
        self._write_int(1, int(c.motion is None and float(np.abs(c.state.dq).max()) < 1e-3))

    # --- configuration -----------------------------------------------------------------------
    def set_payload(self) -> None:
        self.c.set_payload(self._float(0), self._floats(1, 3))

    def set_target_payload(self) -> None:
        self.c.set_payload(self._float(0), self._floats(1, 3))
        self.c.target_payload_inertia = self._floats(4, 6)

    def set_watchdog(self) -> None:
        hz = self._float(0)
        self.watchdog = 1.0 / hz if hz > 0 else None
        self.c.registers.touch()


def _freedrive(on: bool):
    def run(p: ControlProgram) -> None:
        p.servo = p.speed = None
        p.c.set_freedrive(on)
    return run


HANDLERS = {
    1: ControlProgram.move, 2: ControlProgram.move, 3: ControlProgram.move, 4: ControlProgram.move,
    6: ControlProgram.force_mode, 7: ControlProgram.force_mode_stop,
    8: lambda p: p.c.zero_ft_sensor(),
    9: ControlProgram.speed_cmd, 10: ControlProgram.speed_cmd, 11: ControlProgram.servo_cmd,
    24: ControlProgram.servo_cmd,
    15: ControlProgram.stop_motion, 16: ControlProgram.stop_motion, 33: ControlProgram.stop_motion,
    34: ControlProgram.stop_motion, 42: ControlProgram.stop_motion,
    17: ControlProgram.set_payload, 65: ControlProgram.set_target_payload,
    18: _freedrive(True), 52: _freedrive(True), 19: _freedrive(False), 53: _freedrive(False),
    54: lambda p: p._write_int(1, int(p.c.freedrive)),
    20: ControlProgram.set_damping, 21: ControlProgram.set_gain_scaling,
    25: ControlProgram.tool_contact, 26: lambda p: p._write_floats(0, [p.c.period]),
    27: ControlProgram.joint_history,
    28: lambda p: p._write_floats(0, p.c.snapshot()["target_TCP_pose"]),
    29: lambda p: p.c.set_tcp(p._pose(0)),
    30: ControlProgram.ik, 46: ControlProgram.ik, 60: ControlProgram.ik_has_solution,
    61: ControlProgram.ik_has_solution,
    31: lambda p: p.c.protective_stop("triggered by the control script"),
    35: ControlProgram.set_watchdog,
    36: ControlProgram.safety_limits, 37: ControlProgram.safety_limits,
    38: ControlProgram.joint_torques, 39: ControlProgram.pose_trans,
    40: lambda p: p._write_floats(0, p.c.kin.flange_T_tcp.to_ur()),
    41: ControlProgram.jog_start, 43: ControlProgram.fk, 44: ControlProgram.fk,
    45: ControlProgram.move_path, 47: ControlProgram.is_steady, 51: ControlProgram.move_until_contact,
    58: ControlProgram.flange_pose, 99: lambda p: None,
}
