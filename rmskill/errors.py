"""One error root for the SDK; every failure an integrator can catch is a subclass of it."""

from __future__ import annotations


class RmskillError(Exception):
    """Root of every error rmskill raises on purpose."""


class ConfigError(RmskillError):
    """An arm file, skill config or argument is invalid; the message names the key."""


class DriverError(RmskillError):
    """A backend failed: connection refused or lost, protective stop, missed deadline."""


class SafetyViolation(RmskillError):
    """A command or a measurement broke a limit of the safety envelope; the arm was stopped.

    Attributes:
        limit: Name of the limit (e.g. ``"workspace"``, ``"force"``).
        value: The offending value, in SI units.
        bound: The limit it exceeded, in SI units.
    """

    def __init__(self, limit: str, message: str, value: float | None = None, bound: float | None = None):
        super().__init__(f"safety limit '{limit}': {message}")
        self.limit = limit
        self.value = value
        self.bound = bound
        self.result = None  # a skill's partial SkillResult, when a skill run raised it


class CalibrationError(RmskillError):
    """A calibration procedure cannot produce a trustworthy result (e.g. a degenerate pose set)."""


class SkillError(RmskillError):
    """A skill cannot run: unknown target, missing weights, incompatible arm."""


class StartConditionError(SkillError):
    """A skill's start condition is unmet (e.g. placing with an empty gripper); nothing moved."""


class RunDamaged(ConfigError):
    """A fine-tuning run directory is damaged (a bad line, a missing file); the message names it."""


class Interrupted(RmskillError):
    """The operator stopped a long run (Ctrl-C); the message says what was saved and how to go on."""
