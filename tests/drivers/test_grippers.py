"""Grippers built by ``rmskill.connect`` from the arm file, against real peers: a simulated Robotiq on a
pseudo-terminal, the UR emulator's tool (Robotiq or tool digital I/O) through ur_rtde, and the guard
that keeps a real-time arm's servo watchdog fed while the fingers move.

Every server here runs on its own loopback address (127.0.0.x, not 127.0.0.1) and is stopped by the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import rmskill
from rmskill.config import load_arm_config, parse_arm_config
from rmskill.connect import connect_gripper
from rmskill.errors import ConfigError, DriverError
from rmskill.evaluate import random_start
from rmskill.safety import GuardedGripper

ARMS = Path(__file__).resolve().parents[2] / "examples" / "arms"
EMULATED = ARMS / "emulated-ur5e.yaml"


def arm_file(tmp_path: Path, source: Path, **changes: object) -> Path:
    """A copy of an example arm file with top-level keys replaced, written under ``tmp_path``."""
    data = yaml.safe_load(source.read_text())
    data.update(changes)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def emulated_cell(tmp_path: Path, host: str, gripper: dict | None = None) -> Path:
    """emulated-ur5e.yaml on ``host``, its Robotiq's pty linked under ``tmp_path`` (or ``gripper``)."""
    spec = dict(yaml.safe_load(EMULATED.read_text())["gripper"], port=str(tmp_path / "ttyUR"))
    return arm_file(tmp_path, EMULATED, host=host, gripper=gripper or spec)


# --- connect: the arm file's gripper, or one clear line -------------------------------------
def test_a_robotiq_that_cannot_be_reached_fails_at_connect_in_one_line(tmp_path):
    missing = tmp_path / "no-such-tty"
    path = arm_file(tmp_path, ARMS / "sim-ur5e.yaml", gripper={"driver": "robotiq", "port": str(missing)})
    with pytest.raises(DriverError) as err:
        rmskill.connect(path)
    message = str(err.value)
    assert "\n" not in message
    assert "robotiq gripper of arm 'sim-ur5e'" in message and str(missing) in message


def test_connect_attaches_a_robotiq_on_a_pty_behind_the_guard(tmp_path):
    from rmskill.drivers.robotiq import RobotiqGripper, SimulatedRobotiq

    with SimulatedRobotiq(object_width=0.05, activation_time=0.05) as device:
        path = arm_file(tmp_path, ARMS / "sim-ur5e.yaml", gripper={"driver": "robotiq", "port": device.port})
        with rmskill.connect(path) as arm:
            assert isinstance(arm.gripper, GuardedGripper) and isinstance(arm.gripper.wrapped, RobotiqGripper)
            assert arm.unwrapped.gripper is arm.gripper.wrapped
            closed = arm.gripper.close()
            assert closed.object_detected and closed.width == pytest.approx(0.05, abs=0.001)
            opened = arm.gripper.open()
            assert not opened.object_detected and opened.width == pytest.approx(0.085, abs=0.001)
            assert arm.gripper.wrapped.connected
        assert not arm.gripper.wrapped.connected  # closing the arm closes the serial port


def test_sim_gripper_on_an_arm_without_one_is_a_config_error():
    from rmskill.drivers.ur import URArm

    config = load_arm_config(EMULATED).with_changes(gripper={"driver": "sim"})
    with pytest.raises(ConfigError, match="'sim' is the simulator's own gripper"):
        connect_gripper(config, URArm(config))
    assert connect_gripper(config.with_changes(gripper={"driver": "none"}), URArm(config)) is None


def test_franka_hand_without_a_gripper_server_says_so_in_one_line():
    from rmskill.drivers.franka import FrankaArm

    config = load_arm_config(ARMS / "franky-sim-fr3.yaml").with_changes(
        host="127.0.0.83", gripper={"driver": "franka_hand"})
    with pytest.raises(DriverError) as err:
        connect_gripper(config, FrankaArm(config))
    assert "Franka Hand is not available at 127.0.0.83" in str(err.value) and "\n" not in str(err.value)


def test_franka_hand_through_pylibfranka_on_franky_sim():
    pytest.importorskip("franky_sim", reason="needs the franka-sim extra: pip install -e '.[franka-sim]'")
    pytest.importorskip("pylibfranka", reason="needs the franka extra: pip install -e '.[franka]'")
    from rmskill.drivers.franka import FrankaArm
    from rmskill.drivers.franka.hand import FrankaHand
    from rmskill.drivers.franka.simulator import FrankySim

    config = load_arm_config(ARMS / "franky-sim-fr3.yaml").with_changes(
        host="127.0.0.84", gripper={"driver": "franka_hand"})
    with FrankySim(config.host):
        hand = connect_gripper(config, FrankaArm(config))
        try:
            assert isinstance(hand, FrankaHand) and hand.max_width == pytest.approx(0.08)
            closed = hand.close(force=20.0)
            assert closed.width < 0.005 and not closed.object_detected  # nothing between the fingers
            assert hand.open().width > 0.075
        finally:
            hand.disconnect()


# --- a real-time arm: gripper calls never starve the watchdog --------------------------------
def test_realtime_placements_release_without_a_watchdog_trip():
    config = load_arm_config(ARMS / "sim-ur5e.yaml").with_changes(sim={"realtime": True})
    skill = rmskill.load_skill("plate_placement")
    with rmskill.connect(config) as arm:
        pose = arm.state().base_T_tcp
        for _ in range(5):
            arm.servo(pose)
        arm.gripper.close()  # ~0.2 s of real time with no servo call: the guard ended the stream first
        arm.servo(pose)
        assert arm.fault is None
        arm.stop()  # the stream ends before the simulator's reset, which takes real time too
        for seed in (1, 2):
            arm.sim.reset(tcp_pose=config.fixture("shelf_1") @ random_start(np.random.default_rng(seed)), seed=seed)
            result = skill.run(arm, target="shelf_1")
            assert arm.fault is None, arm.fault
            assert result.success, result.message
            assert arm.sim.grasp is None and arm.gripper.state().width > 0.1  # let go, fingers open
            assert arm.sim.placement_error("shelf_1")[0] < 1.0


def test_placing_without_a_gripper_is_not_a_success():
    config = load_arm_config(ARMS / "sim-ur5e.yaml").with_changes(gripper={"driver": "none"})
    skill = rmskill.load_skill("plate_placement")
    with rmskill.connect(config) as arm:
        assert arm.gripper is None
        arm.sim.reset(tcp_pose=config.fixture("shelf_1") @ random_start(np.random.default_rng(4)), seed=4)
        result = skill.run(arm, target="shelf_1")
        assert not result.success
        assert result.message == "no gripper configured: the plate was seated but not released"
        assert arm.sim.placement_error("shelf_1")[0] < 1.0  # seated, and left there: not dragged out


# --- through ur_rtde and the UR emulator ---------------------------------------------------------
def test_placement_through_ur_rtde_releases_with_the_emulated_robotiq(tmp_path):
    """`rmskill run plate_placement --arm emulated-ur5e.yaml --json` against the emulator: the plate ends
    in the nest, the simulated fingers open, the arm 30 mm above it; the pty link goes with the emulator."""
    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    pytest.importorskip("rmskill.drivers.mujoco")
    from rmskill.drivers.ur.emulator import Emulator

    path = emulated_cell(tmp_path, "127.0.0.81")
    config = load_arm_config(path)
    env = dict(os.environ, RMSKILL_HOME=str(tmp_path / "home"))
    # The emulator runs here (its simulator is inspected); ur_rtde runs in the CLI's own process.
    with Emulator(config, host=config.host, backend="mujoco") as emu:
        link = tmp_path / "ttyUR"
        assert link.is_symlink() and os.readlink(link) == emu.controller.tool.sim.port
        run = subprocess.run([sys.executable, "-m", "rmskill.cli", "run", "plate_placement", "--arm", str(path),
                              "--target", "shelf_1", "--json"], capture_output=True, text=True, env=env, timeout=180)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        with emu.controller.lock:
            sim, fingers = emu.controller.arm.sim, emu.controller.arm.gripper
            error_mm, error_deg = sim.placement_error("shelf_1")
            tcp = emu.controller.state.base_T_tcp
            held, width = sim.grasp is not None, fingers.width()
    assert result["success"] and result["measurements"]["release_width_mm"] == pytest.approx(140.0)
    assert error_mm < 1.0 and error_deg < 1.0  # the plate is in the nest
    assert not held and width > 0.1  # the fingers are open and hold nothing
    assert (config.fixture("shelf_1").inverse() @ tcp).xyz[2] == pytest.approx(-0.030, abs=0.002)  # retreated
    assert not link.exists()


def test_transfer_through_ur_rtde_with_the_emulated_robotiq(tmp_path):
    """`rmskill run plate_transfer --from shelf_1 --to shelf_2` against the emulator (a plate seated in
    shelf_1, the gripper empty): the pick's touch check reads the descent alone (the stiff arm's wrist
    feels the approach's accelerations, which are not a touch) and the plate ends in shelf_2, let go."""
    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    pytest.importorskip("rmskill.drivers.mujoco")
    from rmskill.drivers.ur.emulator import Emulator

    data = yaml.safe_load(emulated_cell(tmp_path, "127.0.0.86").read_text())
    data["options"]["emulator_plates"] = ["shelf_1"]
    path = tmp_path / "emulated-plates.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_arm_config(path)
    env = dict(os.environ, RMSKILL_HOME=str(tmp_path / "home"))
    with Emulator(config, host=config.host, backend="mujoco") as emu:
        run = subprocess.run([sys.executable, "-m", "rmskill.cli", "run", "plate_transfer", "--arm", str(path),
                              "--from", "shelf_1", "--to", "shelf_2", "--json"], capture_output=True, text=True,
                             env=env, timeout=240)
        assert run.returncode == 0, run.stdout + run.stderr
        result = json.loads(run.stdout)
        with emu.controller.lock:
            sim = emu.controller.arm.sim
            error_mm, _ = sim.placement_error("shelf_2")
            held, layout = sim.held, sim.layout()
    assert result["success"], result
    pick = result["pick"]["measurements"]
    assert pick["descent_peak_n"] < 8.0 and abs(pick["weight_n"] - 1.47) < 0.5
    assert error_mm < 1.0 and held is None and layout == ["shelf_2"]


def test_tool_io_gripper_through_ur_rtde_drops_the_plate_and_reads_the_object_input(tmp_path):
    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    pytest.importorskip("rmskill.drivers.mujoco")
    from rmskill.drivers.ur.emulator import EmulatorProcess
    from rmskill.drivers.ur.gripper import URToolIOGripper

    gripper = {"driver": "ur_tool_io", "open_pin": 0, "close_pin": 1, "object_pin": 0, "settle_time": 0.4,
               "max_width": 0.104, "mass": 0.9, "center_of_mass": [0.0, 0.0, 0.0332]}
    path = emulated_cell(tmp_path, "127.0.0.82", gripper)
    with EmulatorProcess(path, host="127.0.0.82", backend="mujoco"), rmskill.connect(path) as arm:
        assert isinstance(arm.gripper.wrapped, URToolIOGripper)
        held = arm.gripper.state()
        assert held.width == 0.0 and held.object_detected  # the cell starts with the plate gripped
        opened = arm.gripper.open()
        assert opened.width == pytest.approx(0.104) and not opened.object_detected
        closed = arm.gripper.close()  # the plate fell: nothing to hold
        assert closed.width == 0.0 and not closed.object_detected


def test_the_emulated_robotiq_stops_on_a_plate_it_closes_on_and_reports_it(tmp_path):
    """options.emulator_plates lays the emulated cell out (a plate in shelf_1, the gripper empty); closing
    the Robotiq around that plate stops its fingers on the plate (gOBJ = 2, about the plate's width), as a
    pick through the emulator needs; a fixture that is not the arm's is a ConfigError."""
    pytest.importorskip("rmskill.drivers.mujoco")
    from rmskill.drivers.robotiq.registers import OBJ_CONTACT_CLOSING, Command
    from rmskill.drivers.ur.emulator import Emulator, make_arm

    data = yaml.safe_load(emulated_cell(tmp_path, "127.0.0.85").read_text())
    data["options"]["emulator_plates"] = ["shelf_1"]
    config = parse_arm_config(data)
    arm = make_arm(config, "mujoco")
    assert arm.sim.layout() == ["shelf_1"] and arm.sim.held is None
    arm.sim.reset(tcp_pose=config.fixture("shelf_1"), plates=["shelf_1"])  # the fingers around the seated plate
    with Emulator(config, host=config.host, arm=arm) as emu:
        device = emu.controller.tool.sim.device
        device.write(0, Command(act=True).to_registers())
        time.sleep(0.3)  # activation
        device.write(0, Command(act=True, gto=True, position=255, speed=255, force=50).to_registers())
        deadline = time.monotonic() + 5.0
        while device.obj != OBJ_CONTACT_CLOSING and time.monotonic() < deadline:
            time.sleep(0.05)
        with emu.controller.lock:
            held, width = arm.sim.held, device.width()
    assert device.obj == OBJ_CONTACT_CLOSING  # the device says "object" instead of closing to 0 mm
    assert width * 1000.0 == pytest.approx(85.48, abs=1.5) and held is not None
    data["options"]["emulator_plates"] = ["shelf_9"]
    with pytest.raises(ConfigError, match="shelf_9"):
        make_arm(parse_arm_config(data), "mujoco")
