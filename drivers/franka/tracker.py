"""Jerk-limited following of a lower-rate target stream, one step per 1 kHz control cycle.

The caller's targets become a reference (a straight segment, or a minimum-jerk one for blocking
moves); a third-order tracker follows it with bounded jerk, acceleration and velocity, so the
commands libfranka sends are smooth enough that no discontinuity reflex fires. Only numpy here:
this module runs inside the control process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmskill.geometry import quat_mul_wxyz

#: Velocity feed-forward gain: 1/3 cancels one of the three poles, leaving a critically damped
#: second-order response (no overshoot) with a ramp lag of 2 v / omega.
_KV = 1.0 / 3.0


@dataclass(frozen=True)
class Limits:
    """Bounds of one motion group, in [u/s], [u/s^2], [u/s^3] (u = m or rad)."""

    velocity: float
    acceleration: float
    jerk: float


def _clip_norm(x: np.ndarray, bound: float) -> np.ndarray:
    n = float(np.linalg.norm(x))
    return x if n <= bound else x * (bound / n)


def _clip_each(x: np.ndarray, bound: float) -> np.ndarray:
    return np.clip(x, -bound, bound)


class Axis:
    """One motion group (3-D translation, 3-D rotation, or n joints) with state v [u/s], a [u/s^2].

    ``per_axis`` clips each coordinate (joints); otherwise the vector norm (so the direction of a
    Cartesian motion is kept when a limit binds).
    """

    def __init__(self, dim: int, limits: Limits, omega: float, per_axis: bool = False):
        self.limits = limits
        self.omega = omega
        self.v = np.zeros(dim)
        self.a = np.zeros(dim)
        self._clip = _clip_each if per_axis else _clip_norm

    def step(self, error: np.ndarray, ref_velocity: np.ndarray, dt: float) -> np.ndarray:
        """Advance by ``dt`` [s] toward a reference ``error`` ahead; return the displacement."""
        w, lim = self.omega, self.limits
        jerk = w**3 * error + 3.0 * w**2 * (_KV * ref_velocity - self.v) - 3.0 * w * self.a
        self.a = self._clip(self.a + self._clip(jerk, lim.jerk) * dt, lim.acceleration)
        self.v = self._clip(self.v + self.a * dt, lim.velocity)
        return self.v * dt

    def at_rest(self, error: np.ndarray, tol: float) -> bool:
        return bool(np.linalg.norm(error) < tol and np.linalg.norm(self.v) < 10 * tol)


# --- quaternion helpers (wxyz) -----------------------------------------------------------------
quat_mul = quat_mul_wxyz


def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_exp(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, *(0.5 * rotvec)])
    return np.array([np.cos(angle / 2), *(np.sin(angle / 2) / angle * rotvec)])


def quat_log(q: np.ndarray) -> np.ndarray:
    """Rotation vector [rad] of a unit quaternion, taking the short way round."""
    q = q if q[0] >= 0 else -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return 2.0 * q[1:]
    return 2.0 * np.arctan2(s, q[0]) / s * q[1:]


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion wxyz of a 3x3 rotation matrix (Shepperd's method)."""
    t = np.trace(m)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q / np.linalg.norm(q)


# --- references ---------------------------------------------------------------------------
class Segment:
    """A reference from ``start`` to ``end`` over ``duration`` [s], starting at time ``t0`` [s].

    ``start``/``end`` are vectors (joint angles, or ``xyz + rotvec`` of the end relative to the
    start for Cartesian use, see ``CartesianReference``). ``minimum_jerk`` uses the quintic time
    scaling (zero velocity and acceleration at both ends); otherwise constant velocity.
    """

    def __init__(self, start: np.ndarray, end: np.ndarray, t0: float, duration: float, minimum_jerk: bool):
        self.start, self.end = np.asarray(start, float), np.asarray(end, float)
        self.t0, self.duration = t0, max(duration, 1e-3)
        self.minimum_jerk = minimum_jerk

    def scale(self, t: float) -> tuple[float, float]:
        """Path parameter s in [0, 1] and its rate ds/dt [1/s] at time ``t`` [s]."""
        tau = min(max((t - self.t0) / self.duration, 0.0), 1.0)
        if tau >= 1.0:
            return 1.0, 0.0
        if self.minimum_jerk:
            s = tau**3 * (10 - 15 * tau + 6 * tau**2)
            return s, 30 * tau**2 * (1 - tau) ** 2 / self.duration
        return tau, 1.0 / self.duration

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Reference value and velocity at time ``t`` [s]."""
        s, ds = self.scale(t)
        delta = self.end - self.start
        return self.start + s * delta, ds * delta

    def done(self, t: float) -> bool:
        return t >= self.t0 + self.duration


def min_jerk_duration(distance: float, speed: float) -> float:
    """Duration [s] of a minimum-jerk move whose peak speed is ``speed`` (peak = 1.875 mean)."""
    return 1.875 * distance / max(speed, 1e-9)
