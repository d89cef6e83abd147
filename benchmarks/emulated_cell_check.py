"""Plate placement on an emulated UR5e cell of the fleet demo: the arm-measured outcome and the truth.

Starts the cell's UR emulator (``examples/fleet/emulated-ur5e-a.yaml`` on 127.0.0.2, or ``-b`` on
127.0.0.3), then runs the same episodes (seed 1000, indices from ``--first``) with each set of weights.
After each episode the emulator's operator resets the cell and its own log says where the plate was
left (the emulator's truth, which nothing the skill learns from ever reads); the placement is a success
in truth when the plate was released in the nest within the skill's ``success_mm`` / ``success_deg``.

    python benchmarks/emulated_cell_check.py --cell a --episodes 12 base runs/fleet/ur5e [more weights...]

Prints one JSON line per weights and a table. Real time: about 9-11 s an episode.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from rmskill.config import load_arm_config
from rmskill.connect import connect
from rmskill.drivers.ur.emulator import EmulatorProcess
from rmskill.runner import episode_targets, run_episode
from rmskill.skill import load_skill

ROOT = Path(__file__).resolve().parents[1]


def truth_after(arm, emulator: EmulatorProcess, seen: int) -> tuple[float, float, str, int]:
    """The operator resets the cell; the emulator's report of it. ``seen``: reports before the episode,
    which added one more of its own (its start is an operator reset too)."""
    arm.operator.reset(plate=True)
    for _ in range(250):
        reports = emulator.plate_reports()
        if len(reports) >= seen + 2:
            mm, deg, _, where = reports[seen + 1]
            return mm, deg, where, seen + 2
        time.sleep(0.02)
    raise RuntimeError(f"the emulator reported {len(reports) - seen} operator resets for an episode, not 2")


def check(cell: str, weights: list[str], episodes: int, first: int, seed: int) -> list[dict]:
    arm_file = ROOT / "examples" / "fleet" / f"emulated-ur5e-{cell}.yaml"
    config = load_arm_config(arm_file)
    rows = []
    with EmulatorProcess(arm_file, host=config.host, log_lines=None) as emulator:
        seen = 0
        for label in weights:
            skill = load_skill("plate_placement", weights=None if label == "base" else label)
            skill.allow_other_arm = True  # a fleet's weights name its cells; this is one of them
            cfg = skill.config
            targets = episode_targets(skill, config)
            measured, truth, errors, peaks, walls, messages = [], [], [], [], [], []
            with connect(config) as arm:
                for i in range(first, first + episodes):
                    t0 = time.perf_counter()
                    ran = run_episode(skill, arm, i, seed, targets, prompt=lambda _: sys.exit("prompted"))
                    mm, deg, where, seen = truth_after(arm, emulator, seen)
                    measured.append(bool(ran.started and skill.outcome(ran.result).success))
                    truth.append(where == "in the nest" and mm <= cfg.success_mm and deg <= cfg.success_deg)
                    errors.append(mm)
                    peaks.append(ran.result.peak_force_n)
                    walls.append(time.perf_counter() - t0)
                    messages.append(ran.result.message[:60])
            row = {"weights": label, "cell": cell, "episodes": episodes, "first": first,
                   "measured_success": measured, "truth_success": truth, "truth_mm": errors,
                   "peak_n": peaks, "wall_s": float(np.mean(walls)), "messages": messages}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="weights folders, or 'base' for the shipped base alone")
    parser.add_argument("--cell", choices=["a", "b"], default="a")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--first", type=int, default=5000, help="index of the first episode")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = check(args.cell, args.weights, args.episodes, args.first, args.seed)
    print("| weights | cell | episodes | success (truth) | success (arm-measured) | truth mm, median | "
          "peak N, max | s per episode |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['weights']} | {r['cell']} | {r['episodes']} | {np.mean(r['truth_success']):.0%} | "
              f"{np.mean(r['measured_success']):.0%} | {np.median(r['truth_mm']):.2f} | {max(r['peak_n']):.1f} | "
              f"{r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
