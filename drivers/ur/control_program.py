"""The ur_rtde control script, executed: its main loop and commands, driven through RTDE registers.

ur_rtde uploads a URScript program to port 30003 and then talks to it only through registers:
``input_int_register_0`` carries the command, ``input_double_register_*`` its arguments,
``output_int_register_0`` says ready (1) or done (2), ``output_int_register_2`` reports async
progress. This class runs that protocol on the emulated controller, once per control period.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from rmskill.geometry import Pose

from .motion import JointMove, LinearMove, ServoMotion, SpeedMotion

if TYPE_CHECKING:
    from .controller import Controller

log = logging.getLogger(__name__)

READY, DONE = 1, 2
#: Commands the script processes at once and answers with "ready" (streaming and queries).
REALTIME = {24, 11, 9, 10, 6, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71}
MOVES = {1: "movej", 2: "movej_ik", 3: "movel", 4: "movel_fk"}
STOP_SCRIPT = 255


class ControlProgram:
    """ur_rtde's ``rtde_control`` program on ``controller``; ``step()`` is one ``sync()`` of it."""

    def __init__(self, controller: Controller, float_offset: int = 0, int_offset: int = 0):
        self.c, self.fo, self.io = controller, float_offset, int_offset
        self.executing = False
        self.blocking = None  # a motion the main thread waits on (synchronous move)
        self.async_motion = None
        self.servo: ServoMotion | None = None
        self.wr_count = 0
        self.op_id = 0
        self._async_progress(-1)
        self._write_int(0, READY)

    # --- registers ---------------------------------------------------------------------------
    def _int(self, i: int) -> int:
        return int(self.c.registers.input["int"][i + self.io])

    def _float(self, i: int) -> float:
        return float(self.c.registers.input["double"][i + self.fo])

    def _floats(self, i: int, n: int = 6) -> list[float]:
        return [self._float(i + k) for k in range(n)]

    def _write_int(self, i: int, v: int) -> None:
        self.c.registers.output["int"][i + self.io] = int(v)

    def _write_floats(self, i: int, values: list[float]) -> None:
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
        if self.async_motion is not None and self.c.motion is not self.async_motion:
            self.async_motion = None
            self._async_progress(-1)
        if self.blocking is not None:
            if self.c.motion is self.blocking and not self.blocking.done:
                return  # the main thread is still inside movel/movej
            self.blocking = None
            self._write_int(0, DONE)
            return
        cmd = self._int(0)
        if cmd in REALTIME:
            self.process(cmd)
            self._write_int(0, READY)
        elif cmd == 0:
            self.executing = False
            self._write_int(0, READY)
        elif not self.executing:
            self.executing = True
            if self.process(cmd) and self.blocking is None:
                self._write_int(0, DONE)

    def process(self, cmd: int) -> bool:
        """Run one command; False when it ends the program (stop script)."""
        c = self.c
        if cmd in MOVES:
            self._move(cmd)
        elif cmd in (24, 11):  # servoL, servoJ
            target: Pose | np.ndarray
            if cmd == 24:
                target = Pose.from_ur(self._floats(0))
                start: Pose | np.ndarray = c.state.base_T_tcp
            else:
                target, start = np.array(self._floats(0)), c.state.q.copy()
            if self.servo is None or c.motion is not self.servo or type(self.servo.target) is not type(target):
                self.servo = ServoMotion(start)
                c.start_motion(self.servo)
            self.servo.set_params(self._float(9), self._float(10))
            self.servo.target = target
        elif cmd in (9, 10):  # speedJ, speedL (a new call replaces the running one)
            start = c.state.q.copy() if cmd == 9 else c.state.base_T_tcp
            c.start_motion(SpeedMotion(start, np.array(self._floats(0)), self._float(7)))
        elif cmd in (15, 16, 33, 34, 7):  # speed_stop, servo_stop, stopl, stopj, force_mode_stop
            self.servo = None
            c.start_motion(None)
        elif cmd == 17:
            c.set_payload(self._float(0), self._floats(1, 3))
        elif cmd in (18, 52):
            c.set_freedrive(True)
        elif cmd in (19, 53):
            c.set_freedrive(False)
        elif cmd == 29:
            c.set_tcp(Pose.from_ur(self._floats(0)))
        elif cmd == 31:
            c.protective_stop("triggered by the control script")
        elif cmd in (30, 46):  # inverse kinematics
            q_near = self._floats(6) if cmd == 30 else c.state.q
            self._write_floats(0, c.kin.inverse(Pose.from_ur(self._floats(0)), q_near).tolist())
        elif cmd in (43, 44):  # forward kinematics (default: actual joints)
            q = self._floats(0) if cmd == 44 else c.state.q
            self._write_floats(0, c.kin.forward(q).to_ur())
        elif cmd == 40:
            self._write_floats(0, c.kin.flange_T_tcp.to_ur())
        elif cmd == 58:
            flange = c.state.base_T_tcp @ c.kin.flange_T_tcp.inverse()
            self._write_floats(0, flange.to_ur())
        elif cmd == 28:
            self._write_floats(0, c.snapshot()["target_TCP_pose"])
        elif cmd in (36, 37):  # within safety limits
            self._write_int(1, 1)
        elif cmd == 47:  # is steady
            self._write_int(1, int(c.motion is None and float(np.abs(c.state.dq).max()) < 1e-3))
        elif cmd == STOP_SCRIPT:
            c.stop_program("stop script command")
            return False
        elif cmd not in REALTIME:
            log.info("control script command %d is not emulated; acknowledged without effect", cmd)
        return True

    def _move(self, cmd: int) -> None:
        c = self.c
        args, speed, accel, is_async = self._floats(0), self._float(6), self._float(7), self._int(1) == 1
        self.servo = None
        if cmd == 3:
            motion = LinearMove(c.state.base_T_tcp, Pose.from_ur(args), speed, accel)
        elif cmd == 4:
            motion = LinearMove(c.state.base_T_tcp, c.kin.forward(args), speed, accel)
        else:
            q = np.array(args) if cmd == 1 else c.kin.inverse(Pose.from_ur(args), c.state.q)
            motion = JointMove(c.state.q, q, speed, accel)
        c.start_motion(motion)
        if is_async:
            self.async_motion = motion
            self._async_progress(0)
        else:
            self.blocking = motion
