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

from rmskill.errors import ConfigError, RmskillError

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


    def check(self) -> tuple[bool, str]:
        """Whether the plugin loads and every library its module (or the package holding it) declares
        in ``REQUIRES`` imports: ``(True, "")`` or ``(False, why)``; ``EXTRA`` names the pip extra."""
        module_name = self.target.partition(":")[0]
        extra = None
        try:
            obj = self.load()
            module = importlib.import_module(module_name)
            package = importlib.import_module(module.__package__ or module_name)
            extra = getattr(module, "EXTRA", getattr(package, "EXTRA", None))
            for lib in (*getattr(module, "REQUIRES", ()), *getattr(package, "REQUIRES", ())):
                importlib.import_module(lib)
        except ImportError as err:
            hint = f"pip install 'rmskill[{extra}]'" if extra else "pip install --force-reinstall rmskill"
            return False, f"needs a library that is not installed ({err}); try: {hint}"
        except RmskillError as err:
            return False, str(err)
        except Exception as err:  # a library that is installed but broken
            return False, f"{type(err).__name__}: {err}"
        return obj is not None, ""


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
