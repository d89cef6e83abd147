"""Followers: the commanded pose (or joint vector) that moves one 1 kHz step at a time.

``CartesianFollower`` feeds libfranka's ``CartesianPose`` commands, ``JointFollower`` its
``JointPositions``. Both follow a ``Segment`` reference with a jerk-limited ``Axis`` per group.
"""

from __future__ import annotations

import numpy as np

from rmskill.drivers.franka.tracker import (
    Axis,
    Limits,
    Segment,
    matrix_to_quat,
    min_jerk_duration,
    quat_conj,
    quat_exp,
    quat_log,
    quat_mul,
    quat_to_matrix,
)

#: Settling tolerances: translation [m], rotation [rad], joints [rad].
TOL_M, TOL_RAD, TOL_Q = 2e-6, 2e-5, 2e-5


class CartesianFollower:
    """Commanded ``O_T_EE`` following caller targets.

    Args:
        o_t_ee: Starting pose, Franka's column-major 16 list (``O_T_EE_c`` of the robot).
        linear: Translation limits [m/s, m/s^2, m/s^3].
        angular: Rotation limits [rad/s, rad/s^2, rad/s^3].
        omega: Tracking bandwidth [rad/s].
    """

    def __init__(self, o_t_ee: list[float], linear: Limits, angular: Limits, omega: float):
        m = np.asarray(o_t_ee, dtype=float).reshape(4, 4).T
        self.xyz = m[:3, 3].copy()
        self.quat = matrix_to_quat(m[:3, :3])
        self.trans = Axis(3, linear, omega)
        self.rot = Axis(3, angular, omega)
        self._q0 = self.quat.copy()
        self._seg = Segment(np.r_[self.xyz, np.zeros(3)], np.r_[self.xyz, np.zeros(3)], 0.0, 0.0, False)

    def _reference(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference position [m], quaternion wxyz, and 6-D velocity [m/s, rad/s] at ``t`` [s]."""
        value, velocity = self._seg.sample(t)
        return value[:3], quat_mul(quat_exp(value[3:]), self._q0), velocity

    def set_target(
        self, xyz: np.ndarray, quat: np.ndarray, t: float, duration: float, minimum_jerk: bool = False
    ) -> float:
        """Start a new reference segment at ``t`` [s] from where the reference is now to the target.

        The duration is stretched so the reference respects the velocity limits; returns it [s].
        """
        start_xyz, start_q, _ = self._reference(t)
        delta_rot = quat_log(quat_mul(np.asarray(quat, float), quat_conj(start_q)))
        dist, angle = float(np.linalg.norm(np.asarray(xyz) - start_xyz)), float(np.linalg.norm(delta_rot))
        if minimum_jerk:
            floor = max(
                min_jerk_duration(dist, self.trans.limits.velocity),
                min_jerk_duration(angle, self.rot.limits.velocity),
            )
        else:
            floor = max(dist / self.trans.limits.velocity, angle / self.rot.limits.velocity)
        duration = max(duration, floor)
        self._q0 = start_q
        self._seg = Segment(np.r_[start_xyz, np.zeros(3)], np.r_[xyz, delta_rot], t, duration, minimum_jerk)
        return duration

    def freeze(self, t: float) -> None:
        """Hold the reference where it is now; the follower comes to rest there without overshoot."""
        xyz, quat, _ = self._reference(t)
        self.set_target(xyz, quat, t, 0.0)

    def step(self, t: float, dt: float) -> list[float]:
        """Advance to time ``t`` [s] by ``dt`` [s]; return the command ``O_T_EE`` (column-major)."""
        ref_xyz, ref_q, ref_v = self._reference(t)
        self.xyz = self.xyz + self.trans.step(ref_xyz - self.xyz, ref_v[:3], dt)
        rot_err = quat_log(quat_mul(ref_q, quat_conj(self.quat)))
        self.quat = quat_mul(quat_exp(self.rot.step(rot_err, ref_v[3:], dt)), self.quat)
        self.quat /= np.linalg.norm(self.quat)
        return self.command()

    def command(self) -> list[float]:
        m = np.eye(4)
        m[:3, :3] = quat_to_matrix(self.quat)
        m[:3, 3] = self.xyz
        return m.T.reshape(-1).tolist()

    def at_rest(self, t: float) -> bool:
        ref_xyz, ref_q, _ = self._reference(t)
        rot_err = quat_log(quat_mul(ref_q, quat_conj(self.quat)))
        return (
            self._seg.done(t) and self.trans.at_rest(ref_xyz - self.xyz, TOL_M) and self.rot.at_rest(rot_err, TOL_RAD)
        )


class JointFollower:
    """Commanded joint positions [rad] following a minimum-jerk move, each joint jerk-limited."""

    def __init__(self, q: list[float], limits: Limits, omega: float):
        self.q = np.asarray(q, dtype=float).copy()
        self.axis = Axis(self.q.size, limits, omega, per_axis=True)
        self._seg = Segment(self.q, self.q, 0.0, 0.0, True)

    def set_target(self, q: np.ndarray, t: float, speed: float) -> float:
        """Move to ``q`` [rad] with peak joint speed ``speed`` [rad/s]; returns the duration [s]."""
        start, _ = self._seg.sample(t)
        speed = min(speed, self.axis.limits.velocity)
        duration = min_jerk_duration(float(np.max(np.abs(np.asarray(q) - start))), speed)
        self._seg = Segment(start, q, t, duration, True)
        return duration

    def freeze(self, t: float) -> None:
        start, _ = self._seg.sample(t)
        self._seg = Segment(start, start, t, 0.0, True)

    def step(self, t: float, dt: float) -> list[float]:
        ref, ref_v = self._seg.sample(t)
        self.q = self.q + self.axis.step(ref - self.q, ref_v, dt)
        return self.q.tolist()

    def at_rest(self, t: float) -> bool:
        ref, _ = self._seg.sample(t)
        return self._seg.done(t) and self.axis.at_rest(ref - self.q, TOL_Q)
