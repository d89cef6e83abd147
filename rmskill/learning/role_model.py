"""RM-RL: role-model fine-tuning of the residual corrector (Chen et al., ICRA 2026).

Trials that start from similar states are peers. In each group the trial with the highest reward
is the role model; its actions become the supervised labels of all its peers. The policy learned
here is the corrector on top of the frozen base, so its action is the correction: a peer's step t
is labelled with the correction the role model executed at step t (exploration included), while
the base policy keeps closing the loop on each trial's own state. The corrector is fitted
to all labelled data by regression; every ``relabel_every`` episodes the groups and role models
are chosen again (better trials take over) and all labelled data is replayed offline.

Similar initial states: the TCP pose in the nest frame where the policy takes over (x, y, z in mm,
yaw in deg), Euclidean distance under ``group_radius``; groups grow greedily in arrival order.
Exploration: one Gaussian offset per episode added to every correction of that episode, so a
trial tests one consistent aim (a site offset is consistent); its spread decays as trials improve.

Learned selection (our extension, ``learned_selection``): rewards are noisy (each grasp differs),
so the single best trial is often a lucky one. A ridge-regressed quadratic reward model over each
trial's mean correction scores every trial; the role model is the trial with the best blend of
its measured and its predicted reward. The labels are still that trial's own actions.

Centre labels (our extension, ``centre_gain``): where the skill ran its touch check (the plate
placement skill does during fine-tuning), each seated trial measured, with the arm, the TCP pose
that centres the plate between the nest's walls. The per-fixture median of those centres turns
the lateral part of every label (x, y, yaw) into "steer the command toward the measured centre":
``clip(gain * (centre - command) / action_scale - base_action, +-scale)``; depth (z) keeps the role
model's label. A role model only ever tried one constant aim, so its own lateral labels keep
pushing after the plate has arrived and press it into a wall; the centre labels stop at the
centre, a state-dependent correction no single trial demonstrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rmskill.learning.corrector import Corrector, CorrectorNet
from rmskill.learning.episodes import Episode


@dataclass
class RoleModelConfig:
    """Hyperparameters; normalised action units unless stated."""

    hidden: int = 64
    scale: float = 0.2  # bound on the correction
    explore_std: float = 0.06  # initial per-episode exploration offset
    explore_decay: float = 0.985  # per episode
    explore_min: float = 0.02
    group_radius: float = 2.0  # [mm and deg] initial-state distance for peers
    min_reward: float = 0.0  # a role model must at least have seated the plate
    relabel_every: int = 5  # episodes between relabel-and-replay rounds
    learned_selection: bool = True  # choose role models by measured + model-predicted reward
    model_weight: float = 0.7  # share of the predicted reward in the selection score
    epochs: int = 40  # offline passes over all labelled data per round ...
    max_steps: int = 600  # ... at most this many gradient steps per round
    batch: int = 256
    lr: float = 2e-3
    centre_gain: float = 0.5  # fraction of the command's gap to the measured centre closed per step
    action_scale: tuple[float, ...] | None = None  # the skill's units per normalised action; None: no centre labels


# Observation columns of the plate placement skill (skills/plate_placement/skill.py OBS_NAMES): the
# measured TCP (x, y, z mm, yaw deg) in the nest frame, then the command minus the measurement.
MEASURED, COMMAND_DELTA = slice(0, 4), slice(4, 8)
LATERAL = {0: "x_mm", 1: "y_mm", 3: "yaw_deg"}  # action index -> touch check axis


def measured_centres(episodes: list[Episode]) -> dict[str, np.ndarray]:
    """Per fixture: the median TCP pose (x, y, z, yaw; z NaN) that centred the plate, from every
    trial whose touch check found the walls."""
    found: dict[str, list[np.ndarray]] = {}
    for e in episodes:
        m = (e.info or {}).get("measurements") or {}
        c = np.array([m.get("touch_centre_x_mm", np.nan), m.get("touch_centre_y_mm", np.nan), np.nan,
                      m.get("touch_centre_yaw_deg", np.nan)], dtype=float)
        if np.all(np.isfinite(c[[0, 1, 3]])):
            found.setdefault(e.info.get("target", ""), []).append(c)
    return {t: np.median(np.array(cs), axis=0) for t, cs in found.items()}


def centre_labels(peer: Episode, labels: np.ndarray, centre: np.ndarray, gain: float,
                  action_scale: np.ndarray, scale: float) -> np.ndarray:
    """``labels`` with their lateral columns replaced by steering the command toward ``centre``."""
    out = labels.copy()
    command = peer.obs[:, MEASURED] + peer.obs[:, COMMAND_DELTA]
    for d in LATERAL:
        want = gain * (centre[d] - command[:, d]) / action_scale[d]
        out[:, d] = np.clip(want - peer.base[:, d], -scale, scale)
    return out


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


def role_model_labels(episodes: list[Episode], radius: float, min_reward: float,
                      scale: float, scores: np.ndarray | None = None, centre_gain: float = 0.0,
                      action_scale: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs, base, label) for every step of every trial that has a role model.

    ``scores`` ranks the trials (default: their measured rewards). With ``centre_gain`` and
    ``action_scale``, lateral labels steer toward the fixture's measured centre (module docstring).
    """
    centres = measured_centres(episodes) if centre_gain > 0 and action_scale is not None else {}
    groups = group_trials(np.array([e.initial for e in episodes]), radius)
    rank = np.array([e.reward for e in episodes]) if scores is None else scores
    obs, base, label = [], [], []
    for group in groups:
        best = max(group, key=lambda i: rank[i])
        role = episodes[best]
        if role.reward < min_reward or len(role.obs) == 0:
            continue
        for i in group:
            peer = episodes[i]
            steps = np.minimum(np.arange(len(peer.obs)), len(role.correction) - 1)
            labels = np.clip(role.correction[steps], -scale, scale)
            centre = centres.get((peer.info or {}).get("target", ""))
            if centre is not None:
                labels = centre_labels(peer, labels, centre, centre_gain, np.asarray(action_scale), scale)
            obs.append(peer.obs)
            base.append(peer.base)
            label.append(labels)
    if not obs:
        return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0))
    return np.concatenate(obs), np.concatenate(base), np.concatenate(label)


class RoleModelFineTuner:
    """The learner behind ``rmskill finetune --method role-model``."""

    method = "role-model"

    def __init__(self, obs_dim: int, act_dim: int, config: RoleModelConfig | None = None, seed: int = 0):
        self.cfg = config or RoleModelConfig()
        self.act_dim = act_dim
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.net = CorrectorNet(obs_dim, act_dim, self.cfg.hidden, self.cfg.scale)
        self.corrector = Corrector.from_net(self.net)
        self.episodes: list[Episode] = []
        self.normalised = False
        self.last_loss = float("nan")

    @property
    def explore_std(self) -> float:
        cfg = self.cfg
        return max(cfg.explore_min, cfg.explore_std * cfg.explore_decay ** len(self.episodes))

    def begin_episode(self) -> np.ndarray:
        noise = self.rng.normal(0.0, self.explore_std, self.act_dim)
        self.corrector.noise = noise
        return noise

    def act(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The executed correction: the corrector's, plus this episode's exploration offset."""
        return self.corrector(obs, base)

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
        obs, base, label = role_model_labels(self.episodes, cfg.group_radius, cfg.min_reward, cfg.scale, scores,
                                             cfg.centre_gain, cfg.action_scale)
        if len(obs) == 0:
            return
        if not self.normalised:
            self.net.set_normalisation(obs.mean(axis=0), obs.std(axis=0))
            self.normalised = True
        o, b, y = (torch.as_tensor(a, dtype=torch.float32) for a in (obs, base, label))
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        steps = min(cfg.max_steps, cfg.epochs * -(-len(o) // cfg.batch))
        for _ in range(steps):
            idx = torch.randint(0, len(o), (cfg.batch,))
            loss = torch.mean((self.net(o[idx], b[idx]) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.last_loss = float(loss.detach())
        self.corrector = Corrector.from_net(self.net)
