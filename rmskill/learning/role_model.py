"""RM-RL: role-model fine-tuning of the residual corrector (Chen et al., ICRA 2026).

Trials that start from similar states are peers. In each group the trial with the highest reward
is the role model; its actions become the supervised labels of all its peers. The policy learned
here is the corrector on top of the frozen base, so its action is the correction: a peer's step t
is labelled with the correction the role model executed at step t (exploration included), while
the base policy keeps closing the loop on each trial's own state. The corrector is fitted
to all labelled data by regression; every ``relabel_every`` episodes the groups and role models
are chosen again (better trials take over) and all labelled data is replayed offline.

Similar initial states: the skill's ``initial_features`` at the first learned step (for a
placement, the TCP pose relative to the target where the policy takes over), Euclidean distance
under ``group_radius`` (default: the skill's ``similarity_radius``); groups grow greedily in
arrival order. Exploration: one Gaussian offset per episode added to every correction of that
episode, so a trial tests one consistent aim (a site offset is consistent); its spread decays as
trials improve.

Learned selection (our extension, ``learned_selection``): rewards are noisy (each grasp differs),
so the single best trial is often a lucky one. A ridge-regressed quadratic reward model over each
trial's mean correction scores every trial; the role model is the trial with the best blend of
its measured and its predicted reward. The labels are still that trial's own actions.

Label refinement (``Skill.label_refiner``): a skill may refine each peer's labels from what all
trials measured (e.g. steer lateral labels toward a target centre the trials' own measurements
found, a state-dependent correction no single constant-aim trial demonstrated); refined labels are
bounded like the role model's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rmskill.learning.corrector import Corrector, CorrectorNet
from rmskill.learning.episodes import Episode

#: ``refine(peer, labels) -> labels`` for one peer trial.
LabelRefiner = Callable[[Episode, np.ndarray], np.ndarray]
#: ``refiner(all_trials) -> LabelRefiner | None``: the skill's ``label_refiner``.
RefinerFactory = Callable[[list[Episode]], LabelRefiner | None]


@dataclass
class RoleModelConfig:
    """Hyperparameters; normalised action units unless stated."""

    hidden: int = 64
    scale: float = 0.2  # bound on the correction
    explore_std: float = 0.06  # initial per-episode exploration offset
    explore_decay: float = 0.985  # per episode
    explore_min: float = 0.02
    group_radius: float | None = None  # initial-state distance for peers; None: the skill's similarity_radius
    min_reward: float = 0.0  # a role model must at least have succeeded (arm-measured rewards are > 0 then)
    relabel_every: int = 5  # episodes between relabel-and-replay rounds
    learned_selection: bool = True  # choose role models by measured + model-predicted reward
    model_weight: float = 0.7  # share of the predicted reward in the selection score
    epochs: int = 40  # offline passes over all labelled data per round ...
    max_steps: int = 600  # ... at most this many gradient steps per round
    batch: int = 256
    lr: float = 2e-3


def radius(cfg: RoleModelConfig) -> float:
    """The peer radius; 1.0 where neither the learner nor the skill set one."""
    return 1.0 if cfg.group_radius is None else cfg.group_radius


def group_trials(initials: np.ndarray, radius: float) -> list[list[int]]:
    """Greedy grouping: each trial joins the first group whose founder is within ``radius``."""
    groups: list[list[int]] = []
    founders: list[np.ndarray] = []
    for i, x in enumerate(initials):
        for g, f in zip(groups, founders, strict=True):
            if np.linalg.norm(x - f) <= radius:
                g.append(i)
                break
        else:
            groups.append([i])
            founders.append(x)
    return groups


def predicted_rewards(episodes: list[Episode], ridge: float = 1e-2) -> np.ndarray:
    """A quadratic reward model over each trial's mean correction, fitted to all trials; its
    predictions average out the per-trial noise the single measured reward carries."""
    u = np.array([e.correction.mean(axis=0) if len(e.correction) else np.zeros(e.base.shape[-1])
                  for e in episodes])
    r = np.array([e.reward for e in episodes])
    scale = u.std(axis=0) + 1e-6
    z = (u - u.mean(axis=0)) / scale
    iu = np.triu_indices(z.shape[1])
    feats = np.hstack([np.ones((len(z), 1)), z, (z[:, :, None] * z[:, None, :])[:, iu[0], iu[1]]])
    if len(r) < feats.shape[1] + 2:  # too few trials for the model: use the measurements
        return r
    w = np.linalg.solve(feats.T @ feats + ridge * len(r) * np.eye(feats.shape[1]), feats.T @ r)
    return feats @ w


def role_model_labels(episodes: list[Episode], initial_columns: np.ndarray, radius: float, min_reward: float,
                      scale: float, scores: np.ndarray | None = None,
                      refine: LabelRefiner | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs, base, label) for every step of every trial that has a role model.

    Trials are grouped by their ``initial_columns`` (the skill's initial features); ``scores``
    ranks the trials (default: their measured rewards); ``refine(peer, labels)`` (the skill's label
    refiner) may change a peer's labels, which stay bounded by ``scale``.
    """
    groups = group_trials(np.array([e.initial(initial_columns) for e in episodes]), radius)
    rank = np.array([e.reward for e in episodes]) if scores is None else scores
    obs, base, label = [], [], []
    for group in groups:
        best = max(group, key=lambda i: rank[i])
        role = episodes[best]
        if role.reward < min_reward or len(role.obs) == 0:
            continue
        for i in group:
            peer = episodes[i]
            if len(peer.obs) == 0:
                continue
            steps = np.minimum(np.arange(len(peer.obs)), len(role.correction) - 1)
            labels = np.clip(role.correction[steps], -scale, scale)
            if refine is not None:
                labels = np.clip(refine(peer, labels), -scale, scale)
            obs.append(peer.obs)
            base.append(peer.base)
            label.append(labels)
    if not obs:
        return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0))
    return np.concatenate(obs), np.concatenate(base), np.concatenate(label)


class RoleModelFineTuner:
    """The learner behind ``rmskill finetune --method role-model``."""

    method = "role-model"

    def __init__(self, obs_dim: int, act_dim: int, config: RoleModelConfig | None = None, seed: int = 0,
                 initial_columns: np.ndarray | None = None, refiner: RefinerFactory | None = None):
        self.cfg = config or RoleModelConfig()
        self.act_dim = act_dim
        self.initial_columns = np.arange(obs_dim) if initial_columns is None else np.asarray(initial_columns)
        self.refiner = refiner
        torch.manual_seed(seed)  # the network's initial weights
        self.gen = torch.Generator().manual_seed(seed)  # the updates' own draws, independent of other code
        self.seed = seed
        self.net = CorrectorNet(obs_dim, act_dim, self.cfg.hidden, self.cfg.scale)
        self.corrector = Corrector.from_net(self.net)
        self.episodes: list[Episode] = []
        self.normalised = False
        self.last_loss = float("nan")

    @property
    def explore_std(self) -> float:
        cfg = self.cfg
        return max(cfg.explore_min, cfg.explore_std * cfg.explore_decay ** len(self.episodes))

    def begin_episode(self, index: int) -> np.ndarray:
        """Start episode ``index``: one exploration offset, drawn from the seed and the index alone (a
        resumed run explores as the interrupted one would have)."""
        noise = np.random.default_rng([self.seed, index, 1]).normal(0.0, self.explore_std, self.act_dim)
        self.corrector.noise = noise
        return noise

    def act(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The executed correction: the corrector's, plus this episode's exploration offset."""
        return self.corrector(obs, base)

    def policy(self) -> Corrector:
        """What acts for the episode just begun, apart from the learner (an actor in another process)."""
        return copy.copy(self.corrector)

    def end_episode(self, episode: Episode) -> None:
        self.corrector.noise = None
        self.episodes.append(episode)
        if len(self.episodes) % self.cfg.relabel_every == 0:
            self.update()

    def update(self) -> None:
        """Relabel with the current role models, then replay all labelled data offline."""
        cfg = self.cfg
        scores = None
        if cfg.learned_selection:
            measured = np.array([e.reward for e in self.episodes])
            scores = (1 - cfg.model_weight) * measured + cfg.model_weight * predicted_rewards(self.episodes)
        refine = self.refiner(self.episodes) if self.refiner is not None else None
        obs, base, label = role_model_labels(self.episodes, self.initial_columns, radius(cfg), cfg.min_reward,
                                             cfg.scale, scores, refine)
        if len(obs) == 0:
            return
        if not self.normalised:
            self.net.set_normalisation(obs.mean(axis=0), obs.std(axis=0))
            self.normalised = True
        o, b, y = (torch.as_tensor(a, dtype=torch.float32) for a in (obs, base, label))
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        steps = min(cfg.max_steps, cfg.epochs * -(-len(o) // cfg.batch))
        for _ in range(steps):
            idx = torch.randint(0, len(o), (cfg.batch,), generator=self.gen)
            loss = torch.mean((self.net(o[idx], b[idx]) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.last_loss = float(loss.detach())
        self.corrector = Corrector.from_net(self.net)
