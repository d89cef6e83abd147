"""A plate held off centre in the grasp, placed with and without the skill's compliance: peak force.

A stiff arm (a UR under servoL) jams a plate that is 1.5 mm off; asking for compliance in the contact
phases seats it. Runs the plate placement once per row on: the simulated UR5e and FR3 (MuJoCo), and
the emulated UR5e through ur_rtde (MuJoCo backend) with each UR compliance method (admittance over
servoL, force mode). Loopback only; each emulator on its own 127.0.0.x.

    python benchmarks/bench_compliance.py [--offset-mm 1.5] [--only sim|ur] [--repeat 3]

The emulated rows run in real time: on a loaded machine repeat them and read the spread.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import yaml

import rmskill
from rmskill.errors import RmskillError

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"


def place(arm_file: Path, compliance: bool, emulator=None) -> dict:
    """One placement. ``emulator`` (an ``EmulatorProcess`` whose arm file has ``emulator_operator``):
    its operator resets the cell afterwards, and its log says where the plate really is ("truth")."""
    skill = rmskill.load_skill("plate_placement")
    if not compliance:
        skill.config = dataclasses.replace(skill.config, contact_stiffness=None)
    start = time.monotonic()
    try:
        with rmskill.connect(arm_file) as arm:
            try:
                result = skill.run(arm, target="shelf_2")
                row = {"outcome": "success" if result.success else f"failure ({result.message[:48]})",
                       "peak_n": result.peak_force_n, "error_mm": result.translation_error_mm}
            except RmskillError as err:
                row = {"outcome": f"stopped: {str(err)[:70]}",
                       "peak_n": getattr(err, "value", None) or float("nan"), "error_mm": float("nan")}
            row["truth"] = emulator_truth(arm, emulator) if emulator is not None else "(the error column)"
    except RmskillError as err:
        row = {"outcome": f"stopped: {str(err)[:70]}", "peak_n": getattr(err, "value", None) or float("nan"),
               "error_mm": float("nan"), "truth": "-"}
    return {**row, "s": time.monotonic() - start}


def emulator_truth(arm, emulator) -> str:
    """The emulator's operator resets the cell; its own log says where the plate was left."""
    arm.operator.reset(plate=True)
    for _ in range(50):
        if reports := emulator.plate_reports():
            mm, deg, nest, where = reports[-1]
            return f"{mm:.3f} mm / {deg:.3f} deg from {nest}'s seat ({where})"
        time.sleep(0.02)
    return "(no operator log)"


def arm_file(folder: Path, name: str, offset_m: float, **changes) -> Path:
    data = yaml.safe_load((ARMS / name).read_text())
    data.setdefault("sim", {}).setdefault("truth", {})["grasp_offset"] = [offset_m, 0.0, 0.0, 0.0, 0.0, 0.0]
    for key, value in changes.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = folder / f"{name.removesuffix('.yaml')}-{len(list(folder.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offset-mm", type=float, default=1.5)
    parser.add_argument("--only", choices=["sim", "ur"], default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each emulated row")
    args = parser.parse_args()
    offset = args.offset_mm / 1000.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only != "ur":
            for name in ("sim-ur5e.yaml", "sim-fr3.yaml"):
                path = arm_file(folder, name, offset)
                for compliance in (False, True):
                    rows.append((name.removesuffix(".yaml"), "mujoco", compliance, place(path, compliance)))
        if args.only != "sim":
            from rmskill.drivers.ur.emulator import EmulatorProcess

            for i, method in enumerate(("admittance", "force_mode")):
                host = f"127.0.0.{40 + i}"
                path = arm_file(folder, "emulated-ur5e.yaml", offset, host=host,
                                gripper={"port": str(folder / f"tty{i}")},
                                options={"compliance_method": method, "emulator_operator": True})
                for compliance in (False, True):
                    for _ in range(args.repeat):
                        with EmulatorProcess(path, host=host, backend="mujoco") as emulator:
                            rows.append(("emulated-ur5e", method, compliance, place(path, compliance, emulator)))
    print(f"plate {args.offset_mm} mm off centre in the grasp, shelf_2")
    print("error: the skill's own placement error (simulated arms: the plate, from the simulator; the "
          "emulated arm: the TCP, measured by the arm, which does not know the plate is off in the grasp)")
    print("| arm | backend / UR method | compliance | skill's result | peak force [N] | error [mm] | "
          "the plate, from the emulator | wall [s] |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for arm, backend, compliance, r in rows:
        print(f"| {arm} | {backend} | {'skill (4000 N/m, 300 Nm/rad)' if compliance else 'off'} | {r['outcome']} | "
              f"{r['peak_n']:.1f} | {r['error_mm']:.3f} | {r['truth']} | {r['s']:.1f} |")


if __name__ == "__main__":
    main()
