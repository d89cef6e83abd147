"""The one rigid-transform value type, and its conversions to each backend's convention.

Frames follow ``a_T_b``: ``base_T_tcp`` maps points in the TCP frame into the base frame.
Units: metres and radians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from rmskill.errors import ConfigError


def _frozen(values: Sequence[float] | np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.array(values, dtype=float).reshape(-1)
    if arr.shape != (n,):
        raise ConfigError(f"{what} needs {n} numbers, got {arr.size}")
    if not all(map(math.isfinite, arr.tolist())):
        raise ConfigError(f"{what} has a non-finite value: {arr.tolist()}")
    arr.flags.writeable = False
    return arr


def quat_mul_wxyz(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of two wxyz quaternions."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid transform: translation ``xyz`` in [m] and unit quaternion ``wxyz``.

    Construct it from the form you have (``from_ur``, ``from_matrix``, ``from_franka``,
    ``from_quat_xyzw``); compose with ``@``; compare with ``distance_mm``/``angle_deg``.
    """

    xyz: np.ndarray
    wxyz: np.ndarray

    def __init__(self, xyz: Sequence[float] = (0.0, 0.0, 0.0), wxyz: Sequence[float] = (1.0, 0.0, 0.0, 0.0)):
        q = np.array(wxyz, dtype=float).reshape(-1)
        if q.shape != (4,):
            raise ConfigError(f"quaternion wxyz needs 4 numbers, got {q.size}")
        norm = math.sqrt(float(q @ q))
        if not math.isfinite(norm) or norm < 1e-9:
            raise ConfigError(f"quaternion wxyz {q.tolist()} is not a rotation")
        q = q / norm
        if q[0] < 0:  # one canonical sign, so equal rotations have equal quaternions
            q = -q
        object.__setattr__(self, "xyz", _frozen(xyz, 3, "position xyz"))
        object.__setattr__(self, "wxyz", _frozen(q, 4, "quaternion wxyz"))

    # --- constructors -------------------------------------------------------------------
    @classmethod
    def identity(cls) -> Pose:
        return cls()

    @classmethod
    def from_ur(cls, pose: Sequence[float]) -> Pose:
        """From UR's ``[x, y, z, rx, ry, rz]``: metres and a rotation vector in radians."""
        p = _frozen(pose, 6, "pose [x, y, z, rx, ry, rz]")
        xyzw = Rotation.from_rotvec(np.array(p[3:])).as_quat()
        return cls(p[:3], (xyzw[3], xyzw[0], xyzw[1], xyzw[2]))

    @classmethod
    def from_matrix(cls, matrix: np.ndarray | Sequence[Sequence[float]]) -> Pose:
        """From a 4x4 homogeneous matrix."""
        m = np.asarray(matrix, dtype=float)
        if m.shape != (4, 4):
            raise ConfigError(f"a homogeneous matrix is 4x4, got shape {m.shape}")
        xyzw = Rotation.from_matrix(m[:3, :3]).as_quat()
        return cls(m[:3, 3], (xyzw[3], xyzw[0], xyzw[1], xyzw[2]))

    @classmethod
    def from_franka(cls, o_t_ee: Sequence[float]) -> Pose:
        """From Franka's column-major 16-array ``O_T_EE``."""
        return cls.from_matrix(_frozen(o_t_ee, 16, "O_T_EE").reshape(4, 4).T)

    @classmethod
    def from_quat_xyzw(cls, xyz: Sequence[float], xyzw: Sequence[float]) -> Pose:
        q = _frozen(xyzw, 4, "quaternion xyzw")
        return cls(xyz, (q[3], q[0], q[1], q[2]))

    @classmethod
    def from_rotvec(cls, xyz: Sequence[float], rotvec: Sequence[float]) -> Pose:
        return cls.from_ur([*np.asarray(xyz, dtype=float), *np.asarray(rotvec, dtype=float)])

    # --- conversions --------------------------------------------------------------------
    @property
    def xyzw(self) -> np.ndarray:
        return np.array([self.wxyz[1], self.wxyz[2], self.wxyz[3], self.wxyz[0]])

    @property
    def rotation(self) -> Rotation:
        return Rotation.from_quat(self.xyzw)

    @property
    def rotation_matrix(self) -> np.ndarray:
        return self.rotation.as_matrix()

    @property
    def rotvec(self) -> np.ndarray:
        return self.rotation.as_rotvec()

    def to_ur(self) -> list[float]:
        """UR's ``[x, y, z, rx, ry, rz]`` (the 6-list used in arm files too)."""
        return [*map(float, self.xyz), *map(float, self.rotvec)]

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation_matrix
        m[:3, 3] = self.xyz
        return m

    def to_franka(self) -> list[float]:
        """Franka's column-major 16-list (``O_T_EE`` layout)."""
        return [float(v) for v in self.matrix().T.reshape(-1)]

    # --- algebra ------------------------------------------------------------------------
    def __matmul__(self, other: Pose) -> Pose:
        if not isinstance(other, Pose):
            return NotImplemented
        return Pose(self.xyz + self.rotation.apply(np.array(other.xyz)), quat_mul_wxyz(self.wxyz, other.wxyz))

    def inverse(self) -> Pose:
        conj = self.wxyz * np.array([1.0, -1.0, -1.0, -1.0])
        return Pose(-Rotation.from_quat(np.r_[conj[1:], conj[0]]).apply(np.array(self.xyz)), conj)

    def apply(self, points: np.ndarray | Sequence[float]) -> np.ndarray:
        """Map points (3,) or (N, 3) from this pose's child frame into its parent frame."""
        return self.rotation.apply(np.array(points, dtype=float)) + self.xyz

    def translated(self, dxyz: Sequence[float]) -> Pose:
        """The same orientation, moved by ``dxyz`` in the parent frame."""
        return Pose(self.xyz + np.asarray(dxyz, dtype=float), self.wxyz)

    def distance_mm(self, other: Pose) -> float:
        """Translation distance in [mm]."""
        return float(np.linalg.norm(self.xyz - other.xyz) * 1000.0)

    def angle_deg(self, other: Pose) -> float:
        """Angle of the relative rotation in [deg]."""
        d = abs(float(self.wxyz @ other.wxyz))
        return math.degrees(2.0 * math.acos(min(1.0, d)))

    def interpolate(self, other: Pose, s: float) -> Pose:
        """Linear in translation, slerp in rotation; ``s`` in [0, 1]."""
        q0, q1 = self.wxyz, other.wxyz
        if np.dot(q0, q1) < 0:
            q1 = -q1
        dot = min(1.0, float(np.dot(q0, q1)))
        theta = np.arccos(dot)
        if theta < 1e-9:
            q = q0 + s * (q1 - q0)
        else:
            q = (np.sin((1 - s) * theta) * q0 + np.sin(s * theta) * q1) / np.sin(theta)
        return Pose(self.xyz + s * (other.xyz - self.xyz), q)

    def isclose(self, other: Pose, mm: float = 1e-6, deg: float = 1e-6) -> bool:
        return self.distance_mm(other) <= mm and self.angle_deg(other) <= deg

    def __repr__(self) -> str:
        x, y, z, rx, ry, rz = self.to_ur()
        return f"Pose.from_ur([{x:.5f}, {y:.5f}, {z:.5f}, {rx:.5f}, {ry:.5f}, {rz:.5f}])"
