"""The Robotiq 2F driver against the simulated gripper on a pseudo-terminal (no hardware)."""

from __future__ import annotations

import math
import os
import select
import struct
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import serial

from rmskill.config import GripperConfig
from rmskill.drivers.robotiq import RobotiqGripper, SimulatedRobotiq, check_gripper, modbus
from rmskill.drivers.robotiq.client import ModbusRtuClient
from rmskill.drivers.robotiq.registers import (
    REQUEST_ADDRESS,
    STATUS_ADDRESS,
    Command,
    Status,
    model_spec,
    to_byte,
    width_to_position,
)
from rmskill.errors import ConfigError, DriverError

TIMEOUT = 0.3  # reply timeout [s] used throughout
MARGIN = 0.2  # scheduling slack allowed beyond the timeout [s]


@pytest.fixture
def sim() -> Iterator[SimulatedRobotiq]:
    with SimulatedRobotiq(object_width=0.05, activation_time=0.05) as device:
        yield device


def config(port: str, **changes: object) -> GripperConfig:
    return GripperConfig(driver="robotiq", port=port, timeout=TIMEOUT, **changes)


@pytest.fixture
def gripper(sim: SimulatedRobotiq) -> Iterator[RobotiqGripper]:
    with RobotiqGripper(config(sim.port)) as g:
        yield g


@pytest.fixture
def raw(sim: SimulatedRobotiq) -> Iterator[serial.Serial]:
    with serial.Serial(sim.port, 115200, timeout=TIMEOUT) as port:
        yield port


def read_request(slave: int, function: int, address: int, count: int) -> bytes:
    """A 0x03/0x04 request frame, as a master sends it."""
    return modbus.with_crc(struct.pack(">BBHH", slave, function, address, count))


def write_request(slave: int, address: int, values: list[int]) -> bytes:
    """A 0x10 request frame writing ``values`` from ``address``."""
    body = struct.pack(f">BBHHB{len(values)}H", slave, 0x10, address, len(values), 2 * len(values), *values)
    return modbus.with_crc(body)


@contextmanager
def peer(reply: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A pseudo-terminal whose far end records the first request and answers it with ``reply``."""
    master, slave = os.openpty()
    tty.setraw(slave)
    requests: list[bytes] = []

    def answer() -> None:
        if select.select([master], [], [], 2.0)[0]:
            time.sleep(0.01)  # the whole request
            requests.append(os.read(master, 512))
            os.write(master, reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave), requests
    finally:
        thread.join(2.0)
        os.close(master)
        os.close(slave)


# --- frames ----------------------------------------------------------------------------------------
def test_crc_known_vectors() -> None:
    assert modbus.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    assert modbus.crc16(b"") == 0xFFFF
    # Frames printed in the 2F-85/2F-140 manual's Modbus RTU example.
    assert read_request(9, 0x04, 0x07D0, 3) == bytes.fromhex("09 04 07 D0 00 03 B1 CE")
    for reply in ("09 04 06 F9 00 00 00 0D 00 17 AA", "09 04 06 B9 00 00 FF BD 00 5C 9A"):
        assert modbus.crc_ok(bytes.fromhex(reply))
    assert not modbus.crc_ok(bytes.fromhex("09 04 06 B9 00 00 FF BD 00 5C 9B"))


def test_driver_sends_the_manuals_frames_and_decodes_its_status() -> None:
    with peer(bytes.fromhex("09 04 06 B9 00 00 FF BD 00 5C 9A")) as (port, requests):
        client = ModbusRtuClient(port, 9, 115200, TIMEOUT)
        client.open()
        regs = client.read_registers(modbus.READ_INPUT_REGISTERS, STATUS_ADDRESS, 3)
        client.close()
    assert requests == [bytes.fromhex("09 04 07 D0 00 03 B1 CE")]
    status = Status.from_registers(regs)
    assert (status.act, status.gto, status.sta, status.obj) == (True, True, 3, 2)
    assert (status.fault, status.position_echo, status.position) == (0, 0xFF, 0xBD)
    assert Status.from_registers(status.to_registers()) == status
    command = Command(act=True, gto=True, position=200, speed=128, force=7)
    assert Command.from_registers(command.to_registers()) == command
    activate = bytes.fromhex("09 10 03 E8 00 03 06 00 00 00 00 00 00 73 30")
    assert write_request(9, 0x03E8, [0, 0, 0]) == activate
    with peer(bytes.fromhex("09 10 03 E8 00 03 01 30")) as (port, requests):
        client = ModbusRtuClient(port, 9, 115200, TIMEOUT)
        client.open()
        client.write_registers(REQUEST_ADDRESS, [0, 0, 0])
        client.close()
    assert requests == [activate]


def test_a_reply_cut_short_times_out() -> None:
    with peer(bytes.fromhex("09 04 06 B9 00")) as (port, _):
        client = ModbusRtuClient(port, 9, 115200, TIMEOUT)
        client.open()
        start = time.monotonic()
        with pytest.raises(DriverError, match=rf"did not answer within the {TIMEOUT:g} s timeout \(an incomplete"):
            client.read_registers(modbus.READ_INPUT_REGISTERS, STATUS_ADDRESS, 3)
        assert time.monotonic() - start < TIMEOUT + MARGIN
        client.close()


def test_scaling_to_bytes() -> None:
    f85, f140 = model_spec("2F-85"), model_spec("2f-140")
    assert width_to_position(0.085, f85.stroke) == 0 and width_to_position(0.0, f85.stroke) == 255
    assert to_byte(0.150, f85.min_speed, f85.max_speed) == 255
    assert to_byte(20.0, f85.min_force, f85.max_force) == 0
    assert to_byte(0.030, f140.min_speed, f140.max_speed) == 0
    assert to_byte(500.0, f140.min_force, f140.max_force) == 255  # clamped
    with pytest.raises(ConfigError, match="2f-140"):
        model_spec("3f")


# --- the gripper -----------------------------------------------------------------------------------
def test_activate_close_on_object_report_open(sim: SimulatedRobotiq, gripper: RobotiqGripper) -> None:
    assert gripper.connected
    state = gripper.state()
    assert state.width == pytest.approx(0.085) and not state.moving and not state.object_detected
    closed = gripper.close()
    assert closed.object_detected and not closed.moving
    assert closed.width == pytest.approx(0.05, abs=0.5e-3)
    assert gripper.state() == closed
    opened = gripper.open()
    assert opened.width == pytest.approx(0.085) and not opened.object_detected


def test_motion_takes_time_at_the_commanded_speed(sim: SimulatedRobotiq, gripper: RobotiqGripper) -> None:
    sim.device.object_width = None
    start = time.monotonic()
    state = gripper.move(0.045, speed=0.1, force=100.0)
    elapsed = time.monotonic() - start
    assert state.width == pytest.approx(0.045, abs=0.5e-3) and not state.object_detected
    assert 0.3 < elapsed < 0.8  # 40 mm at 100 mm/s
    assert gripper.close().width == 0.0


def test_bad_arguments_send_nothing(sim: SimulatedRobotiq, gripper: RobotiqGripper) -> None:
    replies = sim.replies
    for width in (math.nan, -0.01, 0.2):
        with pytest.raises(ConfigError, match="width"):
            gripper.move(width)
    assert sim.replies == replies
    with pytest.raises(ConfigError, match="port"):
        RobotiqGripper(GripperConfig(driver="robotiq"))
    with pytest.raises(ConfigError, match="max_width"):
        RobotiqGripper(config(sim.port, max_width=0.1))


def test_corrupted_reply_raises_a_checksum_error(sim: SimulatedRobotiq, gripper: RobotiqGripper) -> None:
    sim.corrupt_crc = True
    start = time.monotonic()
    with pytest.raises(DriverError, match="bad Modbus reply: Checksum error"):
        gripper.state()
    assert time.monotonic() - start < TIMEOUT + MARGIN


def test_silent_device_times_out(sim: SimulatedRobotiq, gripper: RobotiqGripper) -> None:
    sim.silent = True
    start = time.monotonic()
    with pytest.raises(DriverError, match=f"{sim.port}.*{TIMEOUT:g} s timeout"):
        gripper.state()
    assert TIMEOUT - 0.05 < time.monotonic() - start < TIMEOUT + MARGIN


def test_connect_to_silent_device_times_out(sim: SimulatedRobotiq) -> None:
    sim.silent = True
    gripper = RobotiqGripper(config(sim.port))
    start = time.monotonic()
    with pytest.raises(DriverError, match="did not answer"):
        gripper.connect()
    assert time.monotonic() - start < TIMEOUT + MARGIN
    assert not gripper.connected


def test_fault_register_raises(sim: SimulatedRobotiq, gripper: RobotiqGripper) -> None:
    sim.fault = 0x0E
    with pytest.raises(DriverError, match=r"0x0E.*overcurrent"):
        gripper.state()
    gripper.activate(reset=True)  # a reset clears the fault
    assert not gripper.state().object_detected


def test_modbus_exception_is_named(sim: SimulatedRobotiq) -> None:
    client = ModbusRtuClient(sim.port, 9, 115200, TIMEOUT)
    client.open()
    try:
        with pytest.raises(DriverError, match="Modbus exception: Slave reported illegal data address"):
            client.read_registers(modbus.READ_INPUT_REGISTERS, 0x0100, 3)
        assert len(client.read_registers(modbus.READ_HOLDING_REGISTERS, REQUEST_ADDRESS, 3)) == 3
    finally:
        client.close()


# --- the simulator ---------------------------------------------------------------------------------
def test_simulator_drops_a_frame_with_a_bad_crc(sim: SimulatedRobotiq, raw: serial.Serial) -> None:
    frame = bytearray(read_request(9, 0x04, STATUS_ADDRESS, 3))
    frame[-1] ^= 0x01
    raw.write(bytes(frame))
    assert raw.read(5) == b""
    assert sim.rejected_frames == 1 and sim.replies == 0


def test_simulator_ignores_other_slaves(sim: SimulatedRobotiq, raw: serial.Serial) -> None:
    raw.write(read_request(3, 0x04, STATUS_ADDRESS, 3))
    assert raw.read(5) == b""


@pytest.mark.parametrize(
    ("request_frame", "code"),
    [
        (read_request(9, 0x04, REQUEST_ADDRESS, 3), modbus.ILLEGAL_DATA_ADDRESS),
        (read_request(9, 0x03, STATUS_ADDRESS + 1, 3), modbus.ILLEGAL_DATA_ADDRESS),
        (write_request(9, STATUS_ADDRESS, [0, 0, 0]), modbus.ILLEGAL_DATA_ADDRESS),
        (modbus.with_crc(bytes([9, 0x06, 0x03, 0xE8, 0, 1])), modbus.ILLEGAL_FUNCTION),
    ],
)
def test_simulator_answers_bad_requests_with_exceptions(
    raw: serial.Serial, request_frame: bytes, code: int
) -> None:
    raw.write(request_frame)
    assert raw.read(5) == modbus.exception_reply(9, request_frame[1], code)


def test_simulator_echoes_writes(raw: serial.Serial) -> None:
    request = write_request(9, REQUEST_ADDRESS, Command(act=True).to_registers())
    raw.write(request)
    assert raw.read(8) == modbus.write_reply(9, REQUEST_ADDRESS, 3)


# --- check-gripper ---------------------------------------------------------------------------------
def test_check_gripper_healthy(sim: SimulatedRobotiq) -> None:
    steps = check_gripper(config(sim.port))
    assert [s["step"] for s in steps] == ["connect", "close", "report", "open"]
    assert all(s["ok"] for s in steps), steps
    assert "object detected" in steps[2]["detail"] and "50.0 mm" in steps[2]["detail"]


def test_check_gripper_silent(sim: SimulatedRobotiq) -> None:
    sim.silent = True
    steps = check_gripper(config(sim.port))
    assert len(steps) == 1 and steps[0]["step"] == "connect" and not steps[0]["ok"]
    assert sim.port in steps[0]["detail"]


def test_check_gripper_bad_port() -> None:
    steps = check_gripper(config("/dev/does-not-exist"))
    assert steps[-1]["ok"] is False and "does-not-exist" in steps[-1]["detail"]


def test_check_gripper_command_line_against_the_simulated_device() -> None:
    """`rmskill check-gripper robotiq --port PORT --json`, as an integrator runs it."""
    import json
    import subprocess
    import sys

    with SimulatedRobotiq(object_width=0.05) as device:
        r = subprocess.run([sys.executable, "-m", "rmskill.cli", "check-gripper", "robotiq", "--port", device.port,
                            "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and [c["step"] for c in report["checks"]] == ["connect", "close", "report", "open"]
    assert "object detected" in report["checks"][2]["detail"]


@pytest.mark.parametrize("timeout", ["0", "-1", "1e308", "nan", "61"])
def test_check_gripper_refuses_a_bad_timeout_in_one_line(timeout: str) -> None:
    from rmskill.config import parse_gripper_config

    with pytest.raises(ConfigError, match=r"^check-gripper: key 'timeout': [^\n]+$"):
        parse_gripper_config({"driver": "robotiq", "port": "/dev/ttyUSB0", "timeout": float(timeout)}, "check-gripper")


def test_check_gripper_command_line_refuses_timeout_zero_in_one_line() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "rmskill.cli", "check-gripper", "robotiq", "--port", "/dev/ttyUSB0",
                        "--timeout", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert (r.stdout + r.stderr).strip() == "error: check-gripper: key 'timeout': Input should be greater than 0"
