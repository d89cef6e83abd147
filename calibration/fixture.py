"""Fixture calibration: where a nest really is (``base_T_fixture``), same convention as the arm
file: the TCP pose with the plate seated (TCP at the plate's centre, z down into the nest).

Two methods:

- ``touch`` (default where the wrist senses force; always in the simulator): with no plate held
  and the fingers closed, guarded servo moves bring the finger pads onto the nest, each stopping
  at a small contact force; the contact is where the force starts to rise (position against
  force, extrapolated to zero), so compliance does not bias it. With the tool turned a quarter
  turn, the pads touch the seat at 4 points (height and tilt) and each long wall at 2 points
  with their stiff ends (yaw, and the centre line along); turned back, one point on each short
  wall (the centre line across). Centres come from opposite walls and slopes from two touches
  by the same pad corner, so the pads' size and shape cancel out.
- ``teach``: the operator puts the TCP on the nest's origin, a point on its +x axis and a point
  on its +y side; the frame follows from the three points.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from rmskill.arm import Arm, Compliance, compliant
from rmskill.calibration.operator import Operator, default_operator
from rmskill.errors import CalibrationError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NestGeometry:
    """An SBS nest (ANSI/SLAS footprint) and the plate it holds, [m]."""

    length: float = 0.12776  # plate along the fixture x
    width: float = 0.08548  # plate along the fixture y
    clearance: float = 0.0003  # per side, plate to wall
    wall_height: float = 0.006  # above the seat, chamfer included
    chamfer: float = 0.002
    plate_height: float = 0.01435

    @property
    def seat_z(self) -> float:
        """Seat surface below the fixture origin (the seated plate's centre)."""
        return self.plate_height / 2

    @property
    def half_cavity(self) -> np.ndarray:
        return np.array([self.length / 2 + self.clearance, self.width / 2 + self.clearance])


@dataclass(frozen=True)
class PadGeometry:
    """The tool parts that touch, with no plate held and the fingers closed, TCP frame [m].

    Defaults: the rmskill plate gripper (two pads at +-y, each 30 mm long in x).
    """

    bottom_z: float = -0.0025  # lowest tool point (z points away from the flange)
    top_z: float = -0.0070
    half_x: float = 0.015  # pads' extent along x
    outer_y: float = 0.028  # pads' outer faces at +-outer_y with the fingers closed
    closed_width: float = 0.0  # gripper command that closes the fingers fully


@dataclass(frozen=True)
class TouchOff:
    """Guarded-move settings.

    Attributes:
        force_n: Contact force that ends a guarded move [N].
        speed: Guarded move speed [m/s]. Slow, because the contact found is biased by the approach
            speed: in the simulated cell, touching at 10 mm/s put the nests off by up to 13 um in
            the direction of the short-wall touches, and by how much depended on the arm's pose
            (side nests -11 um, the middle one +2 um on the perturbed UR5e); at 3 mm/s all
            nests of all four example arms came within 3 um. It costs about 1 s per touch.
        standoff: Start distance from the nominal contact [m]; the search runs 2x + 3 mm.
        wall_gap: Pad bottom above the measured seat during wall touches [m].
        step: Time between two servo commands [s] (rounded to native periods).
        stiffness: The compliance asked of the arm during each guarded move: translational [N/m],
            rotational [Nm/rad] (a stiff arm would meet the wall with far more than ``force_n``).
    """

    force_n: float = 3.0
    speed: float = 0.003
    standoff: float = 0.003
    wall_gap: float = 0.0015
    step: float = 0.004
    stiffness: tuple[float, float] = (4000.0, 300.0)
    nest: NestGeometry = field(default_factory=NestGeometry)
    pads: PadGeometry = field(default_factory=PadGeometry)


@dataclass(frozen=True)
class FixtureResult:
    """A calibrated fixture.

    Attributes:
        name: Fixture name in the arm file.
        base_T_fixture: The measured fixture pose.
        method: ``"touch"`` or ``"teach"``.
        residual_mm: Consistency figure (touch): RMS seat-plane residual combined with how far the
            two long walls' slopes disagree over the touch span; 0 for teach (three points fit
            a frame exactly) [mm].
        offset_mm: Distance from the nominal pose [mm].
        offset_deg: Angle from the nominal pose [deg].
        contacts: Contact TCP positions in the nominal fixture frame [m] (touch only).
    """

    name: str
    base_T_fixture: Pose
    method: str
    residual_mm: float
    offset_mm: float
    offset_deg: float
    contacts: dict = field(default_factory=dict, repr=False)

    def entry(self) -> dict:
        return {"pose": self.base_T_fixture.to_ur(), "method": self.method,
                "residual_mm": round(self.residual_mm, 4), "offset_mm": round(self.offset_mm, 3),
                "offset_deg": round(self.offset_deg, 4)}


def _require_force(arm: Arm) -> None:
    if not arm.capabilities.senses_wrench or arm.state().wrench is None:
        raise CalibrationError(f"touch-off needs wrist force sensing, and this {arm.capabilities.model} arm "
                               "does not sense it: use method='teach' (three taught points)")


class _Prober:
    """Guarded moves in the nominal fixture frame, with the tool held in that frame's orientation.

    Between touches the tool glides by servo steps (no stop-and-settle), staying inside the nest.
    """

    def __init__(self, arm: Arm, base_T_nominal: Pose, settings: TouchOff):
        _require_force(arm)
        self.arm, self.frame, self.s = arm, base_T_nominal, settings
        self.dt = arm.native_period * max(1, round(settings.step / arm.native_period))
        self.cmd: np.ndarray | None = None  # last commanded TCP position, fixture frame
        self.turn = 0.0  # the tool's turn about the fixture z axis [rad]
        self.free: np.ndarray | None = None  # wrench force before the first touch [N]

    def pose(self, p: np.ndarray, turn: float | None = None) -> Pose:
        turn = self.turn if turn is None else turn
        return self.frame @ Pose(p, (np.cos(turn / 2), 0.0, 0.0, np.sin(turn / 2)))

    def rotate(self, turn: float, rate: float = 0.6) -> None:
        """Turn the tool about the fixture z axis to ``turn`` [rad] at ``rate`` [rad/s], in place."""
        steps = max(1, int(np.ceil(abs(turn - self.turn) / (rate * self.dt))))
        start = self.turn
        for i in range(1, steps + 1):
            self.arm.servo(self.pose(self.cmd, start + (turn - start) * i / steps), self.dt)
        self.turn = turn

    def move(self, p: np.ndarray, speed: float = 0.1) -> None:
        """A blocking move (into and out of the nest)."""
        self.arm.move_to(self.pose(p), speed)
        self.cmd = np.asarray(p, dtype=float)

    def glide(self, p: np.ndarray, speed: float = 0.04) -> None:
        """Servo in a straight line from the last commanded position to ``p``."""
        p = np.asarray(p, dtype=float)
        assert self.cmd is not None
        start, dist = self.cmd, float(np.linalg.norm(p - self.cmd))
        steps = max(1, int(np.ceil(dist / (speed * self.dt))))
        for i in range(1, steps + 1):
            self.arm.servo(self.pose(start + (p - start) * i / steps), self.dt)
        self.cmd = p

    def _settle(self, n: int = 20, timeout: float = 1.0) -> np.ndarray:
        """Hold until the tool is still, then return the mean wrench force over ``n`` periods [N]."""
        pose = self.pose(self.cmd)
        for _ in range(int(timeout / self.dt)):
            self.arm.servo(pose, self.dt)
            state = self.arm.state()
            if np.linalg.norm(state.tcp_velocity[:3]) < 2e-4 and np.linalg.norm(state.tcp_velocity[3:]) < 2e-3:
                break
        forces = []
        for _ in range(n):
            self.arm.servo(pose, self.dt)
            forces.append(self.arm.state().wrench.force)
        return np.mean(forces, axis=0)

    def touch(self, start: np.ndarray, direction: np.ndarray, travel: float) -> np.ndarray:
        """From ``start`` move along ``direction`` (fixture frame) until the contact force reaches
        ``force_n``; back off to ``start`` and return the contact TCP position (fixture frame).

        The contact is where the force starts to rise: the TCP position against the pushing force
        is extrapolated to zero force, so finger and contact compliance do not bias it.
        """
        start = np.asarray(start, dtype=float)
        self.glide(start)
        compliance = Compliance.uniform(*self.s.stiffness) if self.arm.capabilities.compliance else None
        try:
            with compliant(self.arm, compliance):
                return self._guarded(start, np.asarray(direction, dtype=float) / np.linalg.norm(direction), travel)
        finally:  # a stiff arm holds where the compliant one was: glide on from there
            self.cmd = self.frame.inverse().apply(self.arm.state().base_T_tcp.xyz)

    def _guarded(self, start: np.ndarray, direction: np.ndarray, travel: float) -> np.ndarray:
        arm, s = self.arm, self.s
        base_dir = self.frame.rotation.apply(direction)
        f0 = self._settle()
        if self.free is None:
            self.free = f0
        elif np.linalg.norm(f0 - self.free) > 0.5 * s.force_n:
            raise CalibrationError(f"the tool already pushes with {np.linalg.norm(f0 - self.free):.1f} N at the start "
                                   "of a touch: the nest is further than about "
                                   f"{s.standoff * 1000:.0f} mm from its nominal pose; correct the arm file first")
        to_fixture = self.frame.inverse()
        step = s.speed * self.dt
        pushes, places = [], []
        for i in range(1, int(travel / step) + 1):
            target = start + direction * step * i
            arm.servo(self.pose(target), self.dt)
            self.cmd = target
            state = arm.state()
            pushes.append(-float(np.dot(state.wrench.force - f0, base_dir)))
            places.append(to_fixture.apply(state.base_T_tcp.xyz))
            if pushes[-1] >= s.force_n:
                self.glide(start, 0.02)
                return self._onset(np.array(pushes), np.array(places), direction)
        self.glide(start, 0.02)
        raise CalibrationError(f"no contact within {travel * 1000:.1f} mm moving {direction.round(3).tolist()} from "
                               f"{(start * 1000).round(2).tolist()} mm (nominal fixture frame): the fixture is "
                               "further from its nominal pose than the search covers, or the nest is not there")

    def _onset(self, pushes: np.ndarray, places: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """The TCP position at zero contact force, from the loaded part of the approach."""
        low = 0.4 * self.s.force_n
        first = len(pushes) - 1
        while first > 0 and pushes[first - 1] >= low:
            first -= 1
        idx = np.arange(first, len(pushes))
        along = places[idx] @ direction
        if len(idx) >= 3:
            slope, at_zero = np.polyfit(pushes[idx], along, 1)
            if slope >= 0:  # deeper with more force, as compliance goes; else trust the last sample
                return places[-1] + direction * (at_zero - along[-1])
        return places[-1]


def _fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """z = c0 + c1 x + c2 y by least squares; returns (c, rms residual [m])."""
    a = np.c_[np.ones(len(points)), points[:, :2]]
    c, *_ = np.linalg.lstsq(a, points[:, 2], rcond=None)
    return c, float(np.sqrt(np.mean((a @ c - points[:, 2]) ** 2)))


def _quarter_turn(arm: Arm) -> float:
    """+-90 deg, turning the last joint (about the tool axis on common arms) toward mid-range."""
    last = float(arm.state().q[-1])
    return -np.pi / 2 if last > 0 else np.pi / 2


def _touch_off(arm: Arm, name: str, nominal: Pose, settings: TouchOff, operator: Operator) -> FixtureResult:
    nest, pads = settings.nest, settings.pads
    _require_force(arm)
    operator.clear_gripper(arm)
    probe = _Prober(arm, nominal, settings)
    if arm.gripper is not None:
        arm.gripper.move(pads.closed_width)
    search = 2 * settings.standoff + 0.003
    contacts: dict[str, list] = {"seat": [], "+y": [], "-y": [], "+x": [], "-x": []}

    # Into the nest's middle, pads `standoff` above the nominal seat; all touches stay inside.
    # The tool turns a quarter turn first, so the pads' ends (stiff, unlike the finger slides)
    # face the long walls, and the seat points can spread across the nest.
    z_start = nest.seat_z - pads.bottom_z - settings.standoff
    probe.move(np.array([0.0, 0.0, z_start - 0.06]), 0.1)
    probe.glide(np.array([0.0, 0.0, z_start]))
    turn = _quarter_turn(arm)
    probe.rotate(turn)

    # Seat: four points, the height and the tilt.
    sx = nest.half_cavity[0] - pads.outer_y - 2 * settings.standoff
    sy = nest.half_cavity[1] - pads.half_x - 2 * settings.standoff
    for x, y in ((-sx, -sy), (sx, -sy), (sx, sy), (-sx, sy)):
        contacts["seat"].append(probe.touch(np.array([x, y, z_start]), np.array([0.0, 0.0, 1.0]), search))
    seat = np.array(contacts["seat"])
    plane, plane_rms = _fit_plane(seat)

    def wall_z(x: float, y: float) -> float:
        return float(plane[0] + plane[1] * x + plane[2] * y) - settings.wall_gap

    # Long walls (+-y), two points each: the yaw and the centre line along. Both touches on a
    # wall meet the same pad corner, so the pads' shape cancels out of the slope.
    y0 = nest.half_cavity[1] - pads.half_x - settings.standoff
    x_span = nest.half_cavity[0] - pads.outer_y - settings.standoff
    lines = {}
    for sign, key, xs in ((1.0, "+y", (x_span, -x_span)), (-1.0, "-y", (-x_span, x_span))):
        for x in xs:
            start = np.array([x, sign * y0, wall_z(x, sign * y0)])
            contacts[key].append(probe.touch(start, np.array([0.0, sign, 0.0]), search))
        (xa, ya, _), (xb, yb, _) = contacts[key]
        slope = (yb - ya) / (xb - xa)
        lines[key] = (slope, ya - slope * xa)  # y = slope x + offset
    slope = (lines["+y"][0] + lines["-y"][0]) / 2
    yaw = float(np.arctan(slope))
    offset = (lines["+y"][1] + lines["-y"][1]) / 2  # the centre line along: y = slope x + offset
    disagreement = abs(lines["+y"][0] - lines["-y"][0]) * 2 * x_span

    # Short walls (+-x), one point each, tool turned back: the centre along. The midpoint of the
    # two contacts lies on the nest's centre line across, whatever the pads' shape and yaw.
    probe.glide(np.array([0.0, offset, z_start]))
    probe.rotate(0.0)
    x0 = nest.half_cavity[0] - pads.half_x - settings.standoff
    for sign, key in ((-1.0, "-x"), (1.0, "+x")):
        start = np.array([sign * x0, offset, wall_z(sign * x0, offset)])
        contacts[key].append(probe.touch(start, np.array([sign, 0.0, 0.0]), search))
    mid_x = (np.array(contacts["+x"][0]) + np.array(contacts["-x"][0]))[:2] / 2
    probe.glide(np.array([0.0, offset, z_start]))
    probe.move(np.array([0.0, 0.0, z_start - 0.06]), 0.1)

    # The centre: where the centre line along meets the one across (through mid_x, at the yaw).
    across = np.array([-np.sin(yaw), np.cos(yaw)])
    t = (slope * mid_x[0] + offset - mid_x[1]) / (across[1] - slope * across[0])
    centre_xy = mid_x + t * across
    # On a tilted seat the pads meet it first at their lowest corner, not under the TCP.
    corners = np.array([[sx_, sy_] for sx_ in (-pads.half_x, pads.half_x) for sy_ in (-pads.outer_y, pads.outer_y)])
    corners = corners @ np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]])
    lowest = float(np.min(corners @ plane[1:]))
    seat_c0 = plane[0] + pads.bottom_z - lowest  # seat surface: z = seat_c0 + c1 x + c2 y
    normal = np.array([-plane[1], -plane[2], 1.0])
    normal /= np.linalg.norm(normal)
    # The nest axis through the wall centre meets the seat; the origin is seat_z above that.
    on_axis = np.array([centre_xy[0], centre_xy[1], wall_z(*centre_xy) + (pads.bottom_z + pads.top_z) / 2])
    s = (seat_c0 + plane[1:] @ on_axis[:2] - on_axis[2]) / (normal[2] - plane[1:] @ normal[:2])
    origin = on_axis + (s - nest.seat_z) * normal
    tilt = Rotation.align_vectors([normal], [[0.0, 0.0, 1.0]])[0]
    rot = tilt * Rotation.from_rotvec([0.0, 0.0, yaw])
    pose = nominal @ Pose.from_quat_xyzw(origin, rot.as_quat())
    residual = float(np.hypot(plane_rms * 1000.0, disagreement * 1000.0))
    return FixtureResult(name, pose, "touch", residual, pose.distance_mm(nominal), pose.angle_deg(nominal),
                         {k: np.array(v).tolist() for k, v in contacts.items()})


def _teach(arm: Arm, name: str, nominal: Pose, operator: Operator, span: float = 0.04) -> FixtureResult:
    """Three taught TCP positions: origin, a point on +x, a point on the +y side."""
    operator.clear_gripper(arm)
    taught = []
    try:
        for point, words in (((0.0, 0.0, 0.0), "the nest's origin (the seated plate's centre)"),
                             ((span, 0.0, 0.0), f"a point {span * 1000:.0f} mm along the nest's +x axis"),
                             ((0.0, span * 0.75, 0.0), "a point on the nest's +y side")):
            operator.teach_point(arm, name, np.array(point), f"put the TCP on {words}, tool pointing into the nest")
            taught.append(np.array(arm.state().base_T_tcp.xyz))
    finally:
        operator.finish(arm)
    origin, px, pxy = taught
    x = px - origin
    if np.linalg.norm(x) < 0.01 or np.linalg.norm(np.cross(x, pxy - origin)) < 1e-4:
        raise CalibrationError("the taught points are too close together or on one line: teach the +x point at "
                               "least 10 mm from the origin and the +y point off the x axis")
    x /= np.linalg.norm(x)
    z = np.cross(x, pxy - origin)
    z /= np.linalg.norm(z)
    rot = np.c_[x, np.cross(z, x), z]
    pose = Pose.from_matrix(np.block([[rot, origin[:, None]], [np.zeros((1, 3)), 1.0]]))
    # Three points fix a frame exactly: there is no misfit to report.
    return FixtureResult(name, pose, "teach", 0.0, pose.distance_mm(nominal), pose.angle_deg(nominal))


def _touch_rack(arm: Arm, name: str, nominal: Pose, settings: TouchOff, operator: Operator) -> FixtureResult:
    """A tube rack, touched with the held tube (``rmskill.calibration.rack``)."""
    from rmskill.calibration.rack import touch_rack

    return touch_rack(arm, name, nominal, settings, operator)


#: Touch-off procedure per fixture kind (``Fixture.kind`` in the arm file). ``teach`` serves every kind.
TOUCH_PROCEDURES = {"slot": _touch_off, "rack": _touch_rack}


def calibrate_fixture(arm: Arm, name: str, nominal: Pose, method: str | None = None,
                      operator: Operator | None = None, settings: TouchOff = TouchOff(),
                      kind: str = "slot") -> FixtureResult:
    """Measure fixture ``name`` on any arm, starting from its ``nominal`` pose.

    Args:
        arm: The arm (a ``SafeArm``), with its calibrated TCP set.
        name: The fixture's name (for messages and the simulated operator).
        nominal: Its nominal ``base_T_fixture`` from the arm file.
        method: ``"touch"`` (default where force is sensed) or ``"teach"``.
        operator: Who clears the gripper or teaches the points.
        settings: Guarded-move settings and the nest and pad geometry.
        kind: The fixture's kind; ``touch`` needs a procedure for it (``TOUCH_PROCEDURES``).
    """
    operator = operator or default_operator(arm)
    if method is None:
        method = "touch" if arm.capabilities.senses_wrench else "teach"
    if method == "touch":
        if kind not in TOUCH_PROCEDURES:
            raise CalibrationError(f"fixture '{name}' is a '{kind}': no touch procedure for that kind (kinds: "
                                   f"{', '.join(sorted(TOUCH_PROCEDURES))}); use --method teach")
        result = TOUCH_PROCEDURES[kind](arm, name, nominal, settings, operator)
    elif method == "teach":
        result = _teach(arm, name, nominal, operator)
    else:
        raise CalibrationError(f"unknown fixture method '{method}' (methods: touch, teach)")
    log.info("fixture %s (%s): %s, %.3f mm / %.3f deg from nominal", name, result.method, result.base_T_fixture,
             result.offset_mm, result.offset_deg)
    return result
