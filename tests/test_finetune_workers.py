"""Fine-tuning on several simulated cells (``finetune --workers N``): every episode written once with its
cell, a run interrupted on workers resumes (on any worker count) without losing or repeating one, and
without Ray the option is refused in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rmskill import cli
from rmskill.errors import ConfigError, Interrupted
from rmskill.evaluate import evaluate
from rmskill.finetune import finetune
from rmskill.learning.episodes import EpisodeStore

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / "examples" / "arms" / "sim-ur5e-perturbed.yaml"


@pytest.fixture(scope="module")
def ray_up():
    """One local Ray for the module's runs (a pool uses the caller's Ray and leaves it running)."""
    pytest.importorskip("ray", reason="finetune --workers needs Ray: pip install 'rmskill[ray]'")
    from rmskill.workers import start_local_ray

    ray = start_local_ray(2)
    yield ray
    ray.shutdown()


def _indices(out: Path) -> list[int]:
    return sorted(r.get("index", r["episode"] - 1) for r in EpisodeStore(out).records())


def test_two_cells_write_every_episode_once_with_its_cell(ray_up, tmp_path):
    out = tmp_path / "run"
    data = finetune("plate_placement", ARM, "role-model", 5, out, workers=2, checkpoint_every=2)
    records = EpisodeStore(out).records()
    assert [r["episode"] for r in records] == [1, 2, 3, 4, 5]
    assert _indices(out) == [0, 1, 2, 3, 4]  # each episode index once, whatever order they finished in
    assert {r["cell"] for r in records} == {0, 1}  # both cells contributed
    # the policy an episode was acted with: the learner after that many episodes; its lag, those learned since
    assert all(r["lag"] == k - r["policy_version"] >= 0 for k, r in enumerate(records))
    assert data["workers"] == 2 and data["episodes"] == 5
    assert data["mean_policy_lag"] == pytest.approx(sum(r["lag"] for r in records) / 5)
    run = json.loads((out / "run.json").read_text())
    assert run["workers"] == 2 and len(set(run["cell_seeds"])) == 2
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 5
    report = evaluate("plate_placement", ARM, 2, weights=out)  # the run directory is a weights folder
    assert report["episodes"] == 2
    assert not list(out.glob(".*"))


def test_interrupted_on_workers_resumes_each_episode_once_on_any_worker_count(ray_up, tmp_path):
    """Interrupted after 3 written episodes (the one in flight is lost), resumed in this process to 5,
    then on two cells to 6: episodes 1..6, indices 0..5, each exactly once."""
    out = tmp_path / "run"

    def stop_at_three(i: int, record: dict) -> None:
        if i + 1 == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"3 finished episodes are saved.*--workers 2 --resume"):
        finetune("plate_placement", ARM, "role-model", 6, out, workers=2, progress=stop_at_three)
    assert len(EpisodeStore(out).records()) == 3
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 3
    finetune("plate_placement", ARM, "role-model", 5, out, resume=True)  # one worker: the gaps are filled
    assert _indices(out) == [0, 1, 2, 3, 4]
    finetune("plate_placement", ARM, "role-model", 6, out, resume=True, workers=2)
    records = EpisodeStore(out).records()
    assert [r["episode"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert _indices(out) == [0, 1, 2, 3, 4, 5]
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 6


def test_workers_without_ray_are_refused_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["rmskill", "finetune", "plate_placement", "--arm", str(ARM), "--episodes", "2",
                                      "--out", str(out), "--workers", "2"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "pip install 'rmskill[ray]'" in err and "--workers 2" in err
    assert not out.exists()  # refused before anything was written
    with pytest.raises(ConfigError, match=r"pip install 'rmskill\[ray\]'"):
        finetune("plate_placement", ARM, "role-model", 2, out, workers=2)


def test_address_without_workers_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["rmskill", "finetune", "plate_placement", "--arm", str(ARM), "--episodes", "2",
                                      "--out", str(tmp_path / "run"), "--address", "auto"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--address is the Ray cluster for --workers" in err, err


def test_an_episode_lost_in_flight_is_collected_on_resume(tmp_path):
    """A log as a run on workers leaves it when episode index 1 was in flight at the interruption:
    indices 0 and 2 written. Resumed in this process, index 1 is collected, as episode 3."""
    out = tmp_path / "run"
    finetune("plate_placement", ARM, "role-model", 2, out)
    lines = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    lines[0]["index"], lines[1]["index"] = 0, 2
    (out / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    finetune("plate_placement", ARM, "role-model", 3, out, resume=True)
    records = EpisodeStore(out).records()
    assert [r["episode"] for r in records] == [1, 2, 3]
    assert [r.get("index") for r in records] == [0, 2, 1]
