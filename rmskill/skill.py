"""The skill runtime: a ``Skill`` bundles an observation builder, a base policy, an optional
residual corrector, a success check and its config, and runs on any arm through the safety envelope.

A skill's control loop runs at its own rate (``rate_hz``) and streams ``arm.servo(target,
duration=1/rate_hz)``; the driver interpolates at its native rate. Actions are normalised to
[-1, 1] per dimension; the skill scales them to bounded Cartesian corrections.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rmskill import registry
from rmskill.calibration.store import CalibrationStore
from rmskill.errors import ConfigError, SkillError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)

#: ``policy(obs) -> action``: the skill's raw observation in, a normalised action in [-1, 1] out.
Policy = Callable[[np.ndarray], np.ndarray]
#: ``residual(obs, base_action) -> correction``, normalised; the runtime bounds it.
Residual = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class SkillResult:
    """What one ``skill.run`` did.

    Attributes:
        success: Whether the skill's success check passed.
        translation_error_mm: Final position error of the placed object against its target [mm].
        rotation_error_deg: Final rotation error [deg].
        peak_force_n: Largest sensed contact force during the run [N].
        duration_s: Arm time the run took [s] (simulated time in simulation).
        trajectory: One record per control step (time, observation, action, force).
        measured_by: ``"simulator truth"`` or ``"arm measurement"``.
        target: The fixture name.
        message: Why it failed, where it did (e.g. a safety violation); empty on success.
        measurements: What the skill measured with the arm besides the errors (e.g. the plate
            placement's touch check: ``touch_offset_mm``), by name.
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


@dataclass
class Context:
    """Per-run state shared by a skill's phases: where the target is and what has happened."""

    arm: Any
    target: str
    base_T_nest: Pose  # the calibrated (or nominal) fixture pose the skill aims at
    nest_source: str  # "calibration" or "nominal"
    start_time: float
    peak_force: float = 0.0
    trajectory: list[dict] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)


#: ``act(obs, ctx) -> action``: replaces the skill's own policy for a run (experts, data collection).
Actor = Callable[[np.ndarray, Context], np.ndarray]


class Skill(ABC):
    """Base of every skill. Subclasses set ``name``/``version`` and implement ``execute``.

    Attributes:
        policy: The base policy (observation in, normalised action out).
        residual: Optional corrector; its output is clipped to ``residual_scale`` and added.
        residual_scale: Bound on the residual correction, in normalised action units.
        rate_hz: Control rate of the skill's loop [Hz].
    """

    name: str = "skill"
    version: str = "0.0.0"
    rate_hz: float = 50.0
    residual_scale: float = 0.2
    #: The folder of the shipped weights (``base.safetensors`` + ``manifest.json``).
    weights_dir: Path | None = None

    def __init__(self, policy: Policy, residual: Residual | None = None, manifest: dict | None = None):
        self.policy = policy
        self.residual = residual
        self.manifest = manifest or {}

    @classmethod
    def load(cls, weights: str | Path | None = None, residual: Residual | None = None) -> Skill:
        """The skill with its base policy read from ``weights`` (default: the shipped weights).

        A fine-tuned weights folder whose manifest names a ``residual`` file also brings its
        corrector (unless ``residual`` is given).
        """
        from rmskill.learning.policy import load_policy

        path = Path(weights) if weights is not None else cls.weights_dir
        if path is None:
            raise SkillError(f"skill '{cls.name}' ships no weights; pass weights=<folder>")
        policy, manifest = load_policy(path)
        if manifest.get("skill") not in (None, cls.name):
            raise SkillError(f"weights at {path} are for skill '{manifest.get('skill')}', not '{cls.name}'")
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

        ``load_skill("plate_placement").configure(touch_check=True)``. An unknown setting is a
        ``ConfigError`` naming the ones there are.
        """
        if not changes:
            return self
        config = getattr(self, "config", None)
        known = {f.name for f in fields(config)} if config is not None and is_dataclass(config) else set()
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"skill '{self.name}' has no setting {', '.join(map(repr, unknown))} "
                              f"(settings: {', '.join(sorted(known)) or 'none'})")
        self.config = replace(config, **changes)
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

    # --- running ------------------------------------------------------------------------
    def resolve_target(self, arm: Any, target: str) -> tuple[Pose, str]:
        """The fixture pose to aim at: the arm's calibration, else the arm file's nominal pose.

        Raises the arm file's ``ConfigError`` (listing the fixtures) for an unknown target.
        """
        config = getattr(arm, "config", None)
        if config is None:
            raise SkillError(f"{self.name} needs an arm from rmskill.connect() (one with an arm config)")
        nominal = config.fixture(target)  # ConfigError naming the fixtures that exist
        calibrated = CalibrationStore(config.name).fixture(target)
        if calibrated is not None:
            return calibrated, "calibration"
        if getattr(arm, "sim", None) is None:
            log.warning("fixture '%s' of arm '%s' is not calibrated; using the arm file's nominal pose "
                        "(run 'rmskill calibrate fixture' for sub-millimetre placement)", target, config.name)
        return nominal, "nominal"

    def run(self, arm: Any, target: str, *, act: Actor | None = None) -> SkillResult:
        """Run the skill on ``arm`` to fixture ``target``; nothing moves before both are validated.

        ``act`` replaces the skill's policy for this run (scripted experts, data collection).
        """
        base_T_nest, source = self.resolve_target(arm, target)
        ctx = Context(arm=arm, target=target, base_T_nest=base_T_nest, nest_source=source,
                      start_time=float(arm.state().time))
        try:
            return self.execute(ctx, act or (lambda obs, _ctx: self.act(obs)))
        except BaseException:
            with contextlib.suppress(Exception):  # leave the arm holding still, whatever went wrong
                arm.stop()
            raise

    @abstractmethod
    def execute(self, ctx: Context, act: Actor) -> SkillResult:
        """The skill's phases, from the arm's current state to a result."""


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
