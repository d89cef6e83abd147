"""The command line as an integrator meets it: help, drivers, check-driver, one-line errors."""

import json
import subprocess
import sys

import pytest


def rmskill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmskill.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands():
    r = rmskill("--help")
    assert r.returncode == 0
    for command in ("info", "drivers", "check-driver"):
        assert command in r.stdout


def test_drivers_json():
    r = rmskill("drivers", "--json")
    assert r.returncode == 0
    rows = {(row["kind"], row["name"]): row for row in json.loads(r.stdout)}
    assert rows[("driver", "mujoco")]["available"]


@pytest.mark.parametrize("arm", ["sim-ur5e.yaml", "sim-fr3.yaml"])
def test_check_driver_passes_on_the_simulator(arm):
    r = rmskill("check-driver", f"examples/arms/{arm}", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"]
    names = [c["name"] for c in report["checks"]]
    assert names == ["connect", "state", "move_to", "servo", "stop", "refuse_workspace", "refuse_nan", "gripper",
                     "close"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: x\ndriver: mujoco\nmodel: ur5e\nspeed: 3\n", "key 'speed': unknown key"),
        ("name: x\ndriver: kuka\nmodel: kr6\n", "unknown driver 'kuka'"),
        ("name: x\ndriver: mujoco\nmodel: ur10\n", "model 'ur10' is not simulated"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, content, needle):
    path = tmp_path / "arm.yaml"
    path.write_text(content)
    r = rmskill("check-driver", str(path))
    assert r.returncode != 0
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    debug = rmskill("check-driver", str(path), "--debug")
    assert "Traceback" in debug.stderr


def test_render(tmp_path):
    out = tmp_path / "cell.png"
    r = rmskill("info", "--arm", "examples/arms/sim-ur5e.yaml", "--render", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["render"] == str(out)
    assert out.stat().st_size > 10000


def test_output_conventions_and_flags_anywhere(tmp_path):
    """--arm for check-driver, -v after the command, only JSON on stdout with --json, a table otherwise."""
    r = rmskill("check-driver", "--arm", "examples/arms/sim-ur5e.yaml", "--json", "-v")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"]
    assert "arm stopped" not in r.stderr  # the suite's own expected refusals are not warnings
    r = rmskill("run", "plate_placement", "--arm", "examples/arms/sim-ur5e.yaml", "--target", "shelf_1")
    assert r.returncode == 0, r.stderr
    assert "success" in r.stdout and "True" in r.stdout and not r.stdout.lstrip().startswith("{")
    r = rmskill("check-driver", "--help")
    assert "[s]" in r.stdout and "<bool>" not in r.stdout  # units survive, no markup eaten
    r = rmskill("eval", "plate_placement", "--arm", "examples/arms/sim-ur5e.yaml", "--weights",
                "examples/arms/sim-ur5e.yaml")
    assert r.returncode == 1 and "is another file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_in_eval_keeps_the_finished_episodes():
    import os
    import signal
    import time

    cmd = [sys.executable, "-m", "rmskill.cli", "eval", "plate_placement", "--arm", "examples/arms/sim-ur5e.yaml",
           "--episodes", "200", "--json"]
    # SIGINT back to its default in the child: a suite started in the background (`cmd &`) has it
    # ignored, and Python then never turns it into KeyboardInterrupt
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(10)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    report = json.loads(out)
    done = report["episodes"]
    assert 1 <= done < 200 and f"interrupted after {done} of 200 episodes" in err
