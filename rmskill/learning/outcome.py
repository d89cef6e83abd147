"""How good was a trial? One interface, three sources of truth.

- ``ArmMeasuredOutcome`` (the default for fine-tuning, in the simulator too): only what the arm
  measured during the trial: whether the TCP reached the seat depth with the nest pushing back,
  how hard the plate rubbed the guide walls (lateral force and yaw torque after first contact),
  the peak force, and, when the skill ran its touch check (the plate placement skill's
  ``touch_check``: the held plate feels for the nest's walls each way), how far the final command
  was from the middle of the clearance in mm and degrees. A plate that slides in without
  touching a wall and is let go in the middle of its clearance was aimed right.
- ``SimTruthOutcome``: the simulator's ground truth (the plate against the nest's true seat); for
  evaluation and ``--reward truth`` comparisons.
- ``OperatorOutcome``: a person at the console says whether the plate sat right.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

# Observation columns of the plate placement skill (see skills/plate_placement/skill.py OBS_NAMES).
Z, FX, FY, FZ, TZ, CONTACT = 2, 11, 12, 13, 14, 16


@dataclass(frozen=True)
class Outcome:
    """A trial's reward (higher is better, about -1..1) and the figures it came from."""

    reward: float
    success: bool
    details: dict[str, float]


class OutcomeSource(ABC):
    name: str = "outcome"

    def prepare(self, skill: Any) -> None:
        """Set the skill up to measure what this source needs (called once before the trials)."""
        return None  # most sources need nothing

    @abstractmethod
    def __call__(self, result: Any, obs: np.ndarray) -> Outcome:
        """Score one trial from its ``SkillResult`` and its observations (steps x features)."""


class ArmMeasuredOutcome(OutcomeSource):
    """Reward from the arm's own sensing; no ground truth.

    Args:
        seat_depth_mm: The TCP must end within this of the calibrated seat (nest z).
        force_scale: Lateral wall force [N] that costs as much as 0.1 of reward.
    """

    name = "arm"

    def __init__(self, seat_depth_mm: float = 1.5, force_scale: float = 2.0):
        self.seat_depth_mm = seat_depth_mm
        self.force_scale = force_scale

    def prepare(self, skill: Any) -> None:
        """Turn on the skill's touch check, where it has one, so the reward sees the centring."""
        if hasattr(getattr(skill, "config", None), "touch_check"):
            skill.configure(touch_check=True)

    def __call__(self, result: Any, obs: np.ndarray) -> Outcome:
        if len(obs) == 0:
            return Outcome(-1.0, False, {"seated": 0.0})
        final = obs[-1]
        seated = bool(final[Z] > -self.seat_depth_mm and -final[FZ] > 1.0 and not _stopped(result))
        touching = obs[obs[:, CONTACT] > 0.5]
        if len(touching):
            lateral = float(np.mean(np.hypot(touching[:, FX], touching[:, FY])))
            twist = float(np.mean(np.abs(touching[:, TZ])))
        else:
            lateral = twist = 0.0
        peak = float(getattr(result, "peak_force_n", 0.0))
        cost = 0.1 * lateral / self.force_scale + 0.5 * twist + 0.002 * peak
        details = {"seated": float(seated), "lateral_force_n": lateral, "yaw_torque_nm": twist, "peak_force_n": peak}
        touch = getattr(result, "measurements", None) or {}
        if seated and "touch_command_offset_mm" in touch:
            off_mm, off_deg = touch["touch_command_offset_mm"], abs(touch["touch_command_offset_yaw_deg"])
            details.update(centre_offset_mm=off_mm, centre_offset_deg=off_deg)
            if np.isfinite(off_mm) and np.isfinite(off_deg):
                cost += off_mm + off_deg  # like the truth reward: a millimetre costs as much as a degree
            else:  # the touch check found no walls around the plate: not in the nest
                seated = False
                details["seated"] = 0.0
        # Bounded: every seated trial (reward in (0.05, 1]) beats every one that is not ((-1.95, -1]).
        reward = (1.0 if seated else -1.0) - 0.95 * cost / (1.0 + cost)
        return Outcome(float(reward), seated, details)


class SimTruthOutcome(OutcomeSource):
    """Reward from the simulator's truth: success, minus the final error."""

    name = "truth"

    def __call__(self, result: Any, obs: np.ndarray) -> Outcome:
        mm, deg = float(result.translation_error_mm), float(result.rotation_error_deg)
        if not np.isfinite(mm) or not result.success:
            return Outcome(-1.0, False, {"translation_error_mm": mm, "rotation_error_deg": deg})
        return Outcome(1.0 - mm - deg, True, {"translation_error_mm": mm, "rotation_error_deg": deg})


class OperatorOutcome(OutcomeSource):
    """Ask the operator: seated? and, optionally, how far off [mm]."""

    name = "operator"

    def __init__(self, ask=input):
        self.ask = ask

    def __call__(self, result: Any, obs: np.ndarray) -> Outcome:
        seated = self.ask("Is the plate seated flat in the nest? [y/n] ").strip().lower().startswith("y")
        off = 0.0
        if seated:
            answer = self.ask("About how far off centre, in mm? [0] ").strip()
            off = float(answer) if answer else 0.0
        return Outcome((1.0 - off) if seated else -1.0, seated, {"seated": float(seated), "operator_mm": off})


def _stopped(result: Any) -> bool:
    message = getattr(result, "message", "") or ""
    return "safety limit" in message or "not seated" in message


SOURCES = {"arm": ArmMeasuredOutcome, "truth": SimTruthOutcome, "operator": OperatorOutcome}
