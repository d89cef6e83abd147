"""``URArm``: the ``Arm`` interface on ur_rtde (``rtde_receive`` for state, ``rtde_control`` for motion).

State streams at 500 Hz (e-Series). ``servo`` uses servoL with ``lookahead_time`` 0.1 s and
``gain`` 300 by default (UR's recommended middle ground; set ``options.servo_lookahead_time`` and
``options.servo_gain`` in the arm file: shorter lookahead and higher gain track tighter but
amplify jitter). A lost connection, a protective stop and a missed servo deadline each stop the
arm (where it can still be reached) and raise ``DriverError`` saying which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from rmskill.arm import Arm, ArmState, Capabilities, Wrench
from rmskill.config import ArmConfig
from rmskill.errors import DriverError
from rmskill.geometry import Pose

from .commands import CommandThread
from .kinematic_arm import DH_TABLES, URKinematics

log = logging.getLogger(__name__)

PROTECTIVE_STOPPED_BIT, EMERGENCY_STOPPED_BIT = 2, 7
ROBOT_MODE_RUNNING = 7
STOP_WAIT = 0.02  # [s] longest wait for a stop command after a failure (it is best effort)
SERVO_ACK = 0.05  # [s] longest wait for ur_rtde to hand a servoL to the controller
COMMAND_ACK = 5.0  # [s] longest wait for a configuration command (setTcp, setPayload, teach mode)


class URArm(Arm):
    """A Universal Robots e-Series arm through ur_rtde; connects only to ``config.host``."""

    def __init__(self, config: ArmConfig):
        self.config = config
        opts = config.options
        self.frequency = float(opts.get("rtde_frequency", 500.0))  # [Hz]
        self.lookahead_time = float(opts.get("servo_lookahead_time", 0.1))  # [s], UR range 0.03..0.2
        self.gain = float(opts.get("servo_gain", 300.0))  # UR range 100..2000
        self.acceleration = float(opts.get("linear_acceleration", 1.2))  # [m/s^2] for moveL
        self.joint_acceleration = float(opts.get("joint_acceleration", 1.4))  # [rad/s^2] for moveJ
        self.stale_after = float(opts.get("state_timeout", 0.15))  # [s] without new state = link lost
        self.kinematics = URKinematics(config.model) if config.model in DH_TABLES else None
        reach = sum(abs(d) + abs(a) for d, a, _ in DH_TABLES.get(config.model, ())) or 2.0
        self.capabilities = Capabilities(model=config.model, dof=6, rate_hz=self.frequency, senses_wrench=True,
                                         freedrive=True, simulated=False, realtime=True, reach=reach)
        self._recv: Any = None
        self._ctrl: Any = None
        self._period_end: float | None = None  # end of the current servo period (monotonic [s])
        self._last_stamp = (-1.0, 0.0)  # (controller timestamp, monotonic time it was first seen)
        self._commands = CommandThread()

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        try:
            import rtde_control
            import rtde_receive
        except ImportError as err:
            raise DriverError(f"the UR driver needs ur_rtde ({err}); pip install 'rmskill[ur]'") from None
        host = self.config.host
        try:
            self._recv = rtde_receive.RTDEReceiveInterface(host, self.frequency)
            self._ctrl = rtde_control.RTDEControlInterface(host, self.frequency)
        except Exception as err:  # ur_rtde raises RuntimeError for refused, timed out, no script
            if self._recv is not None:
                self._recv.disconnect()
            self._recv = self._ctrl = None
            raise DriverError(f"cannot connect to the UR controller at {host}: {err}") from None
        self._last_stamp = (-1.0, time.monotonic())
        self.check()
        self.set_tcp(self.config.flange_T_tcp)
        self.set_payload(self.config.gripper.mass, self.config.gripper.center_of_mass)  # the tool is the payload
        log.info("connected to UR controller at %s", host)

    def close(self) -> None:
        ctrl, recv = self._ctrl, self._recv
        alive = recv is not None and recv.isConnected()
        self._ctrl = self._recv = None
        self._period_end = None
        calls = [ctrl.servoStop, ctrl.stopScript] if ctrl is not None and alive else []
        calls += [x.disconnect for x in (ctrl, recv) if x is not None]
        for call in calls:
            try:
                call()
            except Exception as err:  # closing is best effort: the link may be gone already
                log.debug("while closing: %s", err)

    @property
    def connected(self) -> bool:
        return self._recv is not None and bool(self._recv.isConnected())

    # --- health -------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``DriverError`` (after stopping the arm) if the link or the robot is not healthy."""
        if self._recv is None or self._ctrl is None:
            raise DriverError("the UR arm is not connected; call connect() first")
        host = self.config.host
        if not self._recv.isConnected():
            self._fail(f"connection to the UR controller at {host} lost (RTDE closed)")
        stamp, now = float(self._recv.getTimestamp()), time.monotonic()
        if stamp != self._last_stamp[0]:
            self._last_stamp = (stamp, now)
        elif now - self._last_stamp[1] > self.stale_after:
            self._fail(f"connection to the UR controller at {host} lost: no state for "
                       f"{(now - self._last_stamp[1]) * 1000:.0f} ms")
        self._check_safety()
        if not self._ctrl.isProgramRunning():
            # the two interfaces get their state separately: give the receiver a moment to show
            # why the program stopped (a protective stop stops it too) before saying it stopped
            time.sleep(0.01)
            self._check_safety()
            self._fail("the ur_rtde control script is not running on the controller")

    def _check_safety(self) -> None:
        bits = int(self._recv.getSafetyStatusBits())
        if bits & (1 << PROTECTIVE_STOPPED_BIT):
            self._fail("the UR arm is in a protective stop (clear it with unlock_protective_stop())")
        if bits & (1 << EMERGENCY_STOPPED_BIT):
            self._fail("the UR arm is emergency stopped")
        mode = int(self._recv.getRobotMode())
        if mode != ROBOT_MODE_RUNNING:
            self._fail(f"the UR arm is not running (robot mode {mode}; power on and release the brakes)")

    def _fail(self, what: str) -> NoReturn:
        """Stop the arm if it can still be told, end any servo stream, raise ``DriverError``."""
        streaming, self._period_end = self._period_end is not None, None
        ctrl, recv = self._ctrl, self._recv
        if ctrl is not None and recv is not None and recv.isConnected():
            # best effort, never waited on for long: the controller may not answer any more
            job = self._commands.submit(ctrl.servoStop if streaming else ctrl.stopL)
            if not job.done.wait(STOP_WAIT):
                log.warning("UR controller did not confirm the stop within %.0f ms", STOP_WAIT * 1000)
        log.error("UR driver: %s", what)
        raise DriverError(what)

    def _call(self, what: str, fn: Any, *args: Any, timeout: float | None = COMMAND_ACK) -> Any:
        """Run one ur_rtde command; a refusal, an exception or no answer becomes a ``DriverError``.

        The command runs on the command thread while this thread checks the link and the safety
        state every millisecond, so a lost connection or a protective stop raises at once
        instead of when ur_rtde's own timeouts expire. ``timeout`` [s]: ``None`` waits as long
        as the link is healthy (moves).
        """
        job = self._commands.submit(fn, *args)
        start = time.monotonic()
        while not job.done.wait(0.001):
            self.check()
            if timeout is not None and time.monotonic() - start > timeout:
                self._fail(f"{what}: the UR controller did not answer within {timeout * 1000:.0f} ms")
        if isinstance(job.error, RuntimeError):  # ur_rtde raises when reconnecting failed
            self.check()
            self._fail(f"connection to the UR controller at {self.config.host} lost ({what}: {job.error})")
        elif job.error is not None:
            raise job.error
        if job.result is False:
            self.check()  # names the reason when there is one
            self._fail(f"{what} was refused by the controller")
        if timeout != SERVO_ACK:
            self._wait_for_fresh_state()
        return job.result

    def _wait_for_fresh_state(self, periods: int = 2) -> None:
        """Wait until the receiver has state newer than now, so ``state()`` shows what just happened."""
        stamp = float(self._recv.getTimestamp())
        deadline = time.monotonic() + self.stale_after
        while float(self._recv.getTimestamp()) < stamp + (periods - 0.5) / self.frequency:
            if time.monotonic() > deadline:
                self.check()
                break
            time.sleep(0.0002)

    # --- sensing ------------------------------------------------------------------------
    def state(self) -> ArmState:
        self.check()
        r = self._recv
        force = np.array(r.getActualTCPForce(), dtype=float)
        return ArmState(time=float(r.getTimestamp()), q=np.array(r.getActualQ()), dq=np.array(r.getActualQd()),
                        base_T_tcp=Pose.from_ur(r.getActualTCPPose()),
                        tcp_velocity=np.array(r.getActualTCPSpeed()), wrench=Wrench(force[:3], force[3:]))

    def forward_kinematics(self, q: Sequence[float]) -> Pose:
        """``base_T_tcp`` at joints ``q`` [rad] from the model's nominal DH table and the TCP set."""
        if self.kinematics is None:
            raise DriverError(f"no kinematic model for UR model '{self.config.model}' "
                              f"(known: {', '.join(sorted(DH_TABLES))})")
        return self.kinematics.forward(q)

    # --- motion -------------------------------------------------------------------------
    def move_to(self, pose: Pose, speed: float = 0.1) -> None:
        self._end_stream()
        self.check()
        self._call(f"moveL to {pose}", self._ctrl.moveL, pose.to_ur(), float(speed), self.acceleration,
                   timeout=None)

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        self._end_stream()
        self.check()
        target = [float(v) for v in q]
        self._call(f"moveJ to {target}", self._ctrl.moveJ, target, float(speed), self.joint_acceleration,
                   timeout=None)

    def servo(self, pose: Pose, duration: float | None = None) -> None:
        """servoL to ``pose``; returns when this period of ``duration`` [s] (default 2 ms) ends."""
        dt = float(duration) if duration else self.native_period
        now = time.monotonic()
        if self._period_end is not None and now - self._period_end > self.config.limits.servo_timeout:
            late = (now - self._period_end) * 1000
            self._fail(f"servo deadline missed by {late:.0f} ms (servo_timeout "
                       f"{self.config.limits.servo_timeout * 1000:.0f} ms); the arm was stopped")
        self.check()
        self._call("servoL", self._ctrl.servoL, pose.to_ur(), 0.0, 0.0, dt, self.lookahead_time, self.gain,
                   timeout=SERVO_ACK)
        start = now if self._period_end is None else max(self._period_end, now - dt)
        self._period_end = start + dt
        while (left := self._period_end - time.monotonic()) > 0:
            time.sleep(min(left, 0.001))
            if not self._recv.isConnected():
                self.check()

    def stop(self) -> None:
        if self._ctrl is None:
            return
        streaming, self._period_end = self._period_end is not None, None
        self.check()
        self._call("stop", self._ctrl.servoStop if streaming else self._ctrl.stopL)

    def _end_stream(self) -> None:
        if self._period_end is not None:
            self.stop()

    def freedrive(self, on: bool) -> None:
        self._end_stream()
        self.check()
        self._call("teach mode" if on else "end teach mode", self._ctrl.teachMode if on else self._ctrl.endTeachMode)

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        self._call("setTcp", self._ctrl.setTcp, flange_T_tcp.to_ur())
        if self.kinematics is not None:
            self.kinematics.flange_T_tcp = flange_T_tcp

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        self._call("setPayload", self._ctrl.setPayload, float(mass), [float(c) for c in center_of_mass])

    def unlock_protective_stop(self) -> None:
        """Clear a protective stop through the dashboard and restart the control script."""
        import dashboard_client

        db = dashboard_client.DashboardClient(self.config.host)
        try:
            db.connect()
            db.unlockProtectiveStop()
        except RuntimeError as err:
            raise DriverError(f"unlocking the protective stop failed: {err}") from None
        finally:
            db.disconnect()
        time.sleep(0.05)
        if not self._ctrl.reuploadScript():
            raise DriverError("the ur_rtde control script could not be restarted")
        deadline = time.monotonic() + 2.0
        while not self._ctrl.isProgramRunning() and time.monotonic() < deadline:
            time.sleep(0.01)
