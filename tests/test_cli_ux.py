"""The CLI's pictures and formats: ``report``, ``export``, ``run --record``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runs import make_run


def rmskill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmskill.cli", *args], capture_output=True, text=True, timeout=300)


def test_report_and_export_commands(tmp_path):
    pytest.importorskip("matplotlib", reason="needs the 'plot' extra (matplotlib)")
    pytest.importorskip("pyarrow", reason="needs the 'lerobot' extra (pyarrow, pandas)")
    run = make_run(tmp_path / "run", episodes=3)
    r = rmskill("report", str(run), "--out", str(tmp_path / "page.html"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["out"] == str(tmp_path / "page.html")
    r = rmskill("export", str(run), "--format", "lerobot", "--out", str(tmp_path / "ds"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["episodes"] == 3
    r = rmskill("export", str(run), "--format", "rlds", "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and "unknown export format 'rlds' (formats: lerobot)" in r.stderr


def test_run_record_with_a_bad_target_writes_nothing(tmp_path):
    r = rmskill("run", "plate_placement", "--arm", "examples/arms/sim-ur5e.yaml", "--target", "nowhere",
                "--record", str(tmp_path / "v.mp4"))
    assert r.returncode == 1 and "nowhere" in r.stderr and not (tmp_path / "v.mp4").exists()
