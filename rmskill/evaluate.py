"""Run a skill once, or evaluate it over many randomized simulated episodes (``rmskill run``/``eval``).

Evaluation cycles the target through the arm file's fixtures the skill accepts and starts each
episode as the skill declares (``Skill.sim_start``); errors are the simulator's truth. Seeded per
episode (``rmskill.runner``): the same seed gives the same episodes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.config import ArmConfig, load_arm_config
from rmskill.errors import ConfigError, SkillError
from rmskill.geometry import Pose
from rmskill.runner import episode_targets, run_episode
from rmskill.skill import Skill, load_skill
from rmskill.workers import check_workers

log = logging.getLogger(__name__)


def random_start(rng: np.random.Generator, lateral: float = 0.02, above: tuple[float, float] = (0.02, 0.05),
                 yaw_deg: float = 5.0) -> Pose:
    """An offset in the fixture frame (z down): up to ``lateral`` [m] beside, ``above`` [m] above."""
    xyz = [rng.uniform(-lateral, lateral), rng.uniform(-lateral, lateral), -rng.uniform(*above)]
    return Pose.from_rotvec(xyz, [0.0, 0.0, math.radians(rng.uniform(-yaw_deg, yaw_deg))])


def _stats(values: list[float], keys: tuple[str, ...] = ("mean", "p50", "p95", "max")) -> dict[str, float]:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {k: float("nan") for k in keys}
    table = {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
             "max": float(v.max())}
    return {k: table[k] for k in keys}


def summarize(records: list[dict[str, Any]], indices: list[int] | None = None) -> dict[str, Any]:
    """Aggregate per-episode ``SkillResult.summary()`` records into the evaluation table.

    ``indices``: the records' episode indices, where they are not 0, 1, 2, ... (an interrupted run on workers).
    """
    n = len(records)
    indices = list(range(n)) if indices is None else indices
    return {
        "episodes": n,
        "success_rate": float(sum(r["success"] for r in records) / n) if n else float("nan"),
        "translation_error_mm": _stats([r["translation_error_mm"] for r in records]),
        "rotation_error_deg": _stats([r["rotation_error_deg"] for r in records]),
        "peak_force_n": _stats([r["peak_force_n"] for r in records], ("mean", "max")),
        "duration_s": _stats([r["duration_s"] for r in records], ("mean", "max")),
        "failures": [{"episode": i, "target": r["target"], "message": r["message"]}
                     for i, r in zip(indices, records, strict=True) if not r["success"]],
        "per_episode": records,
    }


def recording(arm: Any, path: str | Path | None) -> contextlib.AbstractContextManager:
    """A video of the simulated arm to ``path`` while open (``arm.sim.record``); nothing when ``path``
    is None. A real arm has nothing to record from: a ``ConfigError``."""
    if path is None:
        return contextlib.nullcontext()
    record = getattr(arm.sim, "record", None)
    if record is None:
        raise ConfigError(f"--record needs a simulated arm that renders; '{arm.config.name}' does not")
    return record(str(path))


def _skill(skill: str | Skill, weights: str | Path | None) -> Skill:
    return skill if isinstance(skill, Skill) else load_skill(skill, weights=weights)


def run_once(skill_name: str | Skill, arm_file: str | Path | ArmConfig, target: str,
             weights: str | Path | None = None, settings: dict[str, Any] | None = None,
             allow_other_arm: bool = False, record: str | Path | None = None) -> dict[str, Any]:
    """Connect the arm, run the skill once to ``target`` from where the arm is; the result as a dict.

    ``record``: write a video of the run there (a simulated arm; ``.mp4`` or ``.gif``).

    ``settings`` change the skill's config (``Skill.configure``), e.g. ``{"touch_check": True}``.
    The skill, its weights, the settings and the target are all checked before anything moves; so is
    the skill's start condition (``StartConditionError``). A safety violation raises.
    """
    from rmskill.connect import connect

    skill = _skill(skill_name, weights)
    skill.allow_other_arm = skill.allow_other_arm or allow_other_arm
    if settings:
        skill.configure(**settings)
    config = load_arm_config(arm_file)
    if target not in skill.targets(config):  # a skill's own targets (e.g. a rack's holes) are not fixtures
        config.fixture(target)  # ConfigError naming the fixtures, before connecting
    with connect(config) as arm, recording(arm, record):
        result = skill.run(arm, target=target)
    data = {"skill": skill.name, "arm": config.name, **result.summary()}
    if record is not None:
        data["video"] = str(record)
    return data


def episode_record(skill: Skill, arm: Any, index: int, seed: int, targets: list[str],
                   videos: Path | None = None) -> dict[str, Any]:
    """Episode ``index`` on a connected simulated arm, as its summary record (a video into ``videos``)."""
    with recording(arm, None if videos is None else videos / f"episode_{index + 1:03d}.mp4"):
        ran = run_episode(skill, arm, index, seed, targets)
    record = ran.result.summary()
    if not ran.started:
        record["measured_by"] = "simulator truth"
    return record


def evaluate(skill_name: str | Skill, arm_file: str | Path | ArmConfig, episodes: int, seed: int = 0,
             weights: str | Path | None = None, progress: Callable[[int, dict], None] | None = None,
             settings: dict[str, Any] | None = None, record: str | Path | None = None, workers: int = 1,
             address: str | None = None) -> dict[str, Any]:
    """Run ``episodes`` randomized simulated episodes; success rate and error statistics.

    Args:
        skill_name: A registered skill name (or a loaded ``Skill``).
        arm_file: A simulated arm's file (``driver: mujoco``): errors come from the simulator.
        episodes: Number of episodes; targets cycle through the fixtures the skill accepts.
        seed: Seeds the episodes' starts and the simulator's per-episode noise.
        weights: Base-policy weights folder (default: the skill's shipped weights).
        progress: Called after each episode with its index and its result summary.
        settings: Skill settings by name (``Skill.configure``).
        record: A folder for one video per episode (``episode_NNN.mp4``).
        workers: Simulators running episodes side by side (``rmskill[ray]``): this process's and
            ``workers`` - 1 Ray actors, which join as they start; the results are the same, episode for
            episode, as with 1 (in this process, no Ray).
        address: The Ray cluster to join when ``workers`` > 1 (default: a local Ray started here).
    """

    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}")
    check_workers(workers)
    skill = _skill(skill_name, weights)
    if settings:
        skill.configure(**settings)
    config = load_arm_config(arm_file)
    targets = episode_targets(skill, config)  # a ConfigError before connecting
    videos = None if record is None else Path(record)
    wall = time.perf_counter()
    if workers == 1:
        records = list(_in_process(skill, config, episodes, seed, targets, videos, progress))
    else:
        records = _on_workers(skill, config, episodes, seed, targets, videos, progress, workers, address)
    return {"skill": skill.name, "arm": config.name, "seed": seed, **summarize(records),
            "measured_by": records[0]["measured_by"], "wall_s": time.perf_counter() - wall}


@contextlib.contextmanager
def _simulated(config: ArmConfig) -> Iterator[Any]:
    """The arm connected, or a one-line ``SkillError`` if it is not simulated (evaluation reads its truth)."""
    from rmskill.connect import connect

    with connect(config) as arm:
        if arm.sim is None:
            raise SkillError(f"evaluation needs a simulated arm; '{config.name}' uses driver '{config.driver}'")
        yield arm


def _in_process(skill: Skill, config: ArmConfig, episodes: int, seed: int, targets: list[str],
                videos: Path | None, progress: Callable[[int, dict], None] | None) -> Iterator[dict[str, Any]]:
    with _simulated(config) as arm:
        for i in range(episodes):
            record = episode_record(skill, arm, i, seed, targets, videos)
            if progress is not None:
                progress(i, record)
            yield record


def _on_workers(skill: Skill, config: ArmConfig, episodes: int, seed: int, targets: list[str],
                videos: Path | None, progress: Callable[[int, dict], None] | None, workers: int,
                address: str | None) -> list[dict[str, Any]]:
    """The episodes in this process and on ``workers`` - 1 Ray actors; progress as each arrives, the
    records in episode order. This process starts on the episodes at once and the actors join as they
    come up, so their start (seconds: importing torch and MuJoCo) is not time lost."""
    import torch

    from rmskill.workers import WorkerPool

    if episodes < 2:
        return list(_in_process(skill, config, episodes, seed, targets, videos, progress))
    done: dict[int, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core here, as each actor has: side by side they must not fight
    try:
        with WorkerPool(skill, config, seed, targets, min(workers, episodes) - 1, address=address, videos=videos,
                        wait_open=False) as pool, _simulated(config) as arm:
            here = lambda i: (i, episode_record(skill, arm, i, seed, targets, videos))  # noqa: E731
            for index, record in pool.run(range(episodes), local=here):
                done[index] = record
                if progress is not None:
                    progress(index, record)
    finally:
        torch.set_num_threads(threads)
    return [done[i] for i in range(episodes)]
