"""Transfers: a pick skill then a place skill, from one fixture to another, as one result.

A transfer is registered under the ``rmskill.transfers`` entry points as a ``Transfer`` subclass
naming its two skills; ``prepare`` measures what it needs before the pick (once the pick's start is
checked, e.g. a reading of the empty gripper where the place skill will read the held object), and
``handoff`` passes what the pick measured (e.g. where the object sits in the gripper) to the place
skill.
``rmskill.transfer(arm, source, target)`` finds the transfer whose pick accepts the source's fixture
kind; ``rmskill run NAME --from A --to B`` runs one by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmskill import registry
from rmskill.errors import ConfigError
from rmskill.skill import Skill, SkillResult, load_skill

log = logging.getLogger(__name__)


@dataclass
class TransferResult:
    """What one transfer did: both parts' results; the place part is None when the pick failed.

    Attributes:
        success: Both parts succeeded.
        source, target: The fixtures it moved from and to.
        pick, place: Each part's ``SkillResult``.
        message: Why it failed (which part, and that part's reason); empty on success.
    """

    success: bool
    source: str
    target: str
    pick: SkillResult
    place: SkillResult | None
    message: str = ""

    @property
    def translation_error_mm(self) -> float:
        """The place part's final error [mm] (NaN without one)."""
        return self.place.translation_error_mm if self.place is not None else float("nan")

    @property
    def rotation_error_deg(self) -> float:
        return self.place.rotation_error_deg if self.place is not None else float("nan")

    @property
    def duration_s(self) -> float:
        return self.pick.duration_s + (self.place.duration_s if self.place is not None else 0.0)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the transfer's outcome, then each part's summary."""
        return {"success": self.success, "source": self.source, "target": self.target, "message": self.message,
                "translation_error_mm": self.translation_error_mm, "rotation_error_deg": self.rotation_error_deg,
                "duration_s": self.duration_s, "pick": self.pick.summary(),
                "place": self.place.summary() if self.place is not None else None}


class Transfer:
    """A pick skill then a place skill. Subclasses set ``name``, ``pick_skill`` and ``place_skill``
    (registered skill names) and may override ``handoff``.

    Errors as for skills: a part that fails ends the transfer with ``success=False`` and the part's
    reason; an unmet start condition (``StartConditionError``, e.g. the gripper already holds
    something) raises before anything moves; a ``SafetyViolation`` raises.
    """

    name: str = "transfer"
    pick_skill: str = ""
    place_skill: str = ""

    def __init__(self, pick: Skill | None = None, place: Skill | None = None):
        self.pick = pick if pick is not None else load_skill(self.pick_skill)
        self.place = place if place is not None else load_skill(self.place_skill)

    def prepare(self, arm: Any, source: str, target: str) -> None:
        """Before the pick, with the start checked (the gripper as the pick needs it): anything the
        transfer measures first (e.g. the empty gripper's wrist reading where the place skill will
        weigh the held object). Default: nothing."""

    def handoff(self, pick_result: SkillResult, place: Skill) -> Skill:
        """The place skill to run after ``pick_result``; default ``place`` unchanged. Override to pass
        on what the pick measured (``place.configure(...)`` returns the skill)."""
        return place

    def run(self, arm: Any, source: str, target: str) -> TransferResult:
        """Pick from ``source``, place into ``target``. Both fixtures are checked before anything moves."""
        if source == target:
            raise ConfigError(f"{self.name}: source and target are both '{target}'")
        self.place.resolve_target(arm, target)  # ConfigError for an unknown or wrong-kind target, first
        self.pick.resolve_target(arm, source)
        self.pick.check_start(arm, source)  # StartConditionError before anything moves
        self.prepare(arm, source, target)
        picked = self.pick.run(arm, target=source)
        if not picked.success:
            return TransferResult(False, source, target, picked, None, f"pick from {source}: {picked.message}")
        place = self.handoff(picked, self.place)
        placed = place.run(arm, target=target)
        message = "" if placed.success else f"place into {target}: {placed.message}"
        return TransferResult(placed.success, source, target, picked, placed, message)


def transfer_class(name: str) -> type[Transfer]:
    """The ``Transfer`` subclass registered under ``name`` (entry point group ``rmskill.transfers``)."""
    cls = registry.load("transfer", name)
    if not (isinstance(cls, type) and issubclass(cls, Transfer)):
        raise ConfigError(f"transfer '{name}' does not name a Transfer class (got {cls!r})")
    return cls


def find_transfer(config: Any, source: str) -> str:
    """The registered transfer whose pick accepts the kind of fixture ``source`` is; a ``ConfigError``
    when none or several do (name one)."""
    from rmskill.skill import skill_class

    kind = config.fixture_kind(source)
    names = sorted(registry.available("transfer"))
    fits = [n for n in names if kind in skill_class(transfer_class(n).pick_skill).spec.fixture_kinds]
    if len(fits) != 1:
        raise ConfigError(f"{'no' if not fits else 'more than one'} transfer picks from a '{kind}' fixture "
                          f"(transfers: {', '.join(names) or 'none installed'}); name one")
    return fits[0]


def transfer(arm: Any, source: str, target: str, name: str | None = None) -> TransferResult:
    """Move the object at ``source`` into ``target`` on a connected ``arm``: the registered transfer
    ``name`` (default: the one whose pick accepts ``source``'s fixture kind)."""
    name = name or find_transfer(arm.config, source)
    return transfer_class(name)().run(arm, source, target)


def run_transfer_once(name: str, arm_file: str | Path, source: str, target: str) -> dict[str, Any]:
    """Connect the arm and run the transfer ``name`` once; the result as a dict (``rmskill run``)."""
    from rmskill.config import load_arm_config
    from rmskill.connect import connect

    moved = transfer_class(name)()
    config = load_arm_config(arm_file)
    config.fixture(source)  # ConfigError naming the fixtures, before connecting
    config.fixture(target)
    with connect(config) as arm:
        result = moved.run(arm, source, target)
    return {"transfer": name, "arm": config.name, **result.summary()}
