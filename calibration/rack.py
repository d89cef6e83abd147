"""Rack calibration: where a tube rack really is (``base_T_fixture``: hole A1's centre in the top
surface, z down into the holes, x along the rows), found by touching it with the held tube.

- Height: the tube's flat tip pressed onto the top surface beside three corner holes (a plane:
  the height and the tilt).
- Holes: at two holes far apart (A1 and the last one of the grid) the tube first finds the hole
  (straight down at the nominal centre; if it lands on the rim, a spiral search until it drops in),
  goes in below the chamfer, and touches the wall each way along x and y: the middle of the free
  travel is the hole's centre, whatever the tube's diameter and the arm's compliance. Each hole is
  measured twice, with the tool turned a quarter turn each way: a tube held off the tool axis (or
  tilted in the fingers) reads off to one side, then to the other, and the mean cancels it.
- The two centres give the rack's position and its yaw; the plane its height and tilt.

The operator puts a tube into the gripper first (``Operator.load_gripper``; the simulated operator
grips a fresh one at the arm's home: a TCP calibration before may have shaken the last one loose).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.transform import Rotation

from rmskill.arm import Arm, Compliance, compliant
from rmskill.calibration.operator import Operator
from rmskill.calibration.rack_geometry import RackGeometry
from rmskill.errors import CalibrationError
from rmskill.geometry import Pose

if TYPE_CHECKING:
    from rmskill.calibration.fixture import FixtureResult

log = logging.getLogger(__name__)

FORCE_N = 3.0  # contact force that ends a guarded move [N]
SPEED = 0.005  # guarded move speed [m/s]
IN_DEPTH = 0.004  # depth of the tip below the top surface for the wall touches [m]


class _Tube:
    """Servo moves of the held tube's tip in the nominal rack frame, the tool turned ``turn`` about z."""

    def __init__(self, arm: Arm, base_T_rack: Pose):
        self.arm, self.frame = arm, base_T_rack
        self.to_rack = base_T_rack.inverse()
        self.dt = arm.native_period * max(1, round(0.004 / arm.native_period))
        self.cmd = np.zeros(3)
        self.turn = 0.0

    def pose(self, p: np.ndarray, turn: float | None = None) -> Pose:
        turn = self.turn if turn is None else turn
        return self.frame @ Pose(p, (math.cos(turn / 2), 0.0, 0.0, math.sin(turn / 2)))

    def measured(self) -> np.ndarray:
        return self.to_rack.apply(self.arm.state().base_T_tcp.xyz)

    def force(self) -> np.ndarray:
        return self.to_rack.rotation.apply(self.arm.state().wrench.force)

    def move(self, p: np.ndarray, turn: float | None = None, speed: float = 0.05) -> None:
        """A blocking move (above the rack)."""
        self.turn = self.turn if turn is None else turn
        self.arm.move_to(self.pose(p), speed)
        self.cmd = np.asarray(p, dtype=float)

    def rotate(self, turn: float, rate: float = 0.5) -> None:
        """Turn the tool about the rack's z axis to ``turn`` [rad] at ``rate`` [rad/s], in place."""
        steps = max(1, math.ceil(abs(turn - self.turn) / (rate * self.dt)))
        start = self.turn
        for i in range(1, steps + 1):
            self.arm.servo(self.pose(self.cmd, start + (turn - start) * i / steps), self.dt)
        self.turn = turn

    def glide(self, p: np.ndarray, speed: float = 0.01) -> None:
        p = np.asarray(p, dtype=float)
        start, dist = self.cmd, float(np.linalg.norm(p - self.cmd))
        steps = max(1, math.ceil(dist / (speed * self.dt)))
        for i in range(1, steps + 1):
            self.arm.servo(self.pose(start + (p - start) * i / steps), self.dt)
        for _ in range(int(0.1 / self.dt)):
            self.arm.servo(self.pose(p), self.dt)
        self.cmd = p

    def rest(self, n: int = 15) -> np.ndarray:
        """Mean force while holding still [N]."""
        out = []
        for _ in range(n):
            self.arm.servo(self.pose(self.cmd), self.dt)
            out.append(self.force())
        return np.mean(out, axis=0)

    def touch(self, direction: np.ndarray, travel: float) -> np.ndarray:
        """Move along ``direction`` until the force against it rises by ``FORCE_N``; the measured tip
        position there (rack frame). Goes back to where it started."""
        direction = np.asarray(direction, dtype=float)
        start, f0 = self.cmd.copy(), self.rest()
        step = SPEED * self.dt
        for i in range(1, int(travel / step) + 1):
            self.cmd = start + direction * step * i
            self.arm.servo(self.pose(self.cmd), self.dt)
            if -float(np.dot(self.force() - f0, direction)) >= FORCE_N:
                found = self.measured()
                self.glide(start, 0.01)
                return found
        self.glide(start, 0.01)
        raise CalibrationError(f"no contact within {travel * 1000:.1f} mm moving {direction.round(3).tolist()} "
                               f"from {(start * 1000).round(2).tolist()} mm (nominal rack frame): is the rack "
                               "further off its nominal pose, or is the hole occupied?")

    def enter(self, centre: np.ndarray, rack: RackGeometry, top: float, search_mm: float = 4.0) -> None:
        """Put the tip ``IN_DEPTH`` into the hole near ``centre`` (``top``: the measured top surface's
        z there): straight down, or, if the tube lands on the rim or the chamfer, a spiral around
        ``centre``, pressing lightly, until the tip drops below the chamfer."""
        inside = top + rack.chamfer + 0.0002
        self.glide(np.array([*centre, top - 0.003]))
        try:
            self.touch(np.array([0.0, 0.0, 1.0]), 0.003 + rack.chamfer + IN_DEPTH)
            landed = True
        except CalibrationError:
            landed = False  # nothing in the way down to below the chamfer: in
        if landed:
            pitch, angle, found = 0.0006, 0.0, False
            self.glide(np.array([*centre, inside + 0.0008]), 0.005)  # a few N through the arm's stiffness
            while pitch * angle / (2 * math.pi) < search_mm / 1000.0:
                radius = pitch * angle / (2 * math.pi)
                angle += 0.004 * self.dt / max(radius, 0.0003)
                radius = pitch * angle / (2 * math.pi)
                self.cmd = np.array([*(centre + radius * np.array([math.cos(angle), math.sin(angle)])), self.cmd[2]])
                self.arm.servo(self.pose(self.cmd), self.dt)
                if self.measured()[2] > inside:
                    found = True
                    break
            if not found:
                raise CalibrationError(f"no hole within {search_mm} mm of the nominal centre "
                                       f"{(centre * 1000).round(2).tolist()} mm")
        # Down the chamfer, complying sideways with the wall force, to below the chamfer.
        goal_z = top + rack.chamfer + IN_DEPTH
        for _ in range(int(2.0 / self.dt)):
            f = self.force()
            self.cmd = self.cmd + np.array([*(f[:2] * 2e-5), 0.0])
            self.cmd[2] = min(self.cmd[2] + 0.01 * self.dt, self.measured()[2] + 0.001, goal_z)
            self.arm.servo(self.pose(self.cmd), self.dt)
            if self.measured()[2] > goal_z - 0.0002:
                break
        else:
            raise CalibrationError("the tube did not go into the hole below its chamfer")
        self.cmd[:2] = self.measured()[:2]
        self.glide(self.cmd)

    def centre(self, travel: float) -> np.ndarray:
        """The middle of the free travel along x and along y, at the current depth (rack frame)."""
        out = np.zeros(2)
        for axis in (0, 1):
            d = np.zeros(3)
            d[axis] = 1.0
            plus, minus = self.touch(d, travel), self.touch(-d, travel)
            out[axis] = (plus[axis] + minus[axis]) / 2
            self.glide(np.array([*(self.cmd[:2] + (out - self.cmd[:2]) * (np.arange(2) == axis)), self.cmd[2]]))
        return out


def touch_rack(arm: Arm, name: str, nominal: Pose, settings: object, operator: Operator) -> FixtureResult:
    """``TOUCH_PROCEDURES['rack']``: the rack's pose from two holes' centres (each with the tool
    turned both ways) and three touches of its top surface, with the held tube."""
    if not arm.capabilities.senses_wrench or arm.state().wrench is None:
        raise CalibrationError(f"touching rack '{name}' needs wrist force sensing, and this "
                               f"{arm.capabilities.model} arm does not sense it: use method='teach'")
    operator.load_gripper(arm, "a tube")
    gripper = getattr(arm, "gripper", None)
    if gripper is not None and not gripper.state().object_detected:
        raise CalibrationError(f"calibrating rack '{name}' touches it with a held tube, and the gripper holds "
                               "nothing: put a tube into the gripper")
    rack = RackGeometry.from_fixture(name, arm.config.fixtures[name].geometry)
    # The held tube meets the rack throughout: a stiff arm would wedge it (4000 N/m, 300 Nm/rad, as
    # the fixture touches ask).
    compliance = Compliance.uniform(4000.0, 300.0) if arm.capabilities.compliance else None
    with compliant(arm, compliance):
        return _touch_rack(arm, name, nominal, rack)


def _touch_rack(arm: Arm, name: str, nominal: Pose, rack: RackGeometry) -> FixtureResult:
    from rmskill.calibration.fixture import FixtureResult

    tube = _Tube(arm, nominal)
    holes = ["A1", rack.holes()[-1]]
    above = -0.03
    # Up first (the tube must not sweep through the rack), across above it, then down.
    here = tube.measured()
    high = min(float(here[2]), -0.08)
    tube.move(np.array([here[0], here[1], high]), 0.0, speed=0.02)  # turning gently: the tube is held by friction
    for waypoint in (np.array([0.0, 0.0, high]), np.array([0.0, 0.0, above])):
        tube.move(waypoint, 0.0, speed=0.1)
    # Height: three touches of the top surface, each beside a corner hole, away from the grid.
    clear = rack.radius + rack.chamfer + 0.0015
    corners = [np.array([0.0, 0.0]), np.array([(rack.columns - 1) * rack.pitch, 0.0]),
               np.array([0.0, (rack.rows - 1) * rack.pitch])]
    surface = []
    for c in corners:
        spot = c + np.array([0.0, clear if c[1] > 0 else -clear])  # off the grid's edge, the tip half on the rim
        tube.glide(np.array([*spot, above]), 0.05)
        tube.glide(np.array([*spot, -0.003]), 0.02)
        surface.append(tube.touch(np.array([0.0, 0.0, 1.0]), 0.008))
        tube.glide(np.array([*spot, above]), 0.05)
    a = np.c_[np.ones(3), np.array(surface)[:, :2]]
    plane = np.linalg.solve(a, np.array(surface)[:, 2])  # z = c0 + c1 x + c2 y
    centres = {}
    for label in holes:
        xy = rack.hole_xy(label)
        reads = []
        for turn in (math.pi / 2, -math.pi / 2):  # half a turn apart (within every wrist's range)
            tube.glide(np.array([*xy, above]), 0.05)
            tube.rotate(turn)
            tube.enter(xy, rack, float(plane[0] + plane[1:] @ xy))
            reads.append(tube.centre(0.004))
            tube.glide(np.array([*tube.cmd[:2], above]), 0.02)
        centres[label] = np.mean(reads, axis=0)
        log.info("hole %s: centre %s mm (turned: %s mm)", label, (centres[label] * 1000).round(3),
                 (np.array(reads) * 1000).round(3).tolist())
    tube.move(np.array([0.0, 0.0, above]), 0.0, speed=0.1)
    (a1, last), span = centres.values(), rack.hole_xy(holes[1])
    yaw = math.atan2(last[1] - a1[1], last[0] - a1[0]) - math.atan2(span[1], span[0])
    normal = np.array([-plane[1], -plane[2], 1.0])
    normal /= np.linalg.norm(normal)
    origin = np.array([a1[0], a1[1], plane[0] + plane[1] * a1[0] + plane[2] * a1[1]])
    rot = Rotation.align_vectors([normal], [[0.0, 0.0, 1.0]])[0] * Rotation.from_rotvec([0.0, 0.0, yaw])
    pose = nominal @ Pose.from_quat_xyzw(origin, rot.as_quat())
    # Consistency: the measured distance between the two holes against the grid's.
    residual = abs(float(np.linalg.norm(last - a1) - np.linalg.norm(span))) * 1000.0
    return FixtureResult(name, pose, "touch", residual, pose.distance_mm(nominal), pose.angle_deg(nominal),
                         {"surface": np.array(surface).tolist(), **{k: v.tolist() for k, v in centres.items()}})
