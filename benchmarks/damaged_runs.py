"""What a damaged fine-tuning run directory does on ``--resume`` and at load: never silent loss or use.

    python benchmarks/damaged_runs.py [--kills 10] [--episodes 6]

Builds one short role-model run on the perturbed UR5e, then damages copies of it (a torn line in
the middle of episodes.jsonl, a torn last line, a missing episode file, a flipped byte in the
weights, a torn run.json, weights used on another arm) and SIGKILLs fresh runs at random moments,
resuming each. Prints one row per case: what happened.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / "examples" / "arms" / "sim-ur5e-perturbed.yaml"
OTHER = ROOT / "examples" / "arms" / "sim-fr3-perturbed.yaml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmskill.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def finetune_args(out: Path, episodes: int) -> list[str]:
    return ["finetune", "plate_placement", "--arm", str(ARM), "--method", "role-model", "--episodes", str(episodes),
            "--out", str(out)]


def last_line(r: subprocess.CompletedProcess) -> str:
    lines = [x for x in r.stderr.strip().splitlines() if not x.startswith(("finetune", "eval "))]
    return (lines[-1] if lines else "").strip()[:150]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=6)
    args = parser.parse_args()
    from rmskill.errors import RunDamaged
    from rmskill.learning.episodes import EpisodeStore

    work = Path(tempfile.mkdtemp(prefix="rmskill-damage-"))
    os.environ["RMSKILL_HOME"] = str(work / "home")
    source = work / "source"
    r = cli(*finetune_args(source, 3), "--json")
    assert r.returncode == 0, r.stderr
    rows = []

    def case(name: str, damage, command: list[str]) -> None:
        out = work / name.replace(" ", "_")
        shutil.copytree(source, out)
        damage(out)
        r = cli(*[str(out) if a == "{out}" else a for a in command])
        try:
            records = str(len(EpisodeStore(out).records()))
        except RunDamaged:
            records = "(damaged: as it was)"
        rows.append((name, r.returncode, records, last_line(r)))

    def torn_middle(out: Path) -> None:
        lines = (out / "episodes.jsonl").read_text().splitlines()
        lines[1] = lines[1][:30]
        (out / "episodes.jsonl").write_text("\n".join(lines) + "\n")

    def torn_last(out: Path) -> None:
        with open(out / "episodes.jsonl", "a") as f:
            f.write('{"episode": 4, "file": "epi')

    def flip(out: Path) -> None:
        raw = bytearray((out / "residual.safetensors").read_bytes())
        raw[-5] ^= 0xFF
        (out / "residual.safetensors").write_bytes(bytes(raw))

    resume = [*finetune_args(Path("{out}"), 5), "--resume"]
    case("torn middle line", torn_middle, resume)
    case("torn last line", torn_last, resume)
    case("missing npz", lambda out: (out / "episodes" / "000002.npz").unlink(), resume)
    case("flipped weights byte", flip, ["eval", "plate_placement", "--arm", str(ARM), "--episodes", "2",
                                        "--weights", "{out}"])
    case("torn run.json", lambda out: (out / "run.json").write_text('{"skill": "plate_pl'), resume)
    case("another arm's weights", lambda out: None, ["eval", "plate_placement", "--arm", str(OTHER), "--episodes",
                                                     "2", "--weights", "{out}"])
    rng = random.Random(0)
    for k in range(args.kills):
        out = work / f"kill{k}"
        proc = subprocess.Popen([sys.executable, "-m", "rmskill.cli", *finetune_args(out, args.episodes)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        time.sleep(rng.uniform(2.0, 12.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = EpisodeStore(out).records() if (out / "episodes.jsonl").exists() else []
        r = cli(*finetune_args(out, args.episodes), "--resume") if (out / "run.json").exists() else \
            cli(*finetune_args(out, args.episodes))
        after = EpisodeStore(out).records()
        ok = ([x["episode"] for x in after] == list(range(1, args.episodes + 1)) and after[:len(before)] == before
              and not list(out.glob(".*")) and not list((out / "episodes").glob(".*")))
        rows.append((f"SIGKILL {k + 1} (after {len(before)} episodes)", r.returncode, len(after),
                     "resumed: every episode 1..N once, none lost or rewritten" if ok else "MISMATCH"))
    print("| case | exit | episodes on disk after | what it said |")
    print("|---|---|---|---|")
    for name, code, n, said in rows:
        print(f"| {name} | {code} | {n} | {said.replace('|', '/')} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
