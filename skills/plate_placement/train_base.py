"""Train the plate placement base policy without human demonstrations.

A privileged scripted expert (``PlacementExpert``, it reads the simulator's truth) places plates
on simulated UR5e and FR3 arms whose reality is randomized (TCP, fixture and grasp offsets,
latency, sensor noise). Behaviour cloning distils it into a small MLP that sees only what a real
arm measures; DAgger rounds then run the student and relabel the states it reaches with the expert
(so the student learns to recover, e.g. from touching a lead-in chamfer).

    python -m rmskill.skills.plate_placement.train_base            # writes weights/ next to this file
    python -m rmskill.skills.plate_placement.train_base --out /tmp/w --worlds 4 --rounds 1

A few minutes on a 2-core CPU. Reproducible for a given ``--seed`` (up to thread scheduling in torch).
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

from rmskill.learning.policy import MLPPolicy, from_torch, save_policy, torch_mlp
from rmskill.skills.plate_placement.expert import PlacementExpert
from rmskill.skills.plate_placement.skill import ACTION_NAMES, OBS_NAMES, PlacementConfig, PlatePlacement

log = logging.getLogger(__name__)

ARMS_DIR = Path(__file__).resolve().parents[2] / "examples" / "arms"


@dataclass
class TrainConfig:
    """Everything that decides the shipped weights.

    Attributes:
        models: Arm models to train on (each uses ``examples/arms/sim-<model>.yaml`` as its cell).
        worlds: Randomized ``sim.truth`` draws per model per round.
        episodes: Episodes per world (targets cycle through the fixtures).
        nominal_fraction: Share of worlds whose truth is the nominal one (no offsets).
        rounds: DAgger rounds after the first (expert-driven) round.
        expert_noise: Std of the noise added to executed expert actions in round 0 (normalised).
        hidden: Hidden layer widths.
        epochs, batch, lr, weight_decay: Behaviour cloning optimisation.
        asinh_scale: Normalised action below which the loss is about linear, above logarithmic.
        seed: Seeds the worlds, the episodes and the network initialisation.
        workers: Processes collecting episodes in parallel.
    """

    models: tuple[str, ...] = ("ur5e", "fr3")
    worlds: int = 10
    episodes: int = 6
    nominal_fraction: float = 0.5
    rounds: int = 3
    expert_noise: float = 0.05
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 60
    batch: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-5
    asinh_scale: float = 0.01
    seed: int = 0
    workers: int = 2
    stats: dict = field(default_factory=dict)


def sample_truth(rng: np.random.Generator, nominal: bool) -> dict:
    """One randomized simulated reality (``sim.truth``), in arm-file units (m, rad).

    Offsets stay well within what the nest's lead-in captures (about 1.4 mm laterally in all, 0.5
    deg): the base policy learns to place precisely on a calibrated cell and to comply in the
    lead-in; larger, unobservable offsets are for calibration and the on-site fine-tuners. (Wider
    yaw offsets, to 2 deg, were tried: nominal rotation error rose to 0.08 deg and perturbed
    success fell.)
    """
    if nominal:
        return {"grasp_noise": [float(rng.uniform(0, 0.1)), 0.0], "latency_ms": float(rng.uniform(0, 4)),
                "wrench_noise_n": float(rng.uniform(0, 0.3))}
    mm, deg = 1e-3, math.radians(1.0)
    return {
        "tcp_error": [*rng.uniform(-0.5, 0.5, 2) * mm, 0.0, 0.0, 0.0, rng.uniform(-0.2, 0.2) * deg],
        "fixture_error": [*rng.uniform(-0.4, 0.4, 2) * mm, 0.0, 0.0, 0.0, rng.uniform(-0.1, 0.1) * deg],
        "grasp_offset": [rng.uniform(-0.5, 0.5) * mm, 0.0, 0.0, 0.0, 0.0, rng.uniform(-0.2, 0.2) * deg],
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

    base = load_arm_config(ARMS_DIR / f"sim-{job.model}.yaml")
    truth = dict(job.truth)
    if job.model == "ur5e":
        # The simulator's UR5e drops a plate gripped with any yaw offset at reset (the fingers start
        # off the plate side and slam into it); train its worlds without one until that is fixed.
        if "grasp_offset" in truth:
            truth["grasp_offset"] = [*truth["grasp_offset"][:5], 0.0]
        truth["grasp_noise"] = [truth.get("grasp_noise", [0.0, 0.0])[0], 0.0]
    config = base.with_changes(name=f"train-{job.model}-{job.world}", sim={"seed": job.seed, "truth": truth})
    skill = PlatePlacement(policy=lambda obs: np.zeros(len(ACTION_NAMES)))
    expert = PlacementExpert(skill.config)
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
        for k in range(job.episodes):
            drives["expert"] = job.student is None or rng.random() < job.beta
            ran = run_episode(skill, arm, k, job.seed, targets, act=act)
            if not ran.started:  # the plate slipped out at reset: not an episode
                results.append({"model": job.model, "dropped": True})
                continue
            results.append({"model": job.model, "dropped": False, "expert": drives["expert"],
                            "nominal": not job.truth, **ran.result.summary()})
    return np.array(observations), np.array(labels), results


def fit(obs: np.ndarray, act: np.ndarray, cfg: TrainConfig) -> MLPPolicy:
    """Behaviour cloning: MSE on standardised ``asinh(action / asinh_scale)`` (fine corrections near
    the seat matter as much as large moves); the standardisation is folded into the export."""
    import torch

    torch.manual_seed(cfg.seed)
    asinh_scale = np.full(act.shape[1], cfg.asinh_scale)
    act = np.arcsinh(act / asinh_scale)
    obs_mean, obs_std = obs.mean(0), np.maximum(obs.std(0), 1e-2)
    act_mean, act_std = act.mean(0), np.maximum(act.std(0), 1e-3)
    x = torch.tensor((obs - obs_mean) / obs_std, dtype=torch.float32)
    y = torch.tensor((act - act_mean) / act_std, dtype=torch.float32)
    net = torch_mlp(obs.shape[1], act.shape[1], cfg.hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    n = len(x)
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, cfg.batch):
            idx = perm[i: i + cfg.batch]
            loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if epoch % 10 == 0 or epoch == cfg.epochs - 1:
            log.info("epoch %d: loss %.5f", epoch, total / n)
    with torch.no_grad():  # fold the action standardisation into the last layer
        last = net[-1]
        last.weight.mul_(torch.tensor(act_std, dtype=torch.float32)[:, None])
        last.bias.mul_(torch.tensor(act_std, dtype=torch.float32)).add_(torch.tensor(act_mean, dtype=torch.float32))
    cfg.stats["final_loss"] = total / n
    return from_torch(net, obs_mean, obs_std, asinh_scale)


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
    ran = [r for r in results if not r["dropped"]]
    out = {"round": rnd, "episodes": len(ran), "dropped_at_reset": len(results) - len(ran)}
    for who, sel in (("expert", [r for r in ran if r["expert"]]), ("student", [r for r in ran if not r["expert"]])):
        if sel:
            out[who] = {"episodes": len(sel), "success": float(np.mean([r["success"] for r in sel])),
                        "mean_mm": float(np.mean([r["translation_error_mm"] for r in sel]))}
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
    pc = PlacementConfig()
    manifest = {
        "skill": PlatePlacement.name, "version": PlatePlacement.version, "kind": "base",
        "arm_models": list(cfg.models), "calibration_hash": "none",
        "obs_names": list(OBS_NAMES), "action_names": list(ACTION_NAMES),
        "action_scale": list(pc.action_scale), "rate_hz": PlatePlacement.spec.rate_hz, "activation": "tanh",
        "hidden": list(cfg.hidden),
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
    parser.add_argument("--out", type=Path, default=PlatePlacement.weights_dir)
    parser.add_argument("--worlds", type=int, default=TrainConfig.worlds)
    parser.add_argument("--episodes", type=int, default=TrainConfig.episodes)
    parser.add_argument("--rounds", type=int, default=TrainConfig.rounds)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--workers", type=int, default=TrainConfig.workers)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("rmskill.safety").setLevel(logging.ERROR)
    logging.getLogger("rmskill.skills.plate_placement.skill").setLevel(logging.ERROR)
    cfg = TrainConfig(worlds=args.worlds, episodes=args.episodes, rounds=args.rounds, epochs=args.epochs,
                      workers=args.workers, seed=args.seed)
    train(cfg, args.out)


if __name__ == "__main__":
    main()

