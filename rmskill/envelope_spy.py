"""``EnvelopeSpy``: an ``Arm`` between the safety envelope and a driver, judging what gets through.

It forwards every call to the driver and checks each motion command that reaches it against the
arm file's limits on its own (not with the envelope's code): workspace, durations, step, speed and
angular speed against the stream's previous target or, first in a stream, the measured pose;
``move_to`` speed and turn rate; ``move_joints`` along its joint path. Breaches are recorded, not
raised. It can also make the driver fail (``fail_next``), as a lost link would. Fuzzing uses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rmskill.arm import Arm, ArmState
from rmskill.config import ArmConfig
from rmskill.errors import DriverError
from rmskill.geometry import Pose

ROTATION_RADIUS = 0.1  # [m] the Arm.move_to contract: a turn is timed as a point this far from the TCP
PATH_SAMPLES = 400  # joint-path samples per move_joints
PATH_SLACK = 0.001  # [m] the envelope's path check may let the TCP touch this far past a wall


@dataclass
class SpyLog:
    """What reached the driver: counts per command kind and every limit breach found."""

    reached: dict[str, int] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    stops: int = 0


class EnvelopeSpy(Arm):
    """Wraps ``driver``; ``log`` says what reached it and which of those broke a limit of ``config``."""

    def __init__(self, driver: Arm, config: ArmConfig):
        self.driver, self.limits = driver, config.limits
        self.capabilities = driver.capabilities
        self.gripper = driver.gripper
        self.log = SpyLog()
        self.fail_next: str | None = None  # "before" or "after": the next servo raises before/after sending
        self._reference: Pose | None = None
        box = config.limits.workspace
        self._lo, self._hi = np.array(box.min), np.array(box.max)

    @property
    def sim(self):
        return getattr(self.driver, "sim", None)

    # --- judging ------------------------------------------------------------------------
    def _breach(self, what: str) -> None:
        self.log.breaches.append(what)

    def _reach(self, kind: str) -> None:
        self.log.reached[kind] = self.log.reached.get(kind, 0) + 1

    def _judge_position(self, xyz: np.ndarray, what: str, slack: float = 0.0) -> None:
        if not np.all(np.isfinite(xyz)) or np.any(xyz < self._lo - slack) or np.any(xyz > self._hi + slack):
            self._breach(f"{what} outside the workspace: {np.round(xyz, 4).tolist()}")

    # --- lifecycle and sensing ----------------------------------------------------------
    def connect(self) -> None:
        self.driver.connect()

    def close(self) -> None:
        self.driver.close()

    @property
    def connected(self) -> bool:
        return self.driver.connected

    def state(self) -> ArmState:
        return self.driver.state()

    def forward_kinematics(self, q: Sequence[float]) -> Pose:
        return self.driver.forward_kinematics(q)

    # --- motion -------------------------------------------------------------------------
    def servo(self, pose: Pose, duration: float | None = None) -> None:
        self._reach("servo")
        lim, period = self.limits, 1.0 / self.capabilities.rate_hz
        reference = self._reference or self.driver.state().base_T_tcp
        self._judge_position(pose.xyz, "servo target")
        if duration is not None and not (isinstance(duration, float) and period * 0.999 <= duration
                                         <= lim.max_servo_duration):
            self._breach(f"servo duration {duration!r}")
            duration_s = period
        else:
            duration_s = period if duration is None else duration
        dt = max(1, math.floor(duration_s / period + 1e-6)) * period  # what the driver may round it to
        step = float(np.linalg.norm(pose.xyz - reference.xyz))
        turn = math.radians(pose.angle_deg(reference))
        if step > lim.max_step * 1.0001:
            self._breach(f"servo step {step * 1000:.2f} mm")
        if step / dt > lim.max_speed * 1.001:
            self._breach(f"servo speed {step / dt:.3f} m/s")
        if turn / dt > lim.max_angular_speed * 1.001:
            self._breach(f"servo angular speed {turn / dt:.3f} rad/s")
        failing, self.fail_next = self.fail_next, None
        if failing == "before":
            self._reference = None
            raise DriverError("injected failure before the servo command was sent")
        self.driver.servo(pose, duration)
        if failing == "after":
            self._reference = None
            raise DriverError("injected failure after the servo command was sent")
        self._reference = pose

    def move_to(self, pose: Pose, speed: float = 0.1) -> None:
        self._reach("move_to")
        self._reference = None
        lim = self.limits
        start = self.driver.state().base_T_tcp
        self._judge_position(pose.xyz, "move_to target")
        if not 0 < speed <= lim.max_speed:
            self._breach(f"move_to speed {speed!r}")
        turn = math.radians(pose.angle_deg(start))
        if turn > 0 and speed > 0:
            seconds = max(float(np.linalg.norm(pose.xyz - start.xyz)), ROTATION_RADIUS * turn) / speed
            if turn / seconds > lim.max_angular_speed * 1.001:
                self._breach(f"move_to angular speed {turn / seconds:.3f} rad/s")
        self.driver.move_to(pose, speed)

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        self._reach("move_joints")
        self._reference = None
        q1 = np.asarray(q, dtype=float)
        if q1.shape != (self.capabilities.dof,) or not np.all(np.isfinite(q1)):
            self._breach(f"move_joints target {q1.tolist()}")
        if not 0 < speed <= self.limits.max_angular_speed:
            self._breach(f"move_joints speed {speed!r}")
        q0 = np.asarray(self.driver.state().q, dtype=float)
        for s in np.linspace(0.0, 1.0, PATH_SAMPLES + 1):
            self._judge_position(self.driver.forward_kinematics(q0 + (q1 - q0) * s).xyz, "TCP along move_joints",
                                 PATH_SLACK)
        self.driver.move_joints(q1, speed)

    def stop(self) -> None:
        self.log.stops += 1
        self._reference = None
        self.driver.stop()

    def freedrive(self, on: bool) -> None:
        self._reach("freedrive")
        self._reference = None
        self.driver.freedrive(on)

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        self._reference = None
        self.driver.set_tcp(flange_T_tcp)

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        self.driver.set_payload(mass, center_of_mass)
