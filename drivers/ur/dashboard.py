"""The dashboard server (port 29999): one text command per line, one reply line each.

Covers what ur_rtde and integrators ask: version, serial number, model, robot mode, power and
brake release, safety mode/status, protective-stop unlock, program state, remote control.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from .controller import ROBOT_MODE, SAFETY_PROTECTIVE_STOP
from .listener import ClientDropped

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger(__name__)

_MODE_NAMES = {v: k for k, v in ROBOT_MODE.items()}
MAX_LINE = 4096  # [bytes] longest dashboard command line; a longer one drops the client


def reply(emulator: Emulator, line: str) -> str | None:
    """The dashboard's answer to one command line; ``None`` closes the connection."""
    c = emulator.controller
    cmd = line.strip()
    low = cmd.lower()
    stopped = c.safety_mode == SAFETY_PROTECTIVE_STOP
    if low == "quit":
        return None
    if low == "polyscopeversion":
        return f"URSoftware {'.'.join(map(str, emulator.version))} (emulated)"
    if low == "version":
        return ".".join(map(str, emulator.version))
    if low == "get serial number":
        return emulator.serial
    if low == "get robot model":
        return emulator.model_name
    if low == "robotmode":
        return f"Robotmode: {_MODE_NAMES[c.robot_mode]}"
    if low == "power on":
        c.set_robot_mode("IDLE")
        return "Powering on"
    if low == "power off":
        c.set_robot_mode("POWER_OFF")
        return "Powering off"
    if low == "brake release":
        if c.robot_mode == ROBOT_MODE["POWER_OFF"]:
            return "Brake release failed: robot is powered off"
        c.set_robot_mode("RUNNING")
        return "Brake releasing"
    if low in ("safetymode", "safetystatus"):
        word = "PROTECTIVE_STOP" if stopped else "NORMAL"
        return f"{'Safetymode' if low == 'safetymode' else 'Safetystatus'}: {word}"
    if low == "unlock protective stop":
        c.unlock_protective_stop()
        return "Protective stop releasing"
    if low == "close safety popup":
        return "closing safety popup"
    if low == "restart safety":
        c.unlock_protective_stop()
        return "Restarting safety"
    if low == "running":
        return f"Program running: {'true' if c.program is not None else 'false'}"
    if low == "programstate":
        return f"PLAYING {c.program_name}" if c.program is not None else "STOPPED <unnamed>"
    if low == "stop":
        c.stop_program("dashboard stop")
        return "Stopped"
    if low == "pause":
        return "Failed to execute: pause (no loaded program)"
    if low == "play":
        return "Failed to execute: play (no loaded program)"
    if low.startswith("load "):
        return f"File not found: {cmd[5:]}"
    if low == "get loaded program":
        return "No program loaded"
    if low == "isprogramsaved":
        return "false <unnamed>"
    if low == "is in remote control":
        return "true"
    if low.startswith("popup "):
        return "showing popup"
    if low == "close popup":
        return "closing popup"
    if low.startswith("addtolog "):
        return "Added log message"
    if low.startswith("setuserrole "):
        return "Setting user role"
    if low.startswith("emulator protective stop"):  # not a UR command: lets tests trigger one
        c.protective_stop(cmd[len("emulator protective stop"):].strip() or "requested on the dashboard")
        return "Protective stop triggered"
    if low == "shutdown":
        return "Shutting down"
    return f"could not understand: '{cmd[:200]}'"


def serve_client(emulator: Emulator, sock: socket.socket) -> None:
    """Greet, then answer line by line until the client leaves or says ``quit``."""
    sock.sendall(b"Connected: Universal Robots Dashboard Server\n")
    with sock.makefile("rb") as lines:
        while raw := lines.readline(MAX_LINE + 1):
            if len(raw) > MAX_LINE:
                raise ClientDropped(f"dashboard line longer than {MAX_LINE} bytes")
            line = raw.decode(errors="replace").rstrip("\r\n")
            answer = reply(emulator, line)
            log.debug("dashboard: %r -> %r", line, answer)
            if answer is None:
                sock.sendall(b"Disconnected\n")
                return
            sock.sendall(answer.encode() + b"\n")
