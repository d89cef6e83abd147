"""The emulator's operator: resets the simulated cell between episodes, where a person would on a real one.

A small service on the emulator's ``operator`` port (30020), loopback clients only: one JSON object
per line, ``{"reset": {"tcp_pose": [x, y, z, rx, ry, rz], "plate": true, "seed": 7}}`` (any keyword
of the simulator's ``sim.reset``: ``tcp_pose``, ``q``, ``plate``, ``plates``, ``seed``), answered by
``{"ok": true}`` or ``{"ok": false, "error": "..."}``. The controller re-syncs to the new state
(``Controller.reset_world``), so a client's next servo stream starts from where the arm now is.

An arm file opts in with ``options.emulator_operator: true`` (or the port number): the UR driver then
offers ``arm.operator``, an ``EmulatorOperator``, and episodes start without a prompt
(``rmskill.runner``). The episodes stay honest: nothing of the simulator's truth comes back.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

from rmskill.errors import ConfigError, DriverError
from rmskill.geometry import Pose

from .listener import ClientDropped, is_loopback

log = logging.getLogger(__name__)

PORT = 30020
#: Longest request line [bytes].
MAX_LINE = 16 * 1024
#: Keywords of ``sim.reset`` a client may send.
KEYS = ("tcp_pose", "q", "plate", "plates", "seed")
#: How long a client waits for the reset [s] (an IK solve and a settle).
TIMEOUT = 10.0
#: After the reset, time for the state stream to show it [s] (several 2 ms periods).
SETTLE = 0.02


def _start(request: Any) -> dict[str, Any]:
    """The ``sim.reset`` keywords of a request, checked; ``ValueError`` says what is wrong."""
    if not isinstance(request, dict) or set(request) != {"reset"} or not isinstance(request["reset"], dict):
        raise ValueError('expected {"reset": {...}}')
    start = dict(request["reset"])
    unknown = sorted(set(start) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown reset keys {unknown} (keys: {', '.join(KEYS)})")
    if start.get("tcp_pose") is not None:
        start["tcp_pose"] = Pose.from_ur([float(v) for v in start["tcp_pose"]])
    if start.get("seed") is not None and (not isinstance(start["seed"], int) or isinstance(start["seed"], bool)):
        raise ValueError("seed must be an integer")
    return start


def serve_client(controller: Any, sock: socket.socket) -> None:
    """Answer one client's reset requests until it goes away; a non-loopback peer is refused."""
    peer = sock.getpeername()[0]
    if not is_loopback(peer):
        raise ClientDropped(f"the operator serves loopback clients only, not {peer}")
    stream = sock.makefile("rb")
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE:
            raise ClientDropped(f"a request over {MAX_LINE} bytes")
        try:
            controller.reset_world(**_start(json.loads(line)))
            reply: dict[str, Any] = {"ok": True}
        except (ValueError, TypeError, ConfigError, DriverError) as err:
            reply = {"ok": False, "error": str(err).splitlines()[0] if str(err) else type(err).__name__}
        sock.sendall(json.dumps(reply).encode() + b"\n")


class EmulatorOperator:
    """The client: ``reset(...)`` as a simulator's ``sim.reset``, performed by the emulator at ``host``."""

    def __init__(self, host: str, port: int = PORT):
        self.host, self.port = host, port
        self._sock: socket.socket | None = None
        self._stream: Any = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
            except OSError as err:
                raise DriverError(f"the emulator's operator at {self.host}:{self.port} cannot be reached ({err}); "
                                  "is this an emulated arm (rmskill sim-serve)?") from None
            self._stream = self._sock.makefile("rb")
        return self._sock

    def reset(self, tcp_pose: Pose | None = None, **start: Any) -> None:
        """Reset the emulated cell (the simulator's ``sim.reset`` keywords); ``DriverError`` if refused."""
        if tcp_pose is not None:
            start["tcp_pose"] = [float(v) for v in tcp_pose.to_ur()]
        sock = self._connect()
        try:
            sock.sendall(json.dumps({"reset": start}).encode() + b"\n")
            line = self._stream.readline(MAX_LINE)
        except OSError as err:
            self.close()
            raise DriverError(f"the emulator's operator at {self.host}:{self.port} went away ({err})") from None
        if not line:
            self.close()
            raise DriverError(f"the emulator's operator at {self.host}:{self.port} closed the connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise DriverError(f"the emulator's operator refused the reset: {reply.get('error')}")
        time.sleep(SETTLE)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = self._stream = None
