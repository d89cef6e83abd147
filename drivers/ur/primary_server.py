"""The primary (30001) and secondary (30002) client interfaces: the robot state stream at 10 Hz.

Each client first gets the version message, then a ROBOT_STATE package (type 16) every 100 ms with
the robot mode, joint, tool, masterboard, Cartesian, force mode and additional-info sub-packages, as
tools that read it expect (python-urx). The robot mode sub-package has the CB3 (3.2+) layout those
tools parse. Text sent to the port is URScript, run as on the script port (30003).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

from .controller import ROBOT_MODE, SAFETY_PROTECTIVE_STOP

if TYPE_CHECKING:
    from .emulator import Emulator

PERIOD = 0.1  # [s] 10 Hz, as the controller sends it
ROBOT_STATE, ROBOT_MESSAGE, VERSION_MESSAGE = 16, 20, 3


def _sub(kind: int, fmt: str, *values: Any) -> bytes:
    body = struct.pack("!" + fmt, *values)
    return struct.pack("!iB", len(body) + 5, kind) + body


def version_message(emulator: Emulator) -> bytes:
    major, minor, bugfix, build = emulator.version
    name = b"URControl"
    body = struct.pack("!Qbbb", 0, -2, VERSION_MESSAGE, len(name)) + name
    body += struct.pack("!BBii", major, minor, bugfix, build) + b"01-01-2026, 00:00:00"
    return struct.pack("!iB", len(body) + 5, ROBOT_MESSAGE) + body


def robot_state(emulator: Emulator) -> bytes:
    """One ROBOT_STATE package from the controller's latest snapshot."""
    c = emulator.controller
    with c.lock:
        s = c.snapshot()
        program, paused = c.program is not None, c.paused
        protective = c.safety_mode == SAFETY_PROTECTIVE_STOP
        powered = c.robot_mode != ROBOT_MODE["POWER_OFF"]
        force = c.force_mode
        force_values = [*force.wrench] if force.active else [0.0] * 6
    stamp = int(s["timestamp"] * 1e6)
    parts = [_sub(0, "Q???????BBddd", stamp, True, True, powered, False, protective, program and not paused,
                  paused, s["robot_mode"], 0, s["target_speed_fraction"], s["speed_scaling"], 1.0)]
    joints = b""
    for q, qd in zip(s["actual_q"], s["actual_qd"], strict=True):
        joints += struct.pack("!dddffffB", q, q, qd, 0.0, 48.0, 30.0, 0.0, 253)
    parts.append(struct.pack("!iB", len(joints) + 5, 1) + joints)
    parts.append(_sub(2, "bbddfBffB", 0, 0, 0.0, 0.0, 24.0, 24, 0.0, 30.0, 253))
    outputs, inputs = s["actual_digital_output_bits"], s["actual_digital_input_bits"]
    parts.append(_sub(3, "iibbddbbddffffBBbIBBB", inputs, outputs, 0, 0, 0.0, 0.0, 0, 0,
                      s["standard_analog_output0"], s["standard_analog_output1"], 35.0, 48.0, 1.0, 0.1,
                      s["safety_mode"], 0, 0, 0, 0, 0, 0))
    parts.append(_sub(4, "dddddddddddd", *s["actual_TCP_pose"], *s["tcp_offset"]))
    parts.append(_sub(7, "ddddddd", *force_values, 1.0))
    parts.append(_sub(8, "?B??B", False, 0, False, False, 0))
    body = b"".join(parts)
    return struct.pack("!iB", len(body) + 5, ROBOT_STATE) + body


def serve_client(emulator: Emulator, sock: socket.socket) -> None:
    """Stream the state at 10 Hz; run URScript the client sends (a reader thread), until it leaves."""
    from . import script_server

    gone = threading.Event()

    def read() -> None:
        try:
            script_server.serve_client(emulator, sock)
        except Exception:  # the stream below notices the closed socket too
            pass
        finally:
            gone.set()

    threading.Thread(target=read, daemon=True, name="ur-primary-reader").start()
    sock.sendall(version_message(emulator))
    next_at = time.monotonic()
    while not gone.is_set():
        sock.sendall(robot_state(emulator))
        next_at += PERIOD
        gone.wait(max(0.0, next_at - time.monotonic()))
