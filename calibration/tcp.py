"""TCP calibration: where the tool point is on the flange (``flange_T_tcp``), by pivoting.

The operator touches one fixed point (a divot) with the tool tip from several orientations;
each time the arm reports its flange pose ``base_T_flange_i``. The tip's flange coordinates
``t`` and the pivot ``p`` solve ``R_i t + x_i = p`` for all i (linear least squares).

Pivoting gives only the tip's position. The TCP's orientation comes from two more marks of a
calibration jig fixed to the tool, at known design positions on the tool's +x and +y axes
(``CalibrationJig``, 80 mm out by default): each is pivoted on the same divot, and the three
recovered points span the tool frame (Kabsch fit). On a real cell the jig is a plate with pointed marks,
doweled to the gripper body's datum holes (not held by the fingers, whose grasp varies); its
machining tolerance (a few hundredths of a mm over 80 mm, about 0.02 deg) bounds the orientation.
In the simulator the simulated operator places the true marks with 0.02 mm alignment noise.
Without a jig (``orientation=False``) the nominal orientation is kept and reported as such.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rmskill.arm import Arm
from rmskill.calibration.operator import Operator, default_operator
from rmskill.errors import CalibrationError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)

MIN_POSES = 4


@dataclass(frozen=True)
class CalibrationJig:
    """Marks of the TCP calibration jig, in the TCP frame [m]: the tip at the TCP, and two
    marks along the tool's +x and +y axes (their distance sets the orientation's accuracy)."""

    tip: tuple[float, float, float] = (0.0, 0.0, 0.0)
    x_mark: tuple[float, float, float] = (0.08, 0.0, 0.0)
    y_mark: tuple[float, float, float] = (0.0, 0.08, 0.0)


@dataclass(frozen=True)
class PivotFit:
    """Least-squares pivot solution for one or more marks sharing one pivot.

    Attributes:
        flange_points: Each mark's position in the flange frame [m], shape (k, 3).
        base_pivot: The pivot in the base frame [m].
        rms_residual_mm: RMS distance of the marks from the pivot over all poses [mm].
        spread_deg: Orientation spread of the tip poses about their weakest axis [deg].
    """

    flange_points: np.ndarray
    base_pivot: np.ndarray
    rms_residual_mm: float
    spread_deg: float


@dataclass(frozen=True)
class TcpResult:
    """A calibrated TCP and its quality figures.

    Attributes:
        flange_T_tcp: The calibrated TCP.
        rms_residual_mm: RMS pivot residual over all poses [mm].
        spread_deg: Orientation spread of the tip poses about their weakest axis [deg].
        n_poses: Poses used (all marks).
        orientation: ``"jig"`` (measured from the jig marks) or ``"nominal"`` (kept).
        base_pivot: The pivot in the base frame [m].
    """

    flange_T_tcp: Pose
    rms_residual_mm: float
    spread_deg: float
    n_poses: int
    orientation: str
    base_pivot: np.ndarray = field(repr=False)

    def entry(self) -> dict:
        """The calibration store entry."""
        return {
            "tcp": self.flange_T_tcp.to_ur(), "rms_residual_mm": round(self.rms_residual_mm, 4),
            "spread_deg": round(self.spread_deg, 2), "n_poses": self.n_poses, "orientation": self.orientation,
        }


def orientation_spread_deg(rotations: Sequence[np.ndarray]) -> float:
    """How far the orientations differ about their least-excited axis [deg].

    For two orientations turned by an angle about an axis, this is that angle for directions
    across the axis and 0 along it; the pivot's tip position is observable only where it is
    well above zero in every direction.
    """
    mats = np.asarray(rotations, dtype=float)
    if len(mats) < 2:
        return 0.0
    dev = mats - mats.mean(axis=0)
    gram = np.einsum("nij,nik->jk", dev, dev) / len(mats)
    lam = max(float(np.linalg.eigvalsh(gram)[0]), 0.0)
    return float(np.degrees(2.0 * np.arcsin(min(1.0, np.sqrt(lam)))))


def check_pose_set(rotations: Sequence[np.ndarray], min_spread_deg: float, min_poses: int = MIN_POSES) -> float:
    """Refuse a pose set that cannot pin the tip down; return its spread [deg]."""
    n = len(rotations)
    if n < min_poses:
        raise CalibrationError(f"pivot calibration needs at least {min_poses} poses, got {n}: "
                               f"record {min_poses - n} more")
    spread = orientation_spread_deg(rotations)
    if spread < min_spread_deg:
        raise CalibrationError(
            f"degenerate pose set: the orientations differ by only {spread:.1f} deg about their weakest axis, "
            f"need {min_spread_deg:.1f} deg: tilt the tool {min_spread_deg - spread:.1f} deg more, about "
            "different axes (e.g. forward, back, left and right of vertical)")
    return spread


def solve_pivot(flange_poses: Sequence[Sequence[Pose]], min_spread_deg: float = 15.0) -> PivotFit:
    """Least squares for k marks touching one pivot; ``flange_poses[m]`` are mark m's poses.

    Unknowns: each mark's flange coordinates and the shared pivot. Mark 0 (the tip) must have a
    non-degenerate pose set on its own; the others are pinned by the shared pivot.
    """
    tip_rots = [p.rotation_matrix for p in flange_poses[0]]
    spread = check_pose_set(tip_rots, min_spread_deg)
    k = len(flange_poses)
    rows, rhs = [], []
    for m, poses in enumerate(flange_poses):
        for pose in poses:
            a = np.zeros((3, 3 * k + 3))
            a[:, 3 * m: 3 * m + 3] = pose.rotation_matrix
            a[:, 3 * k:] = -np.eye(3)
            rows.append(a)
            rhs.append(-np.asarray(pose.xyz))
    a, b = np.vstack(rows), np.concatenate(rhs)
    x, *_ = np.linalg.lstsq(a, b, rcond=None)
    residual = (a @ x - b).reshape(-1, 3)
    rms = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))) * 1000.0)
    return PivotFit(x[: 3 * k].reshape(k, 3), x[3 * k:], rms, spread)


def frame_from_marks(tip: np.ndarray, x_mark: np.ndarray, y_mark: np.ndarray, jig: CalibrationJig) -> np.ndarray:
    """Flange-frame rotation of the tool from the recovered jig marks (3x3)."""
    tool = np.array([jig.tip, jig.x_mark, jig.y_mark], dtype=float)
    flange = np.array([tip, x_mark, y_mark], dtype=float)
    # Kabsch: the rotation that best maps the design marks onto the measured ones.
    tc, fc = tool - tool.mean(axis=0), flange - flange.mean(axis=0)
    u, _, vt = np.linalg.svd(fc.T @ tc)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _reference_tcp(arm: Arm) -> Pose:
    """Set a TCP we know (the arm file's nominal one), so flange poses follow from the TCP pose."""
    config = getattr(arm, "config", None)
    tcp = config.flange_T_tcp if config is not None else Pose.identity()
    arm.set_tcp(tcp)
    return tcp


def calibrate_tcp(arm: Arm, operator: Operator | None = None, poses: int = 10, orientation: bool = True,
                  min_spread_deg: float = 15.0, jig: CalibrationJig = CalibrationJig()) -> TcpResult:
    """Pivot calibration of the TCP on any arm.

    Args:
        arm: The arm (a ``SafeArm``); its TCP is left set to the nominal one.
        operator: Who places the tool; the simulator on a simulated arm, a person otherwise.
        poses: Orientations per mark (at least 4).
        orientation: Also pivot the jig's x and y marks to measure the TCP orientation.
        min_spread_deg: Least orientation spread about the weakest axis [deg].
        jig: The jig's mark positions in the TCP frame [m].
    """
    operator = operator or default_operator(arm)
    reference = _reference_tcp(arm)
    tcp_T_flange = reference.inverse()
    marks = [("tool tip", jig.tip)]
    if orientation:
        marks += [("jig +x mark", jig.x_mark), ("jig +y mark", jig.y_mark)]
    operator.say(f"TCP calibration: touch one fixed point with each mark from {poses} orientations, "
                 f"tilted at least {min_spread_deg:.0f} deg apart about different axes")
    recorded: list[list[Pose]] = []
    try:
        for name, point in marks:
            mark_poses: list[Pose] = []
            for i in range(poses):
                spread = orientation_spread_deg([p.rotation_matrix for p in mark_poses])
                more = max(0.0, min_spread_deg - spread)
                hint = f"{len(mark_poses)} recorded, spread {spread:.1f} deg" + (
                    f" (tilt {more:.1f} deg more about another axis)" if more > 0 else "")
                operator.touch_pivot(arm, name, np.asarray(point, dtype=float), i, hint)
                mark_poses.append(arm.state().base_T_tcp @ tcp_T_flange)
            if not recorded:  # refuse a degenerate tip set before asking for the other marks
                check_pose_set([p.rotation_matrix for p in mark_poses], min_spread_deg)
            recorded.append(mark_poses)
    finally:
        operator.finish(arm)
    fit = solve_pivot(recorded, min_spread_deg)
    if orientation:
        rot = frame_from_marks(*fit.flange_points, jig)
        flange_T_tcp = Pose.from_matrix(np.block([[rot, fit.flange_points[0][:, None]], [np.zeros((1, 3)), 1.0]]))
    else:
        flange_T_tcp = Pose(fit.flange_points[0], reference.wxyz)
    result = TcpResult(flange_T_tcp, fit.rms_residual_mm, fit.spread_deg, sum(map(len, recorded)),
                       "jig" if orientation else "nominal", fit.base_pivot)
    log.info("TCP %s: rms residual %.3f mm over %d poses", flange_T_tcp, result.rms_residual_mm, result.n_poses)
    return result
