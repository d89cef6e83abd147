"""``rmskill export --format lerobot``: the LeRobot dataset v3.0 layout, and LeRobot's own loader where installed."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from rmskill.errors import ConfigError
from rmskill.skill import skill_class

pq = pytest.importorskip("pyarrow.parquet", reason="needs the 'lerobot' extra (pyarrow, pandas)")
pd = pytest.importorskip("pandas", reason="needs the 'lerobot' extra (pyarrow, pandas)")

from rmskill.export import export  # noqa: E402
from runs import make_run  # noqa: E402


@pytest.fixture
def dataset(tmp_path):
    run = make_run(tmp_path / "run", episodes=5)
    summary = export(run, "lerobot", tmp_path / "ds")
    return tmp_path / "ds", summary


def test_layout_and_features_are_named_as_the_skill_declares(dataset):
    root, summary = dataset
    spec = skill_class("plate_placement").spec
    assert summary["episodes"] == 5 and summary["frames"] == sum(5 + i for i in range(5))
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["features"]["observation.state"]["names"] == list(spec.observation.names)
    assert info["features"]["action"]["names"] == list(spec.action.names)
    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pandas()
    assert len(data) == info["total_frames"]
    assert list(data["index"]) == list(range(len(data)))
    last = data.groupby("episode_index").tail(1)
    assert last["next.done"].all() and data["next.done"].sum() == 5
    assert np.allclose(last["next.reward"], [-1.0, 0.5, -1.0, 0.5, -1.0])
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pandas()
    assert list(episodes["length"]) == [5, 6, 7, 8, 9]
    assert list(episodes["dataset_to_index"] - episodes["dataset_from_index"]) == [5, 6, 7, 8, 9]
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert tasks.loc["plate_placement to shelf_2", "task_index"] == 1
    stats = json.loads((root / "meta/stats.json").read_text())
    assert len(stats["observation.state"]["mean"]) == len(spec.observation)
    units = json.loads((root / "meta/rmskill.json").read_text())["units"]
    assert units["observation.state"]["fz_n"] == "N"


def test_refuses_an_existing_folder_and_unknown_format(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(ConfigError, match="already exists"):
        export(tmp_path / "run", "lerobot", root)
    with pytest.raises(ConfigError, match="formats: lerobot"):
        export(tmp_path / "run", "rlds", tmp_path / "other")
    with pytest.raises(ConfigError, match="not a fine-tuning run"):
        export(tmp_path, "lerobot", tmp_path / "other")


def _lerobot_dataset_class():
    """LeRobot's dataset class, or a skip saying why it cannot load here."""
    pytest.importorskip("lerobot", reason="LeRobot is not installed (pip install lerobot, Python >= 3.10)")
    try:
        import torchvision  # noqa: F401
    except RuntimeError:
        # torchvision's PyPI wheel is built against CUDA torch; beside a CPU-only torch its compiled
        # ops cannot load and its meta registrations fail at import. A dataset without images or
        # videos never calls those ops: skip only their registration.
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    try:
        from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset
    except ImportError as err:
        pytest.skip(f"LeRobot's dataset class does not import here: {err}")
    if CODEBASE_VERSION != "v3.0":
        pytest.skip(f"installed LeRobot reads datasets {CODEBASE_VERSION}, the export writes v3.0 (lerobot >= 0.4)")
    return LeRobotDataset


def test_lerobot_loads_the_export(dataset, monkeypatch):
    root, summary = dataset
    LeRobotDataset = _lerobot_dataset_class()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = LeRobotDataset("rmskill/test-export", root=root)
    assert len(ds) == summary["frames"] and ds.num_episodes == 5 and ds.fps == 50
    item = ds[7]  # episode 1, frame 2
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 2
    assert tuple(item["observation.state"].shape) == (17,) and tuple(item["action"].shape) == (4,)
    assert item["task"] == "plate_placement to shelf_2"
    assert ds.meta.features["action"]["names"] == list(skill_class("plate_placement").spec.action.names)
