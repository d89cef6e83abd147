"""The interfaces every backend implements: ``Arm`` and ``Gripper``, and the values they return.

A backend subclasses ``Arm`` (and ``Gripper``), declares its ``Capabilities``, and registers
itself under the ``rmskill.drivers`` entry-point group. ``rmskill check-driver`` proves it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmskill.geometry import Pose


@dataclass(frozen=True)
class Wrench:
    """Force [N] and torque [Nm] at the TCP, expressed in the base frame."""

    force: np.ndarray
    torque: np.ndarray

    @property
    def force_norm(self) -> float:
        return float(np.linalg.norm(self.force))

    @classmethod
    def zero(cls) -> Wrench:
        return cls(np.zeros(3), np.zeros(3))


@dataclass(frozen=True)
class ArmState:
    """One snapshot of the arm, as its controller measured it.

    Attributes:
        time: Controller time in [s] (simulated time in simulation).
        q: Joint positions in [rad].
        dq: Joint velocities in [rad/s].
        base_T_tcp: Measured TCP pose (through the TCP currently set on the arm).
        tcp_velocity: Linear [m/s] and angular [rad/s] TCP velocity in the base frame, shape (6,).
        wrench: External wrench at the TCP, payload compensated; ``None`` where not sensed.
        gripper_width: Gripper opening in [m]; ``None`` without a gripper.
    """

    time: float
    q: np.ndarray
    dq: np.ndarray
    base_T_tcp: Pose
    tcp_velocity: np.ndarray
    wrench: Wrench | None = None
    gripper_width: float | None = None


AXES = ("x", "y", "z", "rx", "ry", "rz")


@dataclass(frozen=True)
class Compliance:
    """How the TCP yields to contact during a phase, per axis of the base frame (x, y, z, rx, ry, rz).

    Without a compliance an arm is as stiff as its own controller (a UR under servoL: a stiff
    position loop). With one, each axis is a spring-damper about the commanded pose, or free:
    an axis whose stiffness is 0 is force controlled and applies ``wrench`` along it.

    Attributes:
        stiffness: Translational [N/m] (x, y, z) and rotational [Nm/rad] (rx, ry, rz) stiffness.
        damping_ratio: Fraction of critical damping of each axis (1.0: critically damped).
        wrench: Force [N] and torque [Nm] the TCP applies on the environment along free axes.
    """

    stiffness: tuple[float, float, float, float, float, float]
    damping_ratio: float = 1.0
    wrench: tuple[float, float, float, float, float, float] = (0.0,) * 6

    @classmethod
    def uniform(cls, translational: float, rotational: float, damping_ratio: float = 1.0) -> Compliance:
        """The same spring on every axis: [N/m] for x, y, z and [Nm/rad] for the turns."""
        return cls((translational,) * 3 + (rotational,) * 3, damping_ratio)

    @classmethod
    def free_along(cls, axis: str, force: float, translational: float = 3000.0,
                   rotational: float = 200.0) -> Compliance:
        """Force control along one ``axis`` (e.g. ``"z"``, pushing with ``force`` [N] or [Nm]),
        springs of ``translational`` [N/m] and ``rotational`` [Nm/rad] on the others."""
        if axis not in AXES:
            from rmskill.errors import ConfigError

            raise ConfigError(f"unknown compliance axis {axis!r} (known: {', '.join(AXES)})")
        i = AXES.index(axis)
        stiffness = [translational] * 3 + [rotational] * 3
        stiffness[i] = 0.0
        wrench = [0.0] * 6
        wrench[i] = float(force)
        return cls(tuple(stiffness), 1.0, tuple(wrench))  # type: ignore[arg-type]

    @property
    def free(self) -> np.ndarray:
        """Boolean mask of the force-controlled axes (stiffness 0)."""
        return np.asarray(self.stiffness, dtype=float) == 0.0


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares about itself; skills and the safety envelope read it.

    Attributes:
        model: Arm model id, e.g. ``"ur5e"``, ``"fr3"``.
        dof: Number of arm joints.
        rate_hz: Native servo rate in [Hz] (UR 500, Franka 1000).
        senses_wrench: Whether ``ArmState.wrench`` is measured.
        freedrive: Whether ``freedrive(True)`` is supported.
        simulated: True for simulators, whose ground truth evaluation may read.
        realtime: True when time passes on its own (hardware, real-time simulation); the servo
            watchdog only runs then.
        reach: Upper bound [m] on the distance from any joint axis to the flange (so the flange
            moves at most ``reach`` m per rad of joint motion); the envelope's joint-path check.
        compliance: Whether ``set_compliance`` is honoured (impedance, force mode or admittance).
    """

    model: str
    dof: int
    rate_hz: float
    senses_wrench: bool
    freedrive: bool = False
    simulated: bool = False
    realtime: bool = True
    reach: float = 2.0
    compliance: bool = False
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GripperState:
    """Gripper opening [m], whether it is moving, and whether it holds an object."""

    width: float
    moving: bool
    object_detected: bool


class Gripper(ABC):
    """A parallel gripper. Blocking calls; widths in [m], speeds in [m/s], forces in [N]."""

    #: Full opening in [m].
    max_width: float = 0.0

    def connect(self) -> None:
        """Open the link (serial port, socket) and make the gripper ready; ``DriverError`` if unreachable."""
        return None

    def disconnect(self) -> None:
        """Close the link; the fingers keep their last command."""
        return None

    @abstractmethod
    def state(self) -> GripperState: ...

    @abstractmethod
    def move(self, width: float, speed: float | None = None, force: float | None = None) -> GripperState:
        """Move to ``width``; stop early on an object. Returns the final state."""

    def open(self) -> GripperState:
        return self.move(self.max_width)

    def close(self, force: float | None = None) -> GripperState:
        """Close until an object stops the fingers (or fully); ``object_detected`` says which."""
        return self.move(0.0, force=force)


class Arm(ABC):
    """One arm behind one interface. Use as a context manager: ``with arm: ...``.

    Poses are ``base_T_tcp`` in the arm's base frame. ``servo`` streams targets: each call sets
    the next target and returns once ``duration`` has passed (one native period by default);
    the backend interpolates when the caller commands slower than the native rate.
    """

    capabilities: Capabilities
    gripper: Gripper | None = None
    #: Who starts an episode without a person: an object with the simulator's ``reset(**start)``
    #: (an emulator's operator), or ``None`` (a simulator resets itself; a real cell has a person).
    operator: Any = None

    # --- lifecycle ----------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def connected(self) -> bool: ...

    def __enter__(self) -> Arm:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sensing ------------------------------------------------------------------------
    @abstractmethod
    def state(self) -> ArmState: ...

    # --- motion -------------------------------------------------------------------------
    @abstractmethod
    def move_to(self, pose: Pose, speed: float = 0.1) -> None:
        """Move the TCP to ``pose`` in a straight line at ``speed`` [m/s]; blocks until there.

        A turn counts as the travel of a point 0.1 m from the TCP: the move takes at least
        ``max(distance, 0.1 m * angle) / speed`` (the safety envelope bounds angular speed so).
        """

    @abstractmethod
    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        """Move to joint positions ``q`` [rad] at joint ``speed`` [rad/s], along the straight line in
        joint space; blocks until there."""

    def forward_kinematics(self, q: Sequence[float]) -> Pose:
        """``base_T_tcp`` (through the TCP currently set) at joint positions ``q`` [rad].

        The safety envelope checks ``move_joints`` paths with it; a driver without it cannot move
        its joints through the envelope.
        """
        from rmskill.errors import DriverError

        raise DriverError(f"{type(self).__name__} does not provide forward kinematics")

    @abstractmethod
    def servo(self, pose: Pose, duration: float | None = None) -> None:
        """Stream a TCP target reached over ``duration`` [s] (default one native period)."""

    @abstractmethod
    def stop(self) -> None:
        """Decelerate to standstill and end any servo stream."""

    def freedrive(self, on: bool) -> None:
        """Hand-guiding (teach) mode, for TCP and fixture teaching."""
        from rmskill.errors import DriverError

        raise DriverError(f"{type(self).__name__} does not support freedrive")

    # --- compliance ---------------------------------------------------------------------
    #: The compliance in force; ``None``: the arm's own stiffness.
    compliance: Compliance | None = None

    def set_compliance(self, compliance: Compliance | None) -> None:
        """Yield to contact per ``compliance`` from the next command on; ``None`` makes the arm stiff again."""
        from rmskill.errors import DriverError

        if compliance is not None:
            raise DriverError(f"{type(self).__name__} does not support compliance")
        self.compliance = None

    # --- configuration ------------------------------------------------------------------
    @abstractmethod
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        """Tell the controller where the TCP is on the flange."""

    @abstractmethod
    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        """Payload beyond the flange: mass [kg], centre of mass [m] in the flange frame."""

    @property
    def native_period(self) -> float:
        return 1.0 / self.capabilities.rate_hz


@contextmanager
def compliant(arm: Arm, compliance: Compliance | None) -> Iterator[Arm]:
    """``with compliant(arm, Compliance.uniform(3000, 200)): ...``: a contact phase; the arm's
    previous compliance is restored afterwards, also when the phase raises."""
    previous = arm.compliance
    arm.set_compliance(compliance)
    try:
        yield arm
    except BaseException:
        try:
            arm.set_compliance(previous)
        except Exception as err:  # the phase's own error is the one to report
            logging.getLogger(__name__).warning("restoring the compliance failed: %s", err)
        raise
    arm.set_compliance(previous)
