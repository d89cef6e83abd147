"""The tube insertion skill: ``rmskill.load_skill("tube_insertion").run(arm, target="rack_1/B3")``."""

from rmskill.skills.tube_insertion.skill import InsertionConfig, InsertionObserver, TubeInsertion

__all__ = ["InsertionConfig", "InsertionObserver", "TubeInsertion"]
