"""A Modbus RTU master on a serial port, on minimalmodbus: one request, one reply, within a reply timeout.

minimalmodbus builds the frames and checks the replies (CRC, slave id, function, byte count); this
module owns the port and turns every failure into a one-line ``DriverError`` that names the port: a
silent device (with the timeout), a bad reply, a Modbus exception, or a port that cannot be opened.
minimalmodbus reads the reply length it expects, so a (shorter) exception reply arrives after the
timeout; the driver only addresses the gripper's own registers, where a Robotiq raises none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import minimalmodbus
import serial

from rmskill.errors import DriverError

log = logging.getLogger(__name__)


class ModbusRtuClient:
    """Talks to one slave on ``port`` (8N1 at ``baudrate``); ``timeout`` bounds each reply [s]."""

    def __init__(self, port: str, slave: int, baudrate: int, timeout: float) -> None:
        self.port = port
        self.slave = slave
        self.baudrate = baudrate
        self.timeout = timeout
        self._instrument: minimalmodbus.Instrument | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._instrument is not None and self._instrument.serial.is_open

    def open(self) -> None:
        if self.is_open:
            return
        try:
            port = serial.Serial(
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
        # Handed an open port, minimalmodbus neither opens nor caches one of its own.
        self._instrument = minimalmodbus.Instrument(port, self.slave, minimalmodbus.MODE_RTU)
        log.debug("opened %s at %d baud", self.port, self.baudrate)

    def close(self) -> None:
        if self._instrument is not None:
            self._instrument.serial.close()
            self._instrument = None
            log.debug("closed %s", self.port)

    def read_registers(self, function: int, address: int, count: int) -> list[int]:
        """Read ``count`` registers from ``address`` with function 0x03 or 0x04."""
        with self._lock:
            instrument = self._open_instrument()
            try:
                return instrument.read_registers(address, count, functioncode=function)
            except (minimalmodbus.ModbusException, serial.SerialException) as err:
                raise self._error(instrument, err) from None

    def write_registers(self, address: int, values: Sequence[int]) -> None:
        """Write ``values`` from ``address`` with function 0x10; returns once the slave echoed."""
        with self._lock:
            instrument = self._open_instrument()
            try:
                instrument.write_registers(address, list(values))
            except (minimalmodbus.ModbusException, serial.SerialException) as err:
                raise self._error(instrument, err) from None

    def _open_instrument(self) -> minimalmodbus.Instrument:
        if self._instrument is None or not self._instrument.serial.is_open:
            raise DriverError(f"gripper port '{self.port}' is not open; call connect() first")
        return self._instrument

    def _error(self, instrument: minimalmodbus.Instrument, err: Exception) -> DriverError:
        """The one-line ``DriverError`` for a failed exchange."""
        log.debug("%s: %s: %s", self.port, type(err).__name__, err)
        if isinstance(err, minimalmodbus.NoResponseError):
            return self._timeout_error("no reply")
        if isinstance(err, minimalmodbus.SlaveReportedException):
            return DriverError(f"gripper on '{self.port}' answered with a Modbus exception: {err}")
        if isinstance(err, minimalmodbus.ModbusException):
            waited = instrument.roundtrip_time
            if waited is not None and waited >= self.timeout:  # the reply stopped short
                return self._timeout_error(f"an incomplete reply: {err}")
            return DriverError(f"gripper on '{self.port}' sent a bad Modbus reply: {err}")
        return DriverError(f"gripper port '{self.port}': {err}")

    def _timeout_error(self, got: str) -> DriverError:
        return DriverError(
            f"gripper on '{self.port}' did not answer within the {self.timeout:g} s timeout ({got}); "
            f"check the cable, power and slave id {self.slave}"
        )
