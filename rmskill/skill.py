"""The skill runtime and contract: a ``Skill`` bundles a base policy, an optional residual corrector,
its settings and its declared ``SkillSpec``, and runs on any arm through the safety envelope.

A skill's control loop runs at its own rate (``spec.rate_hz``) and streams ``arm.servo(target,
duration=1/rate_hz)``; the driver interpolates at its native rate. Actions are normalised to
[-1, 1] per dimension; the skill scales them (``spec.action_scale``) to bounded corrections.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmskill import registry, settings
from rmskill.calibration_store import CalibrationStore
from rmskill.errors import ConfigError, SafetyViolation, SkillError, StartConditionError
from rmskill.geometry import Pose
from rmskill.spec import Outcome, SkillSpec

log = logging.getLogger(__name__)

#: ``policy(obs) -> action``: the skill's raw observation in, a normalised action in [-1, 1] out.
Policy = Callable[[np.ndarray], np.ndarray]
#: ``residual(obs, base_action) -> correction``, normalised; the runtime bounds it.
Residual = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class SkillResult:
    """What one ``skill.run`` did.

    Attributes:
        success: Whether the skill's post-conditions held, as checked with the arm (in simulation,
            against the simulator's truth where the skill reads it for evaluation).
        translation_error_mm: Final position error of the object against its target [mm].
        rotation_error_deg: Final rotation error [deg].
        peak_force_n: Largest sensed contact force during the run [N].
        duration_s: Arm time the run took [s] (simulated time in simulation).
        trajectory: One record per learned control step (time, observation, action, force).
        measured_by: Where the errors come from, e.g. ``"simulator truth"`` or ``"arm measurement"``.
        target: The target's name.
        message: Why it failed, where it did; empty on success.
        measurements: What the skill measured with the arm besides the errors, by name.
    """

    success: bool
    translation_error_mm: float
    rotation_error_deg: float
    peak_force_n: float
    duration_s: float
    trajectory: list[dict] = field(default_factory=list, repr=False)
    measured_by: str = "arm measurement"
    target: str = ""
    message: str = ""
    measurements: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The result without the trajectory, JSON-ready."""
        out = asdict(self)
        out.pop("trajectory")
        out["steps"] = len(self.trajectory)
        return out

    @property
    def observations(self) -> np.ndarray:
        """The learned steps' observations, (steps x features); empty (0 x 0) without any."""
        if not self.trajectory:
            return np.zeros((0, 0))
        return np.array([row["obs"] for row in self.trajectory], dtype=float)


@dataclass
class Context:
    """Per-run state shared by a skill's phases: where the target is and what has happened."""

    arm: Any
    target: str
    base_T_target: Pose  # the calibrated (or nominal) target pose the skill aims at
    target_source: str  # "calibration" or "nominal"
    start_time: float
    peak_force: float = 0.0
    trajectory: list[dict] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)


#: ``act(obs, ctx) -> action``: replaces the skill's own policy for a run (experts, data collection).
Actor = Callable[[np.ndarray, Context], np.ndarray]
#: ``refine(peer, labels) -> labels``: a skill's label refinement for one peer trial (see ``Skill.label_refiner``).
LabelRefiner = Callable[[Any, np.ndarray], np.ndarray]


class Skill(ABC):
    """Base of every skill: the contract the runtime, evaluation, fine-tuning and the CLI read.

    A skill sets ``name``, ``version``, ``spec`` (a ``SkillSpec``: features, rate, fixture kinds,
    start condition, similarity), ``weights_dir`` and a ``config`` dataclass of its settings, and
    implements ``execute`` (its phases), ``sim_start`` (how a simulated episode starts) and
    ``outcome`` (the arm-measured reward). ``operator_prompt``, ``label_refiner``, ``targets``,
    ``check_start`` and ``failed_result`` have defaults. ``rmskill check-skill NAME`` proves a skill.

    Errors: a task that fails (not seated, nothing to pick) returns ``success=False`` with a reason;
    a fault raises: ``StartConditionError`` before anything moves, ``SafetyViolation`` (carrying the
    partial result as ``.result``), ``DriverError``.

    Attributes:
        policy: The base policy (observation in, normalised action out).
        residual: Optional corrector; its output is clipped to ``residual_scale`` and added.
        residual_scale: Bound on the residual correction, in normalised action units.
    """

    name: str = "skill"
    version: str = "0.0.0"
    spec: SkillSpec
    residual_scale: float = 0.2
    #: The folder of the shipped weights (``base.safetensors`` + ``manifest.json``).
    weights_dir: Path | None = None
    config: Any = None

    def __init__(self, policy: Policy, residual: Residual | None = None, manifest: dict | None = None):
        self.policy = policy
        self.residual = residual
        self.manifest = manifest or {}
        #: Use weights fine-tuned for another arm, model or calibration (``--allow-other-arm``).
        self.allow_other_arm = False
        self._uncalibrated_warned: set[tuple[str, str]] = set()  # (arm, fixture) warned about already

    @property
    def rate_hz(self) -> float:
        """Control rate of the learned loop [Hz] (the spec's)."""
        return self.spec.rate_hz

    @classmethod
    def load(cls, weights: str | Path | None = None, residual: Residual | None = None) -> Skill:
        """The skill with its base policy read from ``weights`` (default: the shipped weights).

        The manifest's feature names must match the skill's spec. A fine-tuned weights folder whose
        manifest names a ``residual`` file also brings its corrector (unless ``residual`` is given).
        """
        from rmskill.learning.policy import load_policy

        path = Path(weights) if weights is not None else cls.weights_dir
        if path is None:
            raise SkillError(f"skill '{cls.name}' ships no weights; pass weights=<folder>")
        policy, manifest = load_policy(path)
        if manifest.get("skill") not in (None, cls.name):
            raise SkillError(f"weights at {path} are for skill '{manifest.get('skill')}', not '{cls.name}'")
        cls.spec.check_manifest(manifest, str(path))
        if residual is None and manifest.get("residual"):
            from rmskill.learning.corrector import load_corrector

            folder = path.parent if path.suffix == ".safetensors" else path
            residual = load_corrector(folder)
            if residual is None:
                raise SkillError(f"weights not found: {folder / manifest['residual']} does not exist "
                                 "(named by the manifest)")
        return cls(policy, residual=residual, manifest=manifest)

    def configure(self, **changes: Any) -> Skill:
        """Change settings of the skill's ``config`` dataclass by name; returns the skill.

        ``load_skill(NAME).configure(setting=value)``. An unknown setting, or a
        value of the wrong type, is a ``ConfigError`` naming the settings there are.
        """
        if changes:
            self.config = settings.apply(f"skill '{self.name}'", self.config, changes)
        return self

    # --- actions ------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Base action plus the bounded residual correction, clipped to [-1, 1]."""
        action = np.asarray(self.policy(obs), dtype=float)
        if self.residual is not None:
            correction = np.clip(np.asarray(self.residual(obs, action), dtype=float),
                                 -self.residual_scale, self.residual_scale)
            action = action + correction
        if not np.all(np.isfinite(action)):
            raise SkillError(f"{self.name}: the policy produced a non-finite action {action.tolist()}")
        return np.clip(action, -1.0, 1.0)

    # --- targets and start --------------------------------------------------------------
    def targets(self, config: Any) -> list[str]:
        """The targets of an arm file this skill can run to (evaluation and fine-tuning cycle
        through them): its fixtures of the kinds the spec accepts."""
        return config.fixtures_of(self.spec.fixture_kinds)

    def resolve_target(self, arm: Any, target: str) -> tuple[Pose, str]:
        """The target pose to aim at: the arm's calibration, else the arm file's nominal pose.

        Raises the arm file's ``ConfigError`` (listing the fixtures) for an unknown target, and one
        naming the accepted kinds for a fixture of another kind.
        """
        config = getattr(arm, "config", None)
        if config is None:
            raise SkillError(f"{self.name} needs an arm from rmskill.connect() (one with an arm config)")
        nominal = config.fixture(target)  # ConfigError naming the fixtures that exist
        kind = config.fixture_kind(target)
        if kind not in self.spec.fixture_kinds:
            raise ConfigError(f"{self.name} cannot run to '{target}': it is a '{kind}' fixture, and the skill "
                              f"accepts {', '.join(self.spec.fixture_kinds)} (targets: "
                              f"{', '.join(self.targets(config)) or 'none'})")
        calibrated = CalibrationStore(config.name).fixture(target)
        if calibrated is not None:
            return calibrated, "calibration"
        if getattr(arm, "sim", None) is None:  # warned once per skill, arm and fixture; each episode asks
            level = logging.INFO if (config.name, target) in self._uncalibrated_warned else logging.WARNING
            self._uncalibrated_warned.add((config.name, target))
            log.log(level, "fixture '%s' of arm '%s' is not calibrated; using the arm file's nominal pose "
                    "(run 'rmskill calibrate fixture' for sub-millimetre placement)", target, config.name)
        return nominal, "nominal"

    def check_weights(self, arm: Any) -> None:
        """Refuse weights made for another arm: fine-tuned weights name the arm, its model and the
        calibration they were tuned on; base weights the arm models they were trained for. A
        ``SkillError`` in one line unless ``allow_other_arm``."""
        m, config = self.manifest, arm.config
        if self.allow_other_arm or not m:
            return
        want: dict[str, Any] = {}
        if "arm" in m:
            want = {"arm": (m["arm"], config.name), "model": (m.get("arm_model"), config.model),
                    "calibration": (m.get("calibration_hash"), CalibrationStore(config.name).digest())}
        elif "arms" in m:  # a fleet's weights: any of its arms, on the calibration it was tuned on
            arms, hashes = list(m["arms"]), dict(m.get("calibration_hashes") or {})
            want = {"arm": (config.name if config.name in arms else "/".join(arms), config.name),
                    "model": (m.get("arm_model"), config.model)}
            if config.name in arms:
                want["calibration"] = (hashes.get(config.name), CalibrationStore(config.name).digest())
        elif m.get("arm_models") and config.model not in m["arm_models"]:
            want = {"model": ("/".join(m["arm_models"]), config.model)}
        clash = {k: v for k, v in want.items() if v[0] != v[1]}
        if clash:
            said = ", ".join(f"{k} {theirs!r} (this arm: {mine!r})" for k, (theirs, mine) in clash.items())
            raise SkillError(f"{self.name}: these weights were made for {said}; pass --allow-other-arm "
                             "(allow_other_arm=True) to use them anyway")

    def check_start(self, arm: Any, target: str) -> None:
        """Refuse, before anything moves, a start the spec's ``start`` condition rules out.

        Judged by the gripper's own sensing (``object_detected``); a skill may add checks.
        Raises ``StartConditionError`` in one line.
        """
        want = self.spec.start
        if want == "any":
            return
        gripper = getattr(arm, "gripper", None)
        if gripper is None:
            if want == "holding":
                log.warning("%s: arm has no gripper to check that it holds the object", self.name)
            return
        held = bool(gripper.state().object_detected)
        if want == "holding" and not held:
            raise StartConditionError(f"{self.name} to '{target}' needs an object in the gripper, and the gripper "
                                      f"holds nothing: {self.operator_prompt(target)}")
        if want == "empty" and held:
            raise StartConditionError(f"{self.name} to '{target}' needs an empty gripper, and it holds an object")

    # --- running ------------------------------------------------------------------------
    def run(self, arm: Any, target: str, *, act: Actor | None = None) -> SkillResult:
        """Run the skill on ``arm`` to ``target``; nothing moves before both and the start are checked.

        ``act`` replaces the skill's policy for this run (scripted experts, data collection). A
        ``SafetyViolation`` stops the arm and is raised with the partial result as ``err.result``.
        """
        base_T_target, source = self.resolve_target(arm, target)
        self.check_weights(arm)
        self.check_start(arm, target)
        ctx = Context(arm=arm, target=target, base_T_target=base_T_target, target_source=source,
                      start_time=float(arm.state().time))
        try:
            return self.execute(ctx, act or (lambda obs, _ctx: self.act(obs)))
        except SafetyViolation as err:
            with contextlib.suppress(Exception):
                arm.stop()
            err.result = self.failed_result(ctx, str(err))
            raise
        except BaseException:
            with contextlib.suppress(Exception):  # leave the arm holding still, whatever went wrong
                arm.stop()
            raise

    @abstractmethod
    def execute(self, ctx: Context, act: Actor) -> SkillResult:
        """The skill's phases, from the arm's current state to a result."""

    def failed_result(self, ctx: Context, message: str) -> SkillResult:
        """The result of a run a fault ended (errors unknown unless the skill can say)."""
        nan = float("nan")
        return SkillResult(False, nan, nan, float(ctx.peak_force), float(ctx.arm.state().time) - ctx.start_time,
                           ctx.trajectory, target=ctx.target, message=message, measurements=dict(ctx.measurements))

    # --- episodes (evaluation and fine-tuning) ------------------------------------------
    def sim_start(self, arm: Any, target: str, rng: np.random.Generator, seed: int, ready: bool = True) -> None:
        """Start a simulated episode to ``target`` (``arm.sim`` resets the world), seeded.

        ``ready=False`` sets up a start that breaks the skill's start condition (``check-skill``
        proves it is refused).
        """
        raise SkillError(f"skill '{self.name}' declares no simulated episode start")

    def operator_prompt(self, target: str) -> str:
        """What the operator is asked to do on a real arm before an episode to ``target``."""
        return f"set the cell up for {self.name} to '{target}'"

    def outcome(self, result: SkillResult) -> Outcome:
        """The arm-measured outcome of one trial: reward (higher is better, about -1..1), success
        and the figures it came from. Must read only what the arm measured (the result's
        trajectory and measurements, never the simulator's truth)."""
        raise SkillError(f"skill '{self.name}' declares no arm-measured outcome; use --reward truth or operator")

    def label_refiner(self, episodes: list[Any]) -> LabelRefiner | None:
        """Optional: given all trials so far, a function that refines a peer's role-model labels."""
        return None


# --- loading --------------------------------------------------------------------------------
def skill_class(name: str) -> type[Skill]:
    """The ``Skill`` subclass registered under ``name`` (entry point group ``rmskill.skills``)."""
    cls = registry.load("skill", name)
    if not (isinstance(cls, type) and issubclass(cls, Skill)):
        raise ConfigError(f"skill '{name}' does not name a Skill class (got {cls!r})")
    return cls


def load_skill(name: str, weights: str | Path | None = None, residual: Residual | None = None) -> Skill:
    """Load a skill with its shipped (or the given) base-policy weights.

    ``weights`` is a weights folder (holding ``base.safetensors`` and ``manifest.json``) or a
    ``.safetensors`` file. A missing folder or file raises ``SkillError`` naming the path.
    """
    return skill_class(name).load(weights=weights, residual=residual)
