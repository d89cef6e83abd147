"""Backends, one module or folder each; found through the ``rmskill.drivers`` entry points."""
