"""The fine-tuning building blocks on their own: corrector, episode log, role-model labels, learners.

The learners are exercised on a toy skill's features (7 observations, 3 actions, its "similar start"
features not the first columns), so nothing here leans on the plate placement skill's layout.
"""

import json

import numpy as np
import pytest
import torch

from rmskill.learning.corrector import Corrector, CorrectorNet, load_corrector
from rmskill.learning.episodes import Episode, EpisodeStore
from rmskill.learning.role_model import RoleModelFineTuner, group_trials, role_model_labels
from rmskill.spec import Features, SkillSpec

TOY = SkillSpec(
    observation=Features.of([("force_n", "N"), ("depth_mm", "mm"), ("dx_mm", "mm"), ("dy_mm", "mm"),
                             ("speed_mm_s", "mm/s"), ("tilt_deg", "deg"), ("grip_mm", "mm")]),
    action=Features.of([("push_mm", "mm"), ("tilt_deg", "deg"), ("grip_mm", "mm")]),
    action_scale=(1.0, 0.5, 2.0), rate_hz=20.0, fixture_kinds=("rack",), start="empty",
    initial_features=("dx_mm", "dy_mm"), similarity_radius=2.0)
OBS, ACT = len(TOY.observation), len(TOY.action)
torch.set_num_threads(1)  # as rmskill finetune runs them: tiny networks, one thread
START = TOY.initial_columns  # columns 2 and 3


BASE = np.tanh(np.random.default_rng(99).normal(size=(30, ACT)))  # the base policy's plan, shared by all


def episode(rng, reward: float, offset: float, steps: int = 30, start=(0.0, 0.0)) -> Episode:
    obs = rng.normal(size=(steps, OBS))
    obs[:, START] = start
    base = BASE[:steps] + rng.normal(0.0, 0.01, size=(steps, ACT))
    return Episode(obs, base, np.full((steps, ACT), offset), reward)


def test_features_by_name_and_manifest_check():
    assert TOY.observation.index("dx_mm") == 2 and list(START) == [2, 3]
    assert TOY.observation.unit("speed_mm_s") == "mm/s"
    with pytest.raises(Exception, match=r"no feature .contact.*force_n"):
        TOY.observation.index("contact")
    manifest = {"obs_names": list(TOY.observation.names), "action_names": list(TOY.action.names)}
    TOY.check_manifest(manifest, "toy")
    with pytest.raises(Exception, match=r"obs_names do not match.*missing \['grip_mm'\]"):
        TOY.check_manifest({**manifest, "obs_names": manifest["obs_names"][:-1]}, "toy")
    with pytest.raises(Exception, match="other order"):
        TOY.check_manifest({**manifest, "action_names": manifest["action_names"][::-1]}, "toy")


def test_corrector_starts_at_zero_and_round_trips(tmp_path):
    net = CorrectorNet(OBS, ACT, scale=0.2)
    c = Corrector.from_net(net)
    obs, base = np.ones(OBS), np.zeros(ACT)
    np.testing.assert_array_equal(c(obs, base), np.zeros(ACT))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3)
    c = Corrector.from_net(net)

    with torch.no_grad():
        expected = net(torch.as_tensor(obs, dtype=torch.float32)[None], torch.zeros(1, ACT)).numpy()[0]
    np.testing.assert_allclose(c(obs, base), expected, atol=1e-5)  # numpy inference = torch
    assert np.all(np.abs(c(obs * 100, base)) <= 0.2 + 1e-9)  # bounded
    c.save(tmp_path)
    np.testing.assert_allclose(load_corrector(tmp_path)(obs, base), c(obs, base), atol=1e-6)
    assert load_corrector(tmp_path / "nothing") is None


def test_episode_store_survives_a_torn_last_line(tmp_path):
    store = EpisodeStore(tmp_path)
    rng = np.random.default_rng(0)
    for r in (0.5, 0.9):
        store.append(episode(rng, r, 0.0), {"target": "shelf_1"})
    with open(store.index, "a") as f:
        f.write('{"episode": 3, "fi')  # a kill mid-write
    records = store.records()
    assert [r["episode"] for r in records] == [1, 2]
    ep = store.load(records[1])
    assert ep.reward == 0.9 and ep.obs.shape == (30, OBS)
    np.testing.assert_array_equal(ep.initial(START), [0.0, 0.0])
    # Readable without rmskill: numpy and json.
    raw = np.load(tmp_path / records[0]["file"])
    assert set(raw.files) == {"obs", "base", "correction"}
    assert json.loads(store.index.read_text().splitlines()[0])["target"] == "shelf_1"


def test_groups_and_role_model_labels():
    rng = np.random.default_rng(1)
    near = [episode(rng, r, off) for r, off in ((0.2, 0.05), (0.9, -0.1), (0.5, 0.0))]
    far = [episode(rng, -1.0, 0.1, start=(6.0, 0.0))]  # its own group, never succeeded
    groups = group_trials(np.array([e.initial(START) for e in near + far]), radius=2.0)
    assert groups == [[0, 1, 2], [3]]
    obs, _base, label = role_model_labels(near + far, START, radius=2.0, min_reward=0.0, scale=0.2)
    assert len(obs) == 90  # the failed lone trial has no role model: no labels
    role = near[1]
    # Every peer (and the role model itself) is labelled with the role model's correction at each step.
    for k in range(3):
        np.testing.assert_allclose(label[30 * k: 30 * (k + 1)], role.correction)


def test_label_refiner_reaches_every_peer_and_stays_bounded():
    """The skill's refiner sees each peer with the role model's labels; what it returns is bounded."""
    rng = np.random.default_rng(3)
    trials = [episode(rng, r, off) for r, off in ((0.9, 0.05), (0.3, -0.1))]
    seen = []

    def refiner(all_trials):
        assert len(all_trials) == 2

        def refine(peer, labels):
            seen.append(peer)
            np.testing.assert_allclose(labels, 0.05)  # the role model's correction
            out = labels.copy()
            out[:, 0] = peer.obs[:, 0]  # a state-dependent label, unbounded on purpose
            return out
        return refine

    obs, _base, label = role_model_labels(trials, START, 2.0, 0.0, 0.2, refine=refiner(trials))
    assert len(seen) == 2 and len(obs) == 60
    np.testing.assert_allclose(label[:, 0], np.clip(obs[:, 0], -0.2, 0.2))
    np.testing.assert_allclose(label[:, 1:], 0.05)


def test_role_model_learner_moves_toward_the_best_trial():
    from rmskill.learning.role_model import RoleModelConfig

    learner = RoleModelFineTuner(OBS, ACT, RoleModelConfig(group_radius=TOY.similarity_radius), seed=0,
                                 initial_columns=START)
    rng = np.random.default_rng(2)
    for k in range(10):
        offset = 0.1 if k == 3 else 0.0
        learner.begin_episode(k)
        learner.end_episode(episode(rng, 1.0 if k == 3 else 0.1, offset))
    probe = episode(rng, 0.0, 0.0)
    predicted = np.array([learner.corrector.mean_correction(o, b) for o, b in zip(probe.obs, probe.base, strict=True)])
    assert np.mean(predicted) == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize("method", ["residual", "hybrid"])
def test_off_policy_learners_update_and_stay_bounded(method):
    from rmskill.learning.hybrid import HybridFineTuner
    from rmskill.learning.residual import ResidualConfig, ResidualFineTuner

    if method == "hybrid":
        learner = HybridFineTuner(OBS, ACT, seed=0, initial_columns=START)
    else:
        learner = ResidualFineTuner(OBS, ACT, ResidualConfig(warmup_episodes=2), seed=0)
    rng = np.random.default_rng(3)
    for k in range(7):
        learner.begin_episode(k)
        probe = learner.act(np.zeros(OBS), np.zeros(ACT))
        assert probe.shape == (ACT,) and np.all(np.abs(probe) <= learner.cfg.scale + 1e-9)
        learner.end_episode(episode(rng, 1.0 if k % 2 else -1.0, 0.05 if k % 2 else -0.05))
    assert learner.updates > 0 and np.isfinite(learner.last_loss)
    if method == "hybrid":
        assert learner.labels is not None  # the role-model regression term is in the actor loss


def test_hybrid_keeps_the_critic_out_of_the_actor_until_q_warmup():
    """The hybrid's collapse (3 of 10 runs at 0 %, then 1 of 10): -Q from a critic that had seen
    failures only moved the actor before any role model anchored it. The actor's loss is the role-model
    regression alone until ``q_warmup`` critic updates after the first success; then -Q joins it."""
    from rmskill.learning.hybrid import HybridConfig, HybridFineTuner

    learner = HybridFineTuner(OBS, ACT, HybridConfig(warmup_episodes=1, q_warmup=5), seed=0, initial_columns=START)
    rng = np.random.default_rng(3)
    obs, base = torch.zeros(4, OBS), torch.zeros(4, ACT)
    for k in range(4):  # failures only: however many critic updates, -Q stays out
        learner.begin_episode(k)
        learner.end_episode(episode(rng, -1.0, 0.02, steps=10))
    assert learner.updates > 5 and learner.labels is None and not learner.q_in_actor
    early = learner.actor_loss(obs, base)
    assert float(early.detach()) == 0.0 and early.requires_grad  # nothing pulls the actor yet
    before = learner.updates
    learner.begin_episode(4)
    learner.end_episode(episode(rng, 1.0, 0.02, steps=10))  # the first success; the relabel (every 5th) finds it
    assert learner.labels is not None and learner.first_labels_at == before
    learner.updates = before + 5
    assert not learner.q_in_actor
    learner.updates = before + 6
    assert learner.q_in_actor
    learner.labels = None  # -Q alone, to compare with the critic
    q = learner.critic(learner._features(obs, base, learner.actor(obs, base))).mean()
    assert float(learner.actor_loss(obs, base).detach()) == pytest.approx(-float(q.detach()), rel=1e-6)
    assert HybridConfig().q_warmup > 0 and HybridConfig().critic_warmup == 0


def test_residual_trains_the_critic_alone_before_the_actor():
    """Issue 14's collapse: actor updates from an untrained critic at 1e-4 drove the tanh to its bound
    within a few episodes. The actor now waits for ``critic_warmup`` critic updates; the normalisation
    comes from all warm-up episodes; the defaults keep ResFiT's small actor step and bounded noise."""
    from rmskill.learning.residual import ResidualConfig, ResidualFineTuner

    cfg = ResidualConfig()
    assert cfg.actor_lr <= 5e-6 and cfg.critic_warmup > 0 and cfg.explore_std <= cfg.scale / 2
    assert cfg.target_noise_clip <= cfg.scale
    learner = ResidualFineTuner(OBS, ACT, ResidualConfig(warmup_episodes=2, critic_warmup=100, actor_lr=1e-2), seed=0)
    rng = np.random.default_rng(7)
    trials = [episode(rng, 1.0 if k % 2 else -1.0, 0.04 if k % 2 else -0.04, steps=10) for k in range(4)]
    learner.end_episode(trials[0])
    assert not learner.normalised  # waits for the whole warm-up
    learner.end_episode(trials[1])
    both = np.concatenate([t.obs for t in trials[:2]])
    np.testing.assert_allclose(learner.actor.obs_mean.numpy(), both.mean(axis=0), atol=1e-6)
    learner.end_episode(trials[2])  # 10 updates + the critic's 100 alone: actor steps at 104 and 108
    assert learner.updates == 110 and learner.actor_updates == 2
    for k, t in enumerate(trials * 3):  # a large actor step still stays inside the bound
        learner.begin_episode(4 + k)
        learner.end_episode(t)
        assert np.all(np.abs(learner.act(t.obs[0], t.base[0])) <= learner.cfg.scale + 1e-12)


@pytest.mark.parametrize("method", ["role-model", "residual", "hybrid"])
def test_replaying_episodes_rebuilds_the_learner_exactly(method):
    """A resumed fine-tune replays the finished episodes into a fresh learner: it must end where the
    live one was, and explore the next episodes as the live one would have."""
    from rmskill.learning.hybrid import HybridConfig, HybridFineTuner
    from rmskill.learning.residual import ResidualConfig, ResidualFineTuner
    from rmskill.learning.role_model import RoleModelConfig

    def make():
        if method == "role-model":
            return RoleModelFineTuner(OBS, ACT, RoleModelConfig(max_steps=40), seed=4, initial_columns=START)
        if method == "hybrid":
            return HybridFineTuner(OBS, ACT, HybridConfig(warmup_episodes=2, role=RoleModelConfig(max_steps=40)),
                                   seed=4, initial_columns=START)
        return ResidualFineTuner(OBS, ACT, ResidualConfig(warmup_episodes=2), seed=4)

    rng = np.random.default_rng(5)
    trials = [episode(rng, float(k % 3) - 1.0, 0.02 * (k % 4), steps=10) for k in range(12)]
    live, resumed = make(), make()
    noise_live = []
    for k, e in enumerate(trials):
        noise_live.append(live.begin_episode(k))
        live.end_episode(e)
    for e in trials[:7]:  # the replay: no begin_episode, no acting
        resumed.end_episode(e)
    noise_resumed = []
    for k, e in enumerate(trials[7:], start=7):
        noise_resumed.append(resumed.begin_episode(k))
        resumed.end_episode(e)
    np.testing.assert_array_equal(np.array(noise_live[7:]), np.array(noise_resumed))
    for name, value in live.corrector.t.items():
        np.testing.assert_array_equal(value, resumed.corrector.t[name])


def test_a_feature_that_did_not_vary_in_the_data_is_held_at_its_mean():
    """A corrector fine-tuned where the gripper always read 85.48 mm (a Robotiq holding a plate) must not
    turn another arm's 85.54 mm into 60 standard deviations: the fleet's emulated UR5e weights, run on
    the simulated UR5e, saturated and placed 0 of 20 that way (20 of 20 with the feature held)."""
    torch.manual_seed(0)
    net = CorrectorNet(obs_dim=3, act_dim=2)
    for p in net.body.parameters():
        torch.nn.init.normal_(p, std=0.5)  # a trained net: the correction depends on its inputs
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(50, 3))
    obs[:, 2] = 85.48  # did not vary
    net.set_normalisation(obs.mean(axis=0), obs.std(axis=0))
    corrector, base = Corrector.from_net(net), np.zeros(2)
    here = obs[0].copy()
    other_arm = here.copy()
    other_arm[2] = 85.54
    moved = here.copy()
    moved[0] += 2.0 * obs[:, 0].std()
    c = corrector.mean_correction(here, base)
    assert np.allclose(corrector.mean_correction(other_arm, base), c)
    assert not np.allclose(corrector.mean_correction(moved, base), c, atol=1e-3)  # a feature that varied counts
    with torch.no_grad():  # the torch side (training) sees the same inputs as the numpy side (control)
        torch_c = net(torch.as_tensor(other_arm[None], dtype=torch.float32), torch.zeros(1, 2)).numpy()[0]
    assert np.allclose(torch_c, c, atol=1e-5)
    saved = {k: v.copy() for k, v in corrector.t.items()}
    saved["obs_std"][2] = np.float32(1e-3)  # weights saved before: the old floor (as float32), "did not vary"
    assert np.allclose(Corrector(saved, corrector.scale).mean_correction(other_arm, base), c)
