"""Plate placement: put a gripped SBS plate into a shelf nest to a fraction of a millimetre.

Phases: approach (minimum-jerk lines, gentle enough that the plate does not shift in the grip, to
a pre-insert pose 15 mm above the calibrated nest), align and insert (the policy at ``rate_hz``:
bounded Cartesian corrections; force aware: the arm is asked for compliance (``contact_stiffness``),
the command complies along the sensed wall force and torque in the lead-in, and backs off upward near
the force limit), release, retreat.
The policy sees only what a real arm measures (``PlacementObserver``). Errors come from the
simulator's truth where there is one, else from the seated TCP against the calibrated nest.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rmskill.arm import Compliance, Wrench, compliant
from rmskill.evaluate import random_start
from rmskill.geometry import Pose
from rmskill.learning.episodes import Episode
from rmskill.skill import Actor, Context, LabelRefiner, Skill, SkillResult
from rmskill.spec import Features, Outcome, SkillSpec

log = logging.getLogger(__name__)

OBSERVATION = Features.of([
    ("x_mm", "mm"), ("y_mm", "mm"), ("z_mm", "mm"), ("yaw_deg", "deg"),  # measured TCP, nest frame (z down)
    ("cmd_dx_mm", "mm"), ("cmd_dy_mm", "mm"), ("cmd_dz_mm", "mm"), ("cmd_dyaw_deg", "deg"),  # command - measured
    ("vx_mm_s", "mm/s"), ("vy_mm_s", "mm/s"), ("vz_mm_s", "mm/s"),  # TCP velocity, nest frame
    ("fx_n", "N"), ("fy_n", "N"), ("fz_n", "N"), ("tz_nm", "Nm"),  # contact wrench on the tool, nest frame
    ("gripper_mm", "mm"), ("phase", "1"),  # gripper opening; the phase (1: align and insert, the policy's)
])
ACTION = Features.of([("dx_mm", "mm"), ("dy_mm", "mm"), ("dz_mm", "mm"), ("dyaw_deg", "deg")])
OBS_NAMES, ACTION_NAMES = OBSERVATION.names, ACTION.names
HELD_WIDTH_MM = 85.48  # an SBS plate's short side: the gripper's opening while it holds one
POSE = OBSERVATION.indices(["x_mm", "y_mm", "z_mm", "yaw_deg"])  # the measured TCP in the nest frame
COMMAND_DELTA = OBSERVATION.indices(["cmd_dx_mm", "cmd_dy_mm", "cmd_dz_mm", "cmd_dyaw_deg"])
Z, FX, FY, FZ, TZ = (OBSERVATION.index(n) for n in ("z_mm", "fx_n", "fy_n", "fz_n", "tz_nm"))
# Pose axis (x, y, yaw) -> the observation column of the wall force/torque along it.
WALL_COLUMN = {0: FX, 1: FY, 3: TZ}
LATERAL = {0: "x_mm", 1: "y_mm", 3: "yaw_deg"}  # action index -> touch check axis
INSERT_PHASE = 1.0
CONTACT_N = 2.0  # sensed force [N] that means the plate touched something (above noise and inertia)
SEAT_WINDOW = 5  # last control steps whose median push judges "seated" (100 ms at 50 Hz): not one sample


@dataclass(frozen=True)
class PlacementConfig:
    """The skill's settings. Lengths in [mm] unless the name says otherwise.

    Attributes:
        action_scale: Largest correction per control step: x, y, z [mm], yaw [deg].
        plate_mass: Plate mass [kg], added to the payload while held.
        pre_insert_mm: Height above the nest where the policy takes over.
        approach_speed: Top speed of the approach [m/s].
        approach_accel: Top acceleration of the approach [m/s^2]; low, so the plate does not shift
            in the grip.
        max_steps: Control steps allowed for align and insert.
        seat_push_n: Downward push that, near the seat depth, means seated [N].
        seat_depth_mm: How far above the calibrated seat a seated TCP may read.
        settle_steps: Quiet seated steps before release.
        backoff_fraction: Fraction of the arm's force limit at which the skill backs off upward.
        comply_mm_per_n, comply_deg_per_nm: Compliance in the lead-in: each step the command moves
            along the sensed lateral force and turns with the sensed torque about the nest axis
            (a guide wall says which way the nest is), beyond ``comply_deadband_n``/``_nm``.
        box_mm: Largest lateral excursion of the target from the nest [mm].
        retreat_mm: Height of the retreat above the nest.
        contact_stiffness: The compliance asked of the arm from align-and-insert to release:
            translational [N/m], rotational [Nm/rad] (a stiff arm would jam a plate off by a millimetre);
            ``None`` leaves the arm as it is (stiff on a UR).
        success_mm, success_deg: Largest final error that counts as a success.
        centre_gain: Fine-tuning's centre labels: fraction of the command's gap to the measured nest
            centre that a lateral label closes per step (0: the role model's own labels).
        touch_check: After seating, before release, find the nest's walls with the held plate
            (``touch_check_plate``): where the plate sits in its clearance, measured by the arm. On
            by default for fine-tuning (the arm-measured reward uses it); on a real arm its result
            is the reported placement error.
        touch_centre: After the touch check, let the plate go at the centre it found (x, y, yaw)
            instead of where the policy seated it: the arm's own measurement finishes the job. On
            a real arm the reported error is then still the offset found before centring.
        probe_lift_mm: Lift off the seat for the touch check (the plate stays between the walls).
        probe_travel_mm, probe_travel_deg: Farthest the touch check looks for a wall each way.
        probe_speed_mm_s, probe_speed_deg_s: Speed of the touch check's moves.
        probe_force_n, probe_torque_nm: Rise of the sensed wall force/torque that means contact.
        probe_rate_hz: Command rate of the touch check (finer than the policy's, for resolution).
        grasp_x_mm, grasp_y_mm: Where the plate's centre sits in the fingers, in the TCP frame, as a
            pick measured it: the skill aims the plate, not the TCP, at the nest (0: centred).
        tare: The wrist's reading with the gripper empty (force [N] x, y, z, torque [Nm] x, y, z, base
            frame, payload the gripper alone), as a pick measured it before it gripped. Given, the
            skill weighs the held plate again above the nest before it goes in: a plate may creep in
            the fingers on the way (pads are soft), so where it sits now replaces ``grasp_x/y_mm``; a
            plate no longer held (its weight gone) fails the placement before anything touches.
        weigh_settle_s, weigh_s: That weighing: time held still first, then time averaged [s].
        weight_tolerance: Fraction of the plate's weight the weighing may differ by.
        reseat: Once seated, lift the plate ``reseat_lift_mm`` off the seat (it stays between the
            guide walls), put the TCP on the aim in x, y and yaw where nothing rubs, and set it down
            straight: seated, the plate sticks where it first touched down while the compliant arm
            takes up what the policy still corrects.
        reseat_lift_mm: How far that lift goes.
        reseat_press_mm: How far below the seat the TCP is commanded when it sets the plate down again
            (with the contact stiffness, the press: 0.2 mm at 4000 N/m is 0.8 N).
        reseat_tries, reseat_tolerance_mm, reseat_tolerance_deg: At most this many set-downs, until
            the seated TCP (measured) is this close to the aim.
        reseat_repeat_mm: No further set-down once one moved the TCP farther than this from where it
            was aimed (lifted): the arm does not set down repeatably (a compliance that drifts on
            contact), and aiming against the last miss would chase noise.
    """

    action_scale: tuple[float, float, float, float] = (2.0, 2.0, 2.0, 0.5)
    plate_mass: float = 0.15
    pre_insert_mm: float = 15.0
    approach_speed: float = 0.1
    approach_accel: float = 0.1
    max_steps: int = 400
    seat_push_n: float = 3.0
    seat_depth_mm: float = 1.5
    settle_steps: int = 8
    max_seated_steps: int = 40
    backoff_fraction: float = 0.6
    comply_mm_per_n: float = 0.02
    comply_deg_per_nm: float = 0.15
    comply_deadband_n: float = 1.5
    comply_deadband_nm: float = 0.1
    box_mm: float = 8.0
    retreat_mm: float = 30.0
    contact_stiffness: tuple[float, float] | None = (4000.0, 300.0)
    success_mm: float = 1.0
    success_deg: float = 1.0
    centre_gain: float = 0.5
    touch_check: bool = False
    touch_centre: bool = False
    probe_lift_mm: float = 0.5
    probe_travel_mm: float = 1.0
    probe_travel_deg: float = 0.6
    probe_speed_mm_s: float = 3.0
    probe_speed_deg_s: float = 1.5
    probe_force_n: float = 1.5
    probe_torque_nm: float = 0.06
    probe_rate_hz: float = 250.0
    grasp_x_mm: float = 0.0
    grasp_y_mm: float = 0.0
    tare: tuple[float, float, float, float, float, float] | None = None
    weigh_settle_s: float = 0.6
    weigh_s: float = 0.3
    weight_tolerance: float = 0.35
    reseat: bool = False
    reseat_lift_mm: float = 0.3
    reseat_press_mm: float = 0.2
    reseat_tries: int = 3
    reseat_tolerance_mm: float = 0.003
    reseat_tolerance_deg: float = 0.003
    reseat_repeat_mm: float = 0.03


def yaw_of(pose: Pose) -> float:
    """Rotation about the frame's z axis [deg] (small tilts ignored)."""
    m = pose.rotation_matrix
    return math.degrees(math.atan2(m[1, 0], m[0, 0]))


def nest_offset(base_T_nest: Pose, c: np.ndarray) -> Pose:
    """The TCP pose ``c = (x, y, z [mm], yaw [deg])`` in the nest frame, in the base frame."""
    half = math.radians(c[3]) / 2
    return base_T_nest @ Pose(c[:3] / 1000.0, (math.cos(half), 0.0, 0.0, math.sin(half)))


class PlacementObserver:
    """Builds the policy's observation from one ``ArmState``: nothing a real arm cannot measure."""

    def __init__(self, base_T_nest: Pose):
        self.base_T_nest = base_T_nest
        self.nest_T_base = base_T_nest.inverse()
        self.rot_t = base_T_nest.rotation_matrix.T  # base -> nest for vectors

    def relative(self, base_T_tcp: Pose) -> np.ndarray:
        rel = self.nest_T_base @ base_T_tcp
        return np.array([*(rel.xyz * 1000.0), yaw_of(rel)])

    def __call__(self, state, command: np.ndarray, phase: float = 1.0) -> np.ndarray:
        meas = self.relative(state.base_T_tcp)
        vel = self.rot_t @ np.asarray(state.tcp_velocity[:3]) * 1000.0
        if state.wrench is not None:
            force = self.rot_t @ state.wrench.force
            tz = float((self.rot_t @ state.wrench.torque)[2])
        else:
            force, tz = np.zeros(3), 0.0
        # A gripper the arm does not measure (tool I/O) holds the plate at the plate's width.
        width = HELD_WIDTH_MM if state.gripper_width is None else state.gripper_width * 1000.0
        dcmd = command - meas
        return np.array([*meas, *dcmd, *vel, *force, tz, width, phase])


def track_force(ctx: Context, state) -> float:
    """The sensed contact force [N] of ``state``; keeps ``ctx.peak_force``."""
    force = state.wrench.force_norm if state.wrench is not None else 0.0
    ctx.peak_force = max(ctx.peak_force, force)
    return force


def weigh(arm, pose: Pose, settle_s: float, weigh_s: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Hold ``pose``, let the arm settle ``settle_s``, then the wrist's mean force [N] and torque [Nm]
    over ``weigh_s`` (base frame); None on an arm that senses no wrench."""
    if not arm.capabilities.senses_wrench:
        return None
    dt = 1.0 / arm.capabilities.rate_hz
    for _ in range(max(1, round(settle_s / dt))):
        arm.servo(pose, duration=dt)
    forces, torques = [], []
    for _ in range(max(1, round(weigh_s / dt))):
        arm.servo(pose, duration=dt)
        wrench = arm.state().wrench
        forces.append(wrench.force)
        torques.append(wrench.torque)
    return np.mean(forces, axis=0), np.mean(torques, axis=0)


def held_load(base_T_tcp: Pose, tare: tuple[np.ndarray, np.ndarray], loaded: tuple[np.ndarray, np.ndarray]
              ) -> tuple[float, float, float]:
    """What the fingers hold, from the wrist's change between ``tare`` (empty) and ``loaded`` (both
    (force, torque) in the base frame with the same payload set): its weight [N] and where its centre
    of mass sits in the TCP frame, x and y [mm] (r x (0, 0, -w) = (-w r_y, w r_x, 0))."""
    d_force, d_torque = loaded[0] - tare[0], loaded[1] - tare[1]
    weight = float(-d_force[2])
    if abs(weight) < 1e-9:
        return weight, float("nan"), float("nan")
    offset_base = np.array([d_torque[1], -d_torque[0], 0.0]) / weight
    offset_tcp = base_T_tcp.rotation_matrix.T @ offset_base * 1000.0
    return weight, float(offset_tcp[0]), float(offset_tcp[1])


def approach(ctx: Context, observer: PlacementObserver, goal: Pose, speed: float, accel: float,
             rate_hz: float) -> None:
    """Up (if below the goal), across above the nest, then down to ``goal``: minimum-jerk lines at
    most ``speed`` [m/s] and ``accel`` [m/s^2], streamed at ``rate_hz``; then a short settle."""
    arm = ctx.arm
    arm.stop()  # a fresh servo stream from where the arm is
    ctx.extras.pop("last_goal", None)
    start = arm.state().base_T_tcp
    x, y, z, yaw = observer.relative(start)
    goal_z = observer.relative(goal)[2]
    height = min(z, goal_z)  # the nest z axis points down: smaller is higher
    waypoints = [nest_offset(observer.base_T_nest, np.array([x, y, height, yaw])),
                 nest_offset(observer.base_T_nest, np.array([0.0, 0.0, height, 0.0])), goal]
    for waypoint in waypoints:
        line(ctx, waypoint, speed, accel, rate_hz)
    for _ in range(10):  # settle
        arm.servo(goal, duration=1.0 / rate_hz)


def line(ctx: Context, goal: Pose, speed: float, accel: float, rate_hz: float) -> None:
    """A minimum-jerk straight line from the last goal (or where the arm is) to ``goal``."""
    arm = ctx.arm
    start = ctx.extras.get("last_goal") or arm.state().base_T_tcp
    ctx.extras["last_goal"] = goal
    dist = max(start.distance_mm(goal) / 1000.0, math.radians(start.angle_deg(goal)) * 0.1)
    if dist < 1e-4:
        return
    duration = max(math.sqrt(5.77 * dist / accel), 1.875 * dist / speed, 0.1)
    steps = math.ceil(duration * rate_hz)
    for i in range(1, steps + 1):
        s = i / steps
        arm.servo(start.interpolate(goal, s * s * s * (10 - 15 * s + 6 * s * s)), duration=1.0 / rate_hz)
        if i % 5 == 0:
            track_force(ctx, arm.state())


class PlatePlacement(Skill):
    """Place the held plate into a fixture's nest: ``skill.run(arm, target="shelf_1")``."""

    name = "plate_placement"
    version = "0.1.0"
    spec = SkillSpec(
        observation=OBSERVATION, action=ACTION, action_scale=PlacementConfig.action_scale, rate_hz=50.0,
        fixture_kinds=("slot",), start="holding",
        initial_features=("x_mm", "y_mm", "z_mm", "yaw_deg"), similarity_radius=2.0,  # mm and deg
        finetune_settings={"touch_check": True},  # the arm-measured outcome reads the touch check
    )
    weights_dir = Path(__file__).parent / "weights"

    def __init__(self, policy, residual=None, manifest=None, config: PlacementConfig | None = None):
        super().__init__(policy, residual, manifest)
        self.config = config or PlacementConfig()

    # --- the phases ---------------------------------------------------------------------
    def execute(self, ctx: Context, act: Actor) -> SkillResult:
        arm, cfg = ctx.arm, self.config
        nest = ctx.base_T_target
        observer = self._aim(ctx, nest, cfg.grasp_x_mm, cfg.grasp_y_mm)
        gripper_mass, gripper_com = arm.config.gripper.mass, np.asarray(arm.config.gripper.center_of_mass)
        tcp_xyz = np.asarray(getattr(arm.unwrapped, "flange_T_tcp", arm.config.flange_T_tcp).xyz)
        mass = gripper_mass + cfg.plate_mass
        held = (mass, (gripper_mass * gripper_com + cfg.plate_mass * tcp_xyz) / mass)
        arm.set_payload(*held)
        command = np.array([0.0, 0.0, -cfg.pre_insert_mm, 0.0])
        self._approach(ctx, nest_offset(ctx.base_T_target, command))
        if cfg.tare is not None:
            lost = self._weigh_grasp(ctx, (gripper_mass, gripper_com), held)
            if lost:
                return self._result(ctx, None, lost)
            observer = self._aim(ctx, nest, ctx.measurements["grasp_x_mm"], ctx.measurements["grasp_y_mm"])
        released = None
        contact = Compliance.uniform(*cfg.contact_stiffness) if cfg.contact_stiffness else None
        with compliant(arm, contact):  # the contact phases: align, insert, (reseat), (touch check), release
            seated_rel, message = self._insert(ctx, act, observer, command)
            if seated_rel is not None and cfg.touch_check:
                ctx.measurements.update(self.touch_check_plate(ctx, observer))
            if seated_rel is not None and cfg.reseat:
                centre = np.array([ctx.measurements.get(f"touch_centre_{n}", np.nan)
                                   for n in ("x_mm", "y_mm", "yaw_deg")])
                seated_rel = self._reseat(ctx, observer, centre if cfg.touch_centre else None)
            if seated_rel is not None:
                message = self._release(ctx, gripper_mass, gripper_com)
                released = not message
        if released is not False:  # a plate the gripper did not let go of stays seated: never drag it out
            arm.move_to(nest_offset(ctx.base_T_target, np.array([0.0, 0.0, -cfg.retreat_mm, 0.0])), speed=0.05)
            track_force(ctx, arm.state())
        if released:
            message = self._left_behind(ctx)
        return self._result(ctx, seated_rel, message)

    @staticmethod
    def _aim(ctx: Context, nest: Pose, grasp_x_mm: float, grasp_y_mm: float) -> PlacementObserver:
        """Aim the plate, not the TCP: the target becomes the TCP pose that puts a plate held at
        (``grasp_x_mm``, ``grasp_y_mm``) in the TCP frame on the nest; the observer follows it."""
        ctx.base_T_target = nest @ Pose([-grasp_x_mm / 1000.0, -grasp_y_mm / 1000.0, 0.0])
        ctx.extras["observer"] = PlacementObserver(ctx.base_T_target)
        ctx.measurements["grasp_x_mm"], ctx.measurements["grasp_y_mm"] = float(grasp_x_mm), float(grasp_y_mm)
        return ctx.extras["observer"]

    def _weigh_grasp(self, ctx: Context, empty: tuple[float, np.ndarray], held: tuple[float, np.ndarray]) -> str:
        """Weigh the held plate above the nest against the pick's ``tare``: where its centre sits in the
        fingers now (``grasp_x_mm``/``grasp_y_mm``; the pick's are kept as ``pick_grasp_*``). Returns
        why the placement cannot go on ("" when the plate is held), nothing touched."""
        arm, cfg = ctx.arm, self.config
        arm.set_payload(*empty)  # as for the tare: the wrist then feels the plate itself
        try:
            loaded = weigh(arm, arm.state().base_T_tcp, cfg.weigh_settle_s, cfg.weigh_s)
        finally:
            arm.set_payload(*held)
        if loaded is None:
            log.warning("arm '%s' senses no wrench: the plate is placed with the pick's grasp offset",
                        arm.config.name)
            return ""
        tare = (np.asarray(cfg.tare[:3], dtype=float), np.asarray(cfg.tare[3:], dtype=float))
        weight, x, y = held_load(arm.state().base_T_tcp, tare, loaded)
        expected = cfg.plate_mass * 9.81
        ctx.measurements.update({"pick_grasp_x_mm": cfg.grasp_x_mm, "pick_grasp_y_mm": cfg.grasp_y_mm,
                                 "weight_n": weight})
        if abs(weight - expected) > cfg.weight_tolerance * expected:
            return (f"the wrist feels {weight:.2f} N above '{ctx.target}', the plate weighs {expected:.2f} N: "
                    "the plate is no longer held as it was picked")
        ctx.measurements["grasp_x_mm"], ctx.measurements["grasp_y_mm"] = x, y
        return ""

    def _reseat(self, ctx: Context, observer: PlacementObserver, centre: np.ndarray | None = None) -> np.ndarray:
        """Lift the seated plate ``reseat_lift_mm`` (between the guide walls, off the seat), move the
        TCP onto the aim in x, y and yaw, measured, where nothing rubs, and set it down straight.
        Setting down shifts the compliant arm a little, the same way each time: while the seated TCP
        (measured) is off the aim by more than ``reseat_tolerance_mm``/``_deg``, lift again and aim
        that much the other way (at most ``reseat_tries`` times; not after a set-down that missed by
        more than ``reseat_repeat_mm``, which is no repeatable shift). Returns the seated TCP (nest
        frame). ``centre``: the aim in x, y, yaw (nest frame) instead of the nest's calibrated
        centre, e.g. where the touch check found the walls centre the plate."""
        arm, cfg = ctx.arm, self.config
        dt = max(1.0 / cfg.probe_rate_hz, 1.0 / arm.capabilities.rate_hz)
        command = np.asarray(ctx.extras["command"], dtype=float).copy()
        seated = first = observer.relative(arm.state().base_T_tcp)
        target = np.zeros(3) if centre is None or not np.all(np.isfinite(centre)) else np.asarray(centre, float)
        goal = target.copy()  # where the TCP goes lifted (x, y, yaw), so that it sets down on the aim
        tries = 0
        while tries < cfg.reseat_tries:
            tries += 1
            lifted = seated.copy()
            lifted[2] -= cfg.reseat_lift_mm  # nest z points down: up is minus
            self._glide(ctx, command, lifted, dt)
            aim = lifted.copy()
            aim[[0, 1, 3]] = goal
            self._glide(ctx, lifted, aim, dt)
            for _ in range(3):  # close the loop on the measured TCP: the arm may trail its command
                error = observer.relative(arm.state().base_T_tcp)[[0, 1, 3]] - goal
                if np.hypot(error[0], error[1]) < 0.001 and abs(error[2]) < 0.001:
                    break
                corrected = aim.copy()
                corrected[[0, 1, 3]] -= error
                self._glide(ctx, aim, corrected, dt)
                aim = corrected
            command = aim.copy()
            # Down onto the seat, pressing lightly: a hard push through the compliant arm shifts it sideways.
            command[2] = first[2] + cfg.reseat_press_mm
            self._glide(ctx, aim, command, dt)
            seated = observer.relative(arm.state().base_T_tcp)
            off = seated[[0, 1, 3]] - target
            if np.hypot(off[0], off[1]) <= cfg.reseat_tolerance_mm and abs(off[2]) <= cfg.reseat_tolerance_deg:
                break
            if np.hypot(*(seated[:2] - goal[:2])) > cfg.reseat_repeat_mm:
                # The set-down moved the TCP by more than a repeatable shift (an arm whose compliance
                # drifts on contact): aiming the other way by it would chase noise.
                break
            goal = goal - off
        ctx.extras["command"] = command
        ctx.measurements["reseat_shift_mm"] = float(np.hypot(*(seated[:2] - first[:2])))
        ctx.measurements["reseat_offset_mm"] = float(np.hypot(*(seated[:2] - target[:2])))
        ctx.measurements["reseat_first_offset_mm"] = float(np.hypot(*(first[:2] - target[:2])))
        ctx.measurements["reseat_tries"] = float(tries)
        track_force(ctx, arm.state())
        return seated

    def _approach(self, ctx: Context, goal: Pose) -> None:
        approach(ctx, ctx.extras["observer"], goal, self.config.approach_speed, self.config.approach_accel,
                 self.rate_hz)

    def _insert(self, ctx: Context, act: Actor, observer: PlacementObserver,
                command: np.ndarray) -> tuple[np.ndarray | None, str]:
        """Align and insert under the policy; returns the seated TCP (nest frame) or None and why."""
        arm, cfg = ctx.arm, self.config
        scale = np.asarray(cfg.action_scale)
        dt = 1.0 / self.rate_hz
        backoff = cfg.backoff_fraction * arm.config.limits.max_force
        quiet = seated = 0
        for _ in range(cfg.max_steps):
            state = arm.state()
            force = track_force(ctx, state)
            obs = observer(state, command, INSERT_PHASE)
            push = -obs[FZ]  # the nest pushes back up (-z in the nest frame) when pressed into it
            ctx.extras["command"] = command
            action = np.clip(act(obs, ctx), -1.0, 1.0)
            delta = action * scale
            if seated and (np.hypot(delta[0], delta[1]) < 0.05 and abs(delta[3]) < 0.02):
                quiet += 1
            else:
                quiet = 0
            at_depth = obs[Z] > -cfg.seat_depth_mm and push > cfg.seat_push_n
            seated = seated + 1 if at_depth else 0
            ctx.trajectory.append({"t": state.time - ctx.start_time, "obs": obs, "action": action,
                                   "force": force, "command": command.copy()})
            if quiet >= cfg.settle_steps or seated >= cfg.max_seated_steps:
                return obs[POSE].copy(), ""
            command = command + delta
            command[:2] = np.clip(command[:2], -cfg.box_mm, cfg.box_mm)
            command[2] = np.clip(command[2], -cfg.pre_insert_mm - 10.0, cfg.seat_depth_mm + 2.0)
            command[3] = np.clip(command[3], -5.0, 5.0)
            if not at_depth:
                command += self._comply(obs)
            if force > backoff:  # reflex: never keep pushing into a jam (up, at most one step's worth)
                command[2] = max(obs[Z] - 1.0, command[2] - scale[2])
                log.info("contact force %.1f N: backing off", force)
            arm.servo(nest_offset(ctx.base_T_target, command), duration=dt)
        return None, f"not seated after {cfg.max_steps} steps ({cfg.max_steps * dt:.1f} s)"

    def _comply(self, obs: np.ndarray) -> np.ndarray:
        """Move with the guide walls: along the lateral contact force, turning with its torque."""
        cfg = self.config
        lateral = obs[[FX, FY]]
        magnitude = float(np.hypot(*lateral))
        out = np.zeros(4)
        if magnitude > cfg.comply_deadband_n:
            out[:2] = cfg.comply_mm_per_n * lateral * (1.0 - cfg.comply_deadband_n / magnitude)
        tz = obs[TZ]
        if abs(tz) > cfg.comply_deadband_nm:
            out[3] = cfg.comply_deg_per_nm * (tz - math.copysign(cfg.comply_deadband_nm, tz))
        return out

    # --- the contract: episodes, outcome, labels -----------------------------------------
    def sim_start(self, arm, target: str, rng: np.random.Generator, seed: int, ready: bool = True) -> None:
        """A random start a few centimetres above and beside the nest, the plate in the gripper
        (``ready=False``: the gripper empty, which the start condition refuses)."""
        arm.sim.reset(tcp_pose=arm.config.fixture(target) @ random_start(rng), plate=ready, seed=seed)

    def operator_prompt(self, target: str) -> str:
        return f"put a plate into the gripper to place into '{target}'"

    def failed_result(self, ctx: Context, message: str) -> SkillResult:
        return self._result(ctx, None, message)

    def outcome(self, result: SkillResult) -> Outcome:
        """The arm-measured reward: seated (the TCP at the calibrated seat depth with the nest pushing
        back), minus how hard the plate rubbed the guide walls after its first contact (lateral force,
        yaw torque), the peak force, and, where the touch check ran, how far the seated command was
        from the middle of the clearance (mm + deg). Bounded: every seated trial (reward in
        (0.05, 1]) beats every one that is not ((-1.95, -1])."""
        return placement_outcome(result, self.config.seat_depth_mm)

    def label_refiner(self, episodes: list[Episode]) -> LabelRefiner | None:
        """Centre labels: the lateral labels (x, y, yaw) steer the command toward the nest centre
        the trials' touch checks measured (per fixture, median); depth keeps the role model's label.
        A role model only ever tried one constant aim, so its own lateral labels keep pushing after
        the plate has arrived and press it into a wall; these stop at the centre."""
        gain = self.config.centre_gain
        centres = measured_centres(episodes) if gain > 0 else {}
        if not centres:
            return None
        scale = np.asarray(self.config.action_scale, dtype=float)

        def refine(peer: Episode, labels: np.ndarray) -> np.ndarray:
            centre = centres.get((peer.info or {}).get("target", ""))
            return labels if centre is None else centre_labels(peer, labels, centre, gain, scale)

        return refine

    # --- measuring ----------------------------------------------------------------------
    def touch_check_plate(self, ctx: Context, observer: PlacementObserver) -> dict[str, float]:
        """Where does the seated plate sit in the nest's clearance? Found with the arm alone.

        Lift the held plate ``probe_lift_mm`` off the seat (it stays between the guide walls), then
        move it slowly along the nest's x, then y, each way until the wrist senses a wall
        (``probe_force_n`` above the force at rest), and turn it about the tool axis each way until
        the torque rises. The middle of the free travel is where the walls centre the plate; the
        plate's offset is where it rested against that middle. Contact stiffness and the controller's
        lag bias both ends alike and cancel. The plate goes back to the seated command and down.

        Returns ``touch_centre_{x,y}_mm``/``_yaw_deg`` (the TCP pose, in the calibrated nest frame,
        that centres the plate between the walls: a check of the fixture calibration and this
        grasp), ``touch_offset_{x,y}_mm``, ``touch_offset_mm`` (their length) and
        ``touch_offset_yaw_deg``; the same for the seated command (``touch_command_offset_*``: a
        command pressing the plate into a wall reads beyond the clearance, while the plate itself
        cannot); and ``touch_free_*``, the free travel per axis. NaN where no wall was found within
        the probe's reach (no plate between the walls).
        """
        arm, cfg = ctx.arm, self.config
        if not arm.capabilities.senses_wrench:
            log.warning("touch check skipped: arm '%s' senses no wrench", arm.config.name)
            return {}
        dt = max(1.0 / cfg.probe_rate_hz, 1.0 / arm.capabilities.rate_hz)
        seated_cmd = np.asarray(ctx.extras["command"], dtype=float).copy()
        home = observer.relative(arm.state().base_T_tcp)
        home[2] -= cfg.probe_lift_mm  # nest z points down: up is minus
        self._glide(ctx, seated_cmd, home, dt)
        out: dict[str, float] = {}
        for axis, name, travel, speed, threshold in (
                (0, "x_mm", cfg.probe_travel_mm, cfg.probe_speed_mm_s, cfg.probe_force_n),
                (1, "y_mm", cfg.probe_travel_mm, cfg.probe_speed_mm_s, cfg.probe_force_n),
                (3, "yaw_deg", cfg.probe_travel_deg, cfg.probe_speed_deg_s, cfg.probe_torque_nm)):
            rest = self._sense(ctx, observer, home, dt, axis)
            ends = [self._feel_wall(ctx, observer, home, axis, sign, travel, speed, threshold, rest, dt)
                    for sign in (1.0, -1.0)]
            found = all(e is not None for e in ends)
            middle = (ends[0] + ends[1]) / 2 if found else float("nan")
            out[f"touch_centre_{name}"] = float(middle)
            out[f"touch_offset_{name}"] = float(home[axis] - middle)
            out[f"touch_command_offset_{name}"] = float(seated_cmd[axis] - middle)
            out[f"touch_free_{name}"] = float(ends[0] - ends[1]) if found else float("nan")
        for key in ("touch_offset", "touch_command_offset"):
            out[f"{key}_mm"] = float(np.hypot(out[f"{key}_x_mm"], out[f"{key}_y_mm"]))
        centre = np.array([out.get(f"touch_centre_{n}", np.nan) for n in ("x_mm", "y_mm", "yaw_deg")])
        if cfg.touch_centre and np.all(np.isfinite(centre)):
            lifted, seated = home.copy(), seated_cmd.copy()
            lifted[[0, 1, 3]] = seated[[0, 1, 3]] = centre
            self._glide(ctx, home, lifted, dt)
            home = lifted
            seated_cmd = seated
        self._glide(ctx, home, seated_cmd, dt)
        return out

    @staticmethod
    def _glide(ctx: Context, start: np.ndarray, goal: np.ndarray, dt: float, speed_mm_s: float = 5.0,
               speed_deg_s: float = 3.0) -> None:
        """Slow straight move between two nest-frame commands, then a short settle."""
        span = max(np.linalg.norm(goal[:3] - start[:3]) / speed_mm_s, abs(goal[3] - start[3]) / speed_deg_s)
        steps = max(math.ceil(span / dt), 1)
        for i in range(1, steps + 1):
            ctx.arm.servo(nest_offset(ctx.base_T_target, start + (goal - start) * i / steps), duration=dt)
        for _ in range(int(0.05 / dt)):
            ctx.arm.servo(nest_offset(ctx.base_T_target, goal), duration=dt)

    @staticmethod
    def _sense(ctx: Context, observer: PlacementObserver, command: np.ndarray, dt: float, axis: int,
               samples: int = 10) -> float:
        """Mean of the wall force (x, y) or torque (yaw) along ``axis`` while holding ``command``."""
        column = WALL_COLUMN[axis]
        values = []
        for _ in range(samples):
            ctx.arm.servo(nest_offset(ctx.base_T_target, command), duration=dt)
            values.append(observer(ctx.arm.state(), command)[column])
        return float(np.mean(values))

    def _feel_wall(self, ctx: Context, observer: PlacementObserver, home: np.ndarray, axis: int, sign: float,
                   travel: float, speed: float, threshold: float, rest: float, dt: float) -> float | None:
        """Move from ``home`` along ``axis`` until the wall pushes back; the measured position there."""
        column = WALL_COLUMN[axis]
        # Past the travel, allow the command to go far enough to build the threshold force.
        steps = math.ceil(2.0 * travel / (speed * dt))
        command, found, recent = home.copy(), None, []
        for _ in range(steps):
            command[axis] += sign * speed * dt
            ctx.arm.servo(nest_offset(ctx.base_T_target, command), duration=dt)
            obs = observer(ctx.arm.state(), command)
            recent = [*recent, -sign * (obs[column] - rest)][-3:]
            if len(recent) == 3 and np.mean(recent) > threshold:
                found = float(obs[axis])
                break
            if sign * (obs[axis] - home[axis]) > travel:
                break
        self._glide(ctx, command, home, dt)
        return found

    def _release(self, ctx: Context, gripper_mass: float, gripper_com: np.ndarray) -> str:
        """Open the gripper on the seated plate. Returns why the plate may still be held ("" when the
        gripper reports it let go: its width went to open and it detects no object)."""
        arm = ctx.arm
        if arm.gripper is None:
            return "no gripper configured: the plate was seated but not released"
        opened = arm.gripper.open()
        arm.set_payload(gripper_mass, gripper_com)
        ctx.measurements["release_width_mm"] = opened.width * 1000.0
        if opened.object_detected or opened.width < 0.9 * arm.gripper.max_width:
            return (f"the gripper did not let go of the plate: width {opened.width * 1000:.1f} mm of "
                    f"{arm.gripper.max_width * 1000:.1f} mm, object detected: {opened.object_detected}")
        return ""

    def _left_behind(self, ctx: Context, samples: int = 10) -> str:
        """After the retreat, the wrist (where sensed) must not feel the plate's weight: "" when it does not."""
        arm = ctx.arm
        if not arm.capabilities.senses_wrench:
            return ""
        fz = float(np.mean([(arm.state().wrench or Wrench.zero()).force[2] for _ in range(samples)]))
        carried = -fz  # the payload is the empty gripper now: a plate still held pulls down (-z in the base)
        ctx.measurements["retreat_weight_n"] = carried
        weight = self.config.plate_mass * 9.81
        if carried > 0.5 * weight:
            return (f"the plate came up with the gripper: the wrist feels {carried:.2f} N after the retreat "
                    f"(the plate weighs {weight:.2f} N)")
        return ""

    def _result(self, ctx: Context, seated_rel: np.ndarray | None, message: str) -> SkillResult:
        arm, cfg = ctx.arm, self.config
        duration = float(arm.state().time) - ctx.start_time
        sim = arm.sim
        if sim is not None:
            trans, rot = sim.placement_error(ctx.target)
            measured_by = "simulator truth"
        elif seated_rel is not None and np.isfinite(ctx.measurements.get("touch_offset_mm", np.nan)):
            trans = ctx.measurements["touch_offset_mm"]
            rot = abs(ctx.measurements["touch_offset_yaw_deg"])
            measured_by = "arm measurement (touch check)"
        elif seated_rel is not None:
            trans, rot = float(np.linalg.norm(seated_rel[:2])), abs(float(seated_rel[3]))
            measured_by = "arm measurement"
        else:
            trans, rot, measured_by = float("nan"), float("nan"), "arm measurement"
        success = (not message and seated_rel is not None and trans <= cfg.success_mm and rot <= cfg.success_deg)
        if not success and not message:
            message = f"placement error {trans:.2f} mm / {rot:.2f} deg is above {cfg.success_mm} mm / " \
                      f"{cfg.success_deg} deg"
        return SkillResult(success=bool(success), translation_error_mm=float(trans), rotation_error_deg=float(rot),
                           peak_force_n=float(ctx.peak_force), duration_s=duration, trajectory=ctx.trajectory,
                           measured_by=measured_by, target=ctx.target, message=message,
                           measurements=dict(ctx.measurements))


# --- outcome and labels (what fine-tuning reads of this skill) ----------------------------------
def placement_outcome(result: SkillResult, seat_depth_mm: float = 1.5, force_scale: float = 2.0) -> Outcome:
    """``PlatePlacement.outcome`` from the result's observations and measurements alone.

    Seated: the last measured TCP within ``seat_depth_mm`` of the calibrated seat, and the nest pushing
    back over the last ``SEAT_WINDOW`` steps (their median push above 1 N). One sample of the wrist
    decided it before; on the emulated UR, whose force mode rang by 20-35 N from one step to the next
    while pressing at about 20 N, that called 4 of 11 plates released in the nest not seated. The
    median leaves all 6000 simulated fine-tuning episodes of the 5-seed benchmark as they were.

    ``force_scale``: lateral wall force [N] that costs as much as 0.1 of reward.
    """
    obs = result.observations
    if len(obs) == 0:
        return Outcome(-1.0, False, {"seated": 0.0})
    final = obs[-1]
    message = result.message or ""
    stopped = "safety limit" in message or "not seated" in message
    push = -float(np.median(obs[-SEAT_WINDOW:, FZ]))
    seated = bool(final[Z] > -seat_depth_mm and push > 1.0 and not stopped)
    touched = np.flatnonzero(np.linalg.norm(obs[:, [FX, FY, FZ]], axis=1) > CONTACT_N)
    after = obs[touched[0]:] if len(touched) else obs[:0]  # from the first contact on
    lateral = float(np.mean(np.hypot(after[:, FX], after[:, FY]))) if len(after) else 0.0
    twist = float(np.mean(np.abs(after[:, TZ]))) if len(after) else 0.0
    peak = float(result.peak_force_n) if np.isfinite(result.peak_force_n) else 0.0
    cost = 0.1 * lateral / force_scale + 0.5 * twist + 0.002 * peak
    details = {"seated": float(seated), "lateral_force_n": lateral, "yaw_torque_nm": twist, "peak_force_n": peak}
    touch = result.measurements or {}
    if seated and "touch_command_offset_mm" in touch:
        off_mm, off_deg = touch["touch_command_offset_mm"], abs(touch["touch_command_offset_yaw_deg"])
        details.update(centre_offset_mm=off_mm, centre_offset_deg=off_deg)
        if np.isfinite(off_mm) and np.isfinite(off_deg):
            cost += off_mm + off_deg  # like the truth reward: a millimetre costs as much as a degree
        else:  # the touch check found no walls around the plate: not in the nest
            seated = False
            details["seated"] = 0.0
    reward = (1.0 if seated else -1.0) - 0.95 * cost / (1.0 + cost)
    return Outcome(float(reward), seated, details)


def measured_centres(episodes: list[Episode]) -> dict[str, np.ndarray]:
    """Per fixture: the median TCP pose (x, y, z, yaw; z NaN) that centred the plate, from every
    trial whose touch check found the walls."""
    found: dict[str, list[np.ndarray]] = {}
    for e in episodes:
        m = (e.info or {}).get("measurements") or {}
        c = np.array([m.get("touch_centre_x_mm", np.nan), m.get("touch_centre_y_mm", np.nan), np.nan,
                      m.get("touch_centre_yaw_deg", np.nan)], dtype=float)
        if np.all(np.isfinite(c[[0, 1, 3]])):
            found.setdefault(e.info.get("target", ""), []).append(c)
    return {t: np.median(np.array(cs), axis=0) for t, cs in found.items()}


def centre_labels(peer: Episode, labels: np.ndarray, centre: np.ndarray, gain: float,
                  action_scale: np.ndarray) -> np.ndarray:
    """``labels`` with their lateral columns replaced by steering the command toward ``centre``:
    ``gain * (centre - command) / action_scale - base_action`` (the learner bounds them)."""
    out = labels.copy()
    command = peer.obs[:, POSE] + peer.obs[:, COMMAND_DELTA]
    for d in LATERAL:
        out[:, d] = gain * (centre[d] - command[:, d]) / action_scale[d] - peer.base[:, d]
    return out
