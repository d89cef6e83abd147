"""Tube insertion: put a held tube into a rack hole with a fraction of a millimetre of clearance.

Phases: approach (minimum-jerk lines to a pre-insert pose a few millimetres above the calibrated
hole), align and insert (the policy at ``rate_hz``: bounded corrections of the tip's position and
the tube's tilt, with force feedback the skill adds itself: the command complies along the sensed
lateral force and turns with the sensed moment about the tip, a tube that lands on the rim searches
for the hole in a spiral, and a wedge (the push rises and the tube goes no deeper) lifts and
re-aligns instead of pushing through), release, retreat.

Frames: a target ``rack_1/B3`` is the hole's frame (rack frame moved to the hole's centre in the top
surface, z down into the hole); the TCP is the held tube's tip. The policy sees only what a real arm
measures (``InsertionObserver``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.arm import Compliance, compliant
from rmskill.calibration.rack_geometry import RackGeometry, rack_of
from rmskill.evaluate import random_start
from rmskill.geometry import Pose
from rmskill.skill import Actor, Context, Skill, SkillResult
from rmskill.spec import Features, Outcome, SkillSpec

log = logging.getLogger(__name__)

OBSERVATION = Features.of([
    ("x_mm", "mm"), ("y_mm", "mm"), ("z_mm", "mm"),  # measured tip, hole frame (z down, 0 at the top surface)
    ("rx_deg", "deg"), ("ry_deg", "deg"),  # the tool's tilt against the hole axis
    ("cmd_dx_mm", "mm"), ("cmd_dy_mm", "mm"), ("cmd_dz_mm", "mm"),  # command - measured
    ("cmd_drx_deg", "deg"), ("cmd_dry_deg", "deg"),
    ("vx_mm_s", "mm/s"), ("vy_mm_s", "mm/s"), ("vz_mm_s", "mm/s"),  # tip velocity, hole frame
    ("fx_n", "N"), ("fy_n", "N"), ("fz_n", "N"),  # contact force on the tool, hole frame
    ("tx_nm", "Nm"), ("ty_nm", "Nm"),  # contact moment about the tip, hole frame
    ("depth_mm", "mm"),  # the hole's depth (calibrated geometry)
    ("searching", "1"),  # 1 while the skill searches for the hole on the rim
])
ACTION = Features.of([("dx_mm", "mm"), ("dy_mm", "mm"), ("dz_mm", "mm"), ("drx_deg", "deg"), ("dry_deg", "deg")])
OBS_NAMES, ACTION_NAMES = OBSERVATION.names, ACTION.names
POSE = OBSERVATION.indices(["x_mm", "y_mm", "z_mm", "rx_deg", "ry_deg"])
COMMAND_DELTA = OBSERVATION.indices(["cmd_dx_mm", "cmd_dy_mm", "cmd_dz_mm", "cmd_drx_deg", "cmd_dry_deg"])
X, Y, Z, FX, FY, FZ, TX, TY, DEPTH, SEARCHING = (
    OBSERVATION.index(n) for n in ("x_mm", "y_mm", "z_mm", "fx_n", "fy_n", "fz_n", "tx_nm", "ty_nm", "depth_mm",
                                   "searching"))
CONTACT_N = 1.5  # sensed force [N] that means the tube touched something


@dataclass(frozen=True)
class InsertionConfig:
    """The skill's settings. Lengths in [mm], angles in [deg] unless the name says otherwise.

    Attributes:
        action_scale: Largest correction per control step: x, y, z [mm], tilt about x, y [deg].
        tube_mass: Tube mass [kg], added to the payload while held.
        tube_length_mm: Tube length (the retreat clears it).
        pre_insert_mm: Height of the tip above the hole's top surface where the policy takes over.
        approach_speed, approach_accel: Top speed [m/s] and acceleration [m/s^2] of the approach.
        max_steps: Control steps allowed for align and insert.
        seat_tolerance_mm: How far above the hole's floor a seated tip may read.
        seat_push_n: Upward push of the floor that, at depth, means seated [N].
        settle_steps: Seated steps before release.
        comply_mm_per_n, comply_deadband_n: Lateral compliance: the command moves along the sensed
            lateral force beyond the deadband.
        comply_deg_per_nm, comply_deadband_nm: Tilt compliance: the command turns with the sensed
            moment about the tip (a wedged tube's two wall contacts make one) beyond the deadband.
        lead_mm: Farthest the command may lead the measured tip downward: through the arm's
            stiffness, a bound on how hard the skill pushes.
        inside_mm: Depth of the tip below the top surface from which the tube is in the hole (the
            tilt compliance acts only then: on the rim, the push at the tube's edge makes a moment too).
        rim_push_n: Push that, with the tip above ``inside_mm`` and going no deeper, means the tube
            sits on the rim.
        rim_steps: Steps on the rim before the spiral search starts.
        search_pitch_mm: Radial growth of the spiral per turn; ``search_speed_mm_s`` its speed;
            ``search_radius_mm`` the farthest it looks.
        wedge_push_n: Push at which, with no progress in depth for ``wedge_steps``, the tube is
            wedged: lift ``wedge_lift_mm`` and let the tilt compliance re-align it.
        backoff_fraction: Fraction of the arm's force limit at which the skill backs off upward.
        box_mm: Largest lateral excursion of the command from the hole centre.
        max_tilt_deg: Largest tilt command.
        retreat_mm: Height of the retreat above the seated tip (clears the tube top).
        success_depth_mm: Largest shortfall from the floor that counts as inserted.
        success_mm: Largest lateral error of the inserted tube that counts as a success.
        contact_stiffness: The compliance asked of the arm from align-and-insert to release:
            translational [N/m], rotational [Nm/rad] (a stiff arm wedges a tube that meets the rim);
            ``None`` leaves the arm as it is (stiff on a UR).
    """

    action_scale: tuple[float, float, float, float, float] = (1.0, 1.0, 1.0, 0.5, 0.5)
    tube_mass: float = 0.02
    tube_length_mm: float = 100.0
    pre_insert_mm: float = 5.0
    approach_speed: float = 0.1
    approach_accel: float = 0.2
    max_steps: int = 600
    seat_tolerance_mm: float = 1.0
    seat_push_n: float = 2.0
    settle_steps: int = 10
    comply_mm_per_n: float = 0.01
    comply_deadband_n: float = 1.0
    comply_deg_per_nm: float = 0.5
    comply_deadband_nm: float = 0.02
    comply_max_mm: float = 0.1
    comply_max_deg: float = 0.05
    lead_mm: float = 2.5
    inside_mm: float = 1.5
    rim_push_n: float = 2.0
    rim_steps: int = 10
    search_pitch_mm: float = 0.6
    search_speed_mm_s: float = 4.0
    search_radius_mm: float = 4.0
    wedge_push_n: float = 12.0
    wedge_steps: int = 15
    wedge_lift_mm: float = 1.5
    backoff_fraction: float = 0.6
    box_mm: float = 6.0
    max_tilt_deg: float = 4.0
    retreat_mm: float = 110.0
    success_depth_mm: float = 1.0
    success_mm: float = 0.5
    contact_stiffness: tuple[float, float] | None = (4000.0, 300.0)


def hole_offset(base_T_hole: Pose, c: np.ndarray) -> Pose:
    """The TCP pose for command ``c = (x, y, z [mm], rx, ry [deg])`` in the hole frame, in the base frame."""
    return base_T_hole @ Pose.from_rotvec(np.asarray(c[:3]) / 1000.0, [math.radians(c[3]), math.radians(c[4]), 0.0])


class InsertionObserver:
    """Builds the policy's observation from one ``ArmState``: nothing a real arm cannot measure."""

    def __init__(self, base_T_hole: Pose, depth_mm: float):
        self.base_T_hole = base_T_hole
        self.hole_T_base = base_T_hole.inverse()
        self.rot_t = base_T_hole.rotation_matrix.T  # base -> hole for vectors
        self.depth_mm = depth_mm

    def relative(self, base_T_tcp: Pose) -> np.ndarray:
        rel = self.hole_T_base @ base_T_tcp
        rotvec = np.degrees(rel.rotvec)
        return np.array([*(rel.xyz * 1000.0), rotvec[0], rotvec[1]])

    def __call__(self, state, command: np.ndarray, searching: float = 0.0) -> np.ndarray:
        meas = self.relative(state.base_T_tcp)
        vel = self.rot_t @ np.asarray(state.tcp_velocity[:3]) * 1000.0
        if state.wrench is not None:
            force, torque = self.rot_t @ state.wrench.force, self.rot_t @ state.wrench.torque
        else:
            force, torque = np.zeros(3), np.zeros(3)
        return np.array([*meas, *(command - meas), *vel, *force, *torque[:2], self.depth_mm, searching])


class TubeInsertion(Skill):
    """Insert the held tube into a rack hole: ``skill.run(arm, target="rack_1/B3")``."""

    name = "tube_insertion"
    version = "0.1.0"
    spec = SkillSpec(
        observation=OBSERVATION, action=ACTION, action_scale=InsertionConfig.action_scale, rate_hz=50.0,
        fixture_kinds=("rack",), start="holding",
        initial_features=("x_mm", "y_mm", "z_mm"), similarity_radius=3.0,  # mm
    )
    weights_dir = Path(__file__).parent / "weights"

    def __init__(self, policy, residual=None, manifest=None, config: InsertionConfig | None = None):
        super().__init__(policy, residual, manifest)
        self.config = config or InsertionConfig()

    # --- targets: the holes of the arm file's racks ------------------------------------------
    def targets(self, config: Any) -> list[str]:
        """Every hole of every rack: ``rack_1/A1``, ``rack_1/A2``, ..."""
        return [f"{name}/{hole}" for name in config.fixtures_of(self.spec.fixture_kinds)
                for hole in RackGeometry.from_fixture(name, config.fixtures[name].geometry).holes()]

    def resolve_target(self, arm: Any, target: str) -> tuple[Pose, str]:
        """The hole's pose: the rack's calibrated (or nominal) pose moved to the hole's centre."""
        fixture, hole, rack = rack_of(arm.config, target)
        base_T_rack, source = super().resolve_target(arm, fixture)
        return base_T_rack @ rack.rack_T_hole(hole), source

    # --- the phases -----------------------------------------------------------------------
    def execute(self, ctx: Context, act: Actor) -> SkillResult:
        arm, cfg = ctx.arm, self.config
        rack = rack_of(arm.config, ctx.target)[2]
        observer = InsertionObserver(ctx.base_T_target, rack.depth * 1000.0)
        ctx.extras["observer"] = observer
        gripper_mass, gripper_com = arm.config.gripper.mass, np.asarray(arm.config.gripper.center_of_mass)
        tcp_xyz = np.asarray(getattr(arm.unwrapped, "flange_T_tcp", arm.config.flange_T_tcp).xyz)
        tube_com = tcp_xyz - np.array([0.0, 0.0, cfg.tube_length_mm / 2000.0])
        mass = gripper_mass + cfg.tube_mass
        arm.set_payload(mass, (gripper_mass * gripper_com + cfg.tube_mass * tube_com) / mass)
        command = np.array([0.0, 0.0, -cfg.pre_insert_mm, 0.0, 0.0])
        self._approach(ctx, command)
        contact = Compliance.uniform(*cfg.contact_stiffness) if cfg.contact_stiffness else None
        with compliant(arm, contact):  # the contact phases: align, insert, release
            seated, message = self._insert(ctx, act, observer, command)
            if seated is not None:
                ctx.measurements.update(seated)
                if arm.gripper is not None:
                    arm.gripper.open()
                    arm.set_payload(gripper_mass, gripper_com)
                    # Released: the gripper must be empty now, or the tube came along.
                    if arm.gripper.state().object_detected:
                        message = "the gripper still holds the tube after opening"
                else:
                    log.warning("arm '%s' has no gripper configured: the tube was inserted but not released",
                                arm.config.name)
        lift = np.array([0.0, 0.0, rack.depth * 1000.0 - cfg.retreat_mm, 0.0, 0.0])
        arm.move_to(hole_offset(ctx.base_T_target, lift), speed=0.05)
        self._track_force(ctx, arm.state())
        return self._result(ctx, seated, message)

    def _approach(self, ctx: Context, command: np.ndarray) -> None:
        """Up (if below the goal), across above the hole, then down to the pre-insert pose."""
        arm = ctx.arm
        arm.stop()
        observer: InsertionObserver = ctx.extras["observer"]
        x, y, z, _, _ = observer.relative(arm.state().base_T_tcp)
        height = min(z, command[2])  # z points down: smaller is higher
        goal = hole_offset(ctx.base_T_target, command)
        for waypoint in (hole_offset(ctx.base_T_target, np.array([x, y, height, 0.0, 0.0])),
                         hole_offset(ctx.base_T_target, np.array([0.0, 0.0, height, 0.0, 0.0])), goal):
            self._line(ctx, waypoint)
        for _ in range(10):  # settle
            arm.servo(goal, duration=1.0 / self.rate_hz)

    def _line(self, ctx: Context, goal: Pose) -> None:
        arm, cfg = ctx.arm, self.config
        start = ctx.extras.get("last_goal") or arm.state().base_T_tcp
        ctx.extras["last_goal"] = goal
        dist = max(start.distance_mm(goal) / 1000.0, math.radians(start.angle_deg(goal)) * 0.1)
        if dist < 1e-4:
            return
        duration = max(math.sqrt(5.77 * dist / cfg.approach_accel), 1.875 * dist / cfg.approach_speed, 0.1)
        steps = math.ceil(duration * self.rate_hz)
        for i in range(1, steps + 1):
            s = i / steps
            arm.servo(start.interpolate(goal, s * s * s * (10 - 15 * s + 6 * s * s)), duration=1.0 / self.rate_hz)
            if i % 5 == 0:
                self._track_force(ctx, arm.state())

    def _insert(self, ctx: Context, act: Actor, observer: InsertionObserver,
                command: np.ndarray) -> tuple[dict[str, float] | None, str]:
        """Align and insert under the policy; returns the seated measurements or None and why."""
        arm, cfg = ctx.arm, self.config
        scale = np.asarray(cfg.action_scale)
        dt = 1.0 / self.rate_hz
        depth = observer.depth_mm
        backoff = cfg.backoff_fraction * arm.config.limits.max_force
        seated = on_rim = stuck = 0
        search: dict[str, Any] | None = None
        best_z = -np.inf
        for _ in range(cfg.max_steps):
            state = arm.state()
            force = self._track_force(ctx, state)
            obs = observer(state, command, 1.0 if search is not None else 0.0)
            push = -obs[FZ]  # the rack pushes back up (-z in the hole frame)
            ctx.extras["command"] = command
            action = np.clip(act(obs, ctx), -1.0, 1.0)
            ctx.trajectory.append({"t": state.time - ctx.start_time, "obs": obs, "action": action,
                                   "force": force, "command": command.copy()})
            at_depth = obs[Z] > depth - cfg.seat_tolerance_mm and push > cfg.seat_push_n
            seated = seated + 1 if at_depth else 0
            if seated >= cfg.settle_steps:
                return self._seated(ctx, obs), ""
            command = command + action * scale
            inside = obs[Z] > cfg.inside_mm
            if search is None and not at_depth:
                command += self._comply(obs, inside)
            # On the rim: pushing above the hole, going no deeper.
            on_rim = on_rim + 1 if (not inside and push > cfg.rim_push_n and obs[Z] <= best_z + 0.05) else 0
            if search is None and on_rim >= cfg.rim_steps:
                search = {"centre": command[:2].copy(), "angle": 0.0, "z": obs[Z]}
                log.info("tube on the rim at (%.2f, %.2f) mm: searching", *obs[:2])
            if search is not None:
                command = self._search_step(search, command, obs, dt)
                if search.get("done"):
                    search = None
                elif search.get("failed"):
                    return None, f"no hole found within {cfg.search_radius_mm} mm of where the tube landed"
            # A wedge: pushing hard below the chamfer, no deeper for a while: lift and re-align.
            if obs[Z] > best_z + 0.05:
                best_z, stuck = obs[Z], 0
            elif push > cfg.wedge_push_n and obs[Z] > 0.5 and not at_depth:
                stuck += 1
            if stuck >= cfg.wedge_steps:
                command[2] = obs[Z] - cfg.wedge_lift_mm
                stuck, best_z = 0, obs[Z] - cfg.wedge_lift_mm
                log.info("tube wedged at %.2f mm (push %.1f N): lifting", obs[Z], push)
            command[:2] = np.clip(command[:2], -cfg.box_mm, cfg.box_mm)
            command[2] = np.clip(command[2], -cfg.pre_insert_mm - 10.0, min(depth + 1.5, obs[Z] + cfg.lead_mm))
            command[3:] = np.clip(command[3:], -cfg.max_tilt_deg, cfg.max_tilt_deg)
            if force > backoff:  # reflex: never keep pushing into a jam
                command[2] = min(command[2], obs[Z] - 0.5)
                log.info("contact force %.1f N: backing off", force)
            arm.servo(hole_offset(ctx.base_T_target, command), duration=dt)
        return None, f"not inserted after {cfg.max_steps} steps ({cfg.max_steps * dt:.1f} s)"

    def _search_step(self, search: dict[str, Any], command: np.ndarray, obs: np.ndarray, dt: float) -> np.ndarray:
        """One step of an Archimedean spiral around where the tube landed, pressing lightly; done
        once the tip drops into the chamfer."""
        cfg = self.config
        if obs[Z] > search["z"] + 0.5:  # fell in
            search["done"] = True
            return command
        a = search["angle"]
        radius = cfg.search_pitch_mm * a / (2 * math.pi)
        a += cfg.search_speed_mm_s * dt / max(radius, 0.3)
        search["angle"] = a
        radius = cfg.search_pitch_mm * a / (2 * math.pi)
        if radius > cfg.search_radius_mm:
            search["failed"] = True
        out = command.copy()
        out[:2] = search["centre"] + radius * np.array([math.cos(a), math.sin(a)])
        out[2] = obs[Z] + 0.4  # press lightly: about 1.5 N through the arm's stiffness
        return out

    def _comply(self, obs: np.ndarray, inside: bool) -> np.ndarray:
        """Move with the walls: along the lateral contact force, turning with the moment about the tip."""
        cfg = self.config
        out = np.zeros(5)
        lateral = obs[[FX, FY]]
        magnitude = float(np.hypot(*lateral))
        if magnitude > cfg.comply_deadband_n:
            out[:2] = cfg.comply_mm_per_n * lateral * (1.0 - cfg.comply_deadband_n / magnitude)
            out[:2] *= min(1.0, cfg.comply_max_mm / float(np.hypot(*out[:2])))
        moment = obs[[TX, TY]]
        size = float(np.hypot(*moment))
        if inside and size > cfg.comply_deadband_nm:
            out[3:] = cfg.comply_deg_per_nm * moment * (1.0 - cfg.comply_deadband_nm / size)
            out[3:] *= min(1.0, cfg.comply_max_deg / float(np.hypot(*out[3:])))
        return out

    def _seated(self, ctx: Context, obs: np.ndarray) -> dict[str, float]:
        """What the arm measured with the tube at the floor, before letting go."""
        recent = np.array([row["obs"] for row in ctx.trajectory[-self.config.settle_steps:]])
        return {"depth_reached_mm": float(np.mean(recent[:, Z])), "hole_depth_mm": float(obs[DEPTH]),
                "lateral_force_n": float(np.mean(np.hypot(recent[:, FX], recent[:, FY]))),
                "tilt_moment_nm": float(np.mean(np.hypot(recent[:, TX], recent[:, TY]))),
                "seated_x_mm": float(np.mean(recent[:, X])), "seated_y_mm": float(np.mean(recent[:, Y]))}

    @staticmethod
    def _track_force(ctx: Context, state) -> float:
        force = state.wrench.force_norm if state.wrench is not None else 0.0
        ctx.peak_force = max(ctx.peak_force, force)
        return force

    def _result(self, ctx: Context, seated: dict[str, float] | None, message: str) -> SkillResult:
        arm, cfg = ctx.arm, self.config
        duration = float(arm.state().time) - ctx.start_time
        sim = arm.sim
        depth_ok = True
        if sim is not None:
            lateral, tilt, short = tube_error(sim, ctx.target)
            depth_ok = short <= cfg.success_depth_mm
            measured_by = "simulator truth"
        elif seated is not None:
            lateral = float(np.hypot(seated["seated_x_mm"], seated["seated_y_mm"]))
            tilt = float("nan")
            measured_by = "arm measurement"
        else:
            lateral, tilt, measured_by = float("nan"), float("nan"), "arm measurement"
        success = bool(not message and seated is not None and depth_ok and lateral <= cfg.success_mm)
        if not success and not message:
            message = (f"tube {lateral:.2f} mm off the hole's axis" if depth_ok else
                       f"tube {short:.2f} mm above the hole's floor")
        return SkillResult(success=success, translation_error_mm=float(lateral), rotation_error_deg=float(tilt),
                           peak_force_n=float(ctx.peak_force), duration_s=duration, trajectory=ctx.trajectory,
                           measured_by=measured_by, target=ctx.target, message=message,
                           measurements=dict(ctx.measurements))

    def failed_result(self, ctx: Context, message: str) -> SkillResult:
        return self._result(ctx, None, message)

    # --- the contract: episodes, outcome ----------------------------------------------------
    def sim_start(self, arm, target: str, rng: np.random.Generator, seed: int, ready: bool = True) -> None:
        """A random start 2-4 cm above and up to 1 cm beside the hole, the tube in the gripper
        (``ready=False``: the gripper empty, which the start condition refuses)."""
        fixture, hole, rack = rack_of(arm.config, target)
        base_T_hole = arm.config.fixture(fixture) @ rack.rack_T_hole(hole)
        start = random_start(rng, lateral=0.01, above=(0.02, 0.04), yaw_deg=10.0)
        arm.sim.reset(tcp_pose=base_T_hole @ start, plate=ready, seed=seed)

    def operator_prompt(self, target: str) -> str:
        return f"put a tube into the gripper to insert into '{target}' (and empty that hole)"

    def outcome(self, result: SkillResult) -> Outcome:
        """The arm-measured reward: inserted (the tip at the calibrated depth with the floor pushing
        back), minus the shortfall in depth, the lateral force at the end, and the peak force."""
        return insertion_outcome(result, self.config.seat_tolerance_mm)


def tube_error(sim, target: str) -> tuple[float, float, float]:
    """Simulator truth: the tube tip's distance from the hole's axis [mm], the tube's tilt against
    it [deg] and the tip's height above the hole's floor [mm]."""
    fixture, hole, rack = rack_of(sim.arm.config, target)
    base_T_hole = sim.fixture_pose(fixture) @ rack.rack_T_hole(hole)
    rel = base_T_hole.inverse() @ sim.plate_pose()
    axis = rel.rotation_matrix[:, 2]
    tilt = math.degrees(math.acos(float(np.clip(axis[2], -1.0, 1.0))))
    return float(np.hypot(*rel.xyz[:2]) * 1000.0), tilt, float(rack.depth - rel.xyz[2]) * 1000.0


def insertion_outcome(result: SkillResult, seat_tolerance_mm: float = 1.0, force_scale: float = 2.0) -> Outcome:
    """``TubeInsertion.outcome`` from the result's measurements alone (``force_scale``: lateral force
    [N] at the end that costs 0.1 of reward)."""
    m = result.measurements or {}
    peak = float(result.peak_force_n) if np.isfinite(result.peak_force_n) else 0.0
    if "depth_reached_mm" not in m:
        return Outcome(-1.0, False, {"inserted": 0.0, "peak_force_n": peak})
    shortfall = max(0.0, m["hole_depth_mm"] - m["depth_reached_mm"])
    inserted = bool(shortfall <= seat_tolerance_mm and "still holds" not in (result.message or ""))
    cost = shortfall + 0.1 * m["lateral_force_n"] / force_scale + 0.002 * peak
    details = {"inserted": float(inserted), "depth_shortfall_mm": shortfall,
               "lateral_force_n": m["lateral_force_n"], "peak_force_n": peak}
    reward = (1.0 if inserted else -1.0) - 0.95 * cost / (1.0 + cost)
    return Outcome(float(reward), inserted, details)
