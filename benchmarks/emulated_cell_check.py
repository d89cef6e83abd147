"""Arm-measured success on the emulated cell a (127.0.0.2): the base alone against the fleet demo's UR5e
weights (``runs/bench_fleet/fleet/ur5e``), the same N starts each (seed 1000, indices 5000 on).

    python benchmarks/emulated_cell_check.py 12
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from rmskill.config import load_arm_config
from rmskill.connect import connect
from rmskill.drivers.ur.emulator import EmulatorProcess
from rmskill.runner import episode_targets, run_episode
from rmskill.skill import load_skill

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / "examples" / "fleet" / "emulated-ur5e-a.yaml"


def main(n: int, weights: Path = ROOT / "runs" / "bench_fleet" / "fleet" / "ur5e") -> None:
    logging.basicConfig(level=logging.ERROR)
    config = load_arm_config(ARM)
    with EmulatorProcess(ARM, host=config.host):
        for label, folder in (("base", None), ("fleet ur5e", weights)):
            skill = load_skill("plate_placement", weights=folder)
            targets = episode_targets(skill, config)
            seated, walls = 0, []
            with connect(config) as arm:
                for i in range(n):
                    t0 = time.perf_counter()
                    ran = run_episode(skill, arm, 5000 + i, 1000, targets, prompt=lambda _: sys.exit("prompted"))
                    seated += bool(ran.started and skill.outcome(ran.result).success)
                    walls.append(time.perf_counter() - t0)
            print(f"{label}: arm-measured success {seated}/{n}, {sum(walls) / n:.1f} s per episode", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
