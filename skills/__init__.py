"""Skills, one folder each; found through the ``rmskill.skills`` entry points."""
