"""Fine-tuning data on disk, readable without rmskill (numpy + json).

A run directory holds ``episodes.jsonl`` (one JSON object per finished episode, appended and
fsynced after its arrays are on disk) and ``episodes/NNNNNN.npz`` with, per control step:

    obs         (T, obs_dim)  the skill's observation (raw units; names in the skill's spec and the manifest)
    base        (T, act_dim)  the base policy's action, normalised to [-1, 1]
    correction  (T, act_dim)  the correction executed on top of it (exploration included)

Each JSONL record: ``episode``, ``file``, ``target``, ``reward``, ``success`` (as the reward
source judged it), ``outcome`` (its figures), ``truth`` (simulator ground truth, if any:
``translation_error_mm``, ``rotation_error_deg``, ``success``), ``peak_force_n``,
``duration_s``, ``wall_s``, ``noise`` (the episode's exploration offset), ``message``,
``measurements`` (what the skill measured with the arm, by name).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.storage import atomic_write


@dataclass
class Episode:
    obs: np.ndarray
    base: np.ndarray
    correction: np.ndarray
    reward: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def executed(self) -> np.ndarray:
        return np.clip(self.base + self.correction, -1.0, 1.0)

    def initial(self, columns: np.ndarray) -> np.ndarray:
        """The first learned step's observation ``columns`` (the skill's ``initial_features``);
        NaN for an episode with no learned step."""
        return self.obs[0, columns] if len(self.obs) else np.full(len(columns), np.nan)


class EpisodeStore:
    """Append-only episode log of one fine-tuning run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.index = self.root / "episodes.jsonl"
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)

    def records(self) -> list[dict[str, Any]]:
        """Every finished episode; a torn last line (a kill mid-write) is ignored."""
        if not self.index.is_file():
            return []
        out = []
        for line in self.index.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out

    def append(self, episode: Episode, record: dict[str, Any]) -> dict[str, Any]:
        number = len(self.records()) + 1
        name = f"episodes/{number:06d}.npz"
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a bare path
                np.savez(f, obs=episode.obs, base=episode.base, correction=episode.correction)

        atomic_write(self.root / name, write)
        record = {"episode": number, "file": name, "reward": float(episode.reward), **record}
        with open(self.index, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return record

    def load(self, record: dict[str, Any]) -> Episode:
        with np.load(self.root / record["file"]) as data:
            return Episode(data["obs"], data["base"], data["correction"], float(record["reward"]), record)

    def episodes(self) -> list[Episode]:
        return [self.load(r) for r in self.records()]
