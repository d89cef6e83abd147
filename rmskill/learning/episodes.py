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
``measurements`` (what the skill measured with the arm, by name). A run on several simulated cells
(``finetune --workers N``) adds ``index`` (the episode's seeding index; records are in the order
episodes finished), ``cell``, ``policy_version`` (episodes the learner had trained on when it handed
out the policy that acted) and ``lag`` (episodes it trained on meanwhile).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.errors import RunDamaged
from rmskill.storage import atomic_write

log = logging.getLogger(__name__)


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


def _record(line: bytes, number: int) -> dict[str, Any] | None:
    """Line ``line`` as episode ``number``'s record, or ``None`` when it is not one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("episode") == number else None


class EpisodeStore:
    """Append-only episode log of one fine-tuning run.

    Damage is never silent: a torn last line (a kill mid-write) is cut off, with a warning, when the
    log is opened for appending; a bad line anywhere else, a record out of sequence or a missing
    episode file is a ``RunDamaged`` error naming the line or the file. Episode numbers come from
    the records on disk, never from how many lines happened to parse.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.index = self.root / "episodes.jsonl"
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)

    def _read(self) -> tuple[list[dict[str, Any]], int | None]:
        """The records, and the byte offset where an unterminated last line starts (``None``: none)."""
        if not self.index.is_file():
            return [], None
        lines = self.index.read_bytes().split(b"\n")
        tail = lines.pop()  # after the last newline: b"" unless the last write was cut short
        out: list[dict[str, Any]] = []
        for k, line in enumerate(lines, start=1):
            record = _record(line, len(out) + 1)
            if record is None:
                raise RunDamaged(f"{self.index}: line {k} is not episode {len(out) + 1}'s record; the run "
                                 "directory is damaged: restore it or start a new --out")
            out.append(record)
        if not tail:
            return out, None
        return out, len(b"\n".join(lines)) + (1 if lines else 0)

    def records(self) -> list[dict[str, Any]]:
        """Every finished episode (a torn last line is left out)."""
        return self._read()[0]

    def repair(self) -> list[dict[str, Any]]:
        """Cut a torn last line off the log (reported), check every episode file, return the records."""
        records, torn = self._read()
        if torn is not None:
            size = self.index.stat().st_size
            with open(self.index, "r+b") as f:
                f.truncate(torn)
                os.fsync(f.fileno())
            log.warning("%s: dropped a torn last line (%d bytes, an episode interrupted while it was written)",
                        self.index, size - torn)
        for r in records:
            if not (self.root / r["file"]).is_file():
                raise RunDamaged(f"{self.root / r['file']} (episode {r['episode']}) is missing; the run directory "
                                 "is damaged: restore it or start a new --out")
        return records

    def append(self, episode: Episode, record: dict[str, Any]) -> dict[str, Any]:
        records, torn = self._read()
        if torn is not None:
            raise RunDamaged(f"{self.index} ends in a torn line: repair() it before appending")
        number = records[-1]["episode"] + 1 if records else 1
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
        path = self.root / record["file"]
        try:
            with np.load(path) as data:
                return Episode(data["obs"], data["base"], data["correction"], float(record["reward"]), record)
        except (OSError, ValueError, KeyError) as err:
            raise RunDamaged(f"{path} (episode {record['episode']}) cannot be read ({err}); the run directory is "
                             "damaged") from None

    def episodes(self) -> list[Episode]:
        return [self.load(r) for r in self.records()]
