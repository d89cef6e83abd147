"""The hybrid: TD3's critic-driven actor update plus RM-RL's role-model regression on the same
corrector, with RM-RL's per-episode exploration. Actor loss = -Q + ``bc_weight`` x role-model MSE.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from rmskill.learning.corrector import Corrector
from rmskill.learning.episodes import Episode
from rmskill.learning.residual import ResidualConfig, ResidualFineTuner
from rmskill.learning.role_model import RefinerFactory, RoleModelConfig, radius, role_model_labels


@dataclass
class HybridConfig(ResidualConfig):
    """The TD3 part keeps the settings the hybrid was first measured with (the residual's before its
    stability fix): its role-model regression anchors the actor, and its corrections need the 0.2 bound.

    ``q_warmup``: critic updates, counted from the first relabel that finds a role model (a success;
    relabels come every ``role.relabel_every`` episodes), before the critic's gradient reaches the
    actor. Until then the actor learns the role-model regression alone, from the first update
    (``critic_warmup`` stays 0). With -Q from the first update the hybrid failed on 3 of 10 runs (5
    seeds, both perturbed arms): an untrained critic's gradient, at the actor learning rate the
    regression needs, drove the corrector to its bound within the first learning episodes, and it
    stayed at 0 % for all 200. Counting ``q_warmup`` from the first update left 1 of 10: a run whose
    role model first succeeded only at episode 18, after -Q had entered from a critic that had seen
    failures only (all its rewards alike, so its gradient says nothing yet). Counted from the first
    role model, 0 of 10 (94-100 %).
    """

    scale: float = 0.2
    explore_std: float = 0.04
    target_noise: float = 0.05
    target_noise_clip: float = 0.3
    critic_lr: float = 3e-4
    actor_lr: float = 1e-4
    warmup_episodes: int = 5
    critic_warmup: int = 0
    norm_episodes: int | None = 1
    bc_weight: float = 20.0  # weight of the role-model regression against -Q
    q_warmup: int = 2000  # critic updates after the first success before -Q enters the actor's loss (5 episodes)
    role: RoleModelConfig | None = None


class HybridFineTuner(ResidualFineTuner):
    method = "hybrid"

    def __init__(self, obs_dim: int, act_dim: int, config: HybridConfig | None = None, seed: int = 0,
                 initial_columns: np.ndarray | None = None, refiner: RefinerFactory | None = None):
        config = config or HybridConfig()
        self.role = config.role or RoleModelConfig()
        self.initial_columns = np.arange(obs_dim) if initial_columns is None else np.asarray(initial_columns)
        self.refiner = refiner
        super().__init__(obs_dim, act_dim, config, seed)
        self.history: list[Episode] = []
        self.labels: tuple[torch.Tensor, ...] | None = None
        self.first_labels_at: int | None = None  # critic updates done when the first role model appeared

    def begin_episode(self, index: int) -> np.ndarray:
        role = self.role
        std = max(role.explore_min, role.explore_std * role.explore_decay ** len(self.history))
        self.corrector.noise = np.random.default_rng([self.seed, index, 1]).normal(0.0, std, self.act_dim)
        return self.corrector.noise

    def act(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        return self.corrector(obs, base)

    def policy(self) -> Corrector:  # type: ignore[override]
        return copy.copy(self.corrector)

    def end_episode(self, episode: Episode) -> None:
        self.history.append(episode)
        if len(self.history) % self.role.relabel_every == 0:
            refine = self.refiner(self.history) if self.refiner is not None else None
            obs, base, label = role_model_labels(self.history, self.initial_columns, radius(self.role),
                                                 self.role.min_reward, self.role.scale, refine=refine)
            self.labels = tuple(torch.as_tensor(a, dtype=torch.float32) for a in (obs, base, label)) \
                if len(obs) else None
            if self.labels is not None and self.first_labels_at is None:
                self.first_labels_at = self.updates
        super().end_episode(episode)

    @property
    def q_in_actor(self) -> bool:
        """Whether -Q is part of the actor's loss: ``q_warmup`` critic updates after the first role model."""
        return self.first_labels_at is not None and self.updates > self.first_labels_at + self.cfg.q_warmup

    def actor_loss(self, obs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        if self.q_in_actor:
            loss = super().actor_loss(obs, base)
        else:  # the regression alone (a zero that keeps the graph where there are no labels yet)
            loss = 0.0 * self.actor(obs, base).sum()
        if self.labels is not None:
            o, b, y = self.labels
            i = torch.randint(0, len(o), (self.cfg.batch,), generator=self.gen)
            loss = loss + self.cfg.bc_weight * torch.mean((self.actor(o[i], b[i]) - y[i]) ** 2)
        return loss
