"""Modbus RTU frames as the slave sees them, for the simulated gripper: CRC, request decoding, replies.

The driver's master side is minimalmodbus; the simulator plays the device with this separate
implementation (minimalmodbus offers no public slave side or CRC), so a framing bug on one side
shows up as a failed exchange instead of being shared. A frame is ``slave id | function code |
payload | CRC`` with the CRC sent low byte first; registers are 16-bit big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
WRITE_MULTIPLE_REGISTERS = 0x10
READ_FUNCTIONS = (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
EXCEPTION_FLAG = 0x80
MAX_READ_COUNT = 125
MAX_WRITE_COUNT = 123

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03

EXCEPTION_NAMES: dict[int, str] = {
    ILLEGAL_FUNCTION: "illegal function",
    ILLEGAL_DATA_ADDRESS: "illegal data address",
    ILLEGAL_DATA_VALUE: "illegal data value",
}


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data``: reflected polynomial 0xA001, initial value 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC, low byte first as Modbus RTU sends it."""
    return body + struct.pack("<H", crc16(body))


def crc_ok(frame: bytes) -> bool:
    """Whether the last two bytes of ``frame`` are the CRC of the rest."""
    return len(frame) >= 4 and crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]


def exception_name(code: int) -> str:
    return EXCEPTION_NAMES.get(code, "unknown exception")


@dataclass(frozen=True)
class Request:
    """A decoded request frame (CRC already checked). ``values`` is empty for reads."""

    slave: int
    function: int
    address: int
    count: int
    values: tuple[int, ...] = ()


class ModbusException(Exception):
    """Raised on the slave side to answer a request with exception ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(exception_name(code))
        self.code = code


def decode_request(frame: bytes) -> Request:
    """Decode a request whose CRC is correct; a malformed one raises ``ModbusException``."""
    slave, function = frame[0], frame[1]
    if function not in (*READ_FUNCTIONS, WRITE_MULTIPLE_REGISTERS):
        raise ModbusException(ILLEGAL_FUNCTION)
    if len(frame) < 8:
        raise ModbusException(ILLEGAL_DATA_VALUE)
    address, count = struct.unpack(">HH", frame[2:6])
    if function in READ_FUNCTIONS:
        if len(frame) != 8 or not 1 <= count <= MAX_READ_COUNT:
            raise ModbusException(ILLEGAL_DATA_VALUE)
        return Request(slave, function, address, count)
    byte_count = frame[6] if len(frame) > 6 else -1
    if not 1 <= count <= MAX_WRITE_COUNT or byte_count != 2 * count or len(frame) != 9 + byte_count:
        raise ModbusException(ILLEGAL_DATA_VALUE)
    values = struct.unpack(f">{count}H", frame[7 : 7 + byte_count])
    return Request(slave, function, address, count, tuple(values))


def read_reply(slave: int, function: int, values: Sequence[int]) -> bytes:
    """The reply to a 0x03/0x04 request: byte count and register values."""
    body = struct.pack(">BBB", slave, function, 2 * len(values))
    return with_crc(body + struct.pack(f">{len(values)}H", *values))


def write_reply(slave: int, address: int, count: int) -> bytes:
    """The reply to a 0x10 request: the echo of its address and register count."""
    return with_crc(struct.pack(">BBHH", slave, WRITE_MULTIPLE_REGISTERS, address, count))


def exception_reply(slave: int, function: int, code: int) -> bytes:
    """An exception reply: the function code with its high bit set, then the exception code."""
    return with_crc(struct.pack(">BBB", slave, (function | EXCEPTION_FLAG) & 0xFF, code))
