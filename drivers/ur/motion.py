"""Motions the emulated controller executes one control period at a time.

Each motion produces, per period, either a TCP pose or joint positions for the simulated arm.
Approximations of UR's motion commands, documented where they differ:
moveL/moveJ use a trapezoidal profile (speed, acceleration), not UR's blended planner;
servoL/servoJ follow the target through a first-order filter whose time constant is
``lookahead_time * 300 / gain`` [s] (UR's defaults 0.1 s, 300 give 0.1 s).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from rmskill.geometry import Pose

#: Rotation is converted into an equivalent path length with this radius [m] for moveL timing.
ROTATION_RADIUS = 0.1


@dataclass(frozen=True)
class Setpoint:
    """What the arm should do this period: reach ``pose`` or ``q`` (exactly one is set)."""

    pose: Pose | None = None
    q: np.ndarray | None = None


class Motion(ABC):
    """One motion; ``step(dt)`` returns this period's setpoint, ``done`` says when it has ended."""

    done: bool = False

    @abstractmethod
    def step(self, dt: float) -> Setpoint: ...


class Trapezoid:
    """Trapezoidal (or triangular) speed profile over ``length`` with ``speed`` and ``accel``."""

    def __init__(self, length: float, speed: float, accel: float):
        self.length = max(0.0, length)
        speed, accel = max(speed, 1e-6), max(accel, 1e-6)
        if self.length == 0.0:  # already there
            self.t_acc = self.v_peak = self.duration = 0.0
            self.accel = accel
            return
        if self.length < speed * speed / accel:  # never reaches full speed
            self.t_acc = math.sqrt(self.length / accel)
            self.v_peak = accel * self.t_acc
        else:
            self.t_acc = speed / accel
            self.v_peak = speed
        self.accel = accel
        self.duration = 2 * self.t_acc + (self.length - self.v_peak * self.t_acc) / self.v_peak

    def fraction(self, t: float) -> float:
        """Fraction of the path [0, 1] covered at time ``t`` [s]."""
        if self.length <= 0.0 or t >= self.duration:
            return 1.0
        if t < self.t_acc:
            s = 0.5 * self.accel * t * t
        elif t < self.duration - self.t_acc:
            s = 0.5 * self.v_peak * self.t_acc + self.v_peak * (t - self.t_acc)
        else:
            rest = self.duration - t
            s = self.length - 0.5 * self.accel * rest * rest
        return min(1.0, s / self.length)


class LinearMove(Motion):
    """moveL: a straight TCP line from ``start`` to ``target`` at ``speed`` [m/s], ``accel`` [m/s^2]."""

    def __init__(self, start: Pose, target: Pose, speed: float, accel: float):
        self.start, self.target = start, target
        length = max(start.distance_mm(target) / 1000.0, math.radians(start.angle_deg(target)) * ROTATION_RADIUS)
        self.profile = Trapezoid(length, speed, accel)
        self.t = 0.0

    def step(self, dt: float) -> Setpoint:
        self.t += dt
        s = self.profile.fraction(self.t)
        self.done = s >= 1.0
        return Setpoint(pose=self.target if self.done else self.start.interpolate(self.target, s))


class JointMove(Motion):
    """moveJ: all joints start and stop together; the largest move runs at ``speed`` [rad/s]."""

    def __init__(self, q_start: np.ndarray, q_target: np.ndarray, speed: float, accel: float):
        self.q0, self.q1 = np.asarray(q_start, float), np.asarray(q_target, float)
        self.profile = Trapezoid(float(np.max(np.abs(self.q1 - self.q0))), speed, accel)
        self.t = 0.0

    def step(self, dt: float) -> Setpoint:
        self.t += dt
        s = self.profile.fraction(self.t)
        self.done = s >= 1.0
        return Setpoint(q=self.q0 + s * (self.q1 - self.q0))


class ServoMotion(Motion):
    """servoL/servoJ: follows the latest target until stopped; never ends by itself."""

    def __init__(self, start: Pose | np.ndarray, lookahead_time: float = 0.1, gain: float = 300.0):
        self.current = start
        self.target = start
        self.set_params(lookahead_time, gain)

    def set_params(self, lookahead_time: float, gain: float) -> None:
        """Filter time constant [s] from UR's lookahead time [s] and gain (100..2000)."""
        self.tau = max(1e-4, float(lookahead_time)) * 300.0 / max(1.0, float(gain))

    def step(self, dt: float) -> Setpoint:
        alpha = min(1.0, dt / self.tau)
        if isinstance(self.current, Pose):
            assert isinstance(self.target, Pose)
            self.current = self.current.interpolate(self.target, alpha)
            return Setpoint(pose=self.current)
        self.current = self.current + alpha * (np.asarray(self.target) - self.current)
        return Setpoint(q=self.current)


class SpeedMotion(Motion):
    """speedL: TCP twist ``[vx, vy, vz, wx, wy, wz]`` in the base frame [m/s, rad/s], or speedJ:
    joint speeds [rad/s] when ``start`` is joint positions. The setpoint is integrated from the
    last setpoint (not the measured pose), and the speed ramps to the target at ``accel``
    [m/s^2 or rad/s^2], as UR's speedl/speedj. Ends after ``time`` [s] if > 0."""

    def __init__(self, start: Pose | np.ndarray, speed: np.ndarray, accel: float = 0.5, time: float = 0.0):
        self.start = start
        self.velocity = np.zeros(6)
        self.retarget(speed, accel, time)

    def retarget(self, speed: np.ndarray, accel: float, time: float = 0.0) -> None:
        """A new speedL/speedJ call while this one runs: the speed changes, the position goes on."""
        self.speed, self.accel = np.asarray(speed, float), max(1e-6, float(accel))
        self.time, self.t, self.done = float(time), 0.0, False

    def step(self, dt: float) -> Setpoint:
        self.t += dt
        self.done = self.time > 0.0 and self.t >= self.time
        change = self.speed - self.velocity
        norm = float(np.linalg.norm(change))
        limit = self.accel * dt
        self.velocity = self.speed.copy() if norm <= limit else self.velocity + change * (limit / norm)
        if not isinstance(self.start, Pose):
            self.start = self.start + self.velocity * dt
            return Setpoint(q=self.start)
        rot = Pose.from_rotvec((0.0, 0.0, 0.0), self.velocity[3:] * dt)
        self.start = Pose(self.start.xyz + self.velocity[:3] * dt, (rot @ Pose((0, 0, 0), self.start.wxyz)).wxyz)
        return Setpoint(pose=self.start)


class PathMotion(Motion):
    """movePath: moves one after another (``LinearMove``/``JointMove`` built when each starts, from
    where the previous one ended). Blends are not modelled: the arm stops at each waypoint."""

    def __init__(self, moves: list, build) -> None:
        self.moves, self.build = list(moves), build
        self.index = -1
        self.current: Motion | None = None
        self.last: Setpoint | None = None

    def step(self, dt: float) -> Setpoint:
        if self.current is None or self.current.done:
            self.index += 1
            if self.index >= len(self.moves):
                self.done = True
                assert self.last is not None
                return self.last
            self.current = self.build(self.moves[self.index], self.last)
        self.last = self.current.step(dt)
        self.done = self.current.done and self.index == len(self.moves) - 1
        return self.last


class ContactMove(Motion):
    """moveUntilContact: speedL until ``touching()`` says the tool met something; then, as UR's
    script does (stopl, movel), stop where the arm is (``measured()``) and go back to where the
    contact began (``back()``) with a short linear move."""

    def __init__(self, start: Pose, speed: np.ndarray, accel: float, touching, back, measured) -> None:
        self.speed_motion = SpeedMotion(start, speed, accel)
        self.touching, self.back, self.measured = touching, back, measured
        self.retreat: LinearMove | None = None
        self.contact = False

    def step(self, dt: float) -> Setpoint:
        if self.retreat is None and self.touching():
            self.contact = True
            self.retreat = LinearMove(self.measured(), self.back(), 0.05, 1.0)
        if self.retreat is not None:
            setpoint = self.retreat.step(dt)
            self.done = self.retreat.done
            return setpoint
        return self.speed_motion.step(dt)
