"""Fuzz the safety envelope: adversarial commands from a careless or hostile caller.

Between ``SafeArm`` and the simulated driver sits ``EnvelopeSpy``, which judges every command that
reaches the driver against the arm file's limits on its own. Commands: servo streams (first of a
stream after connect, stop, move_to, recover, a violation or a failing driver call), jumps and
turns near and past every limit, odd durations (0, negative, NaN, inf, huge, bool, text),
non-finite and misshapen targets, targets at and past the workspace walls, move_to and
move_joints (small and large joint moves), injected driver failures, recover.

    python benchmarks/fuzz_envelope.py [--commands 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np

from rmskill.config import load_arm_config
from rmskill.connect import open_arm
from rmskill.envelope_spy import EnvelopeSpy
from rmskill.errors import DriverError, RmskillError, SafetyViolation
from rmskill.geometry import Pose
from rmskill.safety import SafeArm

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"


def connect_spied(arm_file: Path) -> tuple[SafeArm, EnvelopeSpy]:
    config, driver = open_arm(arm_file)
    driver.connect()
    driver.set_tcp(config.flange_T_tcp)
    driver.set_payload(config.gripper.mass, config.gripper.center_of_mass)
    spy = EnvelopeSpy(driver, config)
    return SafeArm(spy, config), spy


def random_rotation(rng: np.random.Generator, max_rad: float) -> Pose:
    axis = rng.normal(size=3)
    return Pose.from_rotvec([0.0, 0.0, 0.0], axis / np.linalg.norm(axis) * rng.uniform(0.0, max_rad))


class Fuzzer:
    """Draws one adversarial command at a time for ``arm`` and sends it."""

    def __init__(self, arm: SafeArm, spy: EnvelopeSpy, rng: np.random.Generator):
        self.arm, self.spy, self.rng = arm, spy, rng
        self.lim = arm.limits
        self.period = 1.0 / arm.capabilities.rate_hz
        self.reference: Pose | None = None  # the caller's idea of where the stream is

    def duration(self) -> object:
        r, lim = self.rng, self.lim
        if r.random() < 0.75:  # mostly valid, so streams run long enough to reach their limits
            return [None, self.period, 0.02, float(r.uniform(self.period, lim.max_servo_duration))][r.integers(4)]
        pick = r.integers(12)
        return [None, self.period, 0.02, float(r.uniform(0, 2 * lim.max_servo_duration)), -0.01, math.nan, math.inf,
                1e6, True, "0.02", self.period * 0.5, lim.max_servo_duration][pick]

    def target(self) -> object:
        r, lim = self.rng, self.lim
        base = self.reference or self.arm.state().base_T_tcp
        kind = r.integers(20)
        if kind == 0:
            return [math.nan, 0, 0, 0, 0, 0] if r.random() < 0.5 else [0.4, 0.0, 0.3, 3.14, math.inf, 0.0]
        if kind == 1:
            return [0.4] * int(r.integers(0, 9))
        if kind == 2:  # at or past a wall
            box = lim.workspace
            xyz = base.xyz.copy()
            axis = int(r.integers(3))
            xyz[axis] = (box.min if r.random() < 0.5 else box.max)[axis] + r.normal(0, 0.003)
            return Pose(xyz, base.wxyz)
        scale = [0.2, 0.5, 0.9, 0.99, 1.0, 0.5, 0.9, 0.99, 1.0, 1.01, 1.1, 3.0, 30.0][int(r.integers(13))]
        direction = r.normal(size=3)
        direction /= np.linalg.norm(direction)
        step = direction * lim.max_speed * self.period * scale
        if kind == 3:
            step = direction * lim.max_step * scale  # limits of the step itself
        turns = [0.0, lim.max_angular_speed * self.period * scale, lim.max_angular_speed * self.period, math.pi]
        turn = random_rotation(r, turns[int(r.integers(4))])
        return Pose(base.xyz + step, base.wxyz) @ turn

    def send(self) -> str:
        arm, r = self.arm, self.rng
        op = r.choice(["servo"] * 14 + ["move_to", "move_joints", "stop", "recover", "fail", "reset"])
        if op == "servo":
            target = self.target()
            arm.servo(target, self.duration())
            self.reference = target if isinstance(target, Pose) else None
        elif op == "move_to":
            here = arm.state().base_T_tcp
            target = Pose(here.xyz + r.normal(0, 0.05, 3), here.wxyz) @ random_rotation(r, r.choice([0.05, 0.5, 2.0]))
            self.reference = None
            arm.move_to(target, float(r.choice([0.05, 0.1, 0.25, 0.3, 0.0, -0.1, math.nan, 10.0])))
        elif op == "move_joints":
            q = arm.state().q + r.normal(0, r.choice([0.02, 0.2, 1.0]), arm.capabilities.dof)
            self.reference = None
            arm.move_joints(q, float(r.choice([0.2, 0.5, 1.0, 1.5, 0.0, math.inf])))
        elif op == "stop":
            self.reference = None
            arm.stop()
        elif op == "recover":
            arm.recover()
        elif op == "fail":
            self.spy.fail_next = str(r.choice(["before", "after"]))
        else:  # back home, as an episode reset does; the caller restarts its stream
            arm.sim.reset(plate=False)
            arm.stop()
            arm.recover()
            self.reference = None
        return str(op)


def fuzz(arm_file: Path, commands: int, seed: int) -> dict:
    arm, spy = connect_spied(arm_file)
    fuzzer = Fuzzer(arm, spy, np.random.default_rng(seed))
    outcome: Counter[str] = Counter()
    unlatched = 0
    start = time.monotonic()
    with arm:
        for _ in range(commands):
            stops, reached = spy.log.stops, sum(spy.log.reached.values())
            if arm.fault is not None and fuzzer.rng.random() < 0.85:  # most callers recover; some do not
                arm.recover()
                outcome["recover"] += 1
            try:
                op = fuzzer.send()
                outcome["accepted" if op in ("servo", "move_to", "move_joints") else "other"] += 1
            except SafetyViolation as err:
                if "call recover() first" in str(err):
                    outcome["refused: latched"] += 1
                    if sum(spy.log.reached.values()) != reached:
                        unlatched += 1
                    continue
                outcome[f"refused: {err.limit}"] += 1
                if spy.log.stops == stops or arm.fault is None:
                    unlatched += 1  # a violation must stop the arm and latch
            except DriverError:
                outcome["driver raised"] += 1
                if spy.log.stops == stops or arm.fault is None:
                    unlatched += 1
            except RmskillError as err:  # e.g. sim.reset refusing an unreachable start
                outcome[f"other error: {type(err).__name__}"] += 1
    return {"outcome": outcome, "reached": dict(spy.log.reached), "breaches": spy.log.breaches,
            "unlatched": unlatched, "seconds": time.monotonic() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000, help="commands per arm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # each violation logs a warning: thousands here
    for name in ("sim-ur5e", "sim-fr3"):
        arm_file = ARMS / f"{name}.yaml"
        load_arm_config(arm_file)
        res = fuzz(arm_file, args.commands, args.seed)
        reached = sum(res["reached"].values())
        print(f"\n{name}: {args.commands} commands in {res['seconds']:.1f} s, seed {args.seed}")
        print(f"  {'outcome':32s} {'count':>6s}")
        for key, n in sorted(res["outcome"].items()):
            print(f"  {key:32s} {n:6d}")
        print(f"  {'reached the driver':32s} {reached:6d}  {res['reached']}")
        print(f"  {'limit-breaking at the driver':32s} {len(res['breaches']):6d}  {res['breaches'][:3]}")
        print(f"  {'violations not stopped+latched':32s} {res['unlatched']:6d}")


if __name__ == "__main__":
    main()
