"""Plate pick: take an SBS plate out of a shelf nest, centred in the fingers, without dragging it on a wall.

Phases: approach (gripper open, to ``above_mm`` over the calibrated nest), descend to the grasp
height, centre (close with a light force: the coupled fingers centre themselves on the plate, and
the compliant arm follows; the command then moves to where the arm went, so nothing presses the
plate into a wall), grasp with the configured force and check the width, lift out under the policy
(bounded Cartesian corrections at ``rate_hz``; it and a compliance reflex steer along the sensed wall
force instead of dragging the plate up a wall), weigh (the wrist's force and torque change: plate
held, and where its centre sits in the fingers), retreat. The policy sees only what a real arm
measures (the placement's observer, the phase column says "lift"). Errors: the simulator's truth
where there is one (the plate's offset in the fingers), else the offset the wrist measured.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rmskill.arm import Compliance, compliant
from rmskill.evaluate import random_start
from rmskill.skill import Actor, Context, Skill, SkillResult
from rmskill.skills.plate_placement.skill import (
    ACTION,
    HELD_WIDTH_MM,
    OBSERVATION,
    PlacementObserver,
    approach,
    held_load,
    line,
    nest_offset,
    track_force,
    weigh,
    yaw_of,
)
from rmskill.spec import Outcome, SkillSpec

log = logging.getLogger(__name__)

OBS_NAMES, ACTION_NAMES = OBSERVATION.names, ACTION.names
POSE = OBSERVATION.indices(["x_mm", "y_mm", "z_mm", "yaw_deg"])
Z, FX, FY, FZ = (OBSERVATION.index(n) for n in ("z_mm", "fx_n", "fy_n", "fz_n"))
LIFT_PHASE = 2.0
GRAVITY = 9.81


@dataclass(frozen=True)
class PickConfig:
    """The skill's settings. Lengths in [mm] unless the name says otherwise.

    Attributes:
        action_scale: Largest correction per control step: x, y, z [mm], yaw [deg].
        plate_mass: Plate mass [kg]: the weight the wrist should feel on lifting.
        plate_width_mm: The plate's side the fingers close on.
        width_tolerance_mm: Largest difference of the gripped width from ``plate_width_mm``.
        grip_force: Grasp force [N]; 0 uses the arm file's ``gripper.force``.
        centre_force: Light closing force [N] that centres the fingers on the plate first.
        above_mm: Height over the seated pose where the approach ends, the gripper open.
        approach_speed, approach_accel: Top speed [m/s] and acceleration [m/s^2] of the approach.
        descend_speed: Speed of the descent to the grasp height [m/s].
        touch_n: Force that stops the descent (something under the fingers) [N].
        clear_mm: Height above the seat at which the plate is out of the nest and the lift ends.
        max_steps: Control steps allowed for the lift.
        box_mm: Largest lateral excursion of the command during the lift.
        comply_mm_per_n, comply_deadband_n: Compliance reflex in the lift: each step the command
            moves along the sensed lateral force beyond the deadband.
        backoff_fraction: Fraction of the arm's force limit at which the lift pauses (a jam).
        settle_s: Time the arm holds still before the wrist is read [s] (the load stops swinging).
        weigh_s: Time the wrist reading is averaged over, before and after the lift [s].
        weight_tolerance: Largest relative difference of the felt weight from the plate's.
        retreat_mm: Height of the retreat above the nest.
        success_mm: Largest offset of the plate's centre in the fingers that counts as a success.
        contact_stiffness: The compliance asked of the arm from the descent to the end of the lift:
            translational [N/m], rotational [Nm/rad] (a stiff arm drags an off-centre plate into the
            nest's walls as the fingers close); ``None`` leaves the arm as it is (stiff on a UR).
    """

    action_scale: tuple[float, float, float, float] = (0.5, 0.5, 1.0, 0.2)
    plate_mass: float = 0.15
    plate_width_mm: float = HELD_WIDTH_MM
    width_tolerance_mm: float = 2.0
    grip_force: float = 0.0
    centre_force: float = 10.0
    above_mm: float = 20.0
    approach_speed: float = 0.15
    approach_accel: float = 0.3
    descend_speed: float = 0.02
    touch_n: float = 8.0
    clear_mm: float = 10.0
    max_steps: int = 150
    box_mm: float = 3.0
    comply_mm_per_n: float = 0.02
    comply_deadband_n: float = 1.0
    backoff_fraction: float = 0.5
    settle_s: float = 0.6
    weigh_s: float = 0.3
    weight_tolerance: float = 0.35
    retreat_mm: float = 30.0
    success_mm: float = 1.5
    contact_stiffness: tuple[float, float] | None = (4000.0, 300.0)


class PlatePick(Skill):
    """Pick the plate out of a fixture's nest: ``skill.run(arm, target="shelf_1")``."""

    name = "plate_pick"
    version = "0.1.0"
    spec = SkillSpec(
        observation=OBSERVATION, action=ACTION, action_scale=PickConfig.action_scale, rate_hz=50.0,
        fixture_kinds=("slot",), start="empty",
        initial_features=("x_mm", "y_mm", "yaw_deg"), similarity_radius=0.5,  # mm and deg
    )
    weights_dir = Path(__file__).parent / "weights"

    def __init__(self, policy, residual=None, manifest=None, config: PickConfig | None = None):
        super().__init__(policy, residual, manifest)
        self.config = config or PickConfig()

    # --- the phases ---------------------------------------------------------------------
    def execute(self, ctx: Context, act: Actor) -> SkillResult:
        arm, cfg = ctx.arm, self.config
        observer = PlacementObserver(ctx.base_T_target)
        ctx.extras["observer"] = observer
        gripper_mass, gripper_com = arm.config.gripper.mass, np.asarray(arm.config.gripper.center_of_mass)
        arm.set_payload(gripper_mass, gripper_com)
        if arm.gripper is not None:
            arm.gripper.open()
        above = np.array([0.0, 0.0, -cfg.above_mm, 0.0])
        approach(ctx, observer, nest_offset(ctx.base_T_target, above), cfg.approach_speed, cfg.approach_accel,
                 self.rate_hz)
        force0, torque0 = self._weigh(ctx, nest_offset(ctx.base_T_target, above))
        contact = Compliance.uniform(*cfg.contact_stiffness) if cfg.contact_stiffness else None
        with compliant(arm, contact):  # the contact phases: descend, grasp, lift out of the nest
            message = self._descend(ctx, observer)
            if not message:
                message = self._grasp(ctx, observer)
            if not message:
                message = self._lift(ctx, act, observer)
        if not message:
            message = self._check_weight(ctx, observer, force0, torque0)
        if message and arm.gripper is not None and not ctx.measurements.get("lifted"):
            arm.gripper.open()  # nothing (or nothing right) in the fingers: leave the nest as it was
            arm.set_payload(gripper_mass, gripper_com)
        retreat = nest_offset(ctx.base_T_target, np.array([0.0, 0.0, -cfg.retreat_mm, 0.0]))
        arm.move_to(retreat, speed=0.05)
        track_force(ctx, arm.state())
        return self._result(ctx, message)

    def _descend(self, ctx: Context, observer: PlacementObserver) -> str:
        """Down to the grasp height, open; stops on a touch (the fingers on something)."""
        arm, cfg = ctx.arm, self.config
        goal = nest_offset(ctx.base_T_target, np.zeros(4))
        # The descent's own peak: a real wrist also feels the approach's accelerations (the gripper's
        # inertia), which are not a touch.
        peak_before, ctx.peak_force = ctx.peak_force, 0.0
        try:
            line(ctx, goal, cfg.descend_speed, cfg.approach_accel, self.rate_hz)
            for _ in range(10):
                arm.servo(goal, duration=1.0 / self.rate_hz)
            track_force(ctx, arm.state())
        finally:  # a violation's partial result still reports the whole run's peak
            descent_peak = ctx.peak_force
            ctx.peak_force = max(peak_before, descent_peak)
        ctx.measurements["descent_peak_n"] = descent_peak
        if descent_peak > cfg.touch_n:
            return (f"the fingers touched something {descent_peak:.1f} N on the way down to '{ctx.target}' "
                    "(a plate out of place?)")
        ctx.extras["command"] = np.zeros(4)
        return ""

    def _grasp(self, ctx: Context, observer: PlacementObserver) -> str:
        """Centre with a light close, move the command to where the arm went, then grip with force."""
        arm, cfg = ctx.arm, self.config
        if arm.gripper is None:
            log.warning("arm '%s' has no gripper configured: picking blind", arm.config.name)
            return ""
        before = observer.relative(arm.state().base_T_tcp)
        arm.gripper.move(0.0, force=cfg.centre_force)
        width = self._width_mm(arm)
        if width < cfg.plate_width_mm - cfg.width_tolerance_mm - 5.0:
            return f"no plate at {ctx.target} (the fingers closed to {width:.1f} mm)"
        centred = observer.relative(arm.state().base_T_tcp)
        ctx.measurements["centre_shift_x_mm"] = float(centred[0] - before[0])
        ctx.measurements["centre_shift_y_mm"] = float(centred[1] - before[1])
        command = np.array([centred[0], centred[1], 0.0, centred[3]])
        self._hold(ctx, command, 0.1)
        state = arm.gripper.move(0.0, force=cfg.grip_force or arm.config.gripper.force)
        width = self._width_mm(arm)
        ctx.measurements["width_mm"] = width
        ctx.measurements["object_detected"] = float(state.object_detected)
        if abs(width - cfg.plate_width_mm) > cfg.width_tolerance_mm:
            return (f"gripped width {width:.1f} mm at {ctx.target}, expected {cfg.plate_width_mm:.1f} +- "
                    f"{cfg.width_tolerance_mm:.1f} mm (not a plate, or gripped askew)")
        ctx.extras["command"] = observer.relative(arm.state().base_T_tcp) * np.array([1, 1, 0, 1])
        return ""

    def _lift(self, ctx: Context, act: Actor, observer: PlacementObserver) -> str:
        """Out of the nest under the policy, complying with the guide walls."""
        arm, cfg = ctx.arm, self.config
        scale = np.asarray(cfg.action_scale)
        dt = 1.0 / self.rate_hz
        backoff = cfg.backoff_fraction * arm.config.limits.max_force
        command = np.asarray(ctx.extras["command"], dtype=float).copy()
        lateral: list[float] = []
        for _ in range(cfg.max_steps):
            state = arm.state()
            force = track_force(ctx, state)
            obs = observer(state, command, LIFT_PHASE)
            ctx.extras["command"] = command
            action = np.clip(act(obs, ctx), -1.0, 1.0)
            ctx.trajectory.append({"t": state.time - ctx.start_time, "obs": obs, "action": action,
                                   "force": force, "command": command.copy()})
            lateral.append(float(np.hypot(obs[FX], obs[FY])))
            if obs[Z] < -cfg.clear_mm:
                ctx.measurements["lifted"] = 1.0
                ctx.measurements["lift_lateral_force_n"] = float(np.mean(lateral))
                ctx.measurements["lift_peak_lateral_n"] = float(np.max(lateral))
                return ""
            command = command + action * scale
            command += self._comply(obs)
            command[:2] = np.clip(command[:2], -cfg.box_mm, cfg.box_mm)
            command[2] = np.clip(command[2], -cfg.clear_mm - 5.0, 1.0)
            command[3] = np.clip(command[3], -3.0, 3.0)
            if force > backoff:  # a jam: stop rising until the correction frees the plate
                command[2] = max(command[2], obs[Z])
                log.info("lift force %.1f N: holding the height", force)
            arm.servo(nest_offset(ctx.base_T_target, command), duration=dt)
        return f"plate not out of {ctx.target} after {cfg.max_steps} steps ({cfg.max_steps * dt:.1f} s)"

    def _comply(self, obs: np.ndarray) -> np.ndarray:
        cfg = self.config
        lateral = obs[[FX, FY]]
        magnitude = float(np.hypot(*lateral))
        out = np.zeros(4)
        if magnitude > cfg.comply_deadband_n:
            out[:2] = cfg.comply_mm_per_n * lateral * (1.0 - cfg.comply_deadband_n / magnitude)
        return out

    def _check_weight(self, ctx: Context, observer: PlacementObserver, force0: np.ndarray,
                      torque0: np.ndarray) -> str:
        """The wrist's change on lifting: the plate's weight, and from its moment where its centre
        sits in the fingers (TCP frame). Sets the payload to gripper + plate."""
        arm, cfg = ctx.arm, self.config
        # Hold where the arm is: a compliant lift may trail its last command by millimetres, and the
        # weighing's stream starts afresh once the compliance ends.
        force1, torque1 = self._weigh(ctx, arm.state().base_T_tcp)
        if force1 is None or force0 is None:
            return ""
        weight, x, y = held_load(arm.state().base_T_tcp, (force0, torque0), (force1, torque1))
        expected = cfg.plate_mass * GRAVITY
        ctx.measurements["weight_n"] = weight
        if abs(weight - expected) > cfg.weight_tolerance * expected:
            return (f"the wrist felt {weight:.2f} N on lifting from {ctx.target}, expected {expected:.2f} N "
                    "(plate not held)")
        ctx.measurements["grasp_x_mm"] = x
        ctx.measurements["grasp_y_mm"] = y
        ctx.measurements["grasp_offset_mm"] = float(np.hypot(x, y))
        gripper_mass, gripper_com = arm.config.gripper.mass, np.asarray(arm.config.gripper.center_of_mass)
        tcp_xyz = np.asarray(getattr(arm.unwrapped, "flange_T_tcp", arm.config.flange_T_tcp).xyz)
        mass = gripper_mass + cfg.plate_mass
        arm.set_payload(mass, (gripper_mass * gripper_com + cfg.plate_mass * tcp_xyz) / mass)
        return ""

    def _weigh(self, ctx: Context, pose) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Hold ``pose``, let the arm settle, then average the wrist's force [N] and torque [Nm]."""
        reading = weigh(ctx.arm, pose, self.config.settle_s, self.config.weigh_s)
        return (None, None) if reading is None else reading

    def _hold(self, ctx: Context, command: np.ndarray, seconds: float) -> None:
        for _ in range(max(1, round(seconds * self.rate_hz))):
            ctx.arm.servo(nest_offset(ctx.base_T_target, command), duration=1.0 / self.rate_hz)

    @staticmethod
    def _width_mm(arm) -> float:
        """The fingers' opening [mm]: the arm's reading, else the gripper's own (a Robotiq on a UR), else
        the plate's width (a gripper that reports none)."""
        width = arm.state().gripper_width
        if width is None and arm.gripper is not None:
            width = arm.gripper.state().width
        return HELD_WIDTH_MM if width is None else float(width) * 1000.0

    # --- the contract: episodes and outcome ------------------------------------------------
    def sim_start(self, arm, target: str, rng: np.random.Generator, seed: int, ready: bool = True) -> None:
        """A random start a few centimetres above and beside the nest, a plate resting in it and the
        gripper empty (``ready=False``: a plate in the gripper too, which the start condition refuses)."""
        arm.sim.reset(tcp_pose=arm.config.fixture(target) @ random_start(rng), plate=not ready, plates=[target],
                      seed=seed)

    def operator_prompt(self, target: str) -> str:
        return f"empty the gripper and set a plate into '{target}'"

    def failed_result(self, ctx: Context, message: str) -> SkillResult:
        return self._result(ctx, message)

    def outcome(self, result: SkillResult) -> Outcome:
        """The arm-measured reward: held (gripped width and the wrist's weight), minus how hard the
        plate rubbed the guide walls on the way out (mean and peak lateral force) and how far off
        centre the wrist found it in the fingers (mm). Every held trial (reward in (0.05, 1]) beats
        every one that is not ((-1.95, -1])."""
        return pick_outcome(result)

    def _result(self, ctx: Context, message: str) -> SkillResult:
        arm, cfg = ctx.arm, self.config
        duration = float(arm.state().time) - ctx.start_time
        sim, m = arm.sim, ctx.measurements
        if sim is not None:
            if sim.held is not None:
                grasp = sim.grasp
                trans, rot = float(np.hypot(*grasp.xyz[:2]) * 1000.0), abs(yaw_of(grasp))
            else:
                trans = rot = float("nan")
            measured_by = "simulator truth"
        else:
            trans, rot = float(m.get("grasp_offset_mm", np.nan)), float("nan")
            measured_by = "arm measurement (wrist)"
        if not message and not math.isfinite(trans):
            message = f"the plate from {ctx.target} is not in the gripper after the lift"
        success = not message and trans <= cfg.success_mm
        if not success and not message:
            message = f"plate {trans:.2f} mm off centre in the fingers, above {cfg.success_mm} mm"
        return SkillResult(success=bool(success), translation_error_mm=float(trans), rotation_error_deg=float(rot),
                           peak_force_n=float(ctx.peak_force), duration_s=duration, trajectory=ctx.trajectory,
                           measured_by=measured_by, target=ctx.target, message=message, measurements=dict(m))


def pick_outcome(result: SkillResult, force_scale: float = 2.0) -> Outcome:
    """``PlatePick.outcome`` from the result's observations and measurements alone.

    ``force_scale``: lateral wall force [N] that costs as much as 0.1 of reward.
    """
    m = result.measurements or {}
    held = bool(m.get("lifted")) and bool(np.isfinite(m.get("weight_n", np.nan))) and not result.message
    obs = result.observations
    lateral = float(np.mean(np.hypot(obs[:, FX], obs[:, FY]))) if len(obs) else 0.0
    peak = float(np.max(np.hypot(obs[:, FX], obs[:, FY]))) if len(obs) else 0.0
    off = float(m.get("grasp_offset_mm", 0.0))
    off = off if np.isfinite(off) else 0.0
    cost = 0.1 * lateral / force_scale + 0.02 * peak / force_scale + 0.5 * off
    reward = (1.0 if held else -1.0) - 0.95 * cost / (1.0 + cost)
    details = {"held": float(held), "lift_lateral_force_n": lateral, "lift_peak_lateral_n": peak,
               "grasp_offset_mm": off}
    return Outcome(float(reward), held, details)
