"""Evaluation throughput with 1 and N workers (Ray actors), and what Ray itself costs per episode.

    python benchmarks/bench_scale.py [--episodes 200] [--repeats 3] [--workers 2] [--json]

One local Ray is started first (its start-up is reported apart); each repeat then runs ``evaluate`` on
the same seed with one worker (in a child process that never imports Ray, as ``rmskill eval`` runs: with
torch's own thread count, then with torch at 1 thread, as each actor runs) and on N workers (this
process and N - 1 actors, as ``rmskill eval --workers N`` runs). The CPU the run's processes used, and
what other processes used meanwhile (from /proc), are printed beside each figure. "episodes/s" is over
the whole call (the N-worker figure includes starting its actors: importing torch and MuJoCo, connecting
the arm, while this process already runs episodes); "steady episodes/s" is from the first finished
episode to the last. Ray's overhead is measured with the same actors and the same dispatch loop, calling
a method that does no simulation: a single call's round trip, and the dispatch cost per episode with
every actor kept busy. The machine's load is printed beside the table: on a shared machine it moves the
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rmskill.config import load_arm_config
from rmskill.evaluate import evaluate
from rmskill.runner import episode_targets
from rmskill.skill import load_skill

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds() -> tuple[float, dict[int, float]]:
    """(CPU s used by the whole machine, CPU s used by this process and each of its descendants, Ray's
    processes and actors, by pid; an ended child counts in its parent's reaped-children time). Linux /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    machine = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        pid = int(stat.parent.name)
        parent[pid] = int(rest[1])
        used[pid] = sum(int(x) for x in rest[11:15]) / tick  # utime stime cutime cstime
    ours, me = {}, os.getpid()
    for pid, cpu in used.items():
        p = pid
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me:
            ours[pid] = cpu
    return machine, ours


def our_cpu_between(start: dict[int, float], end: dict[int, float]) -> float:
    """CPU s our processes used between two samples (a process gone by the end counts nothing more)."""
    return sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())


def wait_for_actors_to_end(timeout_s: float = 10.0) -> None:
    """The previous run's actors, killed as it ended, gone: their CPU must not count in the next run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = []
        for comm in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                names.append(comm.read_bytes())
            except OSError:
                continue
        if not any(b"EpisodeWorker" in n for n in names):
            return
        time.sleep(0.1)


def timed_eval(skill: str, arm: Path, episodes: int, seed: int, workers: int, threads: int | None = None) -> dict:
    """One ``evaluate``; ``threads``: torch's threads in this process for the run (default: torch's own)."""
    arrivals: list[float] = []
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    wait_for_actors_to_end()
    machine0, ours0 = cpu_seconds()
    t0 = time.perf_counter()
    try:
        report = evaluate(skill, arm, episodes, seed=seed, workers=workers,
                          progress=lambda i, r: arrivals.append(time.perf_counter()))
    finally:
        torch.set_num_threads(default)
    wall = time.perf_counter() - t0
    machine1, ours1 = cpu_seconds()
    machine, ours = machine1 - machine0, our_cpu_between(ours0, ours1)
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    return {"wall_s": wall, "eps": episodes / wall, "steady_eps": steady, "per_episode": report["per_episode"],
            "our_cores": ours / wall, "other_cores": max(0.0, machine - ours) / wall}


def ray_overhead(skill: str, arm: Path, workers: int, calls: int) -> dict:
    """Pool start-up, one call's round trip, and dispatch cost per episode, with no simulation in the calls."""
    import ray

    from rmskill.workers import WorkerPool, dispatch

    config = load_arm_config(arm)
    loaded = load_skill(skill)
    t0 = time.perf_counter()
    with WorkerPool(loaded, config, 0, episode_targets(loaded, config), workers) as pool:
        start = time.perf_counter() - t0
        actor = pool.actors[0]
        ray.get(actor.ping.remote(0))
        trips = []
        for i in range(200):
            t = time.perf_counter()
            ray.get(actor.ping.remote(i))
            trips.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in dispatch(ray, pool.actors, lambda a, i: a.ping.remote(i), range(calls)):
            pass
        per_call = (time.perf_counter() - t) / calls
    return {"pool_start_s": start, "round_trip_ms_p50": 1e3 * float(np.percentile(trips, 50)),
            "round_trip_ms_p99": 1e3 * float(np.percentile(trips, 99)), "dispatch_ms_per_episode": 1e3 * per_call}


def in_fresh_process(args: argparse.Namespace, threads: int) -> dict:
    """``timed_eval`` with one worker in a child process that never imports Ray: this one hosts Ray's
    driver threads, which would slow an in-process run here and flatter the workers."""
    cmd = [sys.executable, __file__, "--skill", args.skill, "--arm", str(args.arm), "--episodes",
           str(args.episodes), "--seed", str(args.seed), "--one-run-in-process", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skill", default="plate_placement")
    parser.add_argument("--arm", type=Path, default=ARMS / "sim-ur5e.yaml")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one-run-in-process", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run_in_process is not None:  # a child without Ray, as `rmskill eval --workers 1` runs
        print(json.dumps(timed_eval(args.skill, args.arm, args.episodes, args.seed, 1,
                                    args.one_run_in_process or None)))
        return
    import ray

    from rmskill.workers import start_local_ray

    load_before = load()
    t0 = time.perf_counter()
    start_local_ray(args.workers)
    ray_start = time.perf_counter() - t0
    n = args.workers
    # "1": eval as it runs by default (torch's own thread count here); "1, torch 1 thread": as each actor runs.
    configs = {"1": (1, None), "1, torch 1 thread": (1, 1), str(n): (n, None)}
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    loads = []  # the 1-minute load average after each repeat: the machine may be shared
    for _ in range(args.repeats):
        for name, (workers, threads) in configs.items():
            if workers == 1:
                runs[name].append(in_fresh_process(args, threads or 0))
            else:
                runs[name].append(timed_eval(args.skill, args.arm, args.episodes, args.seed, workers, threads))
        loads.append(os.getloadavg()[0])
    overhead = ray_overhead(args.skill, args.arm, max(1, args.workers - 1), calls=2000)  # an eval's actors
    ray.shutdown()
    load_after = load()

    equal = all(r["per_episode"] == runs["1"][0]["per_episode"] for rs in runs.values() for r in rs)
    med = {w: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "eps", "steady_eps", "our_cores",
                                                                 "other_cores")}
           for w, rs in runs.items()}
    ratios = {base: {k: med[str(n)][k] / med[base][k] for k in ("eps", "steady_eps")}
              for base in configs if base != str(n)}
    paired = [a["eps"] / b["eps"] for a, b in zip(runs[str(n)], runs["1"], strict=True)]  # each repeat's own
    result = {
        "episodes": args.episodes, "repeats": args.repeats, "cpus": os.cpu_count(), "ray": ray.__version__,
        "torch_threads_default": torch.get_num_threads(), "workers": med, "ratios": ratios,
        "equal_episode_for_episode": equal, "ray_start_s": ray_start, **overhead,
        "load_before": load_before, "load_after": load_after, "load_1min_per_repeat": loads,
        "per_repeat_eps": {w: [r["eps"] for r in rs] for w, rs in runs.items()}, "per_repeat_ratio": paired,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.skill} on {args.arm.name}, {args.episodes} episodes, median of {args.repeats}; "
          f"{os.cpu_count()} CPUs; Ray {ray.__version__}; load average (1/5/15 min) before {load_before}, "
          f"after {load_after}\n")
    print("| workers | wall s | episodes/s | steady episodes/s | cores used: this run / other processes |")
    print("| --- | --- | --- | --- | --- |")
    for w, m in med.items():
        print(f"| {w} | {m['wall_s']:.2f} | {m['eps']:.2f} | {m['steady_eps']:.2f} | {m['our_cores']:.2f} / "
              f"{m['other_cores']:.2f} |")
    for base, r in ratios.items():
        print(f"| ratio {n} / ({base}) | | {r['eps']:.2f}x | {r['steady_eps']:.2f}x |")
    print()
    print("| Ray cost | value |")
    print("| --- | --- |")
    print(f"| local Ray start (once per process) | {ray_start:.2f} s |")
    print(f"| {n - 1} actor(s) started, arm connected (once per eval, beside this process's episodes) | "
          f"{overhead['pool_start_s']:.2f} s |")
    print(f"| one actor call, round trip p50 / p99 | {overhead['round_trip_ms_p50']:.2f} / "
          f"{overhead['round_trip_ms_p99']:.2f} ms |")
    print(f"| dispatch per episode, {n - 1} actor(s) busy, no simulation | "
          f"{overhead['dispatch_ms_per_episode']:.3f} ms |")
    print("\n| repeat | " + " | ".join(f"{w}: episodes/s (other processes' cores)" for w in runs)
          + f" | ratio {n} / 1 in this repeat | load (1 min) after |")
    print("| --- " * (len(runs) + 3) + "|")
    for i, ld in enumerate(loads):
        print(f"| {i + 1} | " + " | ".join(f"{rs[i]['eps']:.2f} ({rs[i]['other_cores']:.2f})" for rs in runs.values())
              + f" | {paired[i]:.2f}x | {ld:.2f} |")
    print(f"| median | | | | {statistics.median(paired):.2f}x | |")
    print(f"\nresults equal episode for episode across worker counts: {'yes' if equal else 'NO'}")


if __name__ == "__main__":
    main()
