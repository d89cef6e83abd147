"""The Gymnasium environments: one id per installed skill, spaces from the spec, Gymnasium's checker."""

from __future__ import annotations

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium", reason="needs the 'gym' extra (gymnasium)")

import rmskill.gym  # noqa: E402
from rmskill.errors import SkillError  # noqa: E402
from rmskill.skill import skill_class  # noqa: E402


def test_every_installed_skill_has_an_id():
    assert rmskill.gym.env_id("plate_placement") == "rmskill/PlatePlacement-v0"
    assert "rmskill/PlatePlacement-v0" in rmskill.gym.register_all()
    assert "rmskill/PlatePlacement-v0" in gymnasium.registry


@pytest.fixture
def env(ur5e_file):
    env = gymnasium.make("rmskill/PlatePlacement-v0", arm=str(ur5e_file))
    yield env
    env.close()


def test_check_env_passes(env):
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=True)
    spec = skill_class("plate_placement").spec
    assert env.observation_space.shape == (len(spec.observation),)
    assert env.action_space.shape == (len(spec.action),)
    assert env.unwrapped.observation_features.names == spec.observation.names


def test_base_policy_rollout_earns_the_arm_measured_reward(env):
    obs, info = env.reset(seed=3)
    assert info["target"].startswith("shelf_")
    steps, reward, done = 0, 0.0, False
    while not done:
        obs, r, terminated, truncated, info = env.step(env.unwrapped.base_action(obs))
        reward, steps, done = reward + r, steps + 1, terminated or truncated
    assert info["success"] and reward > 0.5 and steps > 10
    assert info["result"]["translation_error_mm"] < 1.0


def test_reset_mid_episode_abandons_it_and_step_before_reset_is_refused(env):
    with pytest.raises(SkillError, match="reset"):
        env.unwrapped.step(np.zeros(4))
    env.reset(seed=0)
    first = env.step(np.zeros(4, dtype=np.float32))[0]
    again, _ = env.reset(seed=0)  # the same seed: the same start, the abandoned episode left no trace
    obs0, _ = env.reset(seed=0)
    assert np.allclose(again, obs0) and first.shape == obs0.shape
