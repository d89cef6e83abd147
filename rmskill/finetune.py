"""On-site fine-tuning of a skill's residual corrector (``rmskill finetune``).

Every finished episode is on disk (``episodes.jsonl`` + ``episodes/*.npz``, see
``rmskill.learning.episodes``) before the next begins, and the corrector is checkpointed atomically
into the run directory every ``checkpoint_every`` episodes and at the end. The directory is a
weights folder: ``base.safetensors`` (the frozen base), ``residual.safetensors`` and
``manifest.json`` (skill, arm, model, calibration hash, method, episodes), so
``rmskill eval --weights DIR`` and ``load_skill(..., weights=DIR)`` use it. ``--resume`` reloads the
episodes and the last checkpoint, rebuilds the learner's data from the episodes, and continues.

In the simulator each episode starts from ``arm.sim.reset`` (plate in the gripper, random start
pose); on a real arm the operator puts the plate back into the gripper between episodes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.calibration.store import CalibrationStore
from rmskill.config import load_arm_config
from rmskill.errors import ConfigError
from rmskill.learning.corrector import RESIDUAL_FILE, Corrector, load_corrector, net_from_corrector
from rmskill.learning.episodes import Episode, EpisodeStore
from rmskill.learning.outcome import SOURCES
from rmskill.skill import load_skill
from rmskill.storage import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


def make_learner(method: str, obs_dim: int, act_dim: int, seed: int, action_scale=None):
    """The learner for ``method``; ``action_scale`` (the skill's units per normalised action) lets
    the role model turn the touch check's measured centre into labels."""
    import torch

    from rmskill.learning.role_model import RoleModelConfig

    torch.set_num_threads(1)  # tiny networks: one thread is faster, and leaves a core to the arm
    role = RoleModelConfig(action_scale=tuple(action_scale)) if action_scale is not None else RoleModelConfig()
    if method == "role-model":
        from rmskill.learning.role_model import RoleModelFineTuner

        return RoleModelFineTuner(obs_dim, act_dim, config=role, seed=seed)
    if method == "residual":
        from rmskill.learning.residual import ResidualFineTuner

        return ResidualFineTuner(obs_dim, act_dim, seed=seed)
    if method == "hybrid":
        from rmskill.learning.hybrid import HybridConfig, HybridFineTuner

        return HybridFineTuner(obs_dim, act_dim, config=HybridConfig(role=role), seed=seed)
    raise ConfigError(f"unknown method '{method}' (methods: role-model, residual, hybrid)")


class _Recorder:
    """The skill's residual hook: asks the learner for the correction and records the step."""

    def __init__(self, learner):
        self.learner = learner
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __call__(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        correction = np.asarray(self.learner.act(obs, base), dtype=float)
        self.rows.append((np.array(obs, dtype=float), np.array(base, dtype=float), correction))
        return correction

    def episode(self, reward: float) -> Episode:
        if not self.rows:
            return Episode(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0)), reward)
        obs, base, corr = (np.array(col) for col in zip(*self.rows, strict=True))
        return Episode(obs, base, corr, reward)


def _write_checkpoint(out: Path, corrector: Corrector, base_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace the run's weights (residual, then the manifest naming it) file by file, atomically."""
    atomic_write(out / RESIDUAL_FILE, corrector.save_to)
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    if not (out / "base.safetensors").exists():
        shutil.copy2(base_dir / "base.safetensors", out / "base.safetensors")


def finetune(skill_name: str, arm_file: str | Path, method: str, episodes: int, out: str | Path,
             resume: bool = False, reward: str = "arm", seed: int = 0, checkpoint_every: int = 10,
             progress: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``skill_name``'s corrector on ``arm_file`` for ``episodes`` episodes into ``out``."""
    from rmskill.connect import connect
    from rmskill.evaluate import random_start, summarize

    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}")
    if reward not in SOURCES:
        raise ConfigError(f"unknown reward source '{reward}' (sources: {', '.join(SOURCES)})")
    config = load_arm_config(arm_file)
    out = Path(out)
    run = {"skill": skill_name, "arm": config.name, "model": config.model, "method": method, "reward": reward,
           "seed": seed}
    store_exists = (out / "episodes.jsonl").exists()
    if store_exists and not resume:
        raise ConfigError(f"{out} already holds a fine-tuning run; pass --resume to continue it or choose "
                          "another --out")
    if resume and (out / RUN_FILE).exists():
        previous = json.loads((out / RUN_FILE).read_text())
        clash = {k: (previous.get(k), v) for k, v in run.items() if k != "seed" and previous.get(k) != v}
        if clash:
            raise ConfigError(f"--resume: {out} was run with different settings: {clash}")
        seed = previous.get("seed", seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps({**run, "seed": seed}, indent=2))

    skill = load_skill(skill_name)
    base_dir = Path(skill.weights_dir)
    obs_dim, act_dim = len(skill.manifest["obs_names"]), len(skill.manifest["action_names"])
    learner = make_learner(method, obs_dim, act_dim, seed,
                           action_scale=getattr(getattr(skill, "config", None), "action_scale", None))
    store = EpisodeStore(out)
    done = store.records()
    if done:  # resume: feed the learner every finished episode, then the last checkpoint's weights
        for ep in store.episodes():
            learner.end_episode(ep)
        saved = load_corrector(out)
        if saved is not None:  # the corrector as checkpointed, into whichever network the learner trains
            weights = net_from_corrector(saved, obs_dim, act_dim, learner.cfg.hidden).state_dict()
            for name in ("net", "actor", "actor_target"):
                if hasattr(learner, name):
                    getattr(learner, name).load_state_dict(weights)
            learner.corrector = saved
        log.info("resuming %s at episode %d", out, len(done) + 1)
    outcome = SOURCES[reward]()
    outcome.prepare(skill)
    recorder = _Recorder(learner)
    skill.residual = recorder
    targets = sorted(config.fixtures)
    manifest = {**skill.manifest, "residual": "residual.safetensors", "method": method, "arm": config.name,
                "arm_model": config.model, "calibration_hash": CalibrationStore(config.name).digest(),
                "reward": reward}
    records = list(done)
    with connect(config) as arm:
        if arm.sim is None:
            log.warning("fine-tuning on a real arm: put the plate back into the gripper when asked")
        for i in range(len(done), episodes):
            rng = np.random.default_rng([seed, i])
            target = targets[i % len(targets)]
            if arm.sim is not None:
                arm.sim.reset(tcp_pose=config.fixture(target) @ random_start(rng), plate=True,
                              seed=seed * 100_003 + i)
            else:
                input(f"episode {i + 1}: put the plate into the gripper, then press Enter ")
            arm.recover()
            noise = learner.begin_episode()
            recorder.rows.clear()
            wall = time.perf_counter()
            result = skill.run(arm, target=target)
            episode = recorder.episode(0.0)
            score = outcome(result, episode.obs)
            episode.reward = score.reward
            summary = result.summary()
            record = store.append(episode, {
                "target": target, "success": score.success, "outcome": score.details,
                "truth": {k: summary[k] for k in ("translation_error_mm", "rotation_error_deg", "success")}
                if arm.sim is not None else None,
                "peak_force_n": summary["peak_force_n"], "duration_s": summary["duration_s"],
                "wall_s": time.perf_counter() - wall, "noise": np.asarray(noise).tolist(),
                "message": summary["message"], "measurements": summary["measurements"],
            })
            episode.info = record
            learner.end_episode(episode)
            records.append(record)
            last = i + 1 == episodes
            if last or (i + 1) % checkpoint_every == 0:
                _write_checkpoint(out, learner.corrector, base_dir, {**manifest, "episodes": i + 1})
            if progress is not None:
                progress(i, record)
    truth = [r["truth"] for r in records if r.get("truth")]
    return {"out": str(out), "method": method, "episodes": len(records),
            "reward_success_rate": float(np.mean([r["success"] for r in records])),
            "last_20": summarize([{**t, "peak_force_n": r["peak_force_n"], "duration_s": r["duration_s"],
                                   "target": r["target"], "message": r.get("message", "")}
                                  for t, r in zip(truth[-20:], records[-20:], strict=False)]) if truth else None}

