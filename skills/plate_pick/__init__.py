"""The plate pick skill: ``rmskill.load_skill("plate_pick").run(arm, target="shelf_1")``."""

from rmskill.skills.plate_pick.skill import PickConfig, PlatePick

__all__ = ["PickConfig", "PlatePick"]
