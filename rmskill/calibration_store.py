"""The per-arm calibration store: ``$RMSKILL_HOME/arms/<name>/calibration.yaml`` (default
``~/.rmskill``). Each entry carries its quality figure and date; writes are atomic, so a failed
or interrupted calibration never leaves a half-written file or overwrites a good entry.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from rmskill.errors import ConfigError
from rmskill.geometry import Pose
from rmskill.storage import atomic_write_text


def rmskill_home() -> Path:
    return Path(os.environ.get("RMSKILL_HOME", Path.home() / ".rmskill")).expanduser()


class CalibrationStore:
    """Read and write one arm's calibration entries (``tcp``, ``fixtures``, ``servo``, ``payload``)."""

    def __init__(self, arm_name: str, home: Path | None = None):
        self.arm_name = arm_name
        self.path = (home or rmskill_home()) / "arms" / arm_name / "calibration.yaml"

    def load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            data = yaml.safe_load(self.path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"calibration file {self.path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"calibration file {self.path} must hold a mapping")
        return data

    def save_entry(self, key: str, entry: dict[str, Any], name: str | None = None) -> None:
        """Store one entry (``fixtures`` entries by ``name``), stamped with today's date."""
        data = self.load()
        entry = {**entry, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        if name is None:
            data[key] = entry
        else:
            data.setdefault(key, {})[name] = entry
        atomic_write_text(self.path, yaml.safe_dump(data, sort_keys=True))

    # --- typed accessors ----------------------------------------------------------------
    def tcp(self) -> Pose | None:
        entry = self.load().get("tcp")
        return Pose.from_ur(entry["tcp"]) if entry else None

    def fixture(self, name: str) -> Pose | None:
        entry = self.load().get("fixtures", {}).get(name)
        return Pose.from_ur(entry["pose"]) if entry else None

    def digest(self) -> str:
        """Short hash of the stored calibration (for skill manifests); ``"none"`` when empty."""
        if not self.path.is_file():
            return "none"
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
