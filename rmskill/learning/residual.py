"""ResFiT-style residual RL: off-policy TD3 on a frozen base policy (Ankile et al., 2025).

Actor: the ``CorrectorNet`` (observation + base action in, bounded correction out, zero at start).
Critic: an ensemble of LayerNorm MLP heads scoring (observation, base action, executed correction);
target = min over two randomly chosen target heads (REDQ), n-step returns, Polyak averaging.
Data: sparse reward at the episode's end; batches half from the warm-up rollouts of the base policy
(plus noise) and half from the online rollouts (RLPD); several updates per environment step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rmskill.learning.corrector import Corrector, CorrectorNet
from rmskill.learning.episodes import Episode


@dataclass
class ResidualConfig:
    """Hyperparameters (NOTES.md's ResFiT column, scaled to a 2-core CPU and 200 episodes).

    Units: ``scale``, ``explore_std`` and ``target_noise*`` are normalised action units (1 = the
    skill's ``action_scale``, the largest step). ResFiT bounds the residual at 0.1-0.2 of the *data's*
    action range; a precise skill's base uses a few percent of ours (measured on the first skill:
    |base| p95 0.01 lateral, 0.14 z), so 0.2 let the residual out-push the base 15-70x and drive the
    held object off its target. 0.05 is still 3-4x those lateral steps; the noises keep ResFiT's ratios to the
    bound (exploration 1/4, target noise 1/4 clipped at 1/2).

    Stability (the collapse of issue 14): ``critic_warmup`` critic-only updates on the warm-up
    rollouts before the actor's first update, and ResFiT's small actor learning rate (its 1e-6 to
    5e-6; 1e-4 saturated the tanh within a few episodes, from an untrained critic's gradient).
    ``utd`` stays 1 update per environment step (ResFiT: 4-8): 400-step episodes make that
    400 updates, about 3 s of one core, an episode. ``norm_episodes`` (default: the warm-up
    episodes) set the observation normalisation (it was the first episode's alone, whose
    within-episode spread is near zero for some features).
    """

    hidden: int = 64
    scale: float = 0.05  # actor output bound (normalised action units)
    critics: int = 4  # ensemble heads (10 in the paper)
    n_step: int = 3
    gamma: float = 0.99
    tau: float = 0.005
    explore_std: float = 0.0125  # per-step Gaussian exploration
    target_noise: float = 0.0125
    target_noise_clip: float = 0.025
    actor_every: int = 4  # one actor update per 4 critic updates
    utd: float = 1.0  # gradient updates per environment step
    batch: int = 128
    critic_lr: float = 1e-4
    actor_lr: float = 5e-6
    warmup_episodes: int = 10  # base policy + noise only; these form the offline half of each batch
    critic_warmup: int = 2000  # critic-only updates at the end of the warm-up, before any actor update
    norm_episodes: int | None = None  # episodes that set the observation normalisation (None: the warm-up)
    grad_clip: float = 1.0


class CriticEnsemble(nn.Module):
    def __init__(self, in_dim: int, hidden: int, heads: int):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, 1))
            for _ in range(heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (heads, batch)
        return torch.stack([h(x).squeeze(-1) for h in self.heads])


class Replay:
    """Flat n-step transitions built from whole episodes."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.arrays: tuple[torch.Tensor, ...] | None = None

    def add(self, ep: Episode, n: int, gamma: float) -> None:
        t_len = len(ep.obs)
        if t_len == 0:
            return
        reward = np.zeros(t_len)
        reward[-1] = ep.reward
        idx = np.arange(t_len)
        end = np.minimum(idx + n, t_len)  # n-step target index (t_len means terminal)
        ret = np.array([sum(gamma ** k * reward[t + k] for k in range(end[t] - t)) for t in idx])
        nxt = np.minimum(end, t_len - 1)
        self.parts.append((ep.obs, ep.base, ep.correction, ret, ep.obs[nxt], ep.base[nxt],
                           (end >= t_len).astype(float), gamma ** (end - idx)))
        self.arrays = None

    def __len__(self) -> int:
        return sum(len(p[0]) for p in self.parts)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        if self.arrays is None:
            self.arrays = tuple(torch.as_tensor(np.concatenate([p[k] for p in self.parts]), dtype=torch.float32)
                                for k in range(8))
        i = torch.as_tensor(rng.integers(0, len(self.arrays[0]), batch))
        return tuple(a[i] for a in self.arrays)


class ExplorePolicy:
    """The residual learner's ``act`` for one episode, without the learner: the actor's corrector plus
    per-step Gaussian exploration drawn from the episode's own generator."""

    def __init__(self, corrector: Corrector, rng: np.random.Generator, std: float, scale: float, act_dim: int):
        self.corrector, self.rng, self.std, self.scale, self.act_dim = corrector, rng, std, scale, act_dim

    def act(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        noisy = self.corrector(obs, base) + self.rng.normal(0.0, self.std, self.act_dim)
        return np.clip(noisy, -self.scale, self.scale)


class ResidualFineTuner:
    """The learner behind ``rmskill finetune --method residual``."""

    method = "residual"

    def __init__(self, obs_dim: int, act_dim: int, config: ResidualConfig | None = None, seed: int = 0):
        cfg = self.cfg = config or ResidualConfig()
        torch.manual_seed(seed)  # the networks' initial weights
        self.gen = torch.Generator().manual_seed(seed)  # the updates' own draws, independent of other code
        self.seed = seed
        self.rng = np.random.default_rng(seed)  # the updates' draws only: replaying episodes replays them
        self.explore_rng = np.random.default_rng([seed, 0, 1])
        self.act_dim = act_dim
        self.actor = CorrectorNet(obs_dim, act_dim, cfg.hidden, cfg.scale)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic = CriticEnsemble(obs_dim + 2 * act_dim, cfg.hidden, cfg.critics)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.AdamW(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=cfg.critic_lr)
        self.offline, self.online = Replay(), Replay()
        self.corrector = Corrector.from_net(self.actor)
        self.episodes = 0
        self.updates = 0
        self.normalised = False
        self.norm_obs: list[np.ndarray] = []
        self.actor_updates = 0
        self.last_loss = float("nan")

    def begin_episode(self, index: int) -> np.ndarray:
        """Start episode ``index``: its exploration draws depend on the seed and the index alone."""
        self.explore_rng = np.random.default_rng([self.seed, index, 1])
        return np.zeros(self.act_dim)

    def act(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The executed correction: the actor's, plus per-step Gaussian exploration."""
        noisy = self.corrector(obs, base) + self.explore_rng.normal(0.0, self.cfg.explore_std, self.act_dim)
        return np.clip(noisy, -self.cfg.scale, self.cfg.scale)

    def policy(self) -> ExplorePolicy:
        """What acts for the episode just begun, apart from the learner (an actor in another process)."""
        return ExplorePolicy(self.corrector, copy.deepcopy(self.explore_rng), self.cfg.explore_std, self.cfg.scale,
                             self.act_dim)

    def end_episode(self, episode: Episode) -> None:
        cfg = self.cfg
        self.episodes += 1
        warm = self.episodes <= cfg.warmup_episodes
        (self.offline if warm else self.online).add(episode, cfg.n_step, cfg.gamma)
        norm_episodes = cfg.warmup_episodes if cfg.norm_episodes is None else cfg.norm_episodes
        if not self.normalised:
            self.norm_obs.append(episode.obs)
            if len(self.norm_obs) >= max(1, norm_episodes) or not warm:
                self._normalise(np.concatenate(self.norm_obs))
                self.norm_obs = []
        if warm:
            return
        n = max(1, round(cfg.utd * len(episode.obs)))
        if self.updates == 0:  # the first learning episode: train the critic alone first
            n += cfg.critic_warmup
        for _ in range(n):
            self.update()
        self.corrector = Corrector.from_net(self.actor)

    def _normalise(self, obs: np.ndarray) -> None:
        for net in (self.actor, self.actor_target):
            net.set_normalisation(obs.mean(axis=0), obs.std(axis=0))
        self.normalised = True

    def _features(self, obs: torch.Tensor, base: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        return torch.cat(((obs - self.actor.obs_mean) / self.actor.obs_std, base, corr / self.cfg.scale), dim=-1)

    def _batch(self) -> tuple[torch.Tensor, ...]:
        half = self.cfg.batch // 2
        a = self.offline.sample(self.rng, half) if len(self.offline) else self.online.sample(self.rng, half)
        b = self.online.sample(self.rng, self.cfg.batch - half)
        return tuple(torch.cat(pair) for pair in zip(a, b, strict=True))

    def update(self) -> None:
        cfg = self.cfg
        obs, base, corr, ret, obs2, base2, done, discount = self._batch()
        with torch.no_grad():
            noise = (torch.randn(corr.shape, generator=self.gen) * cfg.target_noise).clamp(-cfg.target_noise_clip,
                                                                                           cfg.target_noise_clip)
            corr2 = (self.actor_target(obs2, base2) + noise).clamp(-cfg.scale, cfg.scale)
            pick = torch.as_tensor(self.rng.choice(cfg.critics, 2, replace=False))
            q2 = self.critic_target(self._features(obs2, base2, corr2))[pick].min(dim=0).values
            target = ret + discount * (1.0 - done) * q2
        q = self.critic(self._features(obs, base, corr))
        loss = ((q - target) ** 2).mean()
        self.critic_opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()
        self.last_loss = float(loss.detach())
        self.updates += 1
        if self.updates > cfg.critic_warmup and self.updates % cfg.actor_every == 0:
            self._actor_step(obs, base)
        if self.updates % cfg.actor_every == 0:
            self._polyak()

    def actor_loss(self, obs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return -self.critic(self._features(obs, base, self.actor(obs, base))).mean()

    def _actor_step(self, obs: torch.Tensor, base: torch.Tensor) -> None:
        loss = self.actor_loss(obs, base)
        self.actor_opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.grad_clip)
        self.actor_opt.step()
        self.actor_updates += 1

    @torch.no_grad()
    def _polyak(self) -> None:
        for net, tgt in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                pt.mul_(1.0 - self.cfg.tau).add_(p, alpha=self.cfg.tau)
