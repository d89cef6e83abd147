"""Simulator throughput: simulated seconds per wall second of a servo episode at the native rate,
beside raw ``mj_step`` throughput measured in the same process.

    python benchmarks/bench_sim.py [--seconds 5] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import mujoco
import numpy as np

import rmskill

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"


def servo_episode(arm, seconds: float) -> float:
    """Stream a placement-like path (a descent with a lateral sine) through the safety envelope;
    returns simulated seconds per wall second."""
    rate = arm.capabilities.rate_hz
    n = int(seconds * rate)
    start = arm.state().base_T_tcp
    t0, wall0 = arm.state().time, time.perf_counter()
    for i in range(1, n + 1):
        s = i / n
        arm.servo(start.translated([0.01 * np.sin(2 * np.pi * s), 0.0, 0.05 * s]))
    wall = time.perf_counter() - wall0
    return (arm.state().time - t0) / wall


def raw_steps(arm, steps: int = 20000) -> float:
    m, d = arm.unwrapped.model, arm.unwrapped.data
    t0 = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(m, d)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per episode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for model, name in (("ur5e", "sim-ur5e.yaml"), ("fr3", "sim-fr3.yaml")):
        factors, raws = [], []
        for _ in range(args.repeats):
            with rmskill.connect(ARMS / name) as arm:
                factors.append(servo_episode(arm, args.seconds))
                raws.append(raw_steps(arm))
                rate = arm.capabilities.rate_hz
                dt = arm.unwrapped.model.opt.timestep
        results[model] = {"realtime_factor": statistics.median(factors), "raw_steps_per_s": statistics.median(raws),
                          "servo_rate_hz": rate, "physics_dt_s": dt,
                          "raw_realtime_factor": statistics.median(raws) * dt}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| model | servo rate | physics dt | servo episode (x real time) | raw mj_step/s | raw (x real time) |")
    print("|---|---|---|---|---|---|")
    for model, r in results.items():
        print(f"| {model} | {r['servo_rate_hz']:.0f} Hz | {r['physics_dt_s'] * 1000:.0f} ms | "
              f"{r['realtime_factor']:.1f} | {r['raw_steps_per_s']:,.0f} | {r['raw_realtime_factor']:.0f} |")
    print(f"(median of {args.repeats} runs of {args.seconds} simulated s each, through the safety envelope)")


if __name__ == "__main__":
    main()
