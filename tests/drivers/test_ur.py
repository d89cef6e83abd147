"""The UR backend against our controller emulator on its own loopback address, with the unmodified
ur_rtde client.

ur_rtde cannot be pointed at other ports, so the emulator serves the standard ones
(30004 RTDE, 29999 dashboard, 30003 script) on 127.0.0.71 (its own address: another emulator on
127.0.0.1, a developer's say, never clashes), in a child process (ur_rtde's
constructors hold the GIL, so an in-process server would never answer them).
The emulated arm is the kinematic stand-in (exact, so the tolerances test the protocol);
set RMSKILL_UR_EMULATOR_BACKEND=mujoco to run everything on the MuJoCo arm instead.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rmskill.config import load_arm_config
from rmskill.drivers.ur import rtde_protocol as rp
from rmskill.drivers.ur.emulator import DEFAULT_PORTS, EmulatorProcess
from rmskill.drivers.ur.script_server import complete_programs
from rmskill.errors import DriverError
from rmskill.geometry import Pose

ARM_FILE = Path(__file__).resolve().parents[2] / "examples" / "arms" / "emulated-ur5e.yaml"
HOST = "127.0.0.71"
BACKEND = os.environ.get("RMSKILL_UR_EMULATOR_BACKEND", "kinematic")


def cell_file(tmp_path: Path) -> Path:
    """emulated-ur5e.yaml with its simulated Robotiq's pty linked under ``tmp_path`` (not /tmp/ttyUR)."""
    data = yaml.safe_load(ARM_FILE.read_text())
    data["gripper"]["port"] = str(tmp_path / "ttyUR")
    data["host"] = HOST
    path = tmp_path / "emulated-ur5e.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def emulator(tmp_path):
    proc = EmulatorProcess(cell_file(tmp_path), host=HOST, backend=BACKEND).start()
    yield proc
    proc.stop()


@pytest.fixture
def arm(emulator):
    from rmskill.drivers.ur import URArm

    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    arm = URArm(load_arm_config(ARM_FILE).with_changes(host=HOST))
    arm.connect()
    yield arm
    arm.close()


def dashboard(command: str) -> str:
    """One dashboard command over a fresh connection; returns the reply line."""
    with socket.create_connection((HOST, DEFAULT_PORTS["dashboard"]), timeout=2) as s:
        f = s.makefile("rwb")
        f.readline()  # greeting
        f.write(command.encode() + b"\n")
        f.flush()
        return f.readline().decode().strip()


# --- protocol pieces, no network -----------------------------------------------------------
def test_urscript_runner_parses_what_it_runs_and_refuses_the_rest():
    from rmskill.drivers.ur import urscript
    from rmskill.drivers.ur.control_program import parse_path

    assert urscript.parse("digital_out[2]=True") == [("set_digital_out", [2, True], {}, False)]
    body = "def f():\n  movel(p[0.1,0.2,0.3,0,3.14,0], a=1.2, v=0.25)\n  write_output_integer_register(0 +24, 2)\nend"
    assert urscript.parse(body) == [("movel", [[0.1, 0.2, 0.3, 0, 3.14, 0]], {"a": 1.2, "v": 0.25}, True),
                                    ("write_output_integer_register", [24, 2], {}, False)]
    with pytest.raises(urscript.ScriptError, match="popup"):
        urscript.parse('popup("hello")')
    script = ("def exec_move_path():\n  textmsg(\"x\")\n\tsignal_async_progress(0)\n"
              "\tmovej([1,2,3,4,5,6],a=1.4,v=1.05,r=0)\nend\n")
    assert parse_path(script) == [("movej", False, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1.05, 1.4)]


def test_recipe_round_trip():
    recipe = rp.Recipe(3, ("input_int_register_0", "input_double_register_0", "actual_TCP_pose"),
                       ("INT32", "DOUBLE", "VECTOR6D"))
    msg = recipe.pack({"input_int_register_0": 24, "input_double_register_0": 0.5,
                       "actual_TCP_pose": [1, 2, 3, 4, 5, 6]})
    size, kind = rp.HEADER.unpack_from(msg)
    assert (size, kind) == (len(msg), rp.DATA_PACKAGE)
    values = recipe.unpack(msg[rp.HEADER.size:])
    assert values["input_int_register_0"] == 24 and values["actual_TCP_pose"] == [1, 2, 3, 4, 5, 6]
    assert rp.output_type("actual_q") == "VECTOR6D" and rp.output_type("no_such_thing") is None
    assert rp.input_type("input_double_register_47") == "DOUBLE" and rp.input_type("input_int_register_48") is None


def test_script_splitting_waits_for_the_closing_end():
    programs, rest = complete_programs("def rtde_control():\n  if x:\n  end\n")
    assert programs == [] and rest.startswith("def rtde_control")
    programs, rest = complete_programs(rest + "end\nstopl(2)\n")
    assert [name for name, _ in programs] == ["rtde_control", ""] and rest == ""


class RawRTDE:
    """A minimal RTDE client of our own, to test the server without ur_rtde."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=2)
        self.buf = b""

    def request(self, kind: int, payload: bytes = b"") -> bytes:
        self.sock.sendall(rp.message(kind, payload))
        return self.receive(kind)

    def receive(self, kind: int) -> bytes:
        while True:
            while len(self.buf) < 3 or len(self.buf) < rp.HEADER.unpack_from(self.buf)[0]:
                self.buf += self.sock.recv(65536)
            size, got = rp.HEADER.unpack_from(self.buf)
            payload, self.buf = self.buf[3:size], self.buf[size:]
            if got == kind:
                return payload


def test_in_process_emulator_serves_rtde_registers_and_scripts_on_chosen_ports():
    from rmskill.drivers.ur.emulator import Emulator

    config = load_arm_config(ARM_FILE)
    ports = {"rtde": 0, "dashboard": 0, "script": 0, "primary": 0, "secondary": 0, "operator": 0}
    with Emulator(config, host=HOST, ports=ports, backend="kinematic") as emu:
        assert all(port != DEFAULT_PORTS[name] for name, port in emu.ports.items())
        client, other = RawRTDE(emu.ports["rtde"]), RawRTDE(emu.ports["rtde"])
        assert client.request(rp.REQUEST_PROTOCOL_VERSION, b"\x00\x02") == b"\x01"
        assert struct.unpack(">IIII", client.request(rp.GET_URCONTROL_VERSION))[0] == 5
        names = ("timestamp", "actual_TCP_pose", "runtime_state", "output_int_register_0")
        reply = client.request(rp.SETUP_OUTPUTS, struct.pack(">d", 125.0) + ",".join(names).encode())
        out = rp.Recipe(reply[0], names, tuple(reply[1:].decode().split(",")))
        assert out.types == ("DOUBLE", "VECTOR6D", "UINT32", "INT32")
        inputs = ("input_int_register_0", *(f"input_double_register_{i}" for i in range(6)))
        reply = client.request(rp.SETUP_INPUTS, ",".join(inputs).encode())
        assert reply[0] == 1 and "IN_USE" not in reply.decode(errors="ignore")
        assert other.request(rp.SETUP_INPUTS, b"input_int_register_0")[1:] == b"IN_USE"
        assert client.request(rp.START) == b"\x01"
        first = out.unpack(client.receive(rp.DATA_PACKAGE))
        second = out.unpack(client.receive(rp.DATA_PACKAGE))
        assert second["timestamp"] - first["timestamp"] == pytest.approx(0.008)  # 125 Hz controller time
        assert first["runtime_state"] == 1  # no program yet

        with socket.create_connection((HOST, emu.ports["script"])) as script:
            script.sendall(b"def rtde_control():\n  global reg_offset_float = 0\nend\n")
            values = out.unpack(client.receive(rp.DATA_PACKAGE))
            deadline = time.monotonic() + 2
            while values["runtime_state"] != 2 and time.monotonic() < deadline:
                values = out.unpack(client.receive(rp.DATA_PACKAGE))
            assert values["output_int_register_0"] == 1  # ready for a command
            setp = rp.Recipe(1, inputs, ("INT32", *["DOUBLE"] * 6))
            client.sock.sendall(setp.pack({"input_int_register_0": 29, "input_double_register_2": 0.26}))
            while values["output_int_register_0"] != 2 and time.monotonic() < deadline:  # done
                values = out.unpack(client.receive(rp.DATA_PACKAGE))
            # a TCP 0.1 m longer on a tool pointing down is 0.1 m lower
            assert values["actual_TCP_pose"][2] == pytest.approx(first["actual_TCP_pose"][2] - 0.1, abs=1e-6)


# --- against the emulator ------------------------------------------------------------------
def test_emulator_binds_loopback_and_answers_the_dashboard(emulator):
    assert emulator.host == HOST
    assert dashboard("PolyscopeVersion").startswith("URSoftware 5.")
    assert dashboard("get serial number").isdigit()
    assert dashboard("robotmode") == "Robotmode: RUNNING"
    assert dashboard("safetystatus") == "Safetystatus: NORMAL"
    assert dashboard("power off") == "Powering off" and dashboard("robotmode") == "Robotmode: POWER_OFF"
    assert dashboard("power on") == "Powering on" and dashboard("brake release") == "Brake releasing"
    assert dashboard("robotmode") == "Robotmode: RUNNING"
    assert dashboard("unlock protective stop") == "Protective stop releasing"


def test_plain_ur_rtde_script_moves_5cm_and_back(emulator):
    moves_5cm_and_back(tolerance_mm=0.5)


def test_plain_ur_rtde_script_on_the_mujoco_arm():
    """The same script as `rmskill sim-serve ur --arm examples/arms/sim-ur5e.yaml` serves it: the
    simulated UR5e (holding its plate) behind the emulator."""
    pytest.importorskip("rmskill.drivers.mujoco")
    with EmulatorProcess(ARM_FILE.parent / "sim-ur5e.yaml", host=HOST, backend="mujoco"):
        moves_5cm_and_back(tolerance_mm=0.5)


def test_check_driver_passes_through_ur_rtde_on_the_mujoco_arm(tmp_path):
    """`rmskill check-driver examples/arms/emulated-ur5e.yaml` against `rmskill sim-serve ur` (gripper included)."""
    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    from rmskill.check import check_driver

    cell = cell_file(tmp_path)
    with EmulatorProcess(cell, host=HOST, backend="mujoco"):
        results = check_driver(cell)
    failed = [(r.name, r.detail) for r in results if not r.ok]
    assert not failed
    assert [r.name for r in results][-1] == "close"


def test_plate_placement_runs_through_ur_rtde_on_the_mujoco_arm(tmp_path):
    """The skill, unchanged, through URArm -> ur_rtde -> the emulator -> the simulated UR5e, releasing
    the plate with the emulated Robotiq."""
    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    import rmskill

    skill = rmskill.load_skill("plate_placement")
    cell = cell_file(tmp_path)
    with EmulatorProcess(cell, host=HOST, backend="mujoco"), rmskill.connect(cell) as arm:
        result = skill.run(arm, target="shelf_2")
    assert result.success, result.message
    assert result.measured_by == "arm measurement"  # no simulator truth through a real driver
    assert result.translation_error_mm < 1.0 and result.peak_force_n < arm.config.limits.max_force


def moves_5cm_and_back(tolerance_mm: float) -> None:
    """Plain ur_rtde: read the TCP pose, moveL 5 cm away and back, read it again each time."""
    rtde_control = pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    rtde_receive = pytest.importorskip("rtde_receive", reason="needs the ur extra: pip install -e '.[ur]'")
    tol = tolerance_mm / 1000.0
    receive = rtde_receive.RTDEReceiveInterface(HOST)
    control = rtde_control.RTDEControlInterface(HOST)
    try:
        start = receive.getActualTCPPose()
        away = [start[0], start[1] + 0.05, *start[2:]]
        assert control.moveL(away, 0.25, 1.2)
        time.sleep(0.01)
        reached = receive.getActualTCPPose()
        assert np.linalg.norm(np.subtract(reached[:3], away[:3])) < tol
        assert Pose.from_ur(reached).angle_deg(Pose.from_ur(away)) < 0.1
        assert control.moveL(start, 0.25, 1.2)
        time.sleep(0.01)
        assert np.linalg.norm(np.subtract(receive.getActualTCPPose()[:3], start[:3])) < tol
        assert receive.getRobotMode() == 7 and receive.getSafetyMode() == 1
        assert len(receive.getActualQ()) == 6 and len(receive.getActualTCPForce()) == 6
        control.stopScript()
    finally:
        control.disconnect()
        receive.disconnect()


def test_plain_ur_rtde_speed_teach_and_kinematics(emulator):
    rtde_control = pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    rtde_receive = pytest.importorskip("rtde_receive", reason="needs the ur extra: pip install -e '.[ur]'")
    receive = rtde_receive.RTDEReceiveInterface(HOST)
    control = rtde_control.RTDEControlInterface(HOST)
    try:
        start = receive.getActualTCPPose()
        assert control.speedL([0.0, 0.0, 0.05, 0.0, 0.0, 0.0], 5.0, 0.0)  # 10 ms ramp
        time.sleep(0.2)
        assert control.speedStop()
        assert receive.getActualTCPPose()[2] - start[2] == pytest.approx(0.01, abs=0.002)
        q = receive.getActualQ()
        assert control.speedJ([0.1, 0, 0, 0, 0, 0], 5.0, 0.0)
        time.sleep(0.2)
        assert control.speedStop()
        assert receive.getActualQ()[0] - q[0] == pytest.approx(0.02, abs=0.004)
        pose = receive.getActualTCPPose()
        q_ik = control.getInverseKinematics(pose)
        assert np.allclose(q_ik, receive.getActualQ(), atol=1e-6)
        assert np.allclose(control.getForwardKinematics(), pose, atol=1e-6)
        assert control.teachMode() and control.endTeachMode()
        assert control.setPayload(1.2, [0.0, 0.0, 0.05])
        deadline = time.monotonic() + 1.0  # the next RTDE output frames carry it
        while receive.getPayload() != pytest.approx(1.2) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert receive.getPayload() == pytest.approx(1.2)
        control.stopScript()
    finally:
        control.disconnect()
        receive.disconnect()


def test_urarm_connects_reads_state_moves_and_servos(arm):
    state = arm.state()
    assert state.q.shape == (6,) and state.wrench is not None
    target = state.base_T_tcp.translated([0.0, 0.03, -0.02])
    arm.move_to(target, speed=0.25)
    assert arm.state().base_T_tcp.distance_mm(target) < 0.5

    goal = target.translated([0.0, 0.0, 0.01])
    t0 = time.monotonic()
    for i in range(1, 101):  # 10 mm in 0.2 s at 500 Hz, then hold the goal
        arm.servo(target.interpolate(goal, min(1.0, i / 100)))
    assert time.monotonic() - t0 == pytest.approx(0.2, abs=0.06)  # servo keeps the 2 ms period
    for _ in range(250):
        arm.servo(goal)
    assert arm.state().base_T_tcp.distance_mm(goal) < 0.5
    arm.stop()

    before = arm.state().base_T_tcp
    arm.set_tcp(Pose.from_ur([0, 0, 0.20, 0, 0, 0]))  # longer than the arm file's TCP
    longer = arm.state().base_T_tcp
    assert longer.distance_mm(before) == pytest.approx(200.0 - 1000 * arm.config.tcp[2], abs=0.1)
    arm.freedrive(True)
    arm.freedrive(False)


def test_killing_the_emulator_mid_servo_raises_within_100ms(arm, emulator):
    pose = arm.state().base_T_tcp
    for i in range(50):
        arm.servo(pose.translated([0.0, 0.0, 0.0001 * i]))
    emulator.kill()
    killed = time.monotonic()
    with pytest.raises(DriverError, match=re.escape(f"connection to the UR controller at {HOST} lost")):
        for _ in range(500):
            arm.servo(pose)
    assert time.monotonic() - killed < 0.1


def test_protective_stop_stops_and_raises_then_unlocks(arm):
    pose = arm.state().base_T_tcp
    for _ in range(10):
        arm.servo(pose)
    assert dashboard("emulator protective stop bumped into the fixture") == "Protective stop triggered"
    with pytest.raises(DriverError, match="protective stop"):
        for _ in range(100):
            arm.servo(pose)
    assert dashboard("safetystatus") == "Safetystatus: PROTECTIVE_STOP"
    arm.unlock_protective_stop()
    arm.move_to(pose.translated([0.01, 0.0, 0.0]), speed=0.25)
    assert arm.state().base_T_tcp.distance_mm(pose.translated([0.01, 0.0, 0.0])) < 0.5


def test_missed_servo_deadline_stops_and_raises(arm):
    pose = arm.state().base_T_tcp
    arm.servo(pose)
    time.sleep(arm.config.limits.servo_timeout + 0.05)
    with pytest.raises(DriverError, match="servo deadline missed"):
        arm.servo(pose)
    arm.servo(pose)  # a new stream may start after the failure


def test_connecting_without_a_controller_is_a_clear_error():
    from rmskill.drivers.ur import URArm

    pytest.importorskip("rtde_control", reason="needs the ur extra: pip install -e '.[ur]'")
    with socket.socket() as probe:
        if probe.connect_ex((HOST, DEFAULT_PORTS["rtde"])) == 0:
            pytest.skip("something is listening on the RTDE port")
    with pytest.raises(DriverError, match=re.escape(f"cannot connect to the UR controller at {HOST}")):
        URArm(load_arm_config(ARM_FILE).with_changes(host=HOST)).connect()
