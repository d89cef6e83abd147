"""What the UR emulator does for each ur_rtde call: moves that happen exactly, checks that check,
and calls it does not emulate refused loudly. The unmodified ur_rtde client, against an emulator
(MuJoCo backend, stiff position-controlled UR5e) started here on its own 127.0.0.23."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rmskill.drivers.ur.emulator import DEFAULT_PORTS, EmulatorProcess

pytest.importorskip("mujoco")
rtde_control = pytest.importorskip("rtde_control")
rtde_receive = pytest.importorskip("rtde_receive")

HOST = "127.0.0.23"
ARM_FILE = Path(__file__).resolve().parents[2] / "examples" / "arms" / "emulated-ur5e.yaml"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ur")
    (folder / "programs").mkdir()
    (folder / "programs" / "pick.urp").write_bytes(b"\x1f\x8b")
    data = yaml.safe_load(ARM_FILE.read_text())
    data.update(host=HOST, gripper={"driver": "none"})
    data["options"]["emulator_programs"] = str(folder / "programs")
    path = folder / "arm.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = EmulatorProcess(path, host=HOST, backend="mujoco").start()
    yield proc
    proc.stop()


@pytest.fixture
def ur(emulator):
    receive = rtde_receive.RTDEReceiveInterface(HOST)
    control = rtde_control.RTDEControlInterface(HOST)
    yield control, receive
    control.disconnect()
    receive.disconnect()


def dashboard(command: str) -> str:
    with socket.create_connection((HOST, DEFAULT_PORTS["dashboard"]), timeout=2) as s:
        f = s.makefile("rwb")
        f.readline()
        f.write(command.encode() + b"\n")
        f.flush()
        return f.readline().decode().strip()


def test_speed_l_moves_the_commanded_distance(ur):
    control, receive = ur
    start = np.array(receive.getActualTCPPose())
    assert control.speedL([0.05, 0, 0, 0, 0, 0], 2.0, 0.0)
    time.sleep(1.0)
    control.speedStop(10.0)
    time.sleep(0.2)
    moved = np.array(receive.getActualTCPPose())[:3] - start[:3]
    assert moved[0] == pytest.approx(0.05, rel=0.05)
    assert abs(moved[1]) < 1e-4 and abs(moved[2]) < 1e-4


def test_speed_j_moves_only_the_commanded_joint(ur):
    control, receive = ur
    start = np.array(receive.getActualQ())
    assert control.speedJ([0.2, 0, 0, 0, 0, 0], 1.0, 0.0)
    time.sleep(0.8)
    control.speedStop(10.0)
    time.sleep(0.2)
    moved = np.array(receive.getActualQ()) - start
    assert moved[0] > 0.1
    assert np.all(np.abs(moved[1:]) < 1e-3), moved


def test_safety_limits_and_kinematics_queries(ur):
    control, receive = ur
    here = receive.getActualTCPPose()
    assert not control.isPoseWithinSafetyLimits([5, 5, 5, 0, 0, 0])
    assert control.isPoseWithinSafetyLimits(here)
    assert not control.isJointsWithinSafetyLimits([0, 0, 4.0, 0, 0, 0])  # the elbow turns +-180 deg
    assert control.getInverseKinematicsHasSolution(here)
    assert not control.getInverseKinematicsHasSolution([5, 5, 5, 0, 0, 0])
    q = control.getInverseKinematics(here)
    assert np.allclose(control.getForwardKinematics(q, control.getTCPOffset())[:3], here[:3], atol=1e-4)
    assert np.allclose(control.poseTrans([0.1, 0, 0, 0, 0, 0], [0, 0.1, 0, 0, 0, 1.0]), [0.1, 0.1, 0, 0, 0, 1.0])


def test_force_mode_pushes_with_the_commanded_force(ur):
    control, receive = ur
    start = receive.getActualTCPPose()
    control.zeroFtSensor()
    control.forceModeSetDamping(0.5)
    for _ in range(500):  # 1 s: free along z, pushing down with 10 N: it moves down until something resists
        t = control.initPeriod()
        control.forceMode([0] * 6, [0, 0, 1, 0, 0, 0], [0, 0, -10, 0, 0, 0], 2, [0.1, 0.1, 0.05, 1, 1, 1])
        control.waitPeriod(t)
    control.forceModeStop()
    dropped = start[2] - receive.getActualTCPPose()[2]
    assert dropped > 0.005  # in free air the force is never met: it keeps moving down (about 1 cm/s here)
    assert control.isProgramRunning()
    control.moveL(start, 0.1, 0.5)


@pytest.mark.parametrize("gain_scaling", [0.5, 1.0])
def test_force_mode_presses_steadily_against_a_hard_surface(ur, gain_scaling):
    """ur_rtde documents force mode's gain scaling (0..2) as stable up to 1 against hard surfaces: the
    held plate pushed down onto the shelf with 20 N settles at 20 N, without ringing from one period to
    the next (an emulator that rang here shook plates into nests and tripped force limits on spikes)."""
    control, receive = ur
    start = receive.getActualTCPPose()
    above = list(start)
    above[2] -= 0.150  # about 40 mm above the shelf
    assert control.moveL(above, 0.25, 1.0)
    control.zeroFtSensor()
    control.forceModeSetDamping(0.5)
    control.forceModeSetGainScaling(gain_scaling)
    forces = []
    for i in range(1500):  # 3 s: down through the air, then pressing
        t = control.initPeriod()
        control.forceMode([0] * 6, [0, 0, 1, 0, 0, 0], [0, 0, -20, 0, 0, 0], 2, [0.1, 0.1, 0.05, 1, 1, 1])
        if i >= 1250:
            forces.append(receive.getActualTCPForce()[2])
        control.waitPeriod(t)
    control.forceModeStop()
    control.forceModeSetGainScaling(0.5)  # what ur_rtde's control script starts with
    assert control.isProgramRunning() and not receive.isProtectiveStopped()
    fz = np.array(forces)
    assert above[2] - receive.getActualTCPPose()[2] > 0.030  # it went down to the shelf
    assert abs(np.median(fz) - 20.0) < 3.0, fz  # the shelf pushes back up with the commanded force
    assert np.percentile(np.abs(np.diff(fz)), 95) < 2.0 and np.ptp(fz) < 8.0, fz  # steady, not ringing
    assert control.moveL(start, 0.25, 1.0)


def test_move_until_contact_stops_on_contact_and_backs_off_to_where_it_began(ur):
    """moveUntilContact at 20 mm/s down: the held plate meets the shelf below, the arm stops, goes back
    to where the contact began and returns True; nothing protective-stops. (At ur_rtde's example's
    100 mm/s the stiff arm's force crosses 150 N within one 2 ms period: a protective stop, loudly.)"""
    control, receive = ur
    start = receive.getActualTCPPose()
    above = list(start)
    above[2] -= 0.150  # about 40 mm above the contact, quickly
    assert control.moveL(above, 0.25, 1.0)
    began = time.monotonic()
    assert control.moveUntilContact([0, 0, -0.02, 0, 0, 0])
    seconds = time.monotonic() - began
    end = receive.getActualTCPPose()
    assert 0.030 < above[2] - end[2] < 0.060 and seconds < 5.0  # it went down to something and stopped
    assert control.isProgramRunning() and not receive.isProtectiveStopped()
    assert np.linalg.norm(receive.getActualTCPForce()[:3]) < 15.0  # resting where contact began, not pressing
    assert control.moveL(start, 0.25, 1.0)


def test_a_call_that_is_not_emulated_stops_the_program_loudly(ur):
    control, _ = ur
    assert control.isProgramRunning()
    assert not control.setGravity([0, 0, 9.82])
    assert not control.isProgramRunning()
    assert control.reuploadScript()


def test_dashboard_program_store(emulator):
    assert dashboard("load missing.urp") == "File not found: missing.urp"
    assert dashboard("load pick.urp") == "Loading program: /programs/pick.urp"
    assert dashboard("get loaded program") == "Loaded program: /programs/pick.urp"
    assert dashboard("play") == "Starting program"
    assert dashboard("programState").startswith("PLAYING")
    assert dashboard("pause") == "Pausing program"
    assert dashboard("programState").startswith("PAUSED")
    assert dashboard("stop") == "Stopped"
    assert dashboard("programState") == "STOPPED pick.urp"
    assert dashboard("set operational mode manual") == "Operational mode 'manual' is set"
    assert dashboard("get operational mode") == "MANUAL"
    assert dashboard("clear operational mode").startswith("No longer controlling")


def test_secondary_interface_streams_the_robot_state(emulator):
    with socket.create_connection((HOST, DEFAULT_PORTS["secondary"]), timeout=2) as s:
        data = b""
        while len(data) < 2000:
            data += s.recv(4096)
    size, kind = struct.unpack("!iB", data[:5])
    assert kind == 20  # the version message first
    size2, kind2 = struct.unpack("!iB", data[size:size + 5])
    assert kind2 == 16 and size2 < 2000
    sub_size, sub_kind = struct.unpack("!iB", data[size + 5:size + 10])
    assert sub_kind == 0 and sub_size == 46  # robot mode data, as python-urx parses it


def test_protective_stop_recovery_by_unlock_and_reupload(ur):
    control, receive = ur
    control.triggerProtectiveStop()
    time.sleep(0.1)
    assert receive.isProtectiveStopped() and not control.isProgramRunning()
    assert not control.moveL(receive.getActualTCPPose(), 0.1, 0.5)  # refused while stopped
    assert dashboard("unlock protective stop") == "Protective stop releasing"
    assert control.reuploadScript()
    time.sleep(0.3)
    assert control.isProgramRunning()  # and it stays running
    target = receive.getActualTCPPose()
    target[2] += 0.01
    assert control.moveL(target, 0.1, 0.5)
    assert abs(receive.getActualTCPPose()[2] - target[2]) < 1e-4


def test_custom_script_function_runs_on_the_urscript_runner(ur):
    control, receive = ur
    q = receive.getActualQ()
    target = [q[0] + 0.05, *q[1:]]
    assert control.sendCustomScriptFunction("nudge", f"movej({target}, a=1.0, v=0.5)")
    assert abs(receive.getActualQ()[0] - target[0]) < 1e-3
    assert control.isProgramRunning()  # ur_rtde's own script is back


def test_jog_moves_along_the_feature_until_stopped(ur):
    control, receive = ur
    start = np.array(receive.getActualTCPPose())
    assert control.jogStart([0, 0.02, 0, 0, 0, 0], rtde_control.RTDEControlInterface.FEATURE_BASE, 2.0)
    time.sleep(0.5)
    assert control.jogStop()
    time.sleep(0.1)
    moved = np.array(receive.getActualTCPPose())[:3] - start[:3]
    assert 0.006 < moved[1] < 0.012 and abs(moved[0]) < 1e-4 and abs(moved[2]) < 1e-4
