"""A small synthetic fine-tuning run directory (no simulation): for the report and export tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rmskill.learning.episodes import Episode, EpisodeStore
from rmskill.skill import skill_class


def make_run(root: Path, episodes: int = 6, skill: str = "plate_placement", seed: int = 0) -> Path:
    """``episodes`` episodes of random data shaped as ``skill`` declares, with truth and outcomes."""
    spec = skill_class(skill).spec
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "run.json").write_text(json.dumps({"skill": skill, "arm": "sim-ur5e", "model": "ur5e",
                                               "method": "role-model", "reward": "arm", "seed": seed,
                                               "settings": {}}))
    store = EpisodeStore(root)
    for i in range(episodes):
        steps = 5 + i
        obs = rng.normal(size=(steps, len(spec.observation)))
        base = rng.uniform(-1, 1, size=(steps, len(spec.action)))
        ok = bool(i % 2)
        store.append(Episode(obs, base, 0.1 * base, 0.5 if ok else -1.0), {
            "target": f"shelf_{i % 3 + 1}", "success": ok, "outcome": {"seated": float(ok)},
            "truth": {"translation_error_mm": 0.1 + i, "rotation_error_deg": 0.05, "success": ok},
            "peak_force_n": 10.0 + i, "duration_s": 8.0, "wall_s": 1.0, "noise": [0.0] * len(spec.action),
            "message": "" if ok else "not seated", "measurements": {}})
    return root
