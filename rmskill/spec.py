"""The skill contract's declarations: features by name and unit, and the ``SkillSpec`` a skill sets.

The runtime, evaluation, fine-tuning, the learners and the CLI read a skill only through its spec
and the hooks of ``rmskill.skill.Skill``; nothing in the core knows a skill's observation layout.
Weights carry the feature names in their manifest, and loading checks them against the spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rmskill.errors import SkillError

#: What the gripper must hold when a skill starts: an object, nothing, or either.
StartCondition = Literal["holding", "empty", "any"]


@dataclass(frozen=True)
class Outcome:
    """A trial's reward (higher is better, about -1..1), whether it succeeded, and the figures it came from."""

    reward: float
    success: bool
    details: dict[str, float]


@dataclass(frozen=True)
class Features:
    """Named columns of an observation or action vector, each with its unit.

    ``Features(("x_mm", "fz_n"), ("mm", "N"))``; ``feats.index("fz_n") -> 1``;
    ``feats.column(obs, "fz_n")`` reads that column of a (steps x features) array.
    """

    names: tuple[str, ...]
    units: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.units):
            raise SkillError(f"features: {len(self.names)} names but {len(self.units)} units")
        if len(set(self.names)) != len(self.names):
            raise SkillError(f"features: duplicate names in {list(self.names)}")

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Features:
        """From ``(name, unit)`` pairs."""
        pairs = list(pairs)
        return cls(tuple(n for n, _ in pairs), tuple(u for _, u in pairs))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The column of ``name``; a ``SkillError`` lists the names there are."""
        try:
            return self.names.index(name)
        except ValueError:
            raise SkillError(f"no feature '{name}' (features: {', '.join(self.names)})") from None

    def indices(self, names: Sequence[str]) -> np.ndarray:
        return np.array([self.index(n) for n in names], dtype=int)

    def column(self, values: np.ndarray, name: str) -> np.ndarray:
        """Column ``name`` of ``values`` (last axis indexes the features)."""
        return np.asarray(values)[..., self.index(name)]

    def unit(self, name: str) -> str:
        return self.units[self.index(name)]


@dataclass(frozen=True)
class SkillSpec:
    """Everything the runtime, evaluation, fine-tuning and the CLI need to know about a skill.

    Attributes:
        observation: The policy's observation features, in order.
        action: The normalised action features, in order (each in [-1, 1]).
        action_scale: Physical units per normalised action unit, one per action feature.
        rate_hz: Control rate of the skill's learned loop [Hz].
        fixture_kinds: The arm file fixture kinds the skill accepts as targets.
        start: What the gripper must hold when the skill starts (``holding``, ``empty``, ``any``).
        initial_features: Observation features at the first learned step that make two trials'
            starts "similar" for the role model (in their own units) ...
        similarity_radius: ... and the distance (in those units) under which they are.
        finetune_settings: Skill settings turned on while fine-tuning (e.g. a measurement the
            arm-measured outcome needs); ``--set`` can still override them.
    """

    observation: Features
    action: Features
    action_scale: tuple[float, ...]
    rate_hz: float
    fixture_kinds: tuple[str, ...]
    start: StartCondition = "any"
    initial_features: tuple[str, ...] = ()
    similarity_radius: float = 1.0
    finetune_settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.action_scale) != len(self.action):
            raise SkillError(f"action_scale has {len(self.action_scale)} entries for {len(self.action)} actions")
        if self.start not in ("holding", "empty", "any"):
            raise SkillError(f"start must be 'holding', 'empty' or 'any', not {self.start!r}")
        if not self.rate_hz > 0:
            raise SkillError(f"rate_hz must be positive, got {self.rate_hz}")
        unknown = [n for n in self.initial_features if n not in self.observation.names]
        if unknown:
            raise SkillError(f"initial_features {unknown} are not observation features "
                             f"({', '.join(self.observation.names)})")

    @property
    def initial_columns(self) -> np.ndarray:
        """Observation columns of ``initial_features``."""
        return self.observation.indices(self.initial_features)

    def check_manifest(self, manifest: dict, source: str) -> None:
        """Weights must name exactly this spec's features, in order; a ``SkillError`` says how not."""
        for key, feats in (("obs_names", self.observation), ("action_names", self.action)):
            names = manifest.get(key)
            if names is None:
                raise SkillError(f"{source}: the manifest has no '{key}' (the weights' feature names)")
            if tuple(names) != feats.names:
                missing = [n for n in feats.names if n not in names]
                extra = [n for n in names if n not in feats.names]
                detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same names, other order"
                raise SkillError(f"{source}: the weights' {key} do not match the skill's features ({detail})")
