"""``FrankaArm``: an ``Arm`` over pylibfranka, with its 1 kHz loop in a control process.

The caller's process never imports pylibfranka: ``connect()`` starts ``worker.py`` and talks to
it through ``client.ControlProcess`` (requests) and shared memory (servo targets in, state out).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from rmskill.arm import Arm, ArmState, Capabilities, Compliance, Wrench
from rmskill.config import ArmConfig
from rmskill.drivers.franka.client import ControlProcess, Failure
from rmskill.drivers.franka.options import control_settings, parse_options
from rmskill.drivers.mujoco.robots import FR3
from rmskill.errors import DriverError
from rmskill.geometry import Pose

logger = logging.getLogger(__name__)

_HINTS = {
    "realtime": "this kernel is not real-time (PREEMPT_RT); for a simulator or a test bench set "
    "'options: {{realtime: ignore}}' in arm file '{name}'",
    "connection": "check that the robot (FCI enabled in Desk) or franky-sim is running and "
    "reachable at 'host' of arm file '{name}'",
    "reflex": "remove the cause, then call arm.recover()",
}


def describe_failure(config: ArmConfig, kind: str, error: str) -> str:
    """One line for a ``DriverError``: which arm, what failed, what libfranka said, what to do."""
    hint = _HINTS.get(kind, "")
    hint = "; " + hint.format(name=config.name) if hint else ""
    return f"Franka at {config.host}: {kind} error, libfranka said: {error!r}{hint}"


class FrankaArm(Arm):
    """A Franka FR3 through libfranka's FCI (or franky-sim on loopback).

    ``servo`` targets are followed by a jerk-limited interpolator at 1 kHz; ``move_to`` runs a
    minimum-jerk Cartesian move, ``move_joints`` a minimum-jerk joint move. A reflex (or any
    libfranka control error) stops the loop; the next command raises ``DriverError`` naming what
    libfranka said, until ``recover()``.
    """

    capabilities = Capabilities(model="fr3", dof=7, rate_hz=1000.0, senses_wrench=True, reach=FR3.span,
                                compliance=True)
    #: libfranka's Cartesian impedance range: translation [N/m], rotation [Nm/rad].
    MAX_STIFFNESS = (3000.0, 300.0)
    compliance: Compliance | None = None

    def __init__(self, config: ArmConfig):
        self.config = config
        self.options = parse_options(config)
        self._ctl: ControlProcess | None = None
        self._fault: tuple[str, str] | None = None
        self._deadline = 0.0
        self._flange_T_tcp = Pose()

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        if self.connected:
            return
        if importlib.util.find_spec("pylibfranka") is None:
            raise DriverError("the Franka driver needs pylibfranka: pip install 'rmskill[franka]'")
        self._fault = None
        self._ctl = ControlProcess(control_settings(self.config, self.options), self._on_fault)
        try:
            self._call(lambda ctl: ctl.wait(0, "connect", self.options.connect_timeout))
            end = time.monotonic() + self.options.connect_timeout
            while self._ctl.block.read_state()["O_T_EE"][15] != 1.0:  # no homogeneous matrix yet
                if time.monotonic() > end or not self._ctl.alive:
                    raise DriverError(f"Franka at {self.config.host}: connected, but no robot state arrived")
                time.sleep(0.002)
        except DriverError:
            self._ctl.shutdown()
            self._ctl = None
            raise
        logger.info("connected to Franka at %s", self.config.host)

    def close(self) -> None:
        if self._ctl is None:
            return
        if self._ctl.alive:
            try:
                self._ctl.request("close", 10.0)
            except DriverError as err:
                logger.info("closing Franka control process: %s", err)
        self._ctl.shutdown()
        self._ctl = None

    @property
    def connected(self) -> bool:
        return self._ctl is not None and self._ctl.alive

    def _on_fault(self, kind: str, error: str) -> None:
        self._fault = (kind, error)
        logger.error("%s", describe_failure(self.config, kind, error))

    def _call(self, fn: Callable[[ControlProcess], None]) -> None:
        """Run ``fn`` on the control process; its failures become ``DriverError`` naming this arm."""
        if self._ctl is None:
            raise DriverError(f"Franka at {self.config.host} is not connected; call connect()")
        try:
            fn(self._ctl)
        except Failure as err:
            raise DriverError(describe_failure(self.config, err.kind, err.error)) from None
        except DriverError as err:
            raise DriverError(f"Franka at {self.config.host}: {err}") from None

    def _request(self, op: str, timeout: float, **args: object) -> None:
        self._call(lambda ctl: ctl.request(op, timeout, **args))

    def _check(self) -> None:
        if not self.connected:
            raise DriverError(f"Franka at {self.config.host} is not connected; call connect()")
        if self._fault is not None:
            raise DriverError(describe_failure(self.config, *self._fault))

    # --- sensing ------------------------------------------------------------------------
    def state(self) -> ArmState:
        """The latest state the robot sent (at most 1 ms old while connected)."""
        if self._ctl is None:
            raise DriverError(f"Franka at {self.config.host} is not connected; call connect()")
        s = self._ctl.block.read_state()
        f = s["O_F_ext_hat_K"]  # libfranka's estimate of the external wrench on the TCP, base frame
        return ArmState(
            time=float(s["time"][0]),
            q=s["q"].copy(),
            dq=s["dq"].copy(),
            base_T_tcp=Pose.from_franka(s["O_T_EE"]),
            tcp_velocity=s["tcp_velocity"].copy(),
            wrench=Wrench(f[:3].copy(), f[3:].copy()),
        )

    def forward_kinematics(self, q: Sequence[float]) -> Pose:
        """``base_T_tcp`` at joints ``q`` [rad]: FR3's published (modified DH) kinematics and the TCP set."""
        return Pose.from_matrix(FR3.base_T_flange(np.asarray(q, dtype=float))) @ self._flange_T_tcp

    # --- motion -------------------------------------------------------------------------
    def servo(self, pose: Pose, duration: float | None = None) -> None:
        """Set the next TCP target, reached over ``duration`` [s] (default 1 ms); return after it."""
        self._check()
        assert self._ctl is not None
        period = self.native_period if duration is None else max(float(duration), 0.0)
        self._ctl.block.write_target(pose.xyz, pose.wxyz, period)
        now = time.perf_counter()
        # Keep a steady stream on schedule: a call that returns late (sleep overshoot, a busy CPU)
        # is made up by the next ones not sleeping; only a real pause (over 20 ms) restarts it.
        self._deadline = (self._deadline if now - self._deadline < 0.02 else now) + period
        remaining = self._deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)

    def move_to(self, pose: Pose, speed: float = 0.1) -> None:
        """Minimum-jerk straight line to ``pose`` at peak ``speed`` [m/s]; blocks until there."""
        self._check()
        here = self.state().base_T_tcp
        travel = max(pose.distance_mm(here) / 1000.0, np.radians(pose.angle_deg(here)) * 0.1)  # a turn: 0.1 m arm
        duration = 1.875 * travel / max(speed, 1e-6)
        args = {"xyz": pose.xyz.tolist(), "wxyz": pose.wxyz.tolist(), "duration": duration}
        self._request("move_to", duration + 30.0, **args)
        tol_mm = self.options.move_tolerance_mm

        def error() -> float:  # in units of the tolerance: 1 mm (default) and 0.5 deg
            here = self.state().base_T_tcp
            return max(here.distance_mm(pose) / tol_mm, here.angle_deg(pose) / 0.5)

        self._settle(error, f"move_to ended more than {tol_mm} mm / 0.5 deg from {pose}")

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        """Minimum-jerk joint move to ``q`` [rad] at peak joint ``speed`` [rad/s]; blocks until there."""
        self._check()
        target = np.asarray(q, dtype=float).reshape(-1)
        if target.shape != (7,) or not np.all(np.isfinite(target)):
            raise DriverError(f"move_joints needs 7 finite joint angles [rad], got {list(q)}")
        span = float(np.max(np.abs(target - self.state().q)))
        self._request("move_joints", 1.875 * span / max(speed, 1e-6) + 30.0, q=target.tolist(), speed=speed)
        self._settle(
            lambda: float(np.degrees(np.max(np.abs(self.state().q - target)))) / 0.1,
            f"move_joints ended more than 0.1 deg from {target.round(4).tolist()}",
        )

    def _settle(self, error: Callable[[], float], failure: str) -> None:
        """Wait up to 2 s for the measured ``error()`` to come within its tolerance (1.0)."""
        end = time.monotonic() + 2.0
        while error() > 1.0:
            if time.monotonic() > end:
                raise DriverError(f"Franka at {self.config.host}: {failure}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Bring the commanded motion to rest without overshoot, then end the control session.

        After a reflex the robot has already stopped, and this returns at once.
        """
        if self._fault is not None and self.connected:
            return
        self._check()
        self._request("stop", 10.0)
        self._deadline = 0.0

    def recover(self) -> None:
        """libfranka's automatic error recovery, after a reflex; clears the driver's fault."""
        if not self.connected:
            raise DriverError(f"Franka at {self.config.host} is not connected; call connect()")
        self._request("recover", 30.0)
        self._fault = None

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        """Make libfranka's EE frame the TCP, so ``O_T_EE`` is ``base_T_tcp``."""
        self._check()
        self._request("set_tcp", 10.0, flange_T_tcp=flange_T_tcp.to_franka())
        self._flange_T_tcp = flange_T_tcp

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        """libfranka's load: ``mass`` [kg] at ``center_of_mass`` [m] in the flange frame."""
        self._check()
        self._request("set_payload", 10.0, mass=float(mass), center_of_mass=[float(c) for c in center_of_mass])

    # --- compliance ---------------------------------------------------------------------
    def set_compliance(self, compliance: Compliance | None) -> None:
        """libfranka's Cartesian impedance (``setCartesianImpedance``, critically damped by the robot)
        for the motions that follow, under the CartesianImpedance controller mode; ``None``: the arm
        file's controller again. Springs only: a force-controlled axis needs a torque controller."""
        self._check()
        stiffness = None
        if compliance is not None:
            k = np.asarray(compliance.stiffness, dtype=float)
            if np.any(k == 0.0):
                raise DriverError("the Franka driver has no force-controlled axes (stiffness 0); ask for springs")
            bound = np.repeat(self.MAX_STIFFNESS, 3)
            if np.any(k > bound):
                raise DriverError(f"Franka Cartesian stiffness {k.tolist()} is above libfranka's range "
                                  f"{bound.tolist()}")
            stiffness = k.tolist()
        self._request("set_compliance", 10.0, stiffness=stiffness)
        self.compliance = compliance

    # --- diagnostics (benchmarks) -------------------------------------------------------
    def loop_timing(self) -> np.ndarray:
        """Recent control cycles, oldest first, shape (n, 2): wall-clock period [s] since the
        previous cycle (paced by the robot's 1 kHz state), and work [s] from receiving the state
        to sending the command."""
        return self._ctl.block.timing() if self._ctl is not None else np.zeros((0, 2))

    def loop_counters(self) -> tuple[int, int]:
        """(control cycles run, robot ticks missed) since connect."""
        if self._ctl is None:
            return 0, 0
        s = self._ctl.block.read_state()
        return int(s["cycles"][0]), int(s["missed"][0])
