"""Fleet fine-tuning benchmark (issue 14): ``rmskill finetune --fleet``.

``demo``: two emulated UR5e cells (our UR emulator on 127.0.0.2 and 127.0.0.3, driven through ur_rtde;
each emulator's operator resets its cell) and one simulated FR3 fine-tune the placement together
(role model, ``--per-arm K`` episodes each; the two UR5e share one learner). The fleet's UR5e weights
are then evaluated on ``sim-ur5e-perturbed.yaml`` (the same site offsets as the emulated cells) and
its FR3 weights on ``sim-fr3-perturbed.yaml``, against one simulated UR5e fine-tuned alone with 2K
and with K episodes and the base alone (same evaluation episodes: ``--eval-episodes``, seed S+1000).
That is a transfer test (the emulated UR's force mode is not the simulated UR's impedance); the fleet's
UR5e weights on the emulated cells themselves: ``benchmarks/emulated_cell_check.py``.

    python benchmarks/bench_fleet.py demo --per-arm 40 [--eval-episodes 50] [--out runs/bench_fleet] [--simulated]

``scale``: a simulated fleet of ``--cells`` cells (copies of sim-ur5e-perturbed, one learner) on this
machine: episodes per second and the learner's lag (episodes it trained on while an episode ran).

    python benchmarks/bench_fleet.py scale --cells 8 --per-arm 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from rmskill.evaluate import evaluate
from rmskill.finetune import finetune
from rmskill.learning.episodes import EpisodeStore
from rmskill.skill import load_skill

ROOT = Path(__file__).resolve().parents[1]
ARMS = ROOT / "examples" / "arms"
FLEET = ROOT / "examples" / "fleet"
SKILL = "plate_placement"


def _eval(weights: Path | None, arm: str, episodes: int, seed: int) -> dict:
    skill = load_skill(SKILL, weights=weights)
    skill.allow_other_arm = True  # the fleet's weights name the emulated arms; the site is the same
    result = evaluate(skill, ARMS / f"sim-{arm}-perturbed.yaml", episodes, seed=seed + 1000)
    t = result["translation_error_mm"]
    return {"success": result["success_rate"], "transl_mean_mm": t["mean"], "transl_p95_mm": t["p95"]}


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def demo(args: argparse.Namespace) -> None:
    from rmskill.drivers.ur.emulator import EmulatorProcess

    out, k, seed = args.out, args.per_arm, args.seed
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    print(f"# start: {_load()}", flush=True)
    fleet_dir = out / "fleet"
    resume = args.reuse and (fleet_dir / "run.json").exists()  # an interrupted fleet run goes on
    if not (resume and (out / "fleet-summary.json").exists()):
        if not resume:
            shutil.rmtree(fleet_dir, ignore_errors=True)
        if args.simulated:  # the same fleet with two simulated UR5e cells: no emulator, no real time
            arms = [ARMS / "sim-ur5e-perturbed.yaml"] * 2 + [ARMS / "sim-fr3-perturbed.yaml"]
            fleet_file = _fleet_file(out / "fleet-sim", arms)
            emulators: list = []
        else:
            fleet_file = FLEET / "fleet.yaml"
            emulators = [EmulatorProcess(FLEET / "emulated-ur5e-a.yaml", host="127.0.0.2"),
                         EmulatorProcess(FLEET / "emulated-ur5e-b.yaml", host="127.0.0.3")]
        try:
            for emulator in emulators:
                emulator.start()
            t0 = time.perf_counter()
            data = finetune(SKILL, None, "role-model", k, fleet_dir, seed=seed, fleet=fleet_file, resume=resume)
            wall = time.perf_counter() - t0
        finally:
            for emulator in emulators:
                emulator.stop()
        (out / "fleet-summary.json").write_text(json.dumps({**data, "wall_s": wall, "resumed": resume}, indent=2,
                                                           default=float))
        print(f"# fleet: {k} episodes per arm in {wall:.0f} s (this call{', resumed' if resume else ''}); "
              f"{_load()}", flush=True)
    summary = json.loads((out / "fleet-summary.json").read_text())
    for cell, c in summary["cells"].items():
        mine = [r for r in EpisodeStore(fleet_dir / c["model"]).records() if r["cell"] == cell]
        walls = [r["wall_s"] for r in mine]
        print(f"# {cell}: {len(mine)} episodes, {np.mean(walls):.1f} s each (mean), arm-measured success "
              f"{c['reward_success_rate']:.0%}, last 10 {np.mean([r['success'] for r in mine[-10:]]):.0%}")
    print(f"# fleet wall {summary['wall_s']:.0f} s, mean policy lag {summary['mean_policy_lag']:.2f} episodes")
    ur_total = 2 * k
    kind = "simulated" if args.simulated else "emulated"
    rows.append({"arm": "ur5e", "run": f"fleet (2 {kind} UR5e + sim FR3)", "per_arm": k, "ur5e_total": ur_total,
                 **_eval(fleet_dir / "ur5e", "ur5e", args.eval_episodes, seed)})
    rows.append({"arm": "fr3", "run": f"fleet (2 {kind} UR5e + sim FR3)", "per_arm": k, "ur5e_total": ur_total,
                 **_eval(fleet_dir / "fr3", "fr3", args.eval_episodes, seed)})
    for n in (2 * k, k):
        run_dir = out / f"single-ur5e-{n}"
        if not (args.reuse and (run_dir / "manifest.json").exists()):
            shutil.rmtree(run_dir, ignore_errors=True)
            finetune(SKILL, ARMS / "sim-ur5e-perturbed.yaml", "role-model", n, run_dir, seed=seed)
        rows.append({"arm": "ur5e", "run": "one simulated UR5e", "per_arm": n, "ur5e_total": n,
                     **_eval(run_dir, "ur5e", args.eval_episodes, seed)})
    for arm in ("ur5e", "fr3"):
        rows.append({"arm": arm, "run": "base alone", "per_arm": 0, "ur5e_total": 0,
                     **_eval(None, arm, args.eval_episodes, seed)})
    (out / "demo-rows.json").write_text(json.dumps(rows, indent=2, default=float))
    print(f"# end: {_load()}")
    print("| arm (evaluated on sim-*-perturbed) | fine-tuned by | episodes per arm | UR5e episodes in all | success "
          "| transl. mean mm | transl. p95 mm |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['arm']} | {r['run']} | {r['per_arm']} | {r['ur5e_total'] if r['arm'] == 'ur5e' else '-'} "
              f"| {r['success']:.0%} | {r['transl_mean_mm']:.2f} | {r['transl_p95_mm']:.2f} |")
    print(f"(evaluation: {args.eval_episodes} episodes, seed {seed + 1000})")


def _fleet_file(folder: Path, arm_files: list[Path]) -> Path:
    """A fleet file in ``folder`` of copies of ``arm_files``, each renamed ``cell-K`` (arm names differ)."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "arms").mkdir(parents=True)
    cells = []
    for c, arm_file in enumerate(arm_files):
        data = yaml.safe_load(arm_file.read_text())
        (folder / "arms" / f"cell-{c}.yaml").write_text(yaml.safe_dump({**data, "name": f"cell-{c}-{data['model']}"}))
        cells.append({"arm": f"arms/cell-{c}.yaml"})
    (folder / "fleet.yaml").write_text(yaml.safe_dump({"name": folder.name, "cells": cells}))
    return folder / "fleet.yaml"


def scale(args: argparse.Namespace) -> None:
    out = args.out / f"scale-{args.cells}"
    shutil.rmtree(out, ignore_errors=True)
    fleet_file = _fleet_file(out / "fleet", [ARMS / "sim-ur5e-perturbed.yaml"] * args.cells)
    print(f"# start: {_load()}, {os.cpu_count()} cores", flush=True)
    t0 = time.perf_counter()
    data = finetune(SKILL, None, "role-model", args.per_arm, out / "run", seed=args.seed, fleet=fleet_file)
    wall = time.perf_counter() - t0
    records = EpisodeStore(out / "run").records()
    lags = [r["lag"] for r in records]
    print(f"# end: {_load()}")
    print("| cells | episodes | wall s (with Ray and actor start) | episodes/s | steady episodes/s "
          "| mean lag (episodes) | max lag |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.cells} | {data['episodes']} | {wall:.1f} | {data['episodes'] / wall:.2f} "
          f"| {_steady(out / 'run'):.2f} | {np.mean(lags):.2f} | {max(lags)} |")
    if args.single:
        one = args.out / "scale-1"
        shutil.rmtree(one, ignore_errors=True)
        t0 = time.perf_counter()
        finetune(SKILL, ARMS / "sim-ur5e-perturbed.yaml", "role-model", data["episodes"], one, seed=args.seed)
        wall = time.perf_counter() - t0
        print(f"| 1 (no Ray, in process) | {data['episodes']} | {wall:.1f} | {data['episodes'] / wall:.2f} "
              f"| {_steady(one):.2f} | 0 | 0 |")


def _steady(run: Path) -> float:
    """Episodes per second from the first written episode to the last (the episode files' times)."""
    times = sorted(f.stat().st_mtime for f in (run / "episodes").glob("*.npz"))
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="2 emulated UR5e + 1 simulated FR3 against single arms")
    d.add_argument("--per-arm", type=int, default=40)
    d.add_argument("--eval-episodes", type=int, default=50)
    d.add_argument("--reuse", action="store_true", help="evaluate finished runs in --out again, no retraining")
    d.add_argument("--simulated", action="store_true", help="two simulated UR5e cells instead of the emulated ones")
    s = sub.add_parser("scale", help="a simulated fleet: episodes/s and learner lag")
    s.add_argument("--cells", type=int, default=8)
    s.add_argument("--per-arm", type=int, default=5)
    s.add_argument("--single", action="store_true", help="also one arm in process, the same episodes")
    for p in (d, s):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=Path, default=Path("runs/bench_fleet"))
    args = parser.parse_args()
    demo(args) if args.command == "demo" else scale(args)


if __name__ == "__main__":
    main()
