"""A simulated Robotiq 2F gripper answering Modbus RTU on a pseudo-terminal, for tests and demos.

It checks each request's CRC (a bad one gets no reply, as on the bus), its slave id and its
register addresses (exception 0x02 outside the request block 0x03E8.. or the status block
0x07D0..), moves the fingers over time at the commanded speed, and stops them on an object of
``object_width`` while closing (gOBJ = 2). ``corrupt_crc``, ``silent`` and ``fault`` inject
failures. Run it alone with ``python -m rmskill.drivers.robotiq.simulator``; it prints its port.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
import time
import tty

from rmskill.drivers.robotiq import modbus
from rmskill.drivers.robotiq.device import SimulatedDevice
from rmskill.drivers.robotiq.registers import REGISTER_COUNT, REQUEST_ADDRESS, SLAVE_ID, STATUS_ADDRESS

log = logging.getLogger(__name__)

#: Bus silence that ends a request frame [s] (Modbus's 3.5 characters, widened for thread scheduling).
FRAME_GAP = 0.002


class SimulatedRobotiq:
    """A simulated gripper served on a new pseudo-terminal from a background thread.

    Args:
        object_width: Width of the object between the fingers in [m]; ``None`` for no object.
        model: ``"2f-85"`` or ``"2f-140"``.
        activation_time: Duration of the activation in [s] (a real gripper takes a few seconds).
        slave_id: Modbus slave id it answers to.

    Attributes:
        port: Path of the serial device to open (the pty's slave side).
        corrupt_crc: When set, every reply is sent with a wrong CRC.
        silent: When set, requests are read and never answered.
        rejected_frames: Requests dropped for a bad CRC or a short frame.
        replies: Replies sent (exception replies included).
    """

    def __init__(
        self,
        object_width: float | None = 0.05,
        model: str = "2f-85",
        activation_time: float = 0.2,
        slave_id: int = SLAVE_ID,
    ) -> None:
        self.device = SimulatedDevice(model=model, object_width=object_width, activation_time=activation_time)
        self.slave_id = slave_id
        self.corrupt_crc = False
        self.silent = False
        self.rejected_frames = 0
        self.replies = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"robotiq-sim {self.port}", daemon=True)
        self._thread.start()
        log.info("simulated Robotiq %s on %s", model, self.port)

    # --- fault injection ----------------------------------------------------------------------
    @property
    def fault(self) -> int:
        """The gFLT code the device reports (0 for none); a reset (rACT 0 then 1) clears it."""
        return self.device.fault

    @fault.setter
    def fault(self, code: int) -> None:
        self.device.set_fault(code)

    # --- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop serving and close the pseudo-terminal."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> SimulatedRobotiq:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving ------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            frame = self._read_frame()
            if frame:
                reply = self.handle(frame)
                if reply is not None and not self._stop.is_set():
                    os.write(self._master, reply)

    def _read_frame(self) -> bytes:
        """Bytes up to the next silent gap on the line; empty when nothing arrived for 50 ms."""
        try:
            if not select.select([self._master], [], [], 0.05)[0]:
                return b""
            frame = os.read(self._master, 512)
            while select.select([self._master], [], [], FRAME_GAP)[0]:
                frame += os.read(self._master, 512)
        except (OSError, ValueError):  # closed by stop(), or no peer yet
            time.sleep(0.01)
            return b""
        return frame

    def handle(self, frame: bytes) -> bytes | None:
        """The reply to one request frame, or ``None`` when the bus would stay silent."""
        if self.silent:
            return None
        if not modbus.crc_ok(frame):
            self.rejected_frames += 1
            log.debug("dropped frame with a bad CRC: %s", frame.hex(" "))
            return None
        if frame[0] != self.slave_id:
            return None
        try:
            request = modbus.decode_request(frame)
            reply = self._answer(request)
        except modbus.ModbusException as exc:
            reply = modbus.exception_reply(self.slave_id, frame[1], exc.code)
        if self.corrupt_crc:
            reply = reply[:-2] + bytes([reply[-2] ^ 0xFF, reply[-1]])
        self.replies += 1
        return reply

    def _answer(self, request: modbus.Request) -> bytes:
        start, end = request.address, request.address + request.count
        in_request = REQUEST_ADDRESS <= start and end <= REQUEST_ADDRESS + REGISTER_COUNT
        in_status = STATUS_ADDRESS <= start and end <= STATUS_ADDRESS + REGISTER_COUNT
        if request.function == modbus.WRITE_MULTIPLE_REGISTERS:
            if not in_request:
                raise modbus.ModbusException(modbus.ILLEGAL_DATA_ADDRESS)
            self.device.write(start - REQUEST_ADDRESS, request.values)
            return modbus.write_reply(self.slave_id, request.address, request.count)
        # Input registers hold only the status; holding registers also read back the request.
        if in_status:
            regs = self.device.status_registers()[start - STATUS_ADDRESS : end - STATUS_ADDRESS]
        elif in_request and request.function == modbus.READ_HOLDING_REGISTERS:
            regs = self.device.request_registers()[start - REQUEST_ADDRESS : end - REQUEST_ADDRESS]
        else:
            raise modbus.ModbusException(modbus.ILLEGAL_DATA_ADDRESS)
        return modbus.read_reply(self.slave_id, request.function, regs)


def main(argv: list[str] | None = None) -> None:
    """Serve a simulated gripper until interrupted, printing its port path first."""
    parser = argparse.ArgumentParser(prog="python -m rmskill.drivers.robotiq.simulator", description=__doc__)
    parser.add_argument("--model", default="2f-85", choices=["2f-85", "2f-140"])
    parser.add_argument("--object-width", type=float, default=0.05, help="object width [m]; negative: none")
    parser.add_argument("--activation-time", type=float, default=1.0, help="activation duration [s]")
    args = parser.parse_args(argv)
    width = args.object_width if args.object_width >= 0 else None
    sim = SimulatedRobotiq(object_width=width, model=args.model, activation_time=args.activation_time)
    print(sim.port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:  # also on SIGTERM
        sim.stop()


if __name__ == "__main__":
    main()
