"""Train the tube insertion base policy without human demonstrations.

The privileged scripted expert (``InsertionExpert``, it reads the simulator's truth) inserts tubes on
simulated UR5e and FR3 rack cells whose reality is randomized (TCP, rack and grasp offsets, tube
tilt, latency, sensor noise). Behaviour cloning distils it into a small MLP that sees only what a
real arm measures; DAgger rounds then run the student and relabel the states it reaches.

    python -m rmskill.skills.tube_insertion.train_base            # writes weights/ next to this file
    python -m rmskill.skills.tube_insertion.train_base --out /tmp/w --worlds 2 --rounds 1

A few minutes on a 2-core CPU. The fitting is the plate skill's (``plate_placement.train_base.fit``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rmskill.learning.policy import MLPPolicy, save_policy
from rmskill.skills.plate_placement.train_base import fit
from rmskill.skills.tube_insertion.expert import InsertionExpert
from rmskill.skills.tube_insertion.skill import ACTION_NAMES, OBS_NAMES, InsertionConfig, TubeInsertion

log = logging.getLogger(__name__)

ARMS_DIR = Path(__file__).resolve().parents[2] / "examples" / "arms"


@dataclass
class TrainConfig:
    """Everything that decides the shipped weights (see ``plate_placement.train_base.TrainConfig``).

    Attributes:
        models: Arm models to train on (each uses ``examples/arms/sim-<model>-rack.yaml``).
        worlds: Randomized ``sim.truth`` draws per model per round.
        episodes: Episodes per world (targets cycle through the holes, from a random one).
        nominal_fraction: Share of worlds whose truth is the nominal one.
        rounds: DAgger rounds after the first (expert-driven) round.
        expert_noise: Std of the noise added to executed expert actions in round 0 (normalised).
    """

    models: tuple[str, ...] = ("ur5e", "fr3")
    worlds: int = 6
    episodes: int = 4
    nominal_fraction: float = 0.5
    rounds: int = 2
    expert_noise: float = 0.05
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 40
    batch: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-5
    asinh_scale: float = 0.01
    seed: int = 0
    workers: int = 2
    stats: dict = field(default_factory=dict)


def sample_truth(rng: np.random.Generator, nominal: bool) -> dict:
    """One randomized simulated reality (``sim.truth``), in arm-file units (m, rad): offsets the
    hole's chamfer captures, and a tube tilt in the fingers (about the pads' normal) up to 1.5 deg."""
    if nominal:
        return {"grasp_noise": [float(rng.uniform(0, 0.1)), 0.0], "latency_ms": float(rng.uniform(0, 4)),
                "wrench_noise_n": float(rng.uniform(0, 0.3))}
    mm, deg = 1e-3, math.radians(1.0)
    return {
        "tcp_error": [*rng.uniform(-0.4, 0.4, 2) * mm, 0.0, 0.0, 0.0, 0.0],
        "fixture_error": [*rng.uniform(-0.4, 0.4, 2) * mm, 0.0, 0.0, 0.0, rng.uniform(-0.2, 0.2) * deg],
        "grasp_offset": [rng.uniform(-0.5, 0.5) * mm, 0.0, 0.0, 0.0, rng.uniform(-1.5, 1.5) * deg, 0.0],
        "grasp_noise": [float(rng.uniform(0, 0.2)), float(rng.uniform(0, 0.1))],
        "latency_ms": float(rng.uniform(0, 4)),
        "wrench_noise_n": float(rng.uniform(0, 0.3)),
    }


@dataclass
class Job:
    model: str
    world: int
    truth: dict
    seed: int
    episodes: int
    student: MLPPolicy | None  # None: the expert drives (with noise)
    beta: float  # probability per episode that the expert drives in a DAgger round
    expert_noise: float


def collect(job: Job) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Run one world's episodes; every policy step is labelled by the expert."""
    import rmskill
    from rmskill.config import load_arm_config
    from rmskill.runner import episode_targets, run_episode

    base = load_arm_config(ARMS_DIR / f"sim-{job.model}-rack.yaml")
    config = base.with_changes(name=f"train-{job.model}-{job.world}", sim={"seed": job.seed, "truth": job.truth})
    skill = TubeInsertion(policy=lambda obs: np.zeros(len(ACTION_NAMES)))
    expert = InsertionExpert(skill.config)
    rng = np.random.default_rng(job.seed)
    observations: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    results: list[dict] = []
    drives = {"expert": True}

    def act(obs, ctx):
        label = expert(obs, ctx)
        observations.append(obs.copy())
        labels.append(label)
        if drives["expert"]:
            return label + rng.normal(0.0, job.expert_noise, label.shape)
        return job.student(obs)

    with rmskill.connect(config) as arm:
        targets = episode_targets(skill, config)
        first = int(rng.integers(len(targets)))
        for k in range(job.episodes):
            drives["expert"] = job.student is None or rng.random() < job.beta
            ran = run_episode(skill, arm, first + k, job.seed, targets, act=act)
            results.append({"model": job.model, "expert": drives["expert"], **ran.result.summary()})
    return np.array(observations), np.array(labels), results


def _jobs(cfg: TrainConfig, rnd: int, student: MLPPolicy | None) -> list[Job]:
    rng = np.random.default_rng([cfg.seed, rnd])
    jobs = []
    for model in cfg.models:
        for w in range(cfg.worlds):
            nominal = w < round(cfg.nominal_fraction * cfg.worlds)
            jobs.append(Job(model, rnd * 1000 + w, sample_truth(rng, nominal), int(rng.integers(1 << 30)),
                            cfg.episodes, student, beta=0.5 if rnd == 1 else 0.0, expert_noise=cfg.expert_noise))
    return jobs


def _report(rnd: int, results: list[dict]) -> dict:
    out: dict = {"round": rnd, "episodes": len(results)}
    for who, sel in (("expert", [r for r in results if r["expert"]]),
                     ("student", [r for r in results if not r["expert"]])):
        if sel:
            out[who] = {"episodes": len(sel), "success": float(np.mean([r["success"] for r in sel])),
                        "mean_mm": float(np.nanmean([r["translation_error_mm"] for r in sel]))}
    log.info("round %d: %s", rnd, out)
    return out


def train(cfg: TrainConfig, out: Path) -> MLPPolicy:
    """Collect, distil, DAgger; write ``base.safetensors`` + ``manifest.json`` into ``out``."""
    os.environ["RMSKILL_HOME"] = tempfile.mkdtemp(prefix="rmskill-train-")  # no stored calibration
    start = time.time()
    all_obs, all_act = [], []
    student: MLPPolicy | None = None
    rounds = []
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(cfg.workers) as pool:
        for rnd in range(cfg.rounds + 1):
            results: list[dict] = []
            for obs, act, res in pool.imap(collect, _jobs(cfg, rnd, student)):
                if len(obs):
                    all_obs.append(obs)
                    all_act.append(act)
                results.extend(res)
            rounds.append(_report(rnd, results))
            student = fit(np.concatenate(all_obs), np.concatenate(all_act), cfg)
    samples = int(sum(len(o) for o in all_obs))
    manifest = {
        "skill": TubeInsertion.name, "version": TubeInsertion.version, "kind": "base",
        "arm_models": list(cfg.models), "calibration_hash": "none",
        "obs_names": list(OBS_NAMES), "action_names": list(ACTION_NAMES),
        "action_scale": list(InsertionConfig().action_scale), "rate_hz": TubeInsertion.spec.rate_hz,
        "activation": "tanh", "hidden": list(cfg.hidden),
        "training": {**{k: v for k, v in asdict(cfg).items() if k != "stats"}, "samples": samples,
                     "rounds": rounds, "final_loss": cfg.stats.get("final_loss"),
                     "minutes": round((time.time() - start) / 60, 2),
                     "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
    }
    save_policy(out, student, manifest)
    log.info("wrote %s (%d samples, %.1f min)", out, samples, (time.time() - start) / 60)
    return student


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TubeInsertion.weights_dir)
    parser.add_argument("--worlds", type=int, default=TrainConfig.worlds)
    parser.add_argument("--episodes", type=int, default=TrainConfig.episodes)
    parser.add_argument("--rounds", type=int, default=TrainConfig.rounds)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--workers", type=int, default=TrainConfig.workers)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("rmskill.safety", "rmskill.skills.tube_insertion.skill", "rmskill.runner"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cfg = TrainConfig(worlds=args.worlds, episodes=args.episodes, rounds=args.rounds, epochs=args.epochs,
                      workers=args.workers, seed=args.seed)
    train(cfg, args.out)


if __name__ == "__main__":
    main()
