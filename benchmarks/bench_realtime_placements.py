"""Placements in a row on a real-time simulated arm (``sim.realtime: true``): does any gripper call
starve the servo watchdog? Prints one line per placement and a summary.

    python benchmarks/bench_realtime_placements.py --arm examples/arms/sim-ur5e.yaml --runs 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rmskill
from rmskill.config import load_arm_config
from rmskill.evaluate import random_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default="examples/arms/sim-ur5e.yaml")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--target", default="shelf_1")
    args = parser.parse_args()
    config = load_arm_config(args.arm).with_changes(sim={"realtime": True})
    skill = rmskill.load_skill("plate_placement")
    trips, successes = 0, 0
    with rmskill.connect(config) as arm:
        for i in range(args.runs):
            arm.sim.reset(tcp_pose=config.fixture(args.target) @ random_start(np.random.default_rng(i)), seed=i)
            arm.recover()
            t0 = time.monotonic()
            result = skill.run(arm, target=args.target)
            trip = arm.fault is not None and arm.fault.limit == "servo_timeout"
            trips += trip
            successes += result.success
            width = arm.gripper.state().width * 1000
            print(f"{i:2d} success={result.success!s:5} error={result.translation_error_mm:.3f} mm "
                  f"fingers={width:.1f} mm wall={time.monotonic() - t0:.1f} s watchdog_trip={trip} {result.message}")
    print(f"{successes}/{args.runs} placed and released, {trips} watchdog trips")


if __name__ == "__main__":
    main()
