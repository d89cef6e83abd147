"""A Modbus RTU master on a serial port: one request, one reply, all within a reply timeout.

Every failure is a ``DriverError`` that names the port: a silent device (with the timeout), a CRC
mismatch, a Modbus exception code, or a port that cannot be opened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import serial

from rmskill.drivers.robotiq import modbus
from rmskill.errors import DriverError

log = logging.getLogger(__name__)


class ModbusRtuClient:
    """Talks to one slave on ``port`` (8N1 at ``baudrate``); ``timeout`` bounds each exchange [s]."""

    def __init__(self, port: str, slave: int, baudrate: int, timeout: float) -> None:
        self.port = port
        self.slave = slave
        self.baudrate = baudrate
        self.timeout = timeout
        self._serial: serial.Serial | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def open(self) -> None:
        if self.is_open:
            return
        try:
            self._serial = serial.Serial(
                self.port,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=self.timeout,
                write_timeout=self.timeout,
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise DriverError(f"cannot open gripper port '{self.port}': {err}") from None
        log.debug("opened %s at %d baud", self.port, self.baudrate)

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None
            log.debug("closed %s", self.port)

    def read_registers(self, function: int, address: int, count: int) -> list[int]:
        """Read ``count`` registers from ``address`` with function 0x03 or 0x04."""
        return self._exchange(modbus.read_request(self.slave, function, address, count))

    def write_registers(self, address: int, values: Sequence[int]) -> None:
        """Write ``values`` from ``address`` with function 0x10; returns once the slave echoed."""
        self._exchange(modbus.write_request(self.slave, address, values))

    def _exchange(self, request: bytes) -> list[int]:
        with self._lock:
            ser = self._serial
            if ser is None or not ser.is_open:
                raise DriverError(f"gripper port '{self.port}' is not open; call connect() first")
            deadline = time.monotonic() + self.timeout
            try:
                ser.reset_input_buffer()  # drop a late reply to an earlier request
                ser.write(request)
                ser.flush()
                header = self._read(ser, 3, deadline)
                reply = header + self._read(ser, modbus.reply_length(header) - 3, deadline)
            except serial.SerialException as err:
                raise DriverError(f"gripper port '{self.port}': {err}") from None
            log.debug("%s > %s < %s", self.port, request.hex(" "), reply.hex(" "))
            try:
                return modbus.parse_reply(request, reply)
            except DriverError as err:
                raise DriverError(f"gripper on '{self.port}': {err}") from None

    def _read(self, ser: serial.Serial, size: int, deadline: float) -> bytes:
        """Read exactly ``size`` bytes before ``deadline`` (monotonic [s])."""
        data = b""
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ser.timeout = remaining
            data += ser.read(size - len(data))
        if len(data) < size:
            got = f"{len(data)} of {size} bytes" if data else "no reply"
            raise DriverError(
                f"gripper on '{self.port}' did not answer within the {self.timeout:g} s timeout ({got}); "
                f"check the cable, power and slave id {self.slave}"
            )
        return data
