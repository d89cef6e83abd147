"""How good was a trial? One interface, three sources of truth.

- ``ArmMeasuredOutcome`` (the default for fine-tuning, in the simulator too): the skill's own
  ``Skill.outcome``, which reads only what the arm measured during the trial.
- ``SimTruthOutcome``: the simulator's ground truth (the result's errors where the skill measured
  them against the simulator); for evaluation and ``--reward truth`` comparisons.
- ``OperatorOutcome``: a person at the console says whether the trial succeeded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from rmskill.spec import Outcome

__all__ = ["SOURCES", "ArmMeasuredOutcome", "OperatorOutcome", "Outcome", "OutcomeSource", "SimTruthOutcome"]


class OutcomeSource(ABC):
    name: str = "outcome"

    @abstractmethod
    def __call__(self, skill: Any, result: Any) -> Outcome:
        """Score one trial of ``skill`` from its ``SkillResult``."""


class ArmMeasuredOutcome(OutcomeSource):
    """Reward from the arm's own sensing, as the skill defines it (``Skill.outcome``); no ground truth."""

    name = "arm"

    def __call__(self, skill: Any, result: Any) -> Outcome:
        return skill.outcome(result)


class SimTruthOutcome(OutcomeSource):
    """Reward from the simulator's truth: success, minus the final error (mm + deg)."""

    name = "truth"

    def __call__(self, skill: Any, result: Any) -> Outcome:
        mm, deg = float(result.translation_error_mm), float(result.rotation_error_deg)
        details = {"translation_error_mm": mm, "rotation_error_deg": deg}
        if not np.isfinite(mm) or not result.success:
            return Outcome(-1.0, False, details)
        return Outcome(1.0 - mm - (deg if np.isfinite(deg) else 0.0), True, details)


class OperatorOutcome(OutcomeSource):
    """Ask the operator: did it succeed? and, optionally, how far off [mm]."""

    name = "operator"

    def __init__(self, ask=input):
        self.ask = ask

    def __call__(self, skill: Any, result: Any) -> Outcome:
        target = getattr(result, "target", "")
        ok = self.ask(f"Did {skill.name} to '{target}' succeed? [y/n] ").strip().lower().startswith("y")
        off = 0.0
        if ok:
            answer = self.ask("About how far off target, in mm? [0] ").strip()
            off = float(answer) if answer else 0.0
        return Outcome((1.0 - off) if ok else -1.0, ok, {"success": float(ok), "operator_mm": off})


SOURCES = {"arm": ArmMeasuredOutcome, "truth": SimTruthOutcome, "operator": OperatorOutcome}
