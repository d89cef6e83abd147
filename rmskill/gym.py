"""Gymnasium environments for every installed skill: ``rmskill/<CamelName>-v0``.

``import rmskill.gym`` registers one id per skill in the ``rmskill.skills`` entry points (the CamelCase
of its name), so ``gymnasium.make("rmskill/<CamelName>-v0", arm="examples/arms/sim-ur5e.yaml")`` works
for a third-party skill as for ours (``gymnasium.make("rmskill.gym:rmskill/<CamelName>-v0", ...)``
imports this module by itself).

How a step-wise environment drives a skill whose ``execute`` runs a whole episode: the episode runs
in a worker thread through the one episode runner (``rmskill.runner.run_episode``), with an actor in
place of the skill's policy. At each learned control step the actor hands the observation out to
``step``/``reset`` and waits for the action that comes back; the two threads take turns, never
running together, so the arm and the simulator see one caller. When ``execute`` returns, the
episode terminates with the skill's arm-measured reward (``Skill.outcome``); every step before it
earns 0 (the reward is sparse, as in fine-tuning). A ``reset`` or ``close`` mid-episode abandons it:
the actor raises, the skill stops the arm, the thread ends. No skill needs a stepping hook.

Spaces come from the skill's declared features: observations are ``spec.observation`` in its units
(float32, unbounded), actions ``spec.action`` normalised to [-1, 1]. ``env.unwrapped.base_action(obs)``
is the skill's own policy (base plus any corrector), the baseline to beat. Episode ``k`` after
``reset(seed=s)`` is the runner's episode ``k`` of a run seeded ``s``: the same seed, the same episodes.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rmskill import registry
from rmskill.errors import ConfigError, SkillError

try:
    import gymnasium as gymnasium
    from gymnasium import spaces
except ImportError as err:  # the optional extra
    raise ConfigError("the Gymnasium environments need gymnasium; pip install 'rmskill[gym]'") from err

log = logging.getLogger(__name__)

NAMESPACE = "rmskill"


def env_id(skill: str) -> str:
    """The Gymnasium id of a skill: ``my_skill`` -> ``rmskill/MySkill-v0``."""
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\-\s]+", skill) if part)
    return f"{NAMESPACE}/{camel}-v0"


class _Abandon(BaseException):
    """Raised in the episode's thread to end an abandoned episode (a BaseException: no skill catches it)."""


_ABANDON = object()


class SkillEnv(gymnasium.Env):
    """One skill on one arm as a Gymnasium environment (see the module docstring).

    Args:
        skill: A registered skill name.
        arm: The arm file (a simulated arm: each ``reset`` starts the skill's simulated episode; on a
            real arm the operator is prompted on stdin, as in fine-tuning).
        weights: The skill's weights folder (default: shipped); its policy is ``base_action``.
        settings: Skill settings by name (``Skill.configure``).
        reward: ``arm`` (the skill's arm-measured outcome, default) or ``truth`` (the simulator's).
        render_mode: ``rgb_array`` renders the wrist-side and front views side by side.
        render_size: One view's (width, height) [px].
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, skill: str, arm: str | Path, weights: str | Path | None = None,
                 settings: dict[str, Any] | None = None, reward: str = "arm", render_mode: str | None = None,
                 render_size: tuple[int, int] = (320, 240)):
        from rmskill.connect import connect
        from rmskill.learning.outcome import SOURCES
        from rmskill.runner import episode_targets
        from rmskill.skill import load_skill

        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ConfigError(f"render_mode must be 'rgb_array' or None, not {render_mode!r}")
        if reward not in SOURCES or reward == "operator":
            raise ConfigError(f"reward must be 'arm' or 'truth', not {reward!r}")
        self.skill = load_skill(skill, weights=weights)
        if settings:
            self.skill.configure(**settings)
        spec = self.skill.spec
        self.observation_features, self.action_features = spec.observation, spec.action
        self.observation_space = spaces.Box(-np.inf, np.inf, (len(spec.observation),), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (len(spec.action),), np.float32)
        self.render_mode, self._render_size = render_mode, render_size
        self._outcome = SOURCES[reward]()
        self.arm = connect(arm)
        try:
            self.targets = episode_targets(self.skill, self.arm.config)
        except BaseException:
            self.arm.close()
            raise
        self._seed: int | None = None
        self._index = 0
        self._thread: threading.Thread | None = None
        self._to_env: queue.Queue = queue.Queue(maxsize=1)
        self._to_skill: queue.Queue = queue.Queue(maxsize=1)
        self._obs: np.ndarray | None = None
        self._cameras = None
        self.result = None  # the last finished episode's ``SkillResult``

    # --- the episode's thread -----------------------------------------------------------
    def _act(self, obs: np.ndarray, _ctx: Any) -> np.ndarray:
        self._to_env.put(("obs", np.array(obs, dtype=float)))
        action = self._to_skill.get()
        if action is _ABANDON:
            raise _Abandon
        return action

    def _episode(self, index: int, seed: int) -> None:
        from rmskill.runner import run_episode

        try:
            ran = run_episode(self.skill, self.arm, index, seed, self.targets, act=self._act)
        except _Abandon:
            self._to_env.put(("abandoned", None))
        except BaseException as err:  # the env's caller sees the fault
            self._to_env.put(("error", err))
        else:
            self._to_env.put(("done", ran))

    def _abandon(self) -> None:
        """End the episode in progress, if any (the skill stops the arm)."""
        if self._thread is None:
            return
        if self._thread.is_alive():
            self._to_skill.put(_ABANDON)
            while True:
                kind, _ = self._to_env.get()
                if kind != "obs":
                    break
                self._to_skill.put(_ABANDON)  # pragma: no cover - a skill that swallowed the abandon
        self._thread.join()
        self._thread = None

    def _next(self) -> tuple[str, Any]:
        kind, value = self._to_env.get()
        if kind == "error":
            self._thread.join()
            self._thread = None
            raise value
        return kind, value

    # --- Gymnasium ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start the next episode (``seed``: start over at episode 0 of a run seeded ``seed``);
        returns the first learned step's observation and ``info`` (``episode``, ``target``)."""
        super().reset(seed=seed)
        self._abandon()
        if seed is not None:
            self._seed, self._index = int(seed), 0
        elif self._seed is None:
            self._seed = int(self.np_random.integers(2**31 - 1))
        index = self._index
        self._index += 1
        self.result = None
        self._thread = threading.Thread(target=self._episode, args=(index, self._seed), daemon=True,
                                        name=f"rmskill-episode-{index}")
        self._thread.start()
        kind, value = self._next()
        if kind != "obs":
            self._thread.join()
            self._thread = None
            why = value.result.message if kind == "done" else kind
            raise SkillError(f"{self.skill.name}: episode {index + 1} ended before its first learned step: {why}")
        self._obs = value
        return value.astype(np.float32), {"episode": index, "target": self.targets[index % len(self.targets)]}

    def step(self, action: np.ndarray):
        """Apply one normalised action; returns ``(obs, reward, terminated, truncated, info)``. The
        last step's ``info`` holds the result (``result``) and the outcome's figures (``outcome``)."""
        if self._thread is None:
            raise SkillError("step() before reset(), or after the episode ended: call reset()")
        action = np.asarray(action, dtype=float).reshape(-1)
        if action.shape != self.action_space.shape:
            raise SkillError(f"action needs {self.action_space.shape[0]} values "
                             f"({', '.join(self.action_features.names)}), got {action.size}")
        if not np.all(np.isfinite(action)):
            raise SkillError(f"non-finite action {action.tolist()}")
        self._to_skill.put(np.clip(action, -1.0, 1.0))
        kind, value = self._next()
        if kind == "obs":
            self._obs = value
            return value.astype(np.float32), 0.0, False, False, {}
        self._thread.join()
        self._thread = None
        self.result = value.result
        score = self._outcome(self.skill, value.result)
        info = {"result": value.result.summary(), "outcome": score.details, "success": bool(score.success)}
        return self._obs.astype(np.float32), float(score.reward), True, False, info

    def base_action(self, obs: np.ndarray) -> np.ndarray:
        """The skill's own policy (base plus any corrector) on ``obs``: the baseline, in [-1, 1]."""
        return self.skill.act(np.asarray(obs, dtype=float)).astype(np.float32)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._cameras is None:
            cameras = getattr(self.arm.sim, "cameras", None)
            if cameras is None:
                raise ConfigError("render_mode='rgb_array' needs a simulated arm that renders")
            self._cameras = cameras(*self._render_size)
        return self._cameras.frame()

    def close(self) -> None:
        self._abandon()
        if self._cameras is not None:
            self._cameras.close()
            self._cameras = None
        if getattr(self, "arm", None) is not None:
            self.arm.close()
            self.arm = None


def register_all() -> list[str]:
    """Register ``rmskill/<CamelName>-v0`` for every installed skill (idempotent); the ids."""
    ids = []
    for name in sorted(registry.available("skill")):
        eid = env_id(name)
        if eid not in gymnasium.registry:
            gymnasium.register(id=eid, entry_point=f"{__name__}:SkillEnv", kwargs={"skill": name},
                               disable_env_checker=False)
        ids.append(eid)
    return ids


register_all()
