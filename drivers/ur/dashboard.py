"""The dashboard server (port 29999): one text command per line, one reply line each.

Covers what ur_rtde and integrators ask: version, serial number, model, robot mode, power and
brake release, safety mode/status, protective-stop unlock, program state, remote control, the
program store (``load``/``play``/``pause``/``stop``/``get loaded program`` on a folder of ``.urp``
files, ``ProgramStore``) and the operational mode. Anything else gets PolyScope's own
"could not understand" reply.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .controller import ROBOT_MODE, SAFETY_PROTECTIVE_STOP
from .listener import ClientDropped

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger(__name__)

_MODE_NAMES = {v: k for k, v in ROBOT_MODE.items()}
MAX_LINE = 4096  # [bytes] longest dashboard command line; a longer one drops the client
OPERATIONAL_MODES = ("manual", "automatic")


class StoredProgram:
    """A ``.urp`` from the store, played: the emulator has no URP interpreter, so it runs without
    moving the arm until stopped (said loudly in the log when it starts)."""

    def __init__(self, name: str):
        self.name = name

    def step(self) -> None:
        return None


class ProgramStore:
    """The controller's programs folder: ``load`` finds ``.urp`` files in it by name (or path below it)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.loaded: str | None = None
        self.operational_mode: str | None = None  # None: not controlled over the dashboard

    def find(self, name: str) -> str | None:
        """The stored program's path as PolyScope shows it (``/programs/...``), or None."""
        rel = PurePosixPath(name.strip())
        if rel.is_absolute():
            rel = rel.relative_to("/programs") if rel.is_relative_to("/programs") else PurePosixPath(rel.name)
        if self.folder is None or ".." in rel.parts or rel.suffix != ".urp" or not (self.folder / rel).is_file():
            return None
        return str(PurePosixPath("/programs") / rel)


def _programs(emulator: Emulator, cmd: str, low: str) -> str | None:
    """Program store and operational mode commands; None when ``cmd`` is not one of them."""
    c, store = emulator.controller, emulator.programs
    if low.startswith("load ") and not low.startswith("load installation"):
        path = store.find(cmd[5:])
        if path is None:
            return f"File not found: {cmd[5:].strip()}"
        with c.lock:
            c.stop_program("dashboard load")
        store.loaded = path
        return f"Loading program: {path}"
    if low.startswith("load installation"):
        return f"File not found: {cmd[len('load installation'):].strip()}"
    if low == "get loaded program":
        return f"Loaded program: {store.loaded}" if store.loaded else "No program loaded"
    if low == "play":
        with c.lock:
            if isinstance(c.program, StoredProgram) and c.paused:
                c.paused = False
                return "Starting program"
            if store.loaded is None or not c.load_program(StoredProgram(store.loaded), store.loaded):
                return "Failed to execute: play"
        log.warning("playing %s: the emulator cannot interpret .urp programs; it runs without moving the arm "
                    "until stopped", store.loaded)
        return "Starting program"
    if low == "pause":
        with c.lock:
            if c.program is None or c.paused:
                return "Failed to execute: pause"
            c.paused = True
        return "Pausing program"
    if low == "stop":
        with c.lock:
            if c.program is None:
                return "Failed to execute: stop"
            c.stop_program("dashboard stop")
        return "Stopped"
    if low == "isprogramsaved":
        return f"true {PurePosixPath(store.loaded).name}" if store.loaded else "false <unnamed>"
    if low == "get operational mode":
        return (store.operational_mode or "automatic").upper() if store.operational_mode else "NONE"
    if low.startswith("set operational mode "):
        mode = low.removeprefix("set operational mode ").strip()
        if mode not in OPERATIONAL_MODES:
            return f"Failed setting operational mode. Unknown mode: '{mode}'"
        store.operational_mode = mode
        return f"Operational mode '{mode}' is set"
    if low == "clear operational mode":
        store.operational_mode = None
        return "No longer controlling the operational mode. Current operational mode: 'automatic'."
    return None


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
        return f"Program running: {'true' if c.program is not None and not c.paused else 'false'}"
    if low == "programstate":
        if c.program is not None:
            return f"{'PAUSED' if c.paused else 'PLAYING'} {c.program_name}"
        return f"STOPPED {PurePosixPath(emulator.programs.loaded).name if emulator.programs.loaded else '<unnamed>'}"
    answer = _programs(emulator, cmd, low)
    if answer is not None:
        return answer
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
