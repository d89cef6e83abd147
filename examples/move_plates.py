"""Move a plate around every nest of the cell, again and again, as a lab's scheduler would.

    python examples/move_plates.py                                  # simulated UR5e, 9 moves
    python examples/move_plates.py --arm my-cell.yaml --moves 0     # until a move fails or Ctrl-C

Prints one line per move; stops cleanly (the arm holding still, the exit status non-zero) on the
first move that fails, and on Ctrl-C after stopping the arm. On a simulated arm the plate starts in
the first nest (``sim.plates``); on a real arm, put one there before you start.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import rmskill
from rmskill.config import load_arm_config


def main() -> int:
    parser = argparse.ArgumentParser(description="Move a plate around the cell's nests.")
    parser.add_argument("--arm", default="examples/arms/sim-ur5e.yaml", help="arm file")
    parser.add_argument("--moves", type=int, default=9, help="number of moves (0: until stopped)")
    args = parser.parse_args()

    config = load_arm_config(args.arm)
    nests = config.fixtures_of(("slot",))
    if len(nests) < 2:
        print(f"arm '{config.name}' has {len(nests)} nest(s); moving a plate around needs two or more")
        return 2
    if config.sim is not None:
        config = config.with_changes(sim={"plates": [nests[0]]})

    with rmskill.connect(config) as arm:
        moves = itertools.count() if args.moves == 0 else range(args.moves)
        try:
            for k in moves:
                source, target = nests[k % len(nests)], nests[(k + 1) % len(nests)]
                result = rmskill.transfer(arm, source, target)
                status = "ok" if result.success else "FAILED"
                print(f"move {k + 1}: {source} -> {target} {status} placement {result.translation_error_mm:.3f} mm "
                      f"{result.rotation_error_deg:.3f} deg in {result.duration_s:.1f} s"
                      + (f": {result.message}" if result.message else ""), flush=True)
                if not result.success:
                    return 1
        except KeyboardInterrupt:
            arm.stop()
            print("stopped by Ctrl-C; the arm holds where it is", flush=True)
            return 130
        except rmskill.RmskillError as err:  # a fault (safety stop, start condition): one line
            arm.stop()
            print(f"stopped: {err}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
