"""Payload identification: the tool's mass and centre of mass from the wrist wrench at rest.

With the payload set to zero the wrist reads the tool's full weight. At several static
orientations, ``f_k = M g + R_k b_f`` and ``tau_k = (R_k c) x (M g) + R_k b_t`` (flange frame
``c``; ``b_f``, ``b_t`` the sensor's own offsets, which real sensors have) are linear in
``M``, ``M c`` and the offsets: one least-squares solve. The payload the arm had is restored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from rmskill.arm import Arm
from rmskill.errors import CalibrationError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)

GRAVITY = np.array([0.0, 0.0, -9.81])


@dataclass(frozen=True)
class PayloadResult:
    """Identified payload.

    Attributes:
        mass: Payload mass beyond the flange [kg].
        center_of_mass: In the flange frame [m].
        force_rms_n: RMS force residual of the fit [N] (the quality figure).
        torque_rms_nm: RMS torque residual of the fit [Nm].
        force_offset: The wrist sensor's force offset, sensor frame [N].
        torque_offset: The wrist sensor's torque offset, sensor frame [Nm].
        n_poses: Static orientations used.
    """

    mass: float
    center_of_mass: np.ndarray
    force_rms_n: float
    torque_rms_nm: float
    force_offset: np.ndarray
    torque_offset: np.ndarray
    n_poses: int

    def entry(self) -> dict:
        return {"mass": round(self.mass, 4), "center_of_mass": [round(float(v), 5) for v in self.center_of_mass],
                "force_rms_n": round(self.force_rms_n, 4), "torque_rms_nm": round(self.torque_rms_nm, 5),
                "n_poses": self.n_poses}


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def solve_payload(rotations: Sequence[np.ndarray], forces: Sequence[np.ndarray], torques: Sequence[np.ndarray],
                  min_tilt_deg: float = 20.0) -> PayloadResult:
    """Least squares for mass, centre of mass and sensor offsets from static readings.

    Args:
        rotations: ``base_R_flange`` per pose.
        forces: Force the world exerts on the tool, base frame, payload set to zero [N].
        torques: Torque about the flange, base frame [Nm].
        min_tilt_deg: Least angle between the gravity directions seen in the flange frame [deg].
    """
    n = len(rotations)
    if n < 3:
        raise CalibrationError(f"payload identification needs at least 3 orientations, got {n}")
    down = np.array([r.T @ np.array([0.0, 0.0, -1.0]) for r in rotations])
    tilt = max(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))) for a in down for b in down)
    if tilt < min_tilt_deg:
        raise CalibrationError(f"degenerate pose set: gravity turns by only {tilt:.1f} deg in the flange frame, "
                               f"need {min_tilt_deg:.0f} deg: tilt the tool {min_tilt_deg - tilt:.1f} deg more")
    fa, fb, ta, tb = [], [], [], []
    for r, f, t in zip(rotations, forces, torques, strict=True):
        fa.append(np.c_[GRAVITY[:, None], r])  # [M, b_f]
        fb.append(f)
        ta.append(np.c_[-_skew(GRAVITY) @ r, r])  # [M c, b_t]
        tb.append(t)
    (xf, *_), (xt, *_) = (np.linalg.lstsq(np.vstack(a), np.concatenate(b), rcond=None) for a, b in ((fa, fb), (ta, tb)))
    mass = float(xf[0])
    if mass <= 0.01:
        raise CalibrationError(f"identified mass {mass:.3f} kg: no payload, or the wrench is not payload-free")
    f_res = np.vstack(fa) @ xf - np.concatenate(fb)
    t_res = np.vstack(ta) @ xt - np.concatenate(tb)
    return PayloadResult(mass, xt[:3] / mass, float(np.sqrt(np.mean(f_res**2))), float(np.sqrt(np.mean(t_res**2))),
                         xf[1:], xt[3:], n)


def calibrate_payload(arm: Arm, tilt_deg: float = 40.0, samples: int = 50,
                      restore: tuple[float, Sequence[float]] | None = None,
                      restore_tcp: Pose | None = None) -> PayloadResult:
    """Identify the payload on any arm that senses the wrench, from 5 static orientations.

    Args:
        arm: The arm (a ``SafeArm``), in free space with room to tilt the tool.
        tilt_deg: Tilt of the tool from its current orientation [deg].
        samples: Wrench readings averaged per orientation.
        restore: Payload (mass [kg], centre of mass [m]) to set afterwards; default the arm
            file's gripper.
        restore_tcp: TCP to set afterwards; default the arm file's nominal TCP.
    """
    if not arm.capabilities.senses_wrench or arm.state().wrench is None:
        raise CalibrationError(f"payload identification needs wrist force sensing; this {arm.capabilities.model} "
                               "arm does not sense it")
    config = getattr(arm, "config", None)
    if restore is None:
        restore = (config.gripper.mass, config.gripper.center_of_mass) if config is not None else (0.0, (0, 0, 0))
    if restore_tcp is None:
        restore_tcp = config.flange_T_tcp if config is not None else Pose.identity()
    period = arm.native_period
    arm.set_tcp(Pose.identity())  # wrench and pose at the flange
    arm.set_payload(0.0, [0.0, 0.0, 0.0])
    try:
        start = arm.state().base_T_tcp
        tilts = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0)]
        rotations, forces, torques = [], [], []
        for axis in tilts:
            rot = Rotation.from_rotvec(np.array(axis) * np.radians(tilt_deg)) * start.rotation
            pose = Pose.from_quat_xyzw(start.xyz, rot.as_quat())
            arm.move_to(pose, 0.1)
            for _ in range(round(1.0 / period)):  # until still
                arm.servo(pose, period)
                state = arm.state()
                if np.linalg.norm(state.tcp_velocity) < 1e-3:
                    break
            f, t = [], []
            for _ in range(samples):
                arm.servo(pose, period)
                state = arm.state()
                f.append(state.wrench.force)
                t.append(state.wrench.torque)
            rotations.append(state.base_T_tcp.rotation_matrix)
            forces.append(np.mean(f, axis=0))
            torques.append(np.mean(t, axis=0))
        arm.move_to(start, 0.1)
    finally:
        arm.set_payload(restore[0], restore[1])
        arm.set_tcp(restore_tcp)
    result = solve_payload(rotations, forces, torques)
    log.info("payload: %.3f kg at %s m (flange), force rms %.3f N", result.mass, result.center_of_mass.round(4),
             result.force_rms_n)
    return result
