"""The RTDE server (port 30004): recipe setup, start/pause, inputs into registers, outputs at up to 500 Hz."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import Any

from . import rtde_protocol as rp
from .controller import Controller
from .listener import ClientDropped

log = logging.getLogger(__name__)

MAX_BACKLOG = 256 * 1024  # [bytes] unsent output before a client that does not read is dropped


class RTDEConnection:
    """One RTDE client: a reader thread for its requests; the control loop pushes its outputs."""

    def __init__(self, sock: socket.socket, controller: Controller, version: tuple[int, int, int, int]):
        self.sock, self.c, self.version = sock, controller, version
        self.protocol = 2
        self.output: rp.Recipe | None = None
        self.every = 1  # send every n-th control period
        self.inputs: dict[int, rp.Recipe] = {}
        self.started = False
        self.closed = False
        self._send_lock = threading.Lock()
        self._pending = b""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- reading -----------------------------------------------------------------------------
    def serve(self) -> None:
        buf = b""
        try:
            while not self.closed:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= rp.HEADER.size:
                    size, msg_type = rp.HEADER.unpack_from(buf)
                    if size < rp.HEADER.size:
                        raise ClientDropped(f"RTDE message size {size} is smaller than its header")
                    if len(buf) < size:
                        break
                    try:
                        self.handle(msg_type, buf[rp.HEADER.size : size])
                    except (struct.error, ValueError, IndexError, KeyError) as err:
                        raise ClientDropped(f"malformed RTDE message type {msg_type}: {err}") from None
                    buf = buf[size:]
        except OSError as err:
            log.debug("RTDE client gone: %s", err)
        finally:
            self.close()

    def handle(self, msg_type: int, payload: bytes) -> None:
        if msg_type == rp.REQUEST_PROTOCOL_VERSION:
            (self.protocol,) = struct.unpack(">H", payload[:2])
            self.send(rp.message(msg_type, bytes([int(self.protocol in (1, 2))])))
        elif msg_type == rp.GET_URCONTROL_VERSION:
            self.send(rp.message(msg_type, struct.pack(">IIII", *self.version)))
        elif msg_type == rp.SETUP_OUTPUTS:
            self._setup_outputs(payload)
        elif msg_type == rp.SETUP_INPUTS:
            self._setup_inputs(payload)
        elif msg_type == rp.START:
            ok = self.output is not None or bool(self.inputs)
            self.started = ok
            self.send(rp.message(msg_type, bytes([int(ok)])))
        elif msg_type == rp.PAUSE:
            self.started = False
            self.send(rp.message(msg_type, b"\x01"))
        elif msg_type == rp.DATA_PACKAGE:
            self._write_inputs(payload)
        else:
            self.send(rp.text_message(f"unknown RTDE message type {msg_type}"))

    def _setup_outputs(self, payload: bytes) -> None:
        frequency = 500.0
        if self.protocol >= 2:
            (frequency,) = struct.unpack(">d", payload[:8])
            payload = payload[8:]
        names = [n for n in payload.decode().split(",") if n]
        types = [rp.output_type(n) or "NOT_FOUND" for n in names]
        rate = 1.0 / self.c.period
        self.every = max(1, round(rate / min(max(frequency, 1.0), rate)))
        if "NOT_FOUND" not in types:
            self.output = rp.Recipe(1, tuple(names), tuple(types))
        self.send(rp.message(rp.SETUP_OUTPUTS, bytes([1 if self.output else 0]) + ",".join(types).encode()))

    def _setup_inputs(self, payload: bytes) -> None:
        names = [n for n in payload.decode().split(",") if n]
        types = [rp.input_type(n) or "NOT_FOUND" for n in names]
        recipe_id = 0
        if "NOT_FOUND" not in types:
            with self.c.lock:
                in_use = set(self.c.registers.claim(names, self))
            types = ["IN_USE" if n in in_use else t for n, t in zip(names, types, strict=True)]
            if not in_use:
                recipe_id = len(self.inputs) + 1
                self.inputs[recipe_id] = rp.Recipe(recipe_id, tuple(names), tuple(types))
        self.send(rp.message(rp.SETUP_INPUTS, bytes([recipe_id]) + ",".join(types).encode()))

    def _write_inputs(self, payload: bytes) -> None:
        recipe = self.inputs.get(payload[0]) if payload else None
        if recipe is None or len(payload) != recipe.fmt.size:
            log.warning("RTDE data package for unknown recipe or of the wrong size (%d bytes)", len(payload))
            return
        values = recipe.unpack(payload)
        regs = self.c.registers
        with self.c.lock:
            regs.touch()
            for name, value in values.items():
                reg = rp.register(name)
                if reg is not None:
                    regs.input[reg[1]][reg[2]] = value
                else:
                    regs.other_inputs[name] = value
            self.c.write_outputs(values)

    # --- writing -----------------------------------------------------------------------------
    def publish(self, tick: int, values: dict[str, Any]) -> None:
        """Called by the control loop every period; sends the output recipe at its frequency."""
        if self.started and self.output is not None and tick % self.every == 0:
            self.send(self.output.pack(values))

    def send(self, data: bytes) -> None:
        """Send without ever blocking the control loop; a client that stops reading is dropped."""
        with self._send_lock:
            if self.closed:
                return
            if self._pending and len(self._pending) > MAX_BACKLOG:  # replies count too, not only the stream
                log.warning("RTDE client does not read its data; dropping it")
                self.close()
                return
            self._pending += data
            try:
                sent = self.sock.send(self._pending, socket.MSG_DONTWAIT)
                self._pending = self._pending[sent:]
            except BlockingIOError:
                pass
            except OSError:
                self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.c.release(self)
        if self.publish in self.c.subscribers:
            self.c.subscribers.remove(self.publish)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
