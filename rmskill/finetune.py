"""On-site fine-tuning of a skill's residual corrector (``rmskill finetune``).

Every finished episode is on disk (``episodes.jsonl`` + ``episodes/*.npz``, see
``rmskill.learning.episodes``) before the next begins, and the corrector is checkpointed atomically
into the run directory every ``checkpoint_every`` episodes and at the end. The directory is a
weights folder: ``base.safetensors`` (the frozen base), ``residual.safetensors`` and
``manifest.json`` (skill, arm, model, calibration hash, method, episodes), so
``rmskill eval --weights DIR`` and ``load_skill(..., weights=DIR)`` use it. ``--resume`` reloads the
episodes and the last checkpoint, rebuilds the learner's data from the episodes, and continues.

In the simulator each episode starts with the skill's ``sim_start``; on a real arm the operator does
what the skill's ``operator_prompt`` asks between episodes. The skill's ``spec.finetune_settings``
are turned on (``--set`` overrides them); ``--set`` also reaches the learner's config.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rmskill import settings as settings_lib
from rmskill.calibration_store import CalibrationStore
from rmskill.config import load_arm_config
from rmskill.errors import ConfigError, DriverError, Interrupted, RunDamaged, SkillError
from rmskill.learning.corrector import RESIDUAL_FILE, Corrector
from rmskill.learning.episodes import Episode, EpisodeStore
from rmskill.learning.outcome import SOURCES
from rmskill.learning.policy import MANIFEST_FILE, WEIGHTS_FILE, file_sha256
from rmskill.runner import EpisodeRun, episode_targets, run_episode
from rmskill.skill import Skill, load_skill
from rmskill.storage import atomic_write, atomic_write_text
from rmskill.workers import check_workers

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


METHODS = ("role-model", "residual", "hybrid")


def _learner_config(method: str, changes: dict[str, Any]):
    from rmskill.learning.hybrid import HybridConfig
    from rmskill.learning.residual import ResidualConfig
    from rmskill.learning.role_model import RoleModelConfig

    if method == "role-model":
        return settings_lib.apply(f"learner '{method}'", RoleModelConfig(), changes)
    if method == "residual":
        return settings_lib.apply(f"learner '{method}'", ResidualConfig(), changes)
    if method == "hybrid":  # its own settings and those of its role-model part (a name in both sets both)
        own = {k: v for k, v in changes.items() if k in settings_lib.names(HybridConfig()) and k != "role"}
        role = {k: v for k, v in changes.items() if k not in own or k in settings_lib.names(RoleModelConfig())}
        role_config = settings_lib.apply(f"learner '{method}'", RoleModelConfig(), role)
        return replace(settings_lib.apply(f"learner '{method}'", HybridConfig(), own), role=role_config)
    raise ConfigError(f"unknown method '{method}' (methods: {', '.join(METHODS)})")


def split_settings(skill: Skill, method: str, changes: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``--set`` settings: the skill's (checked later by ``configure``) and the learner's config."""
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}' (methods: {', '.join(METHODS)})")
    mine = set(settings_lib.names(skill.config))
    skill_changes = {k: v for k, v in changes.items() if k in mine}
    try:
        learner = _learner_config(method, {k: v for k, v in changes.items() if k not in mine})
    except ConfigError as err:
        raise ConfigError(f"{err}; skill '{skill.name}' settings: {', '.join(sorted(mine)) or 'none'}") from None
    return skill_changes, learner


def make_learner(method: str, skill: Skill, seed: int, config: Any = None):
    """The learner for ``method`` on ``skill``'s declared features (its ``spec``)."""
    import torch

    torch.set_num_threads(1)  # tiny networks: one thread is faster, and leaves a core to the arm
    spec = skill.spec
    obs_dim, act_dim = len(spec.observation), len(spec.action)
    config = config if config is not None else _learner_config(method, {})
    role = getattr(config, "role", config)
    if getattr(role, "group_radius", 0.0) is None:
        role.group_radius = spec.similarity_radius
    columns = spec.initial_columns if spec.initial_features else None
    if method == "role-model":
        from rmskill.learning.role_model import RoleModelFineTuner

        return RoleModelFineTuner(obs_dim, act_dim, config=config, seed=seed, initial_columns=columns,
                                  refiner=skill.label_refiner)
    if method == "residual":
        from rmskill.learning.residual import ResidualFineTuner

        return ResidualFineTuner(obs_dim, act_dim, config=config, seed=seed)
    from rmskill.learning.hybrid import HybridFineTuner

    return HybridFineTuner(obs_dim, act_dim, config=config, seed=seed, initial_columns=columns,
                           refiner=skill.label_refiner)


class _Recorder:
    """The skill's residual hook: asks the learner for the correction and records the step."""

    def __init__(self, learner):
        self.learner = learner  # a learner, or what its ``policy()`` gave: anything with ``act(obs, base)``
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __call__(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        correction = np.asarray(self.learner.act(obs, base), dtype=float)
        self.rows.append((np.array(obs, dtype=float), np.array(base, dtype=float), correction))
        return correction

    def episode(self, reward: float, obs_dim: int = 0, act_dim: int = 0) -> Episode:
        if not self.rows:  # stopped before the policy's first step (a fault on the way in)
            return Episode(np.zeros((0, obs_dim)), np.zeros((0, act_dim)), np.zeros((0, act_dim)), reward)
        obs, base, corr = (np.array(col) for col in zip(*self.rows, strict=True))
        return Episode(obs, base, corr, reward)


def _write_checkpoint(out: Path, corrector: Corrector, base_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace the run's weights file by file, atomically: the frozen base (copied again whenever its
    digest is not the shipped one's), the residual, then the manifest naming both with their sha256."""
    base_sha = file_sha256(base_dir / WEIGHTS_FILE)
    if not (out / WEIGHTS_FILE).is_file() or file_sha256(out / WEIGHTS_FILE) != base_sha:
        atomic_write(out / WEIGHTS_FILE, lambda tmp: shutil.copyfile(base_dir / WEIGHTS_FILE, tmp))
    atomic_write(out / RESIDUAL_FILE, corrector.save_to)
    digests = {WEIGHTS_FILE: base_sha, RESIDUAL_FILE: file_sha256(out / RESIDUAL_FILE)}
    atomic_write_text(out / MANIFEST_FILE, json.dumps({**manifest, "sha256": digests}, indent=2))


def _read_run(out: Path) -> dict[str, Any]:
    try:
        previous = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError) as err:
        raise RunDamaged(f"{out / RUN_FILE} cannot be read ({err}); the run directory is damaged") from None
    if not isinstance(previous, dict):
        raise RunDamaged(f"{out / RUN_FILE} is not a JSON object; the run directory is damaged")
    return previous


def collect(skill: Skill, arm: Any, index: int, seed: int, targets: list[str], policy: Any, outcome: Any,
            prompt: Callable[[str], Any] = input) -> tuple[EpisodeRun, Episode, Any, float]:
    """Episode ``index`` acted by ``policy`` (a learner, or its ``policy()`` in a worker), scored by ``outcome``:
    the run, the recorded episode (reward set; empty when it did not start), the score, its wall seconds."""
    recorder = _Recorder(policy)
    skill.residual = recorder
    wall = time.perf_counter()
    ran = run_episode(skill, arm, index, seed, targets, prompt=prompt)
    episode = recorder.episode(0.0, len(skill.spec.observation), len(skill.spec.action))
    score = outcome(skill, ran.result) if ran.started else None
    if score is not None:
        episode.reward = score.reward
    return ran, episode, score, time.perf_counter() - wall


def _record(ran: EpisodeRun, score: Any, simulated: bool, wall: float, noise: Any) -> dict[str, Any]:
    summary = ran.result.summary()
    return {
        "target": ran.target, "success": score.success, "outcome": score.details,
        "truth": {k: summary[k] for k in ("translation_error_mm", "rotation_error_deg", "success")}
        if simulated else None,
        "peak_force_n": summary["peak_force_n"], "duration_s": summary["duration_s"],
        "wall_s": wall, "noise": np.asarray(noise).tolist(),
        "message": summary["message"], "measurements": summary["measurements"],
    }


def cell_seeds(config: Any, seed: int, workers: int) -> list[int]:
    """Each simulated cell's ``sim.seed`` for a run on ``workers`` cells: the arm file's own with one cell,
    else drawn from (the arm file's seed, the run's seed, the cell index). Each episode reseeds its
    simulator by (seed, episode index) (``rmskill.runner``), so episodes do not depend on their cell."""
    base = config.sim.seed if config.sim is not None else 0
    if workers == 1:
        return [base]
    return [int(np.random.SeedSequence([base, seed, cell]).generate_state(1, np.uint64)[0] % 2**63)
            for cell in range(workers)]


def _index(record: dict[str, Any]) -> int:
    """A record's episode index (its seeding): ``index`` from a run on workers, else its place in the log."""
    return int(record.get("index", record["episode"] - 1))


def finetune(skill_name: str, arm_file: str | Path | None, method: str, episodes: int, out: str | Path,
             resume: bool = False, reward: str = "arm", seed: int = 0, checkpoint_every: int = 10,
             progress: Callable[[int, dict[str, Any]], None] | None = None,
             settings: dict[str, Any] | None = None, prompt: Callable[[str], Any] = input, workers: int = 1,
             address: str | None = None, fleet: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune ``skill_name``'s corrector on ``arm_file`` for ``episodes`` episodes into ``out``.

    ``settings`` (``--set``) change the skill's settings or the learner's config, by name.
    ``workers`` > 1: that many simulated cells (Ray actors, ``rmskill[ray]``; ``address``: a cluster to
    join) collect episodes side by side while the learner, here, trains on each as it is written.
    ``fleet`` (instead of ``arm_file``): the cells of a fleet file, ``episodes`` per arm (``finetune_fleet``).
    """
    from rmskill.evaluate import summarize

    if (fleet is None) == (arm_file is None):
        raise ConfigError("give either an arm file (--arm) or a fleet file (--fleet), not both")
    if fleet is not None:
        if workers != 1:
            raise ConfigError("--fleet runs one actor per arm in the fleet file; --workers does not apply")
        return finetune_fleet(skill_name, fleet, method, episodes, out, resume=resume, reward=reward, seed=seed,
                              checkpoint_every=checkpoint_every, progress=progress, settings=settings,
                              address=address)
    assert arm_file is not None
    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}")
    if reward not in SOURCES:
        raise ConfigError(f"unknown reward source '{reward}' (sources: {', '.join(SOURCES)})")
    check_workers(workers)
    skill = load_skill(skill_name)
    settings = dict(settings or {})
    skill_changes, learner_config = split_settings(skill, method, settings)
    skill.configure(**{**skill.spec.finetune_settings, **skill_changes})
    config = load_arm_config(arm_file)
    targets = episode_targets(skill, config)
    if workers > 1 and config.sim is None:
        raise ConfigError(f"--workers {workers} needs a simulated arm; '{config.name}' uses driver "
                          f"'{config.driver}'")
    if workers > 1 and reward == "operator":
        raise ConfigError(f"--workers {workers} cannot ask an operator for the reward; use --reward arm or truth")
    out = Path(out)
    run = {"skill": skill_name, "arm": config.name, "model": config.model, "method": method, "reward": reward,
           "seed": seed, "settings": settings}
    store_exists = (out / "episodes.jsonl").exists()
    if store_exists and not resume:
        raise ConfigError(f"{out} already holds a fine-tuning run; pass --resume to continue it or choose "
                          "another --out")
    if resume and (out / RUN_FILE).exists():
        previous = _read_run(out)
        previous.setdefault("settings", {})
        clash = {k: (previous.get(k), v) for k, v in run.items() if k != "seed" and previous.get(k) != v}
        if clash:
            raise ConfigError(f"--resume: {out} was run with different settings: {clash}")
        seed = previous.get("seed", seed)
    out.mkdir(parents=True, exist_ok=True)
    seeds = cell_seeds(config, seed, workers)
    cells = {"workers": workers, "cell_seeds": seeds} if workers > 1 else {}
    atomic_write_text(out / RUN_FILE, json.dumps({**run, "seed": seed, **cells}, indent=2))

    base_dir = Path(skill.weights_dir)
    learner = make_learner(method, skill, seed, learner_config)
    store = EpisodeStore(out)
    done = store.repair() if resume else store.records()
    if done:  # resume: replaying every finished episode rebuilds the learner exactly as it was
        for ep in store.episodes():
            learner.end_episode(ep)
        log.info("resuming %s at episode %d", out, len(done) + 1)
    finished = {_index(r) for r in done}
    todo = [i for i in range(episodes) if i not in finished][: max(0, episodes - len(done))]
    manifest = {**skill.manifest, "residual": "residual.safetensors", "method": method, "arm": config.name,
                "arm_model": config.model, "calibration_hash": CalibrationStore(config.name).digest(),
                "reward": reward}
    records = list(done)
    checkpointed = len(done)

    def learn(episode: Episode, record: dict[str, Any]) -> None:
        """The written episode to the learner, a checkpoint when due, the progress line."""
        nonlocal checkpointed
        episode.info = record
        learner.end_episode(episode)
        records.append(record)
        n = len(records)
        if n >= episodes or n % checkpoint_every == 0:
            _write_checkpoint(out, learner.corrector, base_dir, {**manifest, "episodes": n})
            checkpointed = n
        if progress is not None:
            progress(n - 1, record)

    try:
        if workers == 1:
            _in_process(skill, config, learner, store, todo, seed, targets, SOURCES[reward](), prompt, learn)
        else:
            skill.residual = None  # the skill travels to the cells without the learner
            _on_cells(skill, config, learner, store, todo, seed, targets, reward, learn, workers, address,
                      [config.model_copy(update={"sim": config.sim.model_copy(update={"seed": s})}) for s in seeds])
    except KeyboardInterrupt:
        if len(records) > checkpointed:
            _write_checkpoint(out, learner.corrector, base_dir, {**manifest, "episodes": len(records)})
        lost = "the episode in progress was" if workers == 1 else "the episodes in progress were"
        cluster = (f" --workers {workers}" + (f" --address {address}" if address else "")) if workers > 1 else ""
        raise Interrupted(f"interrupted: {len(records)} finished episodes are saved in {out} ({lost} discarded); "
                          f"continue with: rmskill finetune {skill_name} --arm {arm_file} --method {method} "
                          f"--episodes {episodes} --out {out}{cluster} --resume") from None
    truth = [r["truth"] for r in records if r.get("truth")]
    data = {"out": str(out), "method": method, "episodes": len(records),
            "reward_success_rate": float(np.mean([r["success"] for r in records])),
            "last_20": summarize([{**t, "peak_force_n": r["peak_force_n"], "duration_s": r["duration_s"],
                                   "target": r["target"], "message": r.get("message", "")}
                                  for t, r in zip(truth[-20:], records[-20:], strict=False)]) if truth else None}
    if workers > 1:
        lags = [r["lag"] for r in records if "lag" in r]
        data.update({"workers": workers, "mean_policy_lag": float(np.mean(lags)) if lags else 0.0})
    return data


def _in_process(skill: Skill, config: Any, learner: Any, store: EpisodeStore, todo: list[int], seed: int,
                targets: list[str], outcome: Any, prompt: Callable[[str], Any],
                learn: Callable[[Episode, dict[str, Any]], None]) -> None:
    """One arm, here: each episode acted by the learner, written, then learned from."""
    from rmskill.connect import connect

    with connect(config) as arm:
        if arm.sim is None and getattr(arm, "operator", None) is None:
            log.warning("fine-tuning on a real arm: between episodes, %s", skill.operator_prompt("<target>"))
        elif arm.sim is None:
            log.info("fine-tuning on '%s': its cell's operator resets the cell between episodes", config.name)
        k, written = 0, len(store.records())
        while k < len(todo):
            i = todo[k]
            noise = learner.begin_episode(i)
            ran, episode, score, wall = collect(skill, arm, i, seed, targets, learner, outcome, prompt)
            if not ran.started:  # nothing moved: the cell was not ready
                if arm.sim is not None:
                    raise SkillError(f"{skill.name}: the simulated start of episode {i + 1} is not ready: "
                                     f"{ran.result.message}")
                log.warning("episode %d not started: %s", i + 1, ran.result.message)
                continue
            record = _record(ran, score, arm.sim is not None, wall, noise)
            if i != written:  # a run begun on workers: its log's order is not the episodes' order
                record["index"] = i
            learn(episode, store.append(episode, record))
            k, written = k + 1, written + 1


def _on_cells(skill: Skill, config: Any, learner: Any, store: EpisodeStore, todo: list[int], seed: int,
              targets: list[str], reward: str, learn: Callable[[Episode, dict[str, Any]], None], workers: int,
              address: str | None, cells: list[Any]) -> None:
    """``workers`` simulated cells, one episode in flight each: as one returns it is written (with its cell,
    index and the policy version it was acted with), learned from, and its cell gets the next index with
    the newest policy. The policy version: how many episodes the learner had learned from."""
    from rmskill.workers import WorkerPool, _get

    n = min(workers, len(todo))
    if n == 0:
        return
    learned = len(store.records())
    queue = list(todo)
    with WorkerPool(skill, config, seed, targets, n, address=address, cells=cells[:n]) as pool:
        ray = pool.ray
        pending: dict[Any, tuple[int, int, int, Any]] = {}

        def submit(cell: int) -> None:
            if queue:
                i = queue.pop(0)
                noise = learner.begin_episode(i)
                ref = pool.actors[cell].finetune_episode.remote(i, learner.policy(), reward)
                pending[ref] = (cell, i, learned, noise)

        for cell in range(n):
            submit(cell)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            cell, i, version, noise = pending.pop(ref)
            ran, episode, score, wall = _get(ray, ref)
            if not ran.started:
                raise SkillError(f"{skill.name}: the simulated start of episode {i + 1} is not ready: "
                                 f"{ran.result.message}")
            record = _record(ran, score, True, wall, noise)
            record.update({"index": i, "cell": cell, "policy_version": version, "lag": learned - version})
            learn(episode, store.append(episode, record))
            learned += 1
            submit(cell)


#: A fleet's episode indices: cell ``c``'s ``j``-th episode is ``c * CELL_STRIDE + j`` (its seeding; a
#: cell's episodes never meet another's, whatever ``--episodes`` a resumed run asks for).
CELL_STRIDE = 1_000_000
#: A fleet cell whose episodes end in a driver fault this many times in a row stops the run.
MAX_FAULTS = 3


class _ModelRun:
    """One arm model's learner in a fleet run: its folder (a weights folder with its own episode log)."""

    def __init__(self, out: Path, learner: Any, manifest: dict[str, Any], base_dir: Path, checkpoint_every: int):
        self.out, self.learner, self.manifest, self.base_dir = out, learner, manifest, base_dir
        self.every = checkpoint_every
        self.store = EpisodeStore(out)
        self.records: list[dict[str, Any]] = []
        self.checkpointed = 0

    def replay(self, resume: bool) -> list[dict[str, Any]]:
        """On ``--resume``: the written episodes, replayed into the learner (it is then as it was)."""
        done = self.store.repair() if resume else self.store.records()
        for ep in self.store.episodes() if done else []:
            self.learner.end_episode(ep)
        self.records, self.checkpointed = list(done), len(done)
        return done

    def learn(self, episode: Episode, record: dict[str, Any], last: bool) -> dict[str, Any]:
        record = self.store.append(episode, record)
        episode.info = record
        self.learner.end_episode(episode)
        self.records.append(record)
        if last or len(self.records) % self.every == 0:
            self.checkpoint()
        return record

    def checkpoint(self) -> None:
        if len(self.records) > self.checkpointed or not (self.out / MANIFEST_FILE).exists():
            _write_checkpoint(self.out, self.learner.corrector, self.base_dir,
                              {**self.manifest, "episodes": len(self.records)})
            self.checkpointed = len(self.records)


def finetune_fleet(skill_name: str, fleet_file: str | Path, method: str, episodes: int, out: str | Path,
                   resume: bool = False, reward: str = "arm", seed: int = 0, checkpoint_every: int = 10,
                   progress: Callable[[int, dict[str, Any]], None] | None = None,
                   settings: dict[str, Any] | None = None, address: str | None = None) -> dict[str, Any]:
    """Fine-tune ``skill_name`` on every cell of ``fleet_file`` (``rmskill.fleet``), ``episodes`` per arm.

    One Ray actor per cell (on its ``node`` where the file names one), one learner per arm model here;
    each episode goes to its model's learner as it is written. ``out`` holds ``run.json`` and one weights
    folder per model, ``out/<model>/`` (``out`` itself when every arm is one model), each with its own
    ``episodes.jsonl``; a record adds ``cell`` (the arm's name), ``index``, ``policy_version`` and ``lag``.
    Simulated cells start episodes with the skill's ``sim_start``, emulated ones through their operator
    (``Arm.operator``): such episodes carry no simulator truth, and learning uses the arm-measured reward.
    An episode that ends in a driver fault (a missed servo deadline) is dropped and run again; a cell with
    ``MAX_FAULTS`` in a row stops the run. The summary counts them per cell (``driver_faults``).
    """
    from rmskill.fleet import load_fleet
    from rmskill.workers import WorkerPool, _get, require_ray

    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}")
    if reward not in ("arm", "truth"):
        raise ConfigError(f"a fleet takes --reward arm or truth (an actor cannot ask an operator), got '{reward}'")
    fleet = load_fleet(fleet_file)
    require_ray(len(fleet.cells))
    skill = load_skill(skill_name)
    settings = dict(settings or {})
    skill_changes, learner_config = split_settings(skill, method, settings)
    skill.configure(**{**skill.spec.finetune_settings, **skill_changes})
    targets = [episode_targets(skill, cell.config) for cell in fleet.cells]
    out = Path(out)
    models = fleet.models
    folders = {m: out if len(models) == 1 else out / m for m in models}
    run = {"skill": skill_name, "fleet": fleet.name, "cells": [c.name for c in fleet.cells],
           "models": {m: str(folders[m].relative_to(out)) for m in models}, "method": method, "reward": reward,
           "seed": seed, "settings": settings}
    if any((f / "episodes.jsonl").exists() for f in folders.values()) and not resume:
        raise ConfigError(f"{out} already holds a fine-tuning run; pass --resume to continue it or choose "
                          "another --out")
    if resume and (out / RUN_FILE).exists():
        previous = _read_run(out)
        clash = {k: (previous.get(k), v) for k, v in run.items() if k != "seed" and previous.get(k) != v}
        if clash:
            raise ConfigError(f"--resume: {out} was run with different settings: {clash}")
        seed = previous.get("seed", seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RUN_FILE, json.dumps({**run, "seed": seed, "episodes_per_arm": episodes,
                                                  "fleet_file": str(fleet.path)}, indent=2))

    base_dir = Path(skill.weights_dir)
    runs: dict[str, _ModelRun] = {}
    for m in models:
        arms = [c for c in fleet.cells if c.model == m]
        manifest = {**skill.manifest, "residual": RESIDUAL_FILE, "method": method, "arm_model": m,
                    "arms": [c.name for c in arms],
                    "calibration_hashes": {c.name: CalibrationStore(c.name).digest() for c in arms},
                    "reward": reward, "fleet": fleet.name}
        manifest.pop("arm", None)
        runs[m] = _ModelRun(folders[m], make_learner(method, skill, seed, learner_config), manifest, base_dir,
                            checkpoint_every)
    finished = {_index(r) for m in models for r in runs[m].replay(resume)}
    queues = []
    for c in range(len(fleet.cells)):
        mine = [c * CELL_STRIDE + j for j in range(episodes)]
        done = sum(i in finished for i in mine)
        queues.append([i for i in mine if i not in finished][: max(0, episodes - done)])
    total = sum(len(r.records) for r in runs.values())
    remaining = {m: sum(len(queues[c]) for c, cell in enumerate(fleet.cells) if cell.model == m) for m in models}
    live = [c for c in range(len(fleet.cells)) if queues[c]]
    faults = {cell.name: 0 for cell in fleet.cells}  # episodes dropped by a driver fault, run again
    skill.residual = None  # the skill travels to the cells without a learner
    try:
        if live:
            with WorkerPool(skill, fleet.cells[0].config, seed, targets[0], len(live), address=address,
                            cells=[fleet.cells[c].config for c in live], cell_targets=[targets[c] for c in live],
                            nodes=[fleet.cells[c].node for c in live], operated=True) as pool:
                pending: dict[Any, tuple[int, int, int, Any]] = {}
                streak = dict.fromkeys(faults, 0)

                def submit(k: int) -> None:
                    c = live[k]
                    if queues[c]:
                        i = queues[c].pop(0)
                        mr = runs[fleet.cells[c].model]
                        noise = mr.learner.begin_episode(i)
                        ref = pool.actors[k].finetune_episode.remote(i, mr.learner.policy(), reward)
                        pending[ref] = (k, i, len(mr.records), noise)

                for k in range(len(live)):
                    submit(k)
                while pending:
                    (ref,), _ = pool.ray.wait(list(pending), num_returns=1)
                    k, i, version, noise = pending.pop(ref)
                    cell = fleet.cells[live[k]]
                    try:
                        ran, episode, score, wall = _get(pool.ray, ref)
                    except DriverError as err:  # a cell's fault (a missed servo deadline): that episode only
                        faults[cell.name] += 1
                        streak[cell.name] += 1
                        if streak[cell.name] >= MAX_FAULTS:
                            raise DriverError(f"arm '{cell.name}': {MAX_FAULTS} episodes in a row ended in a "
                                              f"driver fault, the last: {err}") from None
                        log.warning("arm '%s': episode %d dropped (%s); it runs again", cell.name,
                                    i % CELL_STRIDE + 1, err)
                        queues[live[k]].insert(0, i)
                        submit(k)
                        continue
                    streak[cell.name] = 0
                    if not ran.started:
                        raise SkillError(f"{skill.name}: the start of episode {i % CELL_STRIDE + 1} on arm "
                                         f"'{cell.name}' is not ready: {ran.result.message}")
                    mr = runs[cell.model]
                    record = _record(ran, score, pool.simulated[k], wall, noise)
                    record.update({"index": i, "cell": cell.name, "policy_version": version,
                                   "lag": len(mr.records) - version})
                    remaining[cell.model] -= 1
                    record = mr.learn(episode, record, last=remaining[cell.model] == 0)
                    total += 1
                    if progress is not None:
                        progress(total - 1, record)
                    submit(k)
    except KeyboardInterrupt:
        for mr in runs.values():
            mr.checkpoint()
        cluster = f" --address {address}" if address else ""
        raise Interrupted(f"interrupted: {total} finished episodes are saved in {out} (the episodes in progress "
                          f"were discarded); continue with: rmskill finetune {skill_name} --fleet {fleet_file} "
                          f"--method {method} --episodes {episodes} --out {out}{cluster} --resume") from None
    for mr in runs.values():
        mr.checkpoint()
    return _fleet_summary(fleet, runs, out, method, faults)


def _fleet_summary(fleet: Any, runs: dict[str, _ModelRun], out: Path, method: str,
                   faults: dict[str, int]) -> dict[str, Any]:
    """Per model and per cell: episodes, arm-measured success; the mean policy lag; truth where simulated."""
    def rate(records: list[dict[str, Any]]) -> float | None:
        return float(np.mean([r["success"] for r in records])) if records else None

    cells = {}
    for cell in fleet.cells:
        mine = [r for r in runs[cell.model].records if r.get("cell") == cell.name]
        truth = [r["truth"]["success"] for r in mine[-20:] if r.get("truth")]
        cells[cell.name] = {"model": cell.model, "episodes": len(mine), "reward_success_rate": rate(mine),
                            "last_20_truth_success": float(np.mean(truth)) if truth else None,
                            "driver_faults": faults[cell.name]}
    lags = [r["lag"] for mr in runs.values() for r in mr.records if "lag" in r]
    return {"out": str(out), "method": method, "fleet": fleet.name,
            "episodes": sum(len(mr.records) for mr in runs.values()),
            "models": {m: {"weights": str(mr.out), "episodes": len(mr.records),
                           "reward_success_rate": rate(mr.records)} for m, mr in runs.items()},
            "cells": cells, "mean_policy_lag": float(np.mean(lags)) if lags else 0.0}
