"""The fine-tuning building blocks on their own: corrector, episode log, role-model labels, learners."""

import json

import numpy as np
import pytest

from rmskill.learning.corrector import Corrector, CorrectorNet, load_corrector
from rmskill.learning.episodes import Episode, EpisodeStore
from rmskill.learning.outcome import ArmMeasuredOutcome
from rmskill.learning.role_model import RoleModelFineTuner, group_trials, measured_centres, role_model_labels

OBS, ACT = 17, 4


BASE = np.tanh(np.random.default_rng(99).normal(size=(30, ACT)))  # the base policy's plan, shared by all


def episode(rng, reward: float, offset: float, steps: int = 30, start=(0.0, 0.0, -15.0, 0.0)) -> Episode:
    obs = rng.normal(size=(steps, OBS))
    obs[:, :4] = start
    base = BASE[:steps] + rng.normal(0.0, 0.01, size=(steps, ACT))
    return Episode(obs, base, np.full((steps, ACT), offset), reward)


def test_corrector_starts_at_zero_and_round_trips(tmp_path):
    net = CorrectorNet(OBS, ACT, scale=0.2)
    c = Corrector.from_net(net)
    obs, base = np.ones(OBS), np.zeros(ACT)
    np.testing.assert_array_equal(c(obs, base), np.zeros(ACT))
    with __import__("torch").no_grad():
        for p in net.parameters():
            p.add_(0.3)
    c = Corrector.from_net(net)
    import torch

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
    # Readable without rmskill: numpy and json.
    raw = np.load(tmp_path / records[0]["file"])
    assert set(raw.files) == {"obs", "base", "correction"}
    assert json.loads(store.index.read_text().splitlines()[0])["target"] == "shelf_1"


def test_groups_and_role_model_labels():
    rng = np.random.default_rng(1)
    near = [episode(rng, r, off) for r, off in ((0.2, 0.05), (0.9, -0.1), (0.5, 0.0))]
    far = [episode(rng, -1.0, 0.1, start=(6.0, 0.0, -15.0, 0.0))]  # its own group, never seated
    groups = group_trials(np.array([e.initial for e in near + far]), radius=2.0)
    assert groups == [[0, 1, 2], [3]]
    obs, _base, label = role_model_labels(near + far, radius=2.0, min_reward=0.0, scale=0.2)
    assert len(obs) == 90  # the failed lone trial has no role model: no labels
    role = near[1]
    # Every peer (and the role model itself) is labelled with the role model's correction at each step.
    for k in range(3):
        np.testing.assert_allclose(label[30 * k: 30 * (k + 1)], role.correction)


def test_centre_labels_steer_the_command_to_the_measured_centre():
    """Seated trials' touch checks put shelf_1's centre at x = -2.5 mm, y = 0.4 mm, yaw = 0.1 deg (medians);
    lateral labels then close half the command's gap each step (bounded), depth keeps the role model's."""
    rng = np.random.default_rng(3)
    trials = [episode(rng, r, off) for r, off in ((0.9, 0.05), (0.3, -0.1), (-1.0, 0.0))]
    for e, cx in zip(trials, (-2.4, -2.6, -9.0), strict=True):
        e.info = {"target": "shelf_1", "measurements": {"touch_centre_x_mm": cx, "touch_centre_y_mm": 0.4,
                                                        "touch_centre_yaw_deg": 0.1}}
    trials[2].info["measurements"] = {}  # not seated: no touch check
    centres = measured_centres(trials)
    np.testing.assert_allclose(centres["shelf_1"][[0, 1, 3]], [-2.5, 0.4, 0.1])
    for e in trials:  # the command: x = -2.3 mm (0.2 mm short of the centre), y = 0.4, yaw = 0.1
        e.obs[:, 4:8] = 0.0
        e.obs[:, :2] = (-2.3, 0.4)
        e.obs[:, 3] = 0.1
        e.base[:, :] = 0.0
    obs, _base, label = role_model_labels(trials, radius=2.0, min_reward=0.0, scale=0.2, centre_gain=0.5,
                                         action_scale=(2.0, 2.0, 2.0, 0.5))
    assert len(obs) == 90
    np.testing.assert_allclose(label[:, 0], 0.5 * (-2.5 + 2.3) / 2.0)  # toward -x, a twentieth of a step
    np.testing.assert_allclose(label[:, [1, 3]], 0.0, atol=1e-12)  # already centred in y and yaw
    np.testing.assert_allclose(label[:, 2], 0.05)  # depth: the role model's own correction
    far = trials[0].obs.copy()
    far[:, 0] = 3.0
    trials[0].obs = far
    _, _, label = role_model_labels(trials[:1], radius=2.0, min_reward=0.0, scale=0.2, centre_gain=0.5,
                                    action_scale=(2.0, 2.0, 2.0, 0.5))
    np.testing.assert_allclose(label[:, 0], -0.2)  # far off: the bound


def test_role_model_learner_moves_toward_the_best_trial():
    learner = RoleModelFineTuner(OBS, ACT, seed=0)
    rng = np.random.default_rng(2)
    for k in range(10):
        offset = 0.1 if k == 3 else 0.0
        learner.begin_episode()
        learner.end_episode(episode(rng, 1.0 if k == 3 else 0.1, offset))
    probe = episode(rng, 0.0, 0.0)
    predicted = np.array([learner.corrector.mean_correction(o, b) for o, b in zip(probe.obs, probe.base, strict=True)])
    assert np.mean(predicted) == pytest.approx(0.1, abs=0.03)


def test_arm_measured_outcome_prefers_a_clean_insertion():
    class Result:
        peak_force_n, message = 8.0, ""

    clean = np.zeros((20, OBS))
    clean[:, 2] = np.linspace(-15, 0, 20)
    clean[-5:, 13] = -5.0  # the nest pushes back: seated
    clean[-5:, 16] = 1.0
    rubbing = clean.copy()
    rubbing[-8:, 11] = 4.0  # a guide wall pushes sideways
    rubbing[-8:, 16] = 1.0
    jammed = clean.copy()
    jammed[:, 2] = np.linspace(-15, -6, 20)  # stopped on the wall top
    outcome = ArmMeasuredOutcome()
    a, b, c = outcome(Result(), clean), outcome(Result(), rubbing), outcome(Result(), jammed)
    assert a.success and b.success and not c.success
    assert a.reward > b.reward > c.reward


@pytest.mark.parametrize("method", ["residual", "hybrid"])
def test_off_policy_learners_update_and_stay_bounded(method):
    from rmskill.learning.hybrid import HybridFineTuner
    from rmskill.learning.residual import ResidualConfig, ResidualFineTuner

    cls = HybridFineTuner if method == "hybrid" else ResidualFineTuner
    learner = cls(OBS, ACT, seed=0) if method == "hybrid" else cls(OBS, ACT, ResidualConfig(warmup_episodes=2), seed=0)
    rng = np.random.default_rng(3)
    for k in range(7):
        learner.begin_episode()
        probe = learner.act(np.zeros(OBS), np.zeros(ACT))
        assert probe.shape == (ACT,) and np.all(np.abs(probe) <= learner.cfg.scale + 1e-9)
        learner.end_episode(episode(rng, 1.0 if k % 2 else -1.0, 0.05 if k % 2 else -0.05))
    assert learner.updates > 0 and np.isfinite(learner.last_loss)
    if method == "hybrid":
        assert learner.labels is not None  # the role-model regression term is in the actor loss


def test_arm_measured_outcome_rewards_a_centred_release():
    """With the touch check, a command let go in the middle of the clearance beats one pressing a
    wall, and a touch check that found no walls (no plate in the nest) is not seated."""

    class Result:
        peak_force_n, message = 8.0, ""

        def __init__(self, off_mm: float, off_deg: float = 0.0):
            self.measurements = {"touch_command_offset_mm": off_mm, "touch_command_offset_yaw_deg": off_deg}

    seated = np.zeros((20, OBS))
    seated[:, 2] = np.linspace(-15, 0, 20)
    seated[-5:, 13] = -5.0
    outcome = ArmMeasuredOutcome()
    centred, pressed, far, twisted = (outcome(Result(*m), seated) for m in ((0.05,), (0.6,), (4.0,), (0.05, 0.4)))
    assert centred.reward > pressed.reward > far.reward
    assert centred.reward > twisted.reward
    assert far.success and far.reward > outcome(Result(float("nan")), seated).reward
    assert not outcome(Result(float("nan")), seated).success
    assert centred.details["centre_offset_mm"] == pytest.approx(0.05)
