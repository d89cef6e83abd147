"""Plate transfers around the nests: does the placement error stay put over many pick-and-place moves?

Each arm file starts with one plate in its first nest (``sim.plates``); the plate then moves around
the nests (shelf_1 -> shelf_2 -> shelf_3 -> shelf_1 ...) with ``rmskill.transfer`` and nothing
reset in between. Per arm: moves that succeeded, drops (the plate not in the target nest, or not in
the gripper after the pick), jams (a stop on force or not seated), and the placement error (the
simulator's truth) after the first and the last move, mean and max over all moves.

    python benchmarks/bench_transfer.py                                   # sim-ur5e.yaml, sim-fr3.yaml
    python benchmarks/bench_transfer.py --calibrate examples/arms/sim-ur5e-perturbed.yaml \\
        examples/arms/sim-fr3-perturbed.yaml                              # rmskill calibrate all first

``--calibrate`` stores each arm's calibration under a temporary ``RMSKILL_HOME`` (unless one is set).
``--seed N`` replaces the arm file's ``sim.seed`` (where the first plate rests, the noise). The A/Bs:
``--no-handoff`` places without the grasp offset the pick measured (the placement aims the TCP);
``--touch-centre`` lets each placement find the nest's walls with the held plate and release it at
the centre it found (``plate_placement``'s ``touch_check`` and ``touch_centre``).

``--emulated examples/arms/emulated-ur5e.yaml [--moves 5] [--host 127.0.0.62]`` runs the moves
through the UR controller emulator with its simulated Robotiq instead (in this process, served on
``--host``; a plate in the first nest): each move is ``rmskill run plate_transfer --from A --to B
--json`` in its own process, as an integrator runs it, and the error is read from the emulator's
simulator.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"


def make_transfer(handoff: bool, touch_centre: bool):
    """``plate_transfer`` as the A/B asks: with or without the handoff, with or without touch centring."""
    from rmskill.skill import load_skill
    from rmskill.skills.plate_pick.transfer import PlateTransfer

    class Blind(PlateTransfer):
        def handoff(self, pick_result, place):
            return place

    place = load_skill("plate_placement")
    if touch_centre:
        place.configure(touch_check=True, touch_centre=True)
    return (PlateTransfer if handoff else Blind)(place=place)


def run_arm(arm_file: Path, moves: int, calibrate: bool, seed: int | None = None, handoff: bool = True,
            touch_centre: bool = False) -> dict:
    import rmskill
    from rmskill.config import load_arm_config
    from rmskill.errors import SafetyViolation

    config = load_arm_config(arm_file)
    nests = config.fixtures_of(("slot",))
    if calibrate:
        from rmskill.calibration.run import calibrate as run_calibration

        run_calibration("all", config)
    config = config.with_changes(sim={"plates": [nests[0]]} | ({} if seed is None else {"seed": seed}))
    moved = make_transfer(handoff, touch_centre)
    rows = []
    start = time.time()
    with rmskill.connect(config) as arm:
        for k in range(moves):
            source, target = nests[k % len(nests)], nests[(k + 1) % len(nests)]
            try:
                result = moved.run(arm, source, target)
                message = result.message
            except SafetyViolation as err:
                result, message = None, str(err)
            pick = result.pick if result is not None else None
            rows.append({
                "move": k + 1, "source": source, "target": target, "success": bool(result and result.success),
                "mm": result.translation_error_mm if result else float("nan"),
                "deg": result.rotation_error_deg if result else float("nan"),
                "grasp_mm": pick.translation_error_mm if pick else float("nan"),
                "grasp_measured_mm": (pick.measurements.get("grasp_offset_mm", float("nan")) if pick else float("nan")),
                "dropped": arm.sim.layout() != [target] or arm.sim.held is not None,
                "jammed": "safety limit" in message or "not seated" in message or "not out of" in message,
                "message": message,
            })
            if not rows[-1]["success"]:
                logging.warning("%s move %d %s -> %s: %s", config.name, k + 1, source, target, message)
                break
    variant = ("" if handoff else " no handoff") + (" touch centre" if touch_centre else "")
    name = config.name + ("" if seed is None else f" seed {seed}") + variant
    return {"arm": name, "rows": rows, "wall_s": time.time() - start}


def run_emulated(arm_file: Path, moves: int, host: str) -> dict:
    """``moves`` transfers around the nests through the UR emulator, each by the command line."""
    import json
    import subprocess
    import sys

    import yaml

    from rmskill.config import load_arm_config
    from rmskill.drivers.ur.emulator import Emulator

    folder = Path(tempfile.mkdtemp(prefix="rmskill-emulated-"))
    data = yaml.safe_load(Path(arm_file).read_text())
    data["host"] = host
    data["gripper"]["port"] = str(folder / "ttyUR")
    data.setdefault("options", {})
    nests = list(load_arm_config(arm_file).fixtures_of(("slot",)))
    data["options"]["emulator_plates"] = [nests[0]]
    path = folder / "emulated.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_arm_config(path)
    env = dict(os.environ, RMSKILL_HOME=os.environ.get("RMSKILL_HOME", str(folder / "home")))
    rows, start = [], time.time()
    with Emulator(config, host=host, backend="mujoco") as emulator:
        for k in range(moves):
            source, target = nests[k % len(nests)], nests[(k + 1) % len(nests)]
            run = subprocess.run([sys.executable, "-m", "rmskill.cli", "run", "plate_transfer", "--arm", str(path),
                                  "--from", source, "--to", target, "--json"], capture_output=True, text=True,
                                 env=env, timeout=600)
            result = json.loads(run.stdout) if run.stdout.strip().startswith("{") else {}
            with emulator.controller.lock:
                sim = emulator.controller.arm.sim
                mm, deg = sim.placement_error(target)
                layout, held = sim.layout(), sim.held
            pick = result.get("pick") or {}
            message = result.get("message") or run.stderr.strip().splitlines()[-1:] or [""]
            rows.append({"move": k + 1, "source": source, "target": target,
                         "success": bool(run.returncode == 0 and result.get("success")), "mm": mm, "deg": deg,
                         "grasp_mm": float("nan"),
                         "grasp_measured_mm": (pick.get("measurements") or {}).get("grasp_offset_mm", float("nan")),
                         "dropped": layout != [target] or held is not None,
                         "jammed": any(w in str(message) for w in ("safety limit", "not seated", "not out of",
                                                                  "protective stop")),
                         "message": message if isinstance(message, str) else message[0],
                         "reported_mm": result.get("translation_error_mm", float("nan"))})
            print(f"# move {k + 1} {source} -> {target}: success {rows[-1]['success']}, {mm:.3f} mm (simulator), "
                  f"{rows[-1]['reported_mm']:.3f} mm (arm-measured) {rows[-1]['message']}", flush=True)
            if not rows[-1]["success"]:
                break
    return {"arm": f"{config.name} (UR emulator, ur_rtde, Robotiq)", "rows": rows, "wall_s": time.time() - start}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def table(runs: list[dict], moves: int) -> str:
    head = (f"| arm | moves ok | drops | jams | move 1 mm / deg | move {moves} mm / deg | into move {moves}'s nest: "
            "first / last mm | mean mm | max mm | mean deg | max deg | mean mm moves 1-10 / last 10 | "
            "grasp offset mean mm (true / measured) | wall s |")
    lines = [head, "|" + " --- |" * 14]
    for run in runs:
        rows = run["rows"]
        ok = sum(r["success"] for r in rows)
        mm = np.array([r["mm"] for r in rows])
        deg = np.array([r["deg"] for r in rows])
        first, last = rows[0], rows[-1]
        same = next(r for r in rows if r["target"] == last["target"])  # errors differ by nest: compare one nest
        lines.append(
            f"| {run['arm']} | {ok}/{moves} | {sum(r['dropped'] for r in rows)} | {sum(r['jammed'] for r in rows)} "
            f"| {first['mm']:.4f} / {first['deg']:.4f} | {last['mm']:.4f} / {last['deg']:.4f} "
            f"| {same['mm']:.4f} (move {same['move']}) / {last['mm']:.4f} "
            f"| {np.nanmean(mm):.4f} | {np.nanmax(mm):.4f} | {np.nanmean(deg):.4f} | {np.nanmax(deg):.4f} "
            f"| {np.nanmean(mm[:10]):.4f} / {np.nanmean(mm[-10:]):.4f} "
            f"| {_mean([r['grasp_mm'] for r in rows]):.4f} / "
            f"{_mean([r['grasp_measured_mm'] for r in rows]):.4f} | {run['wall_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="*", type=Path,
                        default=[ARMS / "sim-ur5e.yaml", ARMS / "sim-fr3.yaml"])
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--calibrate", action="store_true", help="rmskill calibrate all on each arm first")
    parser.add_argument("--seed", type=int, nargs="*", default=[None], help="sim.seed values (default the arm file's)")
    parser.add_argument("--no-handoff", action="store_true", help="place without the measured grasp offset")
    parser.add_argument("--touch-centre", action="store_true", help="release each plate at the touched nest centre")
    parser.add_argument("--emulated", type=Path, default=None,
                        help="an emulated UR arm file: the moves go through the UR emulator and the command line")
    parser.add_argument("--host", default="127.0.0.62", help="the emulator's loopback address (with --emulated)")
    args = parser.parse_args()
    if args.emulated is not None:
        print(table([run_emulated(args.emulated, args.moves, args.host)], args.moves))
        return
    try:
        import torch

        torch.set_num_threads(1)  # the policies are tiny; leave the cores to the simulator
    except ImportError:
        pass
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("rmskill.safety").setLevel(logging.ERROR)
    if args.calibrate and "RMSKILL_HOME" not in os.environ:
        os.environ["RMSKILL_HOME"] = tempfile.mkdtemp(prefix="rmskill-bench-")
    runs = [run_arm(a, args.moves, args.calibrate and k == 0, seed, not args.no_handoff, args.touch_centre)
            for a in args.arms for k, seed in enumerate(args.seed)]
    print(table(runs, args.moves))


if __name__ == "__main__":
    main()
