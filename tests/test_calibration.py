"""Calibration on perturbed simulated arms: recovered TCP, fixtures, latency and payload against
the simulated truth; degenerate input refused; a failed run leaves the store as it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import rmskill
from rmskill.calibration.fixture import calibrate_fixture
from rmskill.calibration.operator import SimOperator
from rmskill.calibration.run import calibrate, show
from rmskill.calibration.tcp import solve_pivot
from rmskill.calibration_store import CalibrationStore
from rmskill.config import ArmConfig, load_arm_config
from rmskill.errors import CalibrationError, ConfigError
from rmskill.geometry import Pose

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"
UR5E = ARMS / "sim-ur5e-perturbed.yaml"
FR3 = ARMS / "sim-fr3-perturbed.yaml"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("RMSKILL_HOME", str(tmp_path / "home"))


def true_tcp(config: ArmConfig) -> Pose:
    return config.flange_T_tcp @ Pose.from_ur(config.truth.tcp_error)


def true_fixture(config: ArmConfig, name: str) -> Pose:
    return config.fixture(name) @ config.truth.fixture_error_for(name)


def assert_close(measured: Pose, truth: Pose, mm: float, deg: float) -> None:
    assert measured.distance_mm(truth) < mm, f"{measured.distance_mm(truth):.4f} mm from the truth"
    assert measured.angle_deg(truth) < deg, f"{measured.angle_deg(truth):.4f} deg from the truth"


# --- end to end on the example arms ------------------------------------------------------------
def test_all_on_perturbed_ur5e_recovers_truth_and_stores_it():
    config = load_arm_config(UR5E)
    out = calibrate("all", UR5E)
    tcp = Pose.from_ur(out["tcp"]["tcp"])
    assert_close(tcp, true_tcp(config), 0.1, 0.05)
    assert config.flange_T_tcp.distance_mm(true_tcp(config)) > 1.0  # there was something to find
    assert out["tcp"]["rms_residual_mm"] < 0.1
    for name in config.fixtures:
        assert out["fixtures"][name]["fixture"] == name
        assert_close(Pose.from_ur(out["fixtures"][name]["pose"]), true_fixture(config, name), 0.2, 0.1)
    assert abs(out["servo"]["latency_ms"] - config.truth.latency_ms) <= 1.0
    assert abs(out["payload"]["mass"] - config.gripper.mass) < 0.03  # the empty gripper: 0.9 kg
    assert np.allclose(out["payload"]["center_of_mass"], config.gripper.center_of_mass, atol=0.004)
    store = CalibrationStore(config.name)
    assert store.tcp().isclose(tcp, mm=1e-6, deg=1e-6)
    assert store.fixture("shelf_2").isclose(Pose.from_ur(out["fixtures"]["shelf_2"]["pose"]))
    shown = show(UR5E)
    assert set(shown["calibration"]) == {"tcp", "fixtures", "servo", "payload"}
    assert all("date" in entry for entry in shown["calibration"]["fixtures"].values())
    with rmskill.connect(UR5E) as arm:  # skills get the calibrated TCP
        assert arm.unwrapped.flange_T_tcp.isclose(tcp, mm=1e-6, deg=1e-6)


def test_fr3_tcp_fixture_and_latency():
    config = load_arm_config(FR3)
    tcp = calibrate("tcp", FR3)
    assert_close(Pose.from_ur(tcp["tcp"]), true_tcp(config), 0.1, 0.05)
    fixture = calibrate("fixture", FR3, fixture="shelf_1")
    assert fixture["fixture"] == "shelf_1" and len(fixture["pose"]) == 6
    assert_close(Pose.from_ur(fixture["pose"]), true_fixture(config, "shelf_1"), 0.2, 0.1)
    servo = calibrate("servo", FR3)
    assert abs(servo["latency_ms"] - config.truth.latency_ms) <= 1.0


def test_larger_errors_in_every_axis():
    """A TCP off by a few mm and deg about every axis, a nest off by 1 mm and 0.5 deg."""
    config = load_arm_config(UR5E).with_changes(sim={"seed": 3, "truth": {
        "tcp_error": [0.003, -0.002, 0.004, 0.03, -0.025, 0.05],
        "fixture_error": {"shelf_2": [-0.0009, 0.0011, 0.0004, 0.0, 0.0, -0.0087]},
        "latency_ms": 6.0,
    }})
    out = calibrate("tcp", config)
    assert_close(Pose.from_ur(out["tcp"]), true_tcp(config), 0.1, 0.05)
    out = calibrate("fixture", config, fixture="shelf_2")
    assert_close(Pose.from_ur(out["pose"]), true_fixture(config, "shelf_2"), 0.2, 0.1)
    assert abs(calibrate("servo", config)["latency_ms"] - 6.0) <= 1.0


def test_taught_fixture_in_the_simulator():
    config = load_arm_config(UR5E)
    with rmskill.connect(config) as arm:
        arm.set_tcp(true_tcp(config))  # as after a TCP calibration
        result = calibrate_fixture(arm, "shelf_3", config.fixture("shelf_3"), method="teach")
    assert result.method == "teach"
    assert_close(result.base_T_fixture, true_fixture(config, "shelf_3"), 0.2, 0.1)


def test_payload_restores_the_payload_and_tcp_it_found():
    from rmskill.calibration.payload import calibrate_payload

    config = load_arm_config(FR3)
    with rmskill.connect(config) as arm:
        arm.sim.reset(plate=False)
        result = calibrate_payload(arm)
        mass, com = arm.unwrapped.payload
        assert mass == config.gripper.mass and np.allclose(com, config.gripper.center_of_mass)
        assert arm.unwrapped.flange_T_tcp.isclose(config.flange_T_tcp)
    assert abs(result.mass - 0.9) < 0.02 and result.force_rms_n < 0.2
    assert np.allclose(result.center_of_mass, [0.0015, -0.001, 0.0311], atol=0.001)  # gripper mounted 1.8 mm off


# --- refused input ------------------------------------------------------------------------------
def _flange_poses(rotvecs: list[list[float]], tip=(0.001, -0.002, 0.16), pivot=(0.4, 0.0, 0.2)) -> list[Pose]:
    poses = []
    for rv in rotvecs:
        rot = Rotation.from_rotvec(rv)
        poses.append(Pose.from_quat_xyzw(np.array(pivot) - rot.apply(tip), rot.as_quat()))
    return poses


def test_pivot_solve_recovers_an_exact_tip():
    poses = _flange_poses([[np.pi, 0, 0], [np.pi, 0.4, 0], [np.pi, -0.4, 0.2], [np.pi, 0.1, -0.5], [2.8, 0.3, 0.3]])
    fit = solve_pivot([poses])
    assert np.allclose(fit.flange_points[0], [0.001, -0.002, 0.16], atol=1e-9)
    assert fit.rms_residual_mm < 1e-6


def test_degenerate_pose_set_says_how_much_more_spread_is_needed():
    about_one_axis = _flange_poses([[np.pi, 0, 0], [np.pi + 0.3, 0, 0], [np.pi - 0.3, 0, 0], [np.pi + 0.5, 0, 0]])
    with pytest.raises(CalibrationError, match=r"need 15\.0 deg: tilt the tool .* deg more"):
        solve_pivot([about_one_axis])
    with pytest.raises(CalibrationError, match="at least 4 poses, got 3"):
        solve_pivot([about_one_axis[:3]])


def test_failed_run_does_not_overwrite_the_store():
    config = load_arm_config(UR5E)
    CalibrationStore(config.name).save_entry("tcp", {"tcp": [0, 0, 0.1601, 0, 0, 0], "rms_residual_mm": 0.01})
    before = CalibrationStore(config.name).path.read_bytes()
    with pytest.raises(CalibrationError, match="degenerate pose set"):
        calibrate("tcp", UR5E, operator=SimOperator(spread_deg=2.0))
    assert CalibrationStore(config.name).path.read_bytes() == before


def test_failed_touch_off_does_not_overwrite_the_stored_fixture():
    config = load_arm_config(UR5E).with_changes(sim={"truth": {"fixture_error": [0.004, 0, 0, 0, 0, 0],
                                                               "tcp_error": [0.0] * 6}})
    store = CalibrationStore(config.name)
    store.save_entry("fixtures", {"pose": [0.45, 0.0, 0.1, np.pi, 0, 0], "residual_mm": 0.01}, name="shelf_2")
    before = store.load()["fixtures"]
    with pytest.raises(CalibrationError, match="further than about 3 mm from its nominal pose"):
        calibrate("fixture", config, fixture="shelf_2")
    assert store.load()["fixtures"] == before
    assert "tcp" in store.load()  # the TCP it measured first did succeed, and is kept


def test_missing_fixture_name_is_a_config_error_listing_the_fixtures():
    with pytest.raises(ConfigError, match=r"shelf_9.*shelf_1, shelf_2, shelf_3"):
        calibrate("fixture", UR5E, fixture="shelf_9")
    with pytest.raises(ConfigError, match="procedures: tcp, fixture, servo, payload, all"):
        calibrate("pivot", UR5E)


def test_touch_off_without_force_sensing_is_refused_before_moving():
    config = load_arm_config(UR5E)
    with rmskill.connect(config) as arm:
        arm.capabilities = dataclasses.replace(arm.capabilities, senses_wrench=False)
        q0 = arm.state().q
        with pytest.raises(CalibrationError, match="force sensing"):
            calibrate_fixture(arm, "shelf_1", config.fixture("shelf_1"), method="touch")
        assert np.allclose(arm.state().q, q0)


def test_console_operator_prompts_for_spread_and_refuses_a_pose_set_that_never_moved():
    """The hardware path: freedrive, one prompt per pose saying how much more tilt is needed."""
    from rmskill.calibration.operator import ConsoleOperator
    from rmskill.calibration.tcp import calibrate_tcp

    prompts: list[str] = []
    operator = ConsoleOperator(ask=lambda msg: prompts.append(msg) or "", show=prompts.append)
    with rmskill.connect(UR5E) as arm, pytest.raises(CalibrationError, match="degenerate pose set"):
        calibrate_tcp(arm, operator, poses=4, orientation=False)
    asks = [p for p in prompts if "touch the pivot" in p]
    assert len(asks) == 4
    assert "0 recorded" in asks[0] and "deg more" in asks[-1]


def test_calibration_restores_placement_precision(tmp_path, monkeypatch):
    """An arm with a few mm/deg of TCP error and ~1 mm / 0.5 deg of fixture error: the skill misses
    before calibration and places like on a nominal arm after `calibrate tcp` + `calibrate fixture`."""
    monkeypatch.setenv("RMSKILL_HOME", str(tmp_path / "home"))
    import numpy as np

    from rmskill.calibration.run import calibrate
    from rmskill.config import load_arm_config
    from rmskill.evaluate import evaluate

    cfg = load_arm_config("examples/arms/sim-ur5e.yaml").with_changes(
        name="ur5e-offsets",
        sim={"seed": 3, "truth": {"tcp_error": [0.002, -0.0015, 0.001, 0.0, 0.0, 0.03],
                                  "fixture_error": [0.001, 0.0005, 0.0, 0.0, 0.0, 0.0087]}})
    before = evaluate("plate_placement", cfg, episodes=3, seed=5)
    calibrate("tcp", cfg)
    calibrate("fixture", cfg, fixture="shelf_1")
    calibrate("fixture", cfg, fixture="shelf_2")
    calibrate("fixture", cfg, fixture="shelf_3")
    after = evaluate("plate_placement", cfg, episodes=3, seed=5)
    assert before["success_rate"] < 1.0 or before["translation_error_mm"]["mean"] > 0.5
    assert after["success_rate"] == 1.0
    assert after["translation_error_mm"]["mean"] < 0.2 and after["rotation_error_deg"]["mean"] < 0.1
    assert np.isfinite(after["peak_force_n"]["max"]) and after["peak_force_n"]["max"] < cfg.limits.max_force
