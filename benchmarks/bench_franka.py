"""Franka driver: 1 kHz loop timing and servo tracking while a caller streams targets at 100 Hz.

Starts franky-sim on a free loopback address (or uses ``--host``), connects ``FrankaArm`` with
``examples/arms/franky-sim-fr3.yaml``, streams a placement-like path (down 30 mm, across 20 mm,
back) at 100 Hz for ``--seconds``, and prints a table. ``--busy`` adds a run in which the caller
burns CPU in Python between targets (as policy inference would).

    python benchmarks/bench_franka.py [--seconds 10] [--busy] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np

from rmskill.config import load_arm_config
from rmskill.drivers.franka import FrankaArm
from rmskill.drivers.franka.simulator import FrankySim, available
from rmskill.geometry import Pose

ARM_FILE = Path(__file__).resolve().parents[1] / "examples" / "arms" / "franky-sim-fr3.yaml"
RATE_HZ = 100.0


def path(start: Pose, s: float) -> Pose:
    """Placement-like path at phase ``s`` in [0, 1): down 30 mm, across 20 mm, back up and over."""
    s = s % 1.0
    if s < 0.4:
        return start.translated([0.0, 0.0, -0.03 * s / 0.4])
    if s < 0.6:
        return start.translated([0.0, 0.02 * (s - 0.4) / 0.2, -0.03])
    if s < 0.8:
        return start.translated([0.0, 0.02, -0.03 + 0.03 * (s - 0.6) / 0.2])
    return start.translated([0.0, 0.02 * (1.0 - (s - 0.8) / 0.2), 0.0])


def busy_wait(seconds: float) -> None:
    """Pure-Python work holding the GIL for ``seconds`` [s]."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def run(arm: FrankaArm, seconds: float, busy: float) -> dict[str, float]:
    """Stream for ``seconds`` [s]; ``busy`` [s] of caller work per target. Returns the figures."""
    start = arm.state().base_T_tcp
    cycles0, missed0 = arm.loop_counters()
    cycle_s = 5.0  # one pass along the path [s]
    errors, n = [], int(seconds * RATE_HZ)
    t0 = time.perf_counter()
    for k in range(n):
        target = path(start, k / RATE_HZ / cycle_s)
        arm.servo(target, duration=1.0 / RATE_HZ)
        errors.append(arm.state().base_T_tcp.distance_mm(target))
        if busy:
            busy_wait(busy)
    wall = time.perf_counter() - t0
    cycles1, missed1 = arm.loop_counters()
    arm.stop()
    time.sleep(0.3)
    settle = arm.state().base_T_tcp.distance_mm(target)
    cycles = cycles1 - cycles0
    timing = arm.loop_timing()[-cycles:] * 1e3
    periods, work = timing[:, 0], timing[:, 1]
    return {
        "caller rate [Hz]": n / wall,
        "robot ticks served [Hz]": cycles / wall,
        "loop period p50 [ms]": float(np.percentile(periods, 50)),
        "loop period p99 [ms]": float(np.percentile(periods, 99)),
        "loop period max [ms]": float(periods.max()),
        "cycles over 1.5 ms": int(np.sum(periods > 1.5)),
        "missed robot ticks": missed1 - missed0,
        "loop work p50 [ms]": float(np.percentile(work, 50)),
        "loop work p99 [ms]": float(np.percentile(work, 99)),
        "tracking error p50 [mm]": float(np.percentile(errors, 50)),
        "tracking error p95 [mm]": float(np.percentile(errors, 95)),
        "tracking error max [mm]": float(np.max(errors)),
        "error after stop [mm]": settle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="streaming time per run [s]")
    parser.add_argument("--busy", action="store_true", help="add a run with a CPU-busy caller")
    parser.add_argument("--host", help="use a franky-sim already serving here")
    args = parser.parse_args()
    if args.host is None and (why := available()):
        raise SystemExit(f"franky-sim/pylibfranka {why}")

    runs = {"idle caller": 0.0}
    if args.busy:
        runs["busy caller (7 ms/10 ms)"] = 0.007
    with contextlib.ExitStack() as stack:
        host = args.host or stack.enter_context(FrankySim()).host
        config = load_arm_config(ARM_FILE).with_changes(host=host)
        arm = stack.enter_context(FrankaArm(config))
        arm.move_to(arm.state().base_T_tcp.translated([0.0, -0.01, 0.0]), speed=0.1)
        results = {name: run(arm, args.seconds, busy) for name, busy in runs.items()}

    print(f"\nFranka driver vs franky-sim on {host}: {args.seconds:.0f} s at {RATE_HZ:.0f} Hz per run\n")
    names = list(results)
    width = max(len(k) for k in next(iter(results.values())))
    print(f"| {'metric':<{width}} | " + " | ".join(f"{n:>24}" for n in names) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * 26 for _ in names) + "|")
    for key in results[names[0]]:
        cells = []
        for n in names:
            v = results[n][key]
            cells.append(f"{v:>24d}" if isinstance(v, int) else f"{v:>24.3f}")
        print(f"| {key:<{width}} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
