"""Tube insertion on perturbed simulated cells: the base policy alone, on a calibrated rack, and
fine-tuned on site with the role model, for each arm and seed. Prints a markdown table.

    python -m rmskill.skills.tube_insertion.benchmark [--arms ur5e fr3] [--seeds 0 1]
        [--episodes 100] [--eval-episodes 50] [--out runs/bench_tube] [--json]

Each arm runs in its own calibration store (``RMSKILL_HOME`` under ``--out``): "base" with none,
then ``rmskill calibrate fixture --fixture rack_1`` (the TCP first, then the rack, touched with the
held tube), then "calibrated" and "role-model" (``rmskill finetune --method role-model``) on it.
Evaluation seeds are ``seed + 1000``: episodes the fine-tuning never saw.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

ARMS = Path(__file__).resolve().parents[2] / "examples" / "arms"
NAME = "tube_insertion"


def _row(arm: str, seed: int, stage: str, result: dict, **extra) -> dict:
    lateral = result["translation_error_mm"]
    return {"arm": arm, "seed": seed, "stage": stage, "success_rate": result["success_rate"],
            "lateral_mm": lateral["mean"], "lateral_p95_mm": lateral["p95"],
            "tilt_deg": result["rotation_error_deg"]["mean"], "peak_force_n": result["peak_force_n"]["max"],
            "duration_s": result["duration_s"]["mean"], "failures": [f["message"] for f in result["failures"]], **extra}


def bench_arm(arm: str, seeds: list[int], episodes: int, eval_episodes: int, out: Path) -> list[dict]:
    """All stages on one arm; the calibration store is this arm's own, under ``out``."""
    home = out / f"home-{arm}"
    shutil.rmtree(home, ignore_errors=True)
    os.environ["RMSKILL_HOME"] = str(home)
    from rmskill.calibration.run import calibrate
    from rmskill.evaluate import evaluate
    from rmskill.finetune import finetune

    arm_file = ARMS / f"sim-{arm}-rack-perturbed.yaml"
    rows = [_row(arm, s, "base", evaluate(NAME, arm_file, eval_episodes, seed=s + 1000)) for s in seeds]
    t0 = time.perf_counter()
    cal = calibrate("fixture", arm_file, fixture="rack_1")
    cal_s = time.perf_counter() - t0
    check = {"rack_error_mm": cal["sim_check"]["error_mm"], "rack_error_deg": cal["sim_check"]["error_deg"],
             "tcp_error_mm": cal["tcp"]["sim_check"]["error_mm"], "calibration_wall_s": round(cal_s, 1)}
    for s in seeds:
        rows.append(_row(arm, s, "calibrated", evaluate(NAME, arm_file, eval_episodes, seed=s + 1000), **check))
        run_dir = out / f"{arm}-role-model-{s}"
        shutil.rmtree(run_dir, ignore_errors=True)
        t0 = time.perf_counter()
        tuned = finetune(NAME, arm_file, "role-model", episodes, run_dir, seed=s)
        wall = time.perf_counter() - t0
        result = evaluate(NAME, arm_file, eval_episodes, seed=s + 1000, weights=run_dir)
        rows.append(_row(arm, s, f"role-model {episodes} ep", result, train_wall_s=round(wall, 1),
                         train_reward_success=tuned["reward_success_rate"]))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| arm | seed | stage | success | lateral mean (mm) | lateral p95 (mm) | tilt (deg) | peak force (N) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['seed']} | {r['stage']} | {r['success_rate'] * 100:.0f} % | "
                     f"{r['lateral_mm']:.3f} | {r['lateral_p95_mm']:.3f} | {r['tilt_deg']:.3f} | "
                     f"{r['peak_force_n']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import logging

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", default=["ur5e", "fr3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_tube"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("rmskill.safety").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for arm in args.arms:
        rows.extend(bench_arm(arm, args.seeds, args.episodes, args.eval_episodes, args.out))
        (args.out / f"rows-{arm}.json").write_text(json.dumps(rows, indent=1, default=float))
    print(json.dumps(rows, indent=1, default=float) if args.json else table(rows))


if __name__ == "__main__":
    main()
