"""On-site fine-tuning: episodes reach the disk one by one, a killed run resumes without losing any,
and the run directory is a weights folder the skill loads."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rmskill
from rmskill import ConfigError
from rmskill.finetune import finetune
from rmskill.learning.corrector import load_corrector
from rmskill.learning.episodes import EpisodeStore

ARM = Path("examples/arms/sim-ur5e-perturbed.yaml")


def test_killed_run_resumes_with_every_finished_episode(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rmskill.cli", "finetune", "plate_placement", "--arm", str(ARM),
           "--method", "role-model", "--episodes", "8", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(EpisodeStore(out).records()) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait()
    before = EpisodeStore(out).records()
    assert 3 <= len(before) < 8
    with pytest.raises(ConfigError, match="--resume"):
        finetune("plate_placement", ARM, "role-model", 8, out)  # refuses to overwrite
    finetune("plate_placement", ARM, "role-model", 8, out, resume=True)
    after = EpisodeStore(out).records()
    assert [r["episode"] for r in after] == list(range(1, 9))
    assert after[: len(before)] == before  # nothing finished was lost or rewritten
    for r in after:
        with np.load(out / r["file"]) as data:  # each episode readable with numpy alone
            assert data["obs"].shape[0] == data["base"].shape[0] == data["correction"].shape[0] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["episodes"] == 8 and manifest["method"] == "role-model"
    assert manifest["arm"] == "sim-ur5e-perturbed" and manifest["residual"] == "residual.safetensors"
    assert not list(out.glob(".*"))  # no half-written checkpoint or temporary file left behind


def test_run_directory_is_a_weights_folder(tmp_path):
    out = tmp_path / "run"
    finetune("plate_placement", ARM, "residual", 3, out)
    skill = rmskill.load_skill("plate_placement", weights=out)
    assert skill.residual is not None
    assert load_corrector(out) is not None
    with pytest.raises(ConfigError, match="unknown method"):
        finetune("plate_placement", ARM, "genetic", 3, tmp_path / "other")
