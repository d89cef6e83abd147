"""A fine-tuning run as a LeRobot dataset (``rmskill export RUN_DIR --format lerobot --out DIR``).

LeRobot's dataset format v3.0 (``LeRobotDataset``, lerobot >= 0.4): every frame of every episode in
``data/chunk-000/file-000.parquet``, one row per episode in ``meta/episodes/chunk-000/file-000.parquet``,
the task strings in ``meta/tasks.parquet``, feature statistics in ``meta/stats.json`` and the
schema in ``meta/info.json``. A frame is one learned control step of the skill, at ``spec.rate_hz``:

    observation.state  the skill's observation, named as its spec declares (raw units)
    action             the action executed, normalised to [-1, 1] (base policy + correction)
    base_action        the frozen base policy's action; ``correction`` what was added on top
    next.reward        the episode's reward on its last frame, 0 before (the run's reward source)
    next.done          True on the last frame; ``next.success`` the run's verdict on the last frame

The task of an episode is ``"<skill> to <target>"``. Units, the run's settings and each episode's
record (truth, measurements) go to ``meta/rmskill.json``: LeRobot's schema has no place for them.
Needs pyarrow and pandas (the ``lerobot`` extra); LeRobot itself is not needed to write.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.errors import ConfigError
from rmskill.learning.episodes import EpisodeStore
from rmskill.storage import plain

CODEBASE_VERSION = "v3.0"
FORMATS = ("lerobot",)
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


def _libraries():
    try:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("exporting a LeRobot dataset needs pyarrow and pandas; "
                          "pip install 'rmskill[lerobot]'") from None
    return pa, pq, pd


def _read_run(run_dir: Path) -> dict[str, Any]:
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except OSError:
        raise ConfigError(f"{run_dir} is not a fine-tuning run directory (no run.json)") from None
    except ValueError as err:
        raise ConfigError(f"{run_dir / 'run.json'} cannot be read ({err})") from None
    return run


def _stats(values: np.ndarray) -> dict[str, list]:
    v = values.astype(np.float64).reshape(len(values), -1)
    q = {f"q{int(p * 100):02d}": np.quantile(v, p, axis=0).tolist() for p in (0.01, 0.10, 0.50, 0.90, 0.99)}
    return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(), "count": [len(v)], **q}


def export_lerobot(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the episodes of the run in ``run_dir`` to ``out`` as a LeRobot v3.0 dataset; a summary.

    Episodes without a learned step (a start refused, a fault before the policy took over) are left
    out and counted. ``out`` must not exist unless ``overwrite``.
    """
    from rmskill.skill import skill_class

    pa, pq, pd = _libraries()
    run_dir, out = Path(run_dir), Path(out)
    run = _read_run(run_dir)
    spec = skill_class(run["skill"]).spec
    store = EpisodeStore(run_dir)
    records = store.records()
    if not records:
        raise ConfigError(f"{run_dir} holds no finished episode to export")
    if out.exists():
        if not overwrite:
            raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite")
        shutil.rmtree(out)
    obs_names, act_names = spec.observation.names, spec.action.names
    fps = int(spec.rate_hz) if float(spec.rate_hz).is_integer() else float(spec.rate_hz)

    tasks: dict[str, int] = {}
    columns: dict[str, list] = {k: [] for k in ("observation.state", "action", "base_action", "correction",
                                                 "timestamp", "frame_index", "episode_index", "index",
                                                 "task_index", "next.reward", "next.done", "next.success")}
    episodes: dict[str, list] = {k: [] for k in ("episode_index", "tasks", "length", "data/chunk_index",
                                                 "data/file_index", "dataset_from_index", "dataset_to_index",
                                                 "meta/episodes/chunk_index", "meta/episodes/file_index")}
    kept: list[dict[str, Any]] = []
    skipped = 0
    for record in records:
        ep = store.load(record)
        n = len(ep.obs)
        if n == 0:
            skipped += 1
            continue
        if ep.obs.shape[1] != len(obs_names) or ep.base.shape[1] != len(act_names):
            raise ConfigError(f"{run_dir / record['file']}: {ep.obs.shape[1]} observation and {ep.base.shape[1]} "
                              f"action columns, and skill '{run['skill']}' declares {len(obs_names)} and "
                              f"{len(act_names)}")
        index = len(kept)
        task = f"{run['skill']} to {record.get('target', '')}"
        task_index = tasks.setdefault(task, len(tasks))
        start = len(columns["index"])
        last = np.arange(n) == n - 1
        columns["observation.state"] += ep.obs.astype(np.float32).tolist()
        columns["action"] += ep.executed.astype(np.float32).tolist()
        columns["base_action"] += ep.base.astype(np.float32).tolist()
        columns["correction"] += ep.correction.astype(np.float32).tolist()
        columns["timestamp"] += (np.arange(n) / fps).astype(np.float32).tolist()
        columns["frame_index"] += list(range(n))
        columns["episode_index"] += [index] * n
        columns["index"] += list(range(start, start + n))
        columns["task_index"] += [task_index] * n
        columns["next.reward"] += np.where(last, float(record["reward"]), 0.0).astype(np.float32).tolist()
        columns["next.done"] += last.tolist()
        columns["next.success"] += (last & bool(record.get("success"))).tolist()
        for key, value in (("episode_index", index), ("tasks", [task]), ("length", n), ("data/chunk_index", 0),
                           ("data/file_index", 0), ("dataset_from_index", start), ("dataset_to_index", start + n),
                           ("meta/episodes/chunk_index", 0), ("meta/episodes/file_index", 0)):
            episodes[key].append(value)
        kept.append({"episode_index": index, "run_episode": record["episode"],
                     **{k: v for k, v in record.items() if k not in ("episode", "file")}})

    vector = {"observation.state": (obs_names, "float32"), "action": (act_names, "float32"),
              "base_action": (act_names, "float32"), "correction": (act_names, "float32")}
    scalar = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
              "task_index": "int64", "next.reward": "float32", "next.done": "bool", "next.success": "bool"}
    arrow = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}
    fields = [pa.field(k, pa.list_(pa.float32(), len(names))) for k, (names, _) in vector.items()]
    fields += [pa.field(k, arrow[dtype]) for k, dtype in scalar.items()]
    table = pa.Table.from_pydict({f.name: columns[f.name] for f in fields}, schema=pa.schema(fields))
    data_path = out / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True)
    pq.write_table(table, data_path)
    episodes_path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pydict(episodes), episodes_path)
    pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name="task")).to_parquet(
        out / "meta" / "tasks.parquet")

    features: dict[str, Any] = {k: {"dtype": dtype, "shape": [len(names)], "names": list(names)}
                                for k, (names, dtype) in vector.items()}
    features.update({k: {"dtype": dtype, "shape": [1], "names": None} for k, dtype in scalar.items()})
    frames = len(columns["index"])
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": run.get("model"), "total_episodes": len(kept),
            "total_frames": frames, "total_tasks": len(tasks), "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(kept)}"},
            "data_path": DATA_PATH, "video_path": None, "features": features}
    meta = out / "meta"
    (meta / "info.json").write_text(json.dumps(info, indent=2))
    stats = {k: _stats(np.asarray(columns[k], dtype=float)) for k in (*vector, "next.reward")}
    (meta / "stats.json").write_text(json.dumps(stats, indent=2))
    units = {"observation.state": dict(zip(obs_names, spec.observation.units, strict=True)),
             "action": dict(zip(act_names, ("1",) * len(act_names), strict=True)),
             "action_scale": dict(zip(act_names, spec.action_scale, strict=True)),
             "action_scale_units": dict(zip(act_names, spec.action.units, strict=True))}
    (meta / "rmskill.json").write_text(json.dumps(plain({"run": run, "source": str(run_dir), "units": units,
                                                         "episodes": kept}), indent=2, default=float))
    return {"out": str(out), "format": f"lerobot {CODEBASE_VERSION}", "episodes": len(kept), "frames": frames,
            "skipped_episodes": skipped, "fps": fps, "tasks": list(tasks)}


def export(run_dir: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Export a fine-tuning run in ``fmt`` (formats: ``lerobot``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}' (formats: {', '.join(FORMATS)})")
    return export_lerobot(run_dir, out, overwrite=overwrite)
