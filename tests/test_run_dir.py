"""Fine-tuning run directories that survive damage: nothing lost silently, nothing used silently."""

from __future__ import annotations

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
from rmskill.errors import RunDamaged, SkillError
from rmskill.finetune import finetune
from rmskill.learning.episodes import Episode, EpisodeStore

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / "examples" / "arms" / "sim-ur5e-perturbed.yaml"


def _fill(store: EpisodeStore, n: int) -> None:
    rng = np.random.default_rng(0)
    for k in range(n):
        store.append(Episode(rng.normal(size=(5, 3)), np.zeros((5, 2)), np.zeros((5, 2)), 0.1 * k), {"target": "a"})


def test_torn_last_line_is_cut_and_reported_and_numbering_goes_on(tmp_path, caplog):
    store = EpisodeStore(tmp_path)
    _fill(store, 3)
    with open(store.index, "a") as f:
        f.write('{"episode": 4, "fi')  # a kill mid-write
    assert [r["episode"] for r in store.records()] == [1, 2, 3]
    with pytest.raises(RunDamaged, match="repair"):
        _fill(store, 1)
    store.repair()
    assert "torn last line" in caplog.text
    _fill(store, 2)
    assert [r["episode"] for r in store.records()] == [1, 2, 3, 4, 5]
    assert store.records()[3]["file"] == "episodes/000004.npz"


def test_a_bad_line_in_the_middle_is_refused_naming_it(tmp_path):
    store = EpisodeStore(tmp_path)
    _fill(store, 4)
    lines = store.index.read_text().splitlines()
    lines[1] = lines[1][:20]  # torn in the middle
    store.index.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunDamaged, match=r"line 2 is not episode 2's record"):
        store.repair()
    with pytest.raises(RunDamaged, match="line 2"):
        _fill(store, 1)  # never appended over the damage


def test_a_missing_episode_file_is_refused_naming_it(tmp_path):
    store = EpisodeStore(tmp_path)
    _fill(store, 3)
    (tmp_path / "episodes" / "000002.npz").unlink()
    with pytest.raises(RunDamaged, match=r"000002\.npz \(episode 2\) is missing"):
        store.repair()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tuned") / "run"
    finetune("plate_placement", ARM, "role-model", 2, out, checkpoint_every=1)
    return out


def test_weights_carry_their_digests_and_damage_is_refused(tuned, tmp_path):
    manifest = json.loads((tuned / "manifest.json").read_text())
    assert set(manifest["sha256"]) == {"base.safetensors", "residual.safetensors"}
    rmskill.load_skill("plate_placement", weights=tuned)  # intact: loads
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in tuned.glob("*.*"):
        (damaged / f.name).write_bytes(f.read_bytes())
    raw = bytearray((damaged / "residual.safetensors").read_bytes())
    raw[-3] ^= 0xFF  # one flipped byte in the tensors
    (damaged / "residual.safetensors").write_bytes(bytes(raw))
    with pytest.raises(SkillError, match=r"residual\.safetensors is damaged"):
        rmskill.load_skill("plate_placement", weights=damaged)


def test_weights_for_another_arm_are_refused_unless_allowed(tuned):
    skill = rmskill.load_skill("plate_placement", weights=tuned)
    with rmskill.connect(ROOT / "examples" / "arms" / "sim-fr3-perturbed.yaml") as arm:
        before = arm.state()
        with pytest.raises(SkillError, match=r"arm 'sim-ur5e-perturbed'.*model 'ur5e'.*--allow-other-arm"):
            skill.run(arm, "shelf_1")
        assert arm.state().time == before.time  # nothing moved
        skill.allow_other_arm = True
        skill.check_weights(arm)


def test_a_torn_run_json_is_one_line(tuned, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for f in tuned.iterdir():
        if f.is_file():
            (out / f.name).write_bytes(f.read_bytes())
    (out / "episodes").mkdir()
    for f in (tuned / "episodes").iterdir():
        (out / "episodes" / f.name).write_bytes(f.read_bytes())
    (out / "run.json").write_text('{"skill": "plate_pl')
    with pytest.raises(RunDamaged, match=r"run\.json cannot be read"):
        finetune("plate_placement", ARM, "role-model", 3, out, resume=True)


def test_a_resumed_run_is_the_run_that_was_interrupted(tmp_path):
    """Two episodes, then a resume to four, give the same episodes and weights as four at once: the
    exploration comes from (seed, episode), the learner is rebuilt by replay, and a simulated episode
    does not depend on what ran before it."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    finetune("plate_placement", ARM, "role-model", 4, straight, checkpoint_every=2)
    finetune("plate_placement", ARM, "role-model", 2, resumed, checkpoint_every=2)
    finetune("plate_placement", ARM, "role-model", 4, resumed, resume=True, checkpoint_every=2)
    a, b = EpisodeStore(straight).records(), EpisodeStore(resumed).records()
    assert [r["noise"] for r in a] == [r["noise"] for r in b]
    assert [r["reward"] for r in a] == [r["reward"] for r in b]
    assert (straight / "residual.safetensors").read_bytes() == (resumed / "residual.safetensors").read_bytes()


def test_ctrl_c_saves_what_finished_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rmskill.cli", "finetune", "plate_placement", "--arm", str(ARM), "--method",
           "role-model", "--episodes", "30", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "200"},  # SIGINT default, as in test_cli's
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(EpisodeStore(out).records()) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    saved = EpisodeStore(out).records()
    assert 2 <= len(saved) < 30
    assert f"{len(saved)} finished episodes are saved in {out}" in err and "--resume" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["episodes"] == len(saved)  # the corrector of every saved episode is checkpointed
    assert not list(out.glob(".*"))
