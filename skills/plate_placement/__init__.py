"""The plate placement skill: ``rmskill.load_skill("plate_placement").run(arm, target="shelf_1")``."""

from rmskill.skills.plate_placement.skill import PlacementConfig, PlacementObserver, PlatePlacement

__all__ = ["PlacementConfig", "PlacementObserver", "PlatePlacement"]
