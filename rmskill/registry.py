"""Plugin registries by entry point: a third-party package adds a backend without touching the core.

Groups: ``rmskill.drivers`` (Arm classes), ``rmskill.grippers`` (Gripper classes),
``rmskill.servers`` (emulators for ``rmskill sim-serve``: ``serve(config, host=..., stop_event=...)``
blocking until the event is set), ``rmskill.skills`` (Skill classes), ``rmskill.transfers``
(Transfer classes: a pick skill then a place skill).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from rmskill.errors import ConfigError

GROUPS = {
    "driver": "rmskill.drivers",
    "gripper": "rmskill.grippers",
    "server": "rmskill.servers",
    "skill": "rmskill.skills",
    "transfer": "rmskill.transfers",
}


@dataclass(frozen=True)
class Plugin:
    kind: str
    name: str
    target: str  # "module:attr"

    def load(self) -> Any:
        """Import the plugin; a missing optional library becomes a ``ConfigError`` naming the extra."""
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ConfigError(
                f"{self.kind} '{self.name}' needs a library that is not installed ({err}); "
                f"try: pip install 'rmskill[{self.name}]'"
            ) from None
        if attr and not hasattr(module, attr):
            raise ConfigError(f"{self.kind} '{self.name}': '{module_name}' has no '{attr}' (a broken plugin?)")
        return getattr(module, attr) if attr else module


def available(kind: str) -> dict[str, Plugin]:
    group = GROUPS[kind]
    return {ep.name: Plugin(kind, ep.name, ep.value) for ep in entry_points(group=group)}


def lookup(kind: str, name: str) -> Plugin:
    plugins = available(kind)
    if name not in plugins:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise ConfigError(f"unknown {kind} '{name}' (known: {known})")
    return plugins[name]


def load(kind: str, name: str) -> Any:
    return lookup(kind, name).load()
