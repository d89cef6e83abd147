"""``URArm``: the ``Arm`` interface on ur_rtde (``rtde_receive`` for state, ``rtde_control`` for motion).

State streams at 500 Hz (e-Series). ``servo`` uses servoL with ``lookahead_time`` 0.1 s and
``gain`` 300 by default (UR's recommended middle ground; set ``options.servo_lookahead_time`` and
``options.servo_gain`` in the arm file: shorter lookahead and higher gain track tighter but
amplify jitter). A lost connection, a protective stop and a missed servo deadline each stop the
arm (where it can still be reached) and raise ``DriverError`` saying which.

Compliance (``set_compliance``): a UR under servoL is a stiff position loop, so a contact phase asks
for compliance and the driver runs it at 500 Hz, one of two ways (``options.compliance_method``):
``force_mode`` (default): UR's own forceMode on every axis, its wrench each period the spring force
toward the commanded pose (plus the free axes' force); the force loop runs in the controller, so a
late client period does not let the contact force run away. ``admittance``: a virtual
mass-spring-damper on the sensed wrist wrench shifts each servoL target (short lookahead, high gain
while compliant); tighter tracking, but the loop closes through the client and its timing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from rmskill.arm import Arm, ArmState, Capabilities, Compliance, Wrench
from rmskill.config import ArmConfig
from rmskill.errors import DriverError
from rmskill.geometry import Pose

from .commands import CommandThread
from .kinematic_arm import DH_TABLES, URKinematics
from .operator_service import EmulatorOperator

log = logging.getLogger(__name__)

PROTECTIVE_STOPPED_BIT, EMERGENCY_STOPPED_BIT = 2, 7
ROBOT_MODE_RUNNING = 7
STOP_WAIT = 0.02  # [s] longest wait for a stop command after a failure (it is best effort)
SERVO_ACK = 0.05  # [s] longest wait for ur_rtde to hand a servoL to the controller
COMMAND_ACK = 5.0  # [s] longest wait for a configuration command (setTcp, setPayload, teach mode)
CLOSE_WAIT = 2.0  # [s] longest wait for each of servoStop and stopScript when closing
#: Admittance: virtual mass [kg] and inertia [kg m^2], speed cap on each axis [m/s, rad/s].
ADMITTANCE_MASS = (8.0, 0.2)
ADMITTANCE_SPEED = (0.1, 0.5)
#: servoL while compliant: lookahead [s] and gain (tight, so the admittance loop sees its own output).
COMPLIANT_LOOKAHEAD, COMPLIANT_GAIN = 0.03, 2000.0
#: force_mode: UR's damping (0..1) and gain scaling (0..2), damped enough not to chatter on a hard contact.
FORCE_MODE_DAMPING, FORCE_MODE_GAIN_SCALING = 0.5, 0.5
FORCE_MODE_SPEED = (0.05, 0.3)  # [m/s, rad/s] force mode's speed limits on its compliant axes


class CellOperator:
    """The emulator's operator as this arm sees it: before each reset, what a person at the pendant does
    first (a protective stop unlocked, the control script running again, the arm stopped)."""

    def __init__(self, arm: URArm, client: EmulatorOperator):
        self.arm, self.client = arm, client

    def reset(self, **start: Any) -> None:
        self.arm.ready_for_reset()
        self.client.reset(**start)

    def close(self) -> None:
        self.client.close()


def _operator(arm: URArm, config: ArmConfig) -> CellOperator | None:
    """``options.emulator_operator`` (``true`` or a port): the emulator's operator resets the cell."""
    value = config.options.get("emulator_operator", False)
    if value is False:
        return None
    if value is True:
        return CellOperator(arm, EmulatorOperator(config.host))
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return CellOperator(arm, EmulatorOperator(config.host, value))
    raise DriverError(f"arm file '{config.name}': options.emulator_operator must be true, false or a port, "
                      f"got {value!r}")


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
        self._recv: Any = None
        self._ctrl: Any = None
        self._period_end: float | None = None  # end of the current servo period (monotonic [s])
        self._last_stamp = (-1.0, 0.0)  # (controller timestamp, monotonic time it was first seen)
        self._commands = CommandThread()
        self.compliance_method = str(opts.get("compliance_method", "force_mode"))
        if self.compliance_method not in ("admittance", "force_mode"):
            raise DriverError(f"arm file '{config.name}': options.compliance_method must be admittance or "
                              f"force_mode, got {self.compliance_method!r}")
        self.compliance: Compliance | None = None
        self._offset = np.zeros(6)  # admittance: shift of the servo target, base frame [m, rad]
        self._offset_velocity = np.zeros(6)
        self._target: Pose | None = None  # the last commanded (unshifted) servo target
        self.operator = _operator(self, config)
        self.capabilities = Capabilities(model=config.model, dof=6, rate_hz=self.frequency, senses_wrench=True,
                                         freedrive=True, simulated=False, realtime=True, reach=reach, compliance=True)

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
        if self.operator is not None:
            self.operator.close()
        ctrl, recv = self._ctrl, self._recv
        alive = recv is not None and recv.isConnected()
        self._ctrl = self._recv = None
        self._period_end = None
        calls = [ctrl.servoStop, ctrl.stopScript] if ctrl is not None and alive else []
        for call in calls:  # on the command thread, after any call still running there, never waited on long:
            job = self._commands.submit(call)  # ur_rtde's stopScript waits as long as the script runs
            if not job.done.wait(CLOSE_WAIT):
                log.warning("UR controller did not confirm %s within %.0f s while closing", call.__name__,
                            CLOSE_WAIT)
                break
            if job.error is not None:  # closing is best effort: the link may be gone already
                log.debug("while closing: %s", job.error)
        for link in (ctrl, recv):
            if link is not None:
                try:
                    link.disconnect()
                except Exception as err:
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
        self._target = None
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
        """servoL to ``pose``; returns when this period of ``duration`` [s] (default 2 ms) ends.
        While compliant, the target is reached over native periods, each shaped by the compliance."""
        dt = float(duration) if duration else self.native_period
        if self.compliance is None:
            self._servo_period(pose, dt, self.lookahead_time, self.gain)
            return
        start = self._target or self.state().base_T_tcp
        periods = max(1, round(dt / self.native_period))
        for i in range(1, periods + 1):
            target = start.interpolate(pose, i / periods)
            self._target = target
            if self.compliance_method == "force_mode":
                self._force_mode_period(target)
            else:
                self._servo_period(self._admit(target), self.native_period, COMPLIANT_LOOKAHEAD, COMPLIANT_GAIN)

    def _admit(self, target: Pose) -> Pose:
        """One admittance step: M a = f_ext + w - K x - D v on the offset x, returned added to ``target``."""
        c, dt = self.compliance, self.native_period
        assert c is not None
        state = self.state()
        f_ext = np.r_[state.wrench.force, state.wrench.torque] if state.wrench is not None else np.zeros(6)
        k = np.asarray(c.stiffness, dtype=float)
        mass = np.repeat(ADMITTANCE_MASS, 3)
        d = 2.0 * c.damping_ratio * np.sqrt(np.where(k > 0, k, np.repeat((1000.0, 50.0), 3)) * mass)
        acc = (f_ext + np.asarray(c.wrench) - k * self._offset - d * self._offset_velocity) / mass
        cap = np.repeat(ADMITTANCE_SPEED, 3)
        self._offset_velocity = np.clip(self._offset_velocity + acc * dt, -cap, cap)
        self._offset = self._offset + self._offset_velocity * dt
        turn = Pose.from_rotvec((0.0, 0.0, 0.0), self._offset[3:])
        return Pose(target.xyz + self._offset[:3], (turn @ Pose((0, 0, 0), target.wxyz)).wxyz)

    def _force_mode_period(self, target: Pose) -> None:
        """UR force mode on every axis for one native period: the spring toward ``target`` (plus the
        free axes' wrench) is the wrench to apply; the controller's own admittance does the rest."""
        c = self.compliance
        assert c is not None
        state = self.state()
        here = state.base_T_tcp
        turn = Pose((0, 0, 0), target.wxyz) @ Pose((0, 0, 0), here.wxyz).inverse()
        error = np.r_[target.xyz - here.xyz, turn.rotvec]
        wrench = np.asarray(c.stiffness, dtype=float) * error + np.asarray(c.wrench)  # the controller damps
        limits = [FORCE_MODE_SPEED[0]] * 3 + [FORCE_MODE_SPEED[1]] * 3
        self._pace(self.native_period)
        self._call("forceMode", self._ctrl.forceMode, [0.0] * 6, [1] * 6, wrench.tolist(), 2, limits,
                   timeout=SERVO_ACK)
        self._wait_period()

    def _servo_period(self, pose: Pose, dt: float, lookahead: float, gain: float) -> None:
        self._pace(dt)
        self._call("servoL", self._ctrl.servoL, pose.to_ur(), 0.0, 0.0, dt, lookahead, gain, timeout=SERVO_ACK)
        self._wait_period()

    def _pace(self, dt: float) -> None:
        """Check the servo deadline of a streamed command; the period ends ``dt`` [s] later."""
        now = time.monotonic()
        if self._period_end is not None and now - self._period_end > self.config.limits.servo_timeout:
            late = (now - self._period_end) * 1000
            self._fail(f"servo deadline missed by {late:.0f} ms (servo_timeout "
                       f"{self.config.limits.servo_timeout * 1000:.0f} ms); the arm was stopped")
        self.check()
        start = now if self._period_end is None else max(self._period_end, now - dt)
        self._period_end = start + dt

    def _wait_period(self) -> None:
        assert self._period_end is not None
        while (left := self._period_end - time.monotonic()) > 0:
            time.sleep(min(left, 0.001))
            if not self._recv.isConnected():
                self.check()

    def stop(self) -> None:
        if self._ctrl is None:
            return
        streaming, self._period_end = self._period_end is not None, None
        self._target = None
        self.check()
        if self.compliance is not None and self.compliance_method == "force_mode":
            self._call("forceModeStop", self._ctrl.forceModeStop)
            return
        self._call("stop", self._ctrl.servoStop if streaming else self._ctrl.stopL)

    # --- compliance ---------------------------------------------------------------------
    def set_compliance(self, compliance: Compliance | None) -> None:
        """Compliant from the next servo on (see the module docstring); ``None``: stiff again, the arm
        stopping where it is. Blocking moves (moveL, moveJ) are always stiff."""
        was, self.compliance = self.compliance, None
        if was is not None and self._ctrl is not None:
            if self.compliance_method == "force_mode":
                self._period_end = None
                self._call("forceModeStop", self._ctrl.forceModeStop)
            else:
                self._end_stream()
        self._offset, self._offset_velocity, self._target = np.zeros(6), np.zeros(6), None
        if compliance is not None and self.compliance_method == "force_mode":
            self._end_stream()
            self._call("forceModeSetDamping", self._ctrl.forceModeSetDamping, FORCE_MODE_DAMPING)
            self._call("forceModeSetGainScaling", self._ctrl.forceModeSetGainScaling, FORCE_MODE_GAIN_SCALING)
        self.compliance = compliance

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

    def ready_for_reset(self) -> None:
        """Before the emulator's operator resets the cell: a protective stop unlocked and the control
        script restarted (as a person does at the pendant), then the arm stopped."""
        if self._recv is None or self._ctrl is None:
            raise DriverError("the UR arm is not connected; call connect() first")
        if int(self._recv.getSafetyStatusBits()) & (1 << PROTECTIVE_STOPPED_BIT):
            log.warning("the emulator's operator unlocks the protective stop of '%s'", self.config.name)
            self.unlock_protective_stop()
        elif not self._ctrl.isProgramRunning():
            log.warning("the emulator's operator restarts the control script of '%s'", self.config.name)
            if not self._ctrl.reuploadScript():
                raise DriverError("the ur_rtde control script could not be restarted")
        self._period_end, self._target = None, None
        if self.compliance is not None:  # an episode that ended in a fault may have left force mode on
            self.set_compliance(None)
        else:
            self.stop()

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
