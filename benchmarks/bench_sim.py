"""Simulator throughput: simulated seconds per wall second of a servo episode, beside raw ``mj_step``
throughput on the same model, from the same state, in the same process.

Two episodes per arm, both through the safety envelope: ``native``, one ``servo`` per native period (UR
500 Hz, FR3 1 kHz), as a streaming skill commands; ``skill``, one ``servo(pose, duration)`` per 20 ms (a
50 Hz skill), the driver interpolating between commands. The path (a descent with a lateral sine) is
computed before the clock starts: the caller's own pose arithmetic is not the simulator's cost.
``ratio`` is the episode's steps per second over raw ``mj_step``'s, each repeat measured back to back
on a copy of the episode's start state; medians over repeats (and, as ``best``, the fastest episode
over the fastest bare run: load on a shared machine only slows a run down). Raw ``mj_step`` runs on the model the
arm runs (``raw``, with the controller's actuators, mocap target and tendon, which cost some C time
each step) and on the bare cell without them (``bare``, the physics alone, its arm motors holding
the start pose against gravity): ``ratio bare`` is the episode against the physics alone.

    python benchmarks/bench_sim.py [--seconds 5] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import mujoco
import numpy as np

import rmskill
from rmskill.drivers.mujoco.workcell import build_spec

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"
SKILL_PERIOD = 0.02  # [s] a 50 Hz skill


def path(start, n: int) -> list:
    """``n`` targets from ``start``: 50 mm down with a 10 mm lateral sine."""
    return [start.translated([0.01 * np.sin(2 * np.pi * i / n), 0.0, 0.05 * i / n]) for i in range(1, n + 1)]


def servo_episode(arm, seconds: float, period: float | None = None) -> tuple[float, int]:
    """Stream the path, one target per ``period`` [s] (``None``: the native one); returns simulated
    seconds per wall second and the physics steps taken."""
    rate = arm.capabilities.rate_hz
    duration = None if period is None else period
    n = int(seconds * (rate if period is None else 1.0 / period))
    targets = path(arm.state().base_T_tcp, n)
    d = arm.unwrapped.data
    t0, wall0 = d.time, time.perf_counter()
    for target in targets:
        arm.servo(target, duration)
    wall = time.perf_counter() - wall0
    return (d.time - t0) / wall, round((d.time - t0) / arm.unwrapped.model.opt.timestep)


def raw_steps(model: mujoco.MjModel, data: mujoco.MjData, steps: int) -> float:
    """Raw ``mj_step`` per second, ``steps`` of them from ``data`` (controls held)."""
    step = mujoco.mj_step
    t0 = time.perf_counter()
    for _ in range(steps):
        step(model, data)
    return steps / (time.perf_counter() - t0)


def bare_start(arm) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """The cell without the controller's parts, in the arm's state now, its motors holding it."""
    driver = arm.unwrapped
    model = build_spec(driver.config, driver.arm_model).compile()
    data = mujoco.MjData(model)
    d, n = driver.data, driver.arm_model.dof
    data.qpos[:], data.qvel[:], data.ctrl[:] = d.qpos, d.qvel, d.ctrl[: model.nu]
    data.ctrl[:n] = d.qfrc_bias[:n]
    mujoco.mj_forward(model, data)
    return model, data


def measure(name: str, seconds: float, repeats: int, period: float | None) -> dict:
    factors, raws, bares, ratios, bare_ratios = [], [], [], [], []
    with rmskill.connect(ARMS / name) as arm:
        m = arm.unwrapped.model
        dt = m.opt.timestep
        for i in range(repeats):
            arm.sim.reset(seed=i)
            arm.stop()  # a new stream: judged from where the arm is
            start = copy.copy(arm.unwrapped.data)
            bare_model, bare = bare_start(arm)
            factor, steps = servo_episode(arm, seconds, period)
            raw = raw_steps(m, start, steps)
            bare_raw = raw_steps(bare_model, bare, steps)
            factors.append(factor)
            raws.append(raw)
            bares.append(bare_raw)
            ratios.append(factor / (raw * dt))
            bare_ratios.append(factor / (bare_raw * dt))
        return {"realtime_factor": statistics.median(factors), "raw_steps_per_s": statistics.median(raws),
                "raw_realtime_factor": statistics.median(raws) * dt, "ratio": statistics.median(ratios),
                "bare_steps_per_s": statistics.median(bares), "bare_realtime_factor": statistics.median(bares) * dt,
                "ratio_bare": statistics.median(bare_ratios),
                # best of the repeats for each (load on a shared machine only ever slows a run down)
                "best_ratio_bare": max(factors) / (max(bares) * dt),
                "servo_rate_hz": arm.capabilities.rate_hz, "physics_dt_s": dt,
                "command_period_s": period or 1.0 / arm.capabilities.rate_hz}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per episode")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for model, name in (("ur5e", "sim-ur5e.yaml"), ("fr3", "sim-fr3.yaml")):
        for episode, period in (("native", None), ("skill", SKILL_PERIOD)):
            results[f"{model} {episode}"] = measure(name, args.seconds, args.repeats, period)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| model, episode | commands | physics dt | episode (x real time) | raw (x real time) | bare (x real time) "
          "| ratio | ratio bare | best ratio bare |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        print(f"| {key} | {1.0 / r['command_period_s']:.0f} Hz | {r['physics_dt_s'] * 1000:.0f} ms | "
              f"{r['realtime_factor']:.1f} | {r['raw_realtime_factor']:.0f} | {r['bare_realtime_factor']:.0f} | "
              f"{r['ratio']:.2f} | {r['ratio_bare']:.2f} | {r['best_ratio_bare']:.2f} |")
    print(f"(median of {args.repeats} runs of {args.seconds} simulated s each, through the safety envelope; "
          "ratio: episode over raw mj_step from the same start state, on the arm's model (raw) or the bare cell)")


if __name__ == "__main__":
    main()
