"""Evaluation over Ray actors (``--workers N``): the same episodes as in one process, or a one-line refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmskill import cli
from rmskill.calibration_store import CalibrationStore
from rmskill.config import load_arm_config
from rmskill.errors import ConfigError
from rmskill.evaluate import evaluate
from rmskill.workers import start_local_ray

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"
EPISODES = 8


def _without_wall(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "wall_s"}


def test_two_workers_equal_one_episode_for_episode(monkeypatch, tmp_path):
    """Also through the calibration store: shelf_1 and shelf_2 calibrated 10 mm off their true places fail in
    this process, and must fail the same way in the actors, which read the driver's RMSKILL_HOME even on
    a Ray started (by the caller, here) while another was set. This process runs episodes beside the
    actor, from the start: slowed down here, so that the actor joins and runs most of them."""
    pytest.importorskip("ray")
    import rmskill.evaluate as evaluation
    arm = ARMS / "sim-ur5e.yaml"
    config = load_arm_config(arm)
    for nest in ("shelf_1", "shelf_2"):
        off = list(config.fixtures[nest].pose)
        off[0] += 0.010
        CalibrationStore(config.name).save_entry("fixtures", {"pose": off}, name=nest)
    one = evaluate("plate_placement", arm, EPISODES, seed=11)
    assert [r["success"] for r in one["per_episode"]] == [r["target"] == "shelf_3" for r in one["per_episode"]]
    arrived: list[int] = []
    home = os.environ["RMSKILL_HOME"]
    monkeypatch.setenv("RMSKILL_HOME", str(tmp_path / "another-home"))
    ray = start_local_ray(2)  # Ray's processes inherit the other home
    monkeypatch.setenv("RMSKILL_HOME", home)
    here: list[int] = []
    record = evaluation.episode_record

    def slow_here(skill, arm, index, *args):  # the actors import their own, unpatched
        here.append(index)
        time.sleep(2.0)
        return record(skill, arm, index, *args)

    monkeypatch.setattr(evaluation, "episode_record", slow_here)
    try:
        two = evaluate("plate_placement", arm, EPISODES, seed=11, workers=2,
                       progress=lambda i, r: arrived.append(i))
        assert ray.is_initialized()  # the caller's Ray is left running
    finally:
        ray.shutdown()
    assert sorted(arrived) == list(range(EPISODES))  # the progress callback saw each episode once, as it came
    on_actor = sorted(set(range(EPISODES)) - set(here))
    assert here and here[0] == 0 and len(on_actor) >= 3, (here, on_actor)  # both ran
    assert {"shelf_1", "shelf_2"} & {one["per_episode"][i]["target"] for i in on_actor}  # a nest it must miss
    assert two["per_episode"] == one["per_episode"]  # same metrics, same order
    assert _without_wall(two) == _without_wall(one)


def test_cli_json_is_the_same_with_workers():
    pytest.importorskip("ray")

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rmskill.cli", "eval", "plate_placement", "--arm",
                               str(ARMS / "sim-ur5e.yaml"), "--episodes", "3", "--seed", "2", "--json", *extra],
                              capture_output=True, text=True, timeout=240)

    one, two = run(), run("--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert _without_wall(json.loads(two.stdout)) == _without_wall(json.loads(one.stdout))
    assert "WARNING" not in two.stderr and "Traceback" not in two.stderr, two.stderr


def test_workers_without_ray_are_refused_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.setattr(sys, "argv", ["rmskill", "eval", "plate_placement", "--arm", str(ARMS / "sim-ur5e.yaml"),
                                      "--episodes", "2", "--workers", "2"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1  # as every other bad input
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "pip install 'rmskill[ray]'" in err and "--workers 2" in err
    with pytest.raises(ConfigError, match=r"pip install 'rmskill\[ray\]'"):
        evaluate("plate_placement", ARMS / "sim-ur5e.yaml", 2, workers=2)


def test_one_worker_needs_no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    report = evaluate("plate_placement", ARMS / "sim-ur5e.yaml", 1, workers=1)
    assert report["episodes"] == 1


@pytest.mark.parametrize(("args", "needle"), [(["--workers", "0"], "--workers must be at least 1, got 0"),
                                              (["--address", "auto"], "--address is the Ray cluster for --workers")])
def test_bad_worker_options_are_one_line(monkeypatch, capsys, args, needle):
    monkeypatch.setattr(sys, "argv", ["rmskill", "eval", "plate_placement", "--arm", str(ARMS / "sim-ur5e.yaml"),
                                      "--episodes", "2", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_an_interrupted_run_on_workers_names_its_failures_by_episode():
    """Episodes on workers finish out of order: a partial summary counts failures by episode index."""
    from rmskill.evaluate import summarize

    ok = {"success": True, "translation_error_mm": 0.1, "rotation_error_deg": 0.1, "peak_force_n": 5.0,
          "duration_s": 1.0, "target": "shelf_1", "message": ""}
    failed = {**ok, "success": False, "message": "not seated"}
    summary = summarize([ok, failed], [0, 3])
    assert summary["failures"] == [{"episode": 3, "target": "shelf_1", "message": "not seated"}]
    assert summarize([ok, failed])["failures"][0]["episode"] == 1
