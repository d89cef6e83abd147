"""The caller's end of the control process: start it, send requests, read replies and faults.

Requests and replies are JSON lines over the process's stdin/stdout; a reply carries the
request's ``id``, a fault event carries ``event``. Servo targets and robot state bypass this
pipe through ``SharedBlock``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable

from rmskill.drivers.franka.shared import SharedBlock
from rmskill.errors import DriverError

logger = logging.getLogger(__name__)


class Failure(DriverError):
    """The control process answered with a libfranka failure: ``kind`` and libfranka's ``error``."""

    def __init__(self, kind: str, error: str):
        super().__init__(f"{kind}: {error}")
        self.kind, self.error = kind, error


class ControlProcess:
    """``python -m rmskill.drivers.franka.worker`` and the shared block it writes the state into.

    Args:
        settings: What the control process needs to connect (``options.control_settings``).
        on_fault: Called from the reader thread with (kind, libfranka's text) when the loop stops.
    """

    def __init__(self, settings: dict, on_fault: Callable[[str, str], None]):
        self.block = SharedBlock.create()
        self._on_fault = on_fault
        self._cv = threading.Condition()
        self._write_lock = threading.Lock()
        self._replies: dict[int, dict] = {}
        self._next_id = 1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rmskill.drivers.franka.worker", self.block.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self._send(settings)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "event" in msg:
                self._on_fault(msg["kind"], msg["error"])
            with self._cv:
                if "event" not in msg:
                    self._replies[msg["id"]] = msg
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def _send(self, msg: dict) -> None:
        with self._write_lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(msg) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                raise DriverError("the Franka control process has exited") from None

    def wait(self, req_id: int, op: str, timeout: float) -> None:
        """Wait up to ``timeout`` [s] for the reply to ``req_id``; a failure raises ``Failure``."""
        with self._cv:
            self._cv.wait_for(lambda: req_id in self._replies or not self.alive, timeout)
            reply = self._replies.pop(req_id, None)
        if reply is None:
            why = "the control process exited" if not self.alive else f"no answer in {timeout:.1f} s"
            raise DriverError(f"{op} failed: {why}")
        if not reply["ok"]:
            raise Failure(reply["kind"], reply["error"])

    def request(self, op: str, timeout: float, **args: object) -> None:
        """Send ``op`` and block until the control process has done it (or ``timeout`` [s])."""
        with self._write_lock:
            req_id, self._next_id = self._next_id, self._next_id + 1
        self._send({"id": req_id, "op": op, **args})
        self.wait(req_id, op, timeout)

    def shutdown(self) -> None:
        """Close the pipe (the process stops any motion and exits), then free the shared block."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            logger.warning("Franka control process did not exit; killing it")
            self.proc.kill()
            self.proc.wait()
        self.block.close()
