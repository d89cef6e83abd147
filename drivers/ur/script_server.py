"""The script port (30003): receives URScript programs and runs the ones this emulator knows.

ur_rtde sends its control program as ``def rtde_control(): ... end``. The emulator recognises it,
reads the register offsets it was configured with, and runs ``ControlProgram`` in its place.
Other programs run on the small URScript runner (``urscript``) when every statement is one it
knows; else they are refused: logged, and the program that was running stops.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import TYPE_CHECKING

from . import urscript
from .control_program import ControlProgram, parse_path
from .listener import ClientDropped

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger(__name__)

MAX_PENDING = 1 << 20  # [bytes] longest unfinished program held for one client (ur_rtde's is ~50 KB)

_DEF = re.compile(r"^def\s+(\w+)\s*\(\s*\)\s*:\s*$")
_OFFSET = re.compile(r"global\s+reg_offset_(float|int)\s*=\s*(?:# \w+ register offset\n)?\s*(\d+)")


def complete_programs(buf: str) -> tuple[list[tuple[str, str]], str]:
    """Split received text into finished ``def name(): ... end`` programs and the unfinished rest.

    A program ends at an ``end`` line that is not indented. Lines outside a ``def`` are
    returned as one-line programs named ``""``.
    """
    programs: list[tuple[str, str]] = []
    lines = buf.split("\n")
    rest = lines.pop()  # text after the last newline is not complete yet
    start, name = None, ""
    for i, line in enumerate(lines):
        if start is None:
            m = _DEF.match(line)
            if m:
                start, name = i, m.group(1)
            elif line.strip():
                programs.append(("", line))
        elif line.rstrip() == "end":
            programs.append((name, "\n".join(lines[start : i + 1])))
            start = None
    if start is not None:
        rest = "\n".join([*lines[start:], rest])
    return programs, rest


def run_program(emulator: Emulator, name: str, text: str) -> None:
    """Start a received program on the controller, if the emulator knows how to run it."""
    c = emulator.controller
    if name == "rtde_control" or "RTDE Control Script" in text:
        offsets = {kind: int(value) for kind, value in _OFFSET.findall(text)}
        try:
            path = parse_path(text)
        except ValueError as err:
            log.error("ur_rtde control script refused: %s", err)
            with c.lock:
                c.stop_program(f"script error: {err}")
            return
        with c.lock:
            program = ControlProgram(c, offsets.get("float", 0), offsets.get("int", 0), path)
            if c.load_program(program, name or "rtde_control"):
                log.info("running ur_rtde control program (register offsets %s)", offsets or "0")
        return
    if name == "" and text.strip().startswith(("stopl", "stopj")):
        with c.lock:
            c.stop_program(f"script command {text.strip()}")
        return
    try:
        statements = urscript.parse(text)
    except urscript.ScriptError as err:
        log.error("script '%s' (%d bytes) refused: %s", name or text.strip()[:40], len(text), err)
        with c.lock:
            c.stop_program(f"script refused: {err}")
        return
    with c.lock:
        program = urscript.ScriptProgram(c, name or "<script>", statements)
        if c.load_program(program, name or "<script>"):
            log.info("running script '%s' (%d statements)", name or text.strip()[:40], len(statements))


def serve_client(emulator: Emulator, sock: socket.socket) -> None:
    """Collect programs from one script client until it disconnects."""
    buf = ""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk.decode(errors="replace")
        programs, buf = complete_programs(buf)
        if len(buf) > MAX_PENDING:
            raise ClientDropped(f"{len(buf)} bytes of script without a complete program (limit {MAX_PENDING})")
        for name, text in programs:
            run_program(emulator, name, text)
