"""UR driver over loopback: servo command round-trip latency and 500 Hz loop jitter (p50, p99).

Starts the controller emulator in a child process on 127.0.0.1 (standard ports, as ur_rtde
needs) and measures with the unmodified ur_rtde client and with ``URArm``:

- servoL call: time ur_rtde takes to hand one servoL to the controller (client side);
- servo round trip: servoL sent -> the controller's streamed target pose has moved;
- loop period / jitter: ``URArm.servo`` called back to back at 500 Hz.

    python benchmarks/bench_ur.py [--backend kinematic|mujoco] [--seconds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rmskill.config import load_arm_config
from rmskill.drivers.ur import URArm
from rmskill.drivers.ur.emulator import EmulatorProcess

ARM_FILE = Path(__file__).resolve().parents[1] / "examples" / "arms" / "emulated-ur5e.yaml"
HOST = "127.0.0.1"


def round_trips(n: int) -> tuple[list[float], list[float]]:
    """``n`` servoL round trips [s] and servoL call durations [s] with plain ur_rtde."""
    import rtde_control
    import rtde_receive

    receive = rtde_receive.RTDEReceiveInterface(HOST)
    control = rtde_control.RTDEControlInterface(HOST)
    trips, calls = [], []
    try:
        home = receive.getActualTCPPose()
        for i in range(n):
            target = list(home)
            target[2] += 0.001 * ((i + 1) % 2)  # alternate 1 mm up and back
            before = receive.getTargetTCPPose()
            t0 = time.perf_counter()
            control.servoL(target, 0.0, 0.0, 0.002, 0.1, 300)
            t1 = time.perf_counter()
            while receive.getTargetTCPPose() == before:
                if time.perf_counter() - t0 > 0.5:
                    raise RuntimeError("the controller never showed the servo target")
            trips.append(time.perf_counter() - t0)
            calls.append(t1 - t0)
            time.sleep(0.01 + 0.002 * np.random.rand())  # decorrelate from the 2 ms tick
        control.servoStop()
        control.stopScript()
    finally:
        control.disconnect()
        receive.disconnect()
    return trips, calls


def servo_loop(seconds: float) -> list[float]:
    """Periods [s] between consecutive ``URArm.servo`` returns in a back-to-back 500 Hz loop."""
    arm = URArm(load_arm_config(ARM_FILE))
    with arm:
        pose = arm.state().base_T_tcp
        n = int(seconds * arm.capabilities.rate_hz)
        stamps = np.empty(n)
        for i in range(n):
            offset = 0.005 * np.sin(2 * np.pi * 0.5 * i * arm.native_period)
            arm.servo(pose.translated([0.0, 0.0, offset]))
            stamps[i] = time.perf_counter()
        arm.stop()
    return list(np.diff(stamps))


def row(name: str, values: list[float], unit: float = 1e3) -> str:
    v = np.asarray(values) * unit
    return f"| {name:<34} | {np.percentile(v, 50):8.3f} | {np.percentile(v, 99):8.3f} | {v.max():8.3f} | {len(v):6d} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["kinematic", "mujoco"], default="kinematic")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the servo loop [s]")
    parser.add_argument("--trips", type=int, default=300, help="number of round trips")
    args = parser.parse_args()
    with EmulatorProcess(ARM_FILE, host=HOST, backend=args.backend):
        trips, calls = round_trips(args.trips)
        periods = servo_loop(args.seconds)
    jitter = list(np.abs(np.asarray(periods) - 0.002))
    print(f"\nUR driver over loopback, emulator arm: {args.backend} (times in ms)\n")
    print(f"| {'measure':<34} | {'p50':>8} | {'p99':>8} | {'max':>8} | {'n':>6} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    print(row("servoL call (ur_rtde, client)", calls))
    print(row("servo round trip (cmd -> state)", trips))
    print(row("URArm.servo loop period (2 ms)", periods))
    print(row("loop jitter |period - 2 ms|", jitter))


if __name__ == "__main__":
    main()
