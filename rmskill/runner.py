"""One episode runner for evaluation, fine-tuning and base-policy training.

An episode: the skill's simulated start (``Skill.sim_start``; on an emulated arm, the same start
performed by the emulator's operator, ``Arm.operator``; on a real arm, the operator does what
``Skill.operator_prompt`` asks), a cleared envelope, one ``skill.run``. Episode ``i`` of a run seeded
``seed`` draws from ``np.random.default_rng([seed, i])`` and seeds the simulator with
``episode_seed(seed, i)``: an episode is the same whatever ran before it (or beside it).
Faults that end one trial (a safety violation) and unmet start conditions end that episode only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rmskill.errors import ConfigError, SafetyViolation, SkillError, StartConditionError
from rmskill.skill import Actor, Skill, SkillResult

log = logging.getLogger(__name__)


@dataclass
class EpisodeRun:
    """One finished episode: its index, target and result; ``started`` is False when the skill's
    start condition refused it (nothing moved)."""

    index: int
    target: str
    result: SkillResult
    started: bool = True


class OperatorCell:
    """An arm whose cell an operator resets (``Arm.operator``), as a skill's ``sim_start`` sees it:
    ``sim.reset(...)`` goes to the operator, ``config`` is the arm file's; nothing of a simulator's truth."""

    def __init__(self, arm: Any):
        self.sim, self.config = arm.operator, arm.config


def episode_seed(seed: int, index: int) -> int:
    """The simulator's seed for episode ``index`` of a run seeded ``seed``."""
    return seed * 100_003 + index


def episode_targets(skill: Skill, config: Any) -> list[str]:
    """The arm file's targets for the skill, or a ``ConfigError`` saying why there are none."""
    targets = skill.targets(config)
    if not targets:
        fixtures = ", ".join(sorted(config.fixtures)) or "none"
        raise ConfigError(f"arm file '{config.name}' has no fixture {skill.name} accepts (kinds: "
                          f"{', '.join(skill.spec.fixture_kinds)}; fixtures: {fixtures})")
    return targets


def not_started(target: str, why: str) -> SkillResult:
    nan = float("nan")
    return SkillResult(False, nan, nan, nan, 0.0, target=target, message=why)


def run_episode(skill: Skill, arm: Any, index: int, seed: int, targets: list[str], *, act: Actor | None = None,
                prompt: Callable[[str], Any] = input) -> EpisodeRun:
    """Start episode ``index`` (simulator reset, or the operator's prompt) and run the skill once."""
    target = targets[index % len(targets)]
    rng = np.random.default_rng([seed, index])
    if arm.sim is not None:
        skill.sim_start(arm, target, rng, seed=episode_seed(seed, index))
    elif getattr(arm, "operator", None) is not None:  # an emulated cell: its operator starts the episode
        try:
            skill.sim_start(OperatorCell(arm), target, rng, seed=episode_seed(seed, index))
        except AttributeError as err:
            raise SkillError(f"{skill.name}: its simulated start needs more than the cell's operator offers "
                             f"(a reset): {err}") from None
    else:
        prompt(f"episode {index + 1}: {skill.operator_prompt(target)}, then press Enter ")
    arm.recover()  # a new episode: clear the previous one's stop and stream
    try:
        return EpisodeRun(index, target, skill.run(arm, target=target, act=act))
    except StartConditionError as err:
        return EpisodeRun(index, target, not_started(target, str(err)), started=False)
    except SafetyViolation as err:
        log.info("episode %d to '%s' stopped: %s", index + 1, target, err)
        result = err.result if isinstance(err.result, SkillResult) else not_started(target, str(err))
        return EpisodeRun(index, target, result)


def run_episodes(skill: Skill, arm: Any, indices: Iterable[int], seed: int, *, act: Actor | None = None,
                 prompt: Callable[[str], Any] = input) -> Iterator[EpisodeRun]:
    """``run_episode`` for each index, targets cycling through the skill's targets in the arm file."""
    targets = episode_targets(skill, arm.config)
    for i in indices:
        yield run_episode(skill, arm, i, seed, targets, act=act, prompt=prompt)
