"""Settings by name: ``--set key=value`` from the command line, checked against a config dataclass.

Values are read as YAML scalars or lists (``true``, ``0.5``, ``[2, 2, 2, 0.5]``) and must fit the
setting's current type: a bool stays a bool, a number a number (an int is a fine float), a tuple a
list of the same length; ``null`` only where the setting is declared optional (``X | None``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, is_dataclass, replace
from types import NoneType
from typing import Any, get_args, get_type_hints

import yaml

from rmskill.errors import ConfigError


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["touch_check=true", "explore_std=0.05"]`` -> ``{"touch_check": True, "explore_std": 0.05}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set needs key=value, got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if key in out:
            raise ConfigError(f"--set {key} is given twice")
        out[key] = value
    return out


def names(config: Any) -> list[str]:
    """The setting names of a config dataclass (none for anything else)."""
    return [f.name for f in fields(config)] if is_dataclass(config) else []


def coerce(owner: str, key: str, current: Any, value: Any) -> Any:
    """``value`` as the type of the setting's ``current`` value, or a ``ConfigError`` naming both."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{owner} setting '{key}' must be {expected}, got {value!r}")

    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if isinstance(current, tuple):
        if not isinstance(value, list | tuple) or len(value) != len(current):
            raise bad(f"a list of {len(current)} values")
        return tuple(coerce(owner, key, c, v) for c, v in zip(current, value, strict=True))
    if isinstance(current, str):
        if not isinstance(value, str):
            raise bad("text")
        return value
    return value  # None or another type: taken as given


def apply(owner: str, config: Any, changes: dict[str, Any]) -> Any:
    """A copy of dataclass ``config`` with ``changes`` (names checked, values coerced)."""
    known = names(config)
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ConfigError(f"{owner} has no setting {', '.join(map(repr, unknown))} (settings: "
                          f"{', '.join(sorted(known)) or 'none'})")
    optional = {k for k, hint in _hints(config).items() if NoneType in get_args(hint)}

    def value(key: str, given: Any) -> Any:
        if given is None and key in optional:  # `--set contact_stiffness=null` where the setting may be None
            return None
        return coerce(owner, key, getattr(config, key), given)

    return replace(config, **{k: value(k, v) for k, v in changes.items()})


def _hints(config: Any) -> dict[str, Any]:
    try:
        return get_type_hints(type(config))
    except Exception:  # an annotation that does not resolve: no setting is taken as optional
        return {}
