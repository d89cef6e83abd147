"""Policy latency: per-control-step inference of the plate placement base policy (and base +
residual where one is given), p50 and p99, against the 1 ms Franka servo budget.

Inputs are real observations recorded from a simulated placement, so the numbers include the
observation normalisation. Three implementations: the shipped numpy forward pass (what the skill
runs), and torch with ``inference_mode`` at one thread, for comparison.

    python benchmarks/bench_policy.py [--steps 20000] [--weights DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rmskill
from rmskill.learning.corrector import Corrector, CorrectorNet
from rmskill.skill import Skill

BUDGET_MS = 1.0  # Franka servo period
TARGET_P99_MS = 0.5


def observations(skill: Skill, arm_file: str) -> np.ndarray:
    with rmskill.connect(arm_file) as arm:
        result = skill.run(arm, target=sorted(arm.config.fixtures)[0])
    return np.array([step["obs"] for step in result.trajectory])


def timed(fn, inputs: np.ndarray, steps: int) -> np.ndarray:
    for i in range(200):  # warm-up
        fn(inputs[i % len(inputs)])
    out = np.empty(steps)
    clock = time.perf_counter_ns
    for i in range(steps):
        x = inputs[i % len(inputs)]
        t0 = clock()
        fn(x)
        out[i] = (clock() - t0) / 1e6
    return out


def trained_or_fresh_corrector(skill: Skill, weights: str | None):
    """The fine-tuned corrector of ``--weights`` if it has one, else a fresh ``CorrectorNet`` with
    random (non-zero) weights: the same forward pass and cost either way."""
    if skill.residual is not None:
        return skill.residual, "fine-tuned corrector"
    net = CorrectorNet(skill.policy.obs_dim, skill.policy.action_dim, scale=skill.residual_scale)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return Corrector.from_net(net), "corrector, random weights"


def torch_forward(skill: Skill):
    import torch

    from rmskill.learning.policy import torch_mlp

    torch.set_num_threads(1)
    policy = skill.policy
    net = torch_mlp(policy.obs_dim, policy.action_dim, tuple(w.shape[0] for w, _ in policy.layers[:-1]))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m, (w, b) in zip(linears, policy.layers, strict=True):
            m.weight.copy_(torch.tensor(w))
            m.bias.copy_(torch.tensor(b))
    mean = torch.tensor(policy.obs_mean, dtype=torch.float32)
    std = torch.tensor(policy.obs_std, dtype=torch.float32)

    def forward(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net((torch.from_numpy(obs).float() - mean) / std).numpy()

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--arm", default="examples/arms/sim-fr3.yaml")
    args = parser.parse_args()
    skill = rmskill.load_skill("plate_placement", weights=args.weights)
    inputs = observations(skill, args.arm)
    rows = [("base policy, numpy (shipped runtime)", timed(skill.policy, inputs, args.steps)),
            ("skill.act: base + bounds (numpy)", timed(skill.act, inputs, args.steps))]
    skill.residual, kind = trained_or_fresh_corrector(skill, args.weights)
    rows.append((f"skill.act: base + residual ({kind})", timed(skill.act, inputs, args.steps)))
    skill.residual = None
    rows.append(("base policy, torch inference_mode, 1 thread", timed(torch_forward(skill), inputs, args.steps)))
    print(f"policy inference per control step ({args.steps} steps, {len(inputs)} recorded observations); "
          f"budget {BUDGET_MS:.1f} ms (Franka 1 kHz), target p99 < {TARGET_P99_MS} ms")
    print(f"{'implementation':<46} {'p50 [ms]':>9} {'p99 [ms]':>9} {'max [ms]':>9}  p99 < {TARGET_P99_MS} ms")
    for name, t in rows:
        p50, p99 = np.percentile(t, 50), np.percentile(t, 99)
        print(f"{name:<46} {p50:9.4f} {p99:9.4f} {t.max():9.4f}  {'yes' if p99 < TARGET_P99_MS else 'NO'}")
    print("residual: rmskill.learning.corrector (obs + base action -> 64 -> 64 -> 4, LayerNorm, tanh), numpy")


if __name__ == "__main__":
    main()
