"""A kinematic UR arm: exact DH forward kinematics, damped least-squares IK, no dynamics.

The emulator's fallback when the MuJoCo arm is not available: joints follow commands exactly
(within joint speed limits), the wrench is zero. Standard UR DH tables, base frame = UR base.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from rmskill.arm import Arm, ArmState, Capabilities, Wrench
from rmskill.config import ArmConfig
from rmskill.drivers.mujoco.robots import UR5E
from rmskill.errors import DriverError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)

#: Standard DH (d, a, alpha) per joint, [m] and [rad].
DH_TABLES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "ur5e": tuple((link.d, link.a, link.alpha) for link in UR5E.links),  # the simulator's own table
    "ur10e": (
        (0.1807, 0.0, np.pi / 2),
        (0.0, -0.6127, 0.0),
        (0.0, -0.57155, 0.0),
        (0.17415, 0.0, np.pi / 2),
        (0.11985, 0.0, -np.pi / 2),
        (0.11655, 0.0, 0.0),
    ),
}
#: Joint ranges [rad] (lower, upper) per model: the arm's own; UR e-Series elbows turn +-180 deg.
JOINT_RANGES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "ur5e": (tuple(link.lower for link in UR5E.links), tuple(link.upper for link in UR5E.links)),
    "ur10e": ((-2 * np.pi, -2 * np.pi, -np.pi, -2 * np.pi, -2 * np.pi, -2 * np.pi),
              (2 * np.pi, 2 * np.pi, np.pi, 2 * np.pi, 2 * np.pi, 2 * np.pi)),
}
#: A well-conditioned start, as the MuJoCo UR5e: TCP at [0.4, 0, 0.3] (0.16 m TCP), tool down.
DEFAULT_HOME = (2.8018, -1.8438, 1.8748, -1.6018, -1.5708, -1.9105)
MAX_JOINT_SPEED = 3.14  # [rad/s]


def joint_frames(dh: Sequence[tuple[float, float, float]], q: np.ndarray) -> list[np.ndarray]:
    """``base_T_i`` for i = 0..6 (4x4 each); the last is ``base_T_flange``."""
    frames = [np.eye(4)]
    for (d, a, alpha), theta in zip(dh, q.tolist(), strict=True):
        ct, st, ca, sa = math.cos(theta), math.sin(theta), math.cos(alpha), math.sin(alpha)
        step = np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st],
                         [0.0, sa, ca, d], [0.0, 0.0, 0.0, 1.0]])
        frames.append(frames[-1] @ step)
    return frames


def jacobian(frames: list[np.ndarray], tip: np.ndarray) -> np.ndarray:
    """Geometric Jacobian (6 x n, linear rows first) of point ``tip`` [m] in the base frame."""
    stack = np.array(frames[:-1])
    z, r = stack[:, :3, 2], tip - stack[:, :3, 3]
    lin = np.empty_like(z)
    lin[:, 0] = z[:, 1] * r[:, 2] - z[:, 2] * r[:, 1]
    lin[:, 1] = z[:, 2] * r[:, 0] - z[:, 0] * r[:, 2]
    lin[:, 2] = z[:, 0] * r[:, 1] - z[:, 1] * r[:, 0]
    return np.hstack([lin, z]).T


def pose_from_matrix(m: np.ndarray) -> Pose:
    """``Pose`` of a 4x4 homogeneous matrix, without scipy (hot path)."""
    r = m[:3, :3]
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    i = int(np.argmax([tr, r[0, 0], r[1, 1], r[2, 2]]))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = (s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
    elif i == 1:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = ((r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s)
    elif i == 2:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = ((r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = ((r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4)
    return Pose(m[:3, 3], q)


class URKinematics:
    """Forward and inverse kinematics of one UR model with a TCP offset."""

    def __init__(self, model: str = "ur5e"):
        if model not in DH_TABLES:
            raise DriverError(f"no kinematic model for '{model}' (known: {', '.join(sorted(DH_TABLES))})")
        self.dh = DH_TABLES[model]
        self.ranges = tuple(np.array(r) for r in JOINT_RANGES[model])
        self.flange_T_tcp = Pose()

    @property
    def flange_T_tcp(self) -> Pose:
        return self._flange_T_tcp

    @flange_T_tcp.setter
    def flange_T_tcp(self, pose: Pose) -> None:
        self._flange_T_tcp = pose
        self._tcp = pose.matrix()

    def forward_matrix(self, q: Sequence[float]) -> tuple[list[np.ndarray], np.ndarray]:
        """Joint frames and ``base_T_tcp`` as a 4x4 matrix at joints ``q`` [rad]."""
        frames = joint_frames(self.dh, np.asarray(q, float))
        return frames, frames[-1] @ self._tcp

    def forward(self, q: Sequence[float]) -> Pose:
        """``base_T_tcp`` at joints ``q`` [rad]."""
        return pose_from_matrix(self.forward_matrix(q)[1])

    def inverse(self, target: Pose, q_near: Sequence[float], iterations: int = 30, tol: float = 1e-8) -> np.ndarray:
        """Joints [rad] that put the TCP at ``target``, found by damped least squares from ``q_near``.

        Args:
            tol: Stop when the combined position [m] and rotation [rad] error is below this.
        """
        q = np.array(q_near, dtype=float)
        goal = target.matrix()
        for _ in range(iterations):
            frames, now = self.forward_matrix(q)
            err = np.r_[goal[:3, 3] - now[:3, 3], _rotvec(goal[:3, :3] @ now[:3, :3].T)]
            if float(err @ err) < tol * tol:
                break
            jac = jacobian(frames, now[:3, 3])
            q = q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), err)
        return q


    def solve(self, target: Pose, q_near: Sequence[float], max_position_error: float = 1e-4,
              max_orientation_error: float = 1e-3) -> np.ndarray | None:
        """Joints [rad] within the joint ranges that reach ``target`` within the errors [m, rad], or
        ``None`` (get_inverse_kin_has_solution). Tries ``q_near`` first, then a few other starts."""
        lo, hi = self.ranges
        starts = [np.asarray(q_near, dtype=float), np.array(DEFAULT_HOME)]
        rng = np.random.default_rng(0)
        starts += [rng.uniform(-np.pi, np.pi, 6) for _ in range(6)]
        for start in starts:
            q = self.inverse(target, start, iterations=100, tol=1e-10)
            q = (q + np.pi) % (2 * np.pi) - np.pi if np.any(q < lo) or np.any(q > hi) else q
            now = self.forward_matrix(q)[1]
            goal = target.matrix()
            pos_err = float(np.linalg.norm(goal[:3, 3] - now[:3, 3]))
            rot_err = float(np.linalg.norm(_rotvec(goal[:3, :3] @ now[:3, :3].T)))
            if pos_err <= max_position_error and rot_err <= max_orientation_error and np.all(q >= lo) \
                    and np.all(q <= hi):
                return q
        return None


def _rotvec(rot: np.ndarray) -> np.ndarray:
    """Rotation vector [rad] of a 3x3 rotation matrix (small-angle safe)."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-6:
        return axis / 2.0
    if np.pi - angle < 1e-4:
        return Pose.from_matrix(np.block([[rot, np.zeros((3, 1))], [np.zeros((1, 3)), 1.0]])).rotvec
    return axis * angle / (2.0 * np.sin(angle))


class KinematicArm(Arm):
    """A UR arm without dynamics, stepped by the caller: each ``servo`` call advances time."""

    def __init__(self, config: ArmConfig):
        self.config = config
        self.kin = URKinematics(config.model)
        self.kin.flange_T_tcp = config.flange_T_tcp
        self.capabilities = Capabilities(model=config.model, dof=6, rate_hz=500.0, senses_wrench=True,
                                         freedrive=True, simulated=True, realtime=False)
        self._q = np.array(config.home if config.home else DEFAULT_HOME, dtype=float)
        self._dq = np.zeros(6)
        self._time = 0.0
        self._connected = False
        self._freedrive = False
        self._last_pose: Pose | None = None
        self._reached = False
        self.payload = (0.0, (0.0, 0.0, 0.0))

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        self._connected = True

    def close(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    # --- sensing ------------------------------------------------------------------------
    def state(self) -> ArmState:
        frames, tcp = self.kin.forward_matrix(self._q)
        pose = pose_from_matrix(tcp)
        twist = jacobian(frames, tcp[:3, 3]) @ self._dq
        return ArmState(time=self._time, q=self._q.copy(), dq=self._dq.copy(), base_T_tcp=pose,
                        tcp_velocity=twist, wrench=Wrench.zero())

    # --- motion -------------------------------------------------------------------------
    def servo_joints(self, q: Sequence[float], duration: float | None = None) -> None:
        """Move the joints toward ``q`` [rad] over ``duration`` [s], within the joint speed limit."""
        dt = duration or self.native_period
        wanted = np.asarray(q, float) - self._q
        step = np.clip(wanted, -MAX_JOINT_SPEED * dt, MAX_JOINT_SPEED * dt)
        self._reached = bool(np.array_equal(step, wanted))
        self._dq = step / dt
        self._q = self._q + step
        self._time += dt

    def servo(self, pose: Pose, duration: float | None = None) -> None:
        if self._freedrive or (pose is self._last_pose and self._reached):
            self.servo_joints(self._q, duration)  # holding still: no IK needed
            return
        self._last_pose = pose
        self.servo_joints(self.kin.inverse(pose, self._q), duration)

    def move_to(self, pose: Pose, speed: float = 0.1) -> None:
        self._q = self.kin.inverse(pose, self._q, iterations=200)
        self._dq = np.zeros(6)

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        self._q = np.array(q, dtype=float)
        self._dq = np.zeros(6)

    def stop(self) -> None:
        self._dq = np.zeros(6)

    def freedrive(self, on: bool) -> None:
        self._freedrive = on

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        self.kin.flange_T_tcp = flange_T_tcp
        self._last_pose = None

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        self.payload = (float(mass), tuple(float(c) for c in center_of_mass))
