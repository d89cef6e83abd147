"""Modbus RTU frames: CRC-16/MODBUS, requests and replies for the three function codes Robotiq uses.

Pure byte handling, shared by the gripper (master side) and the simulator (slave side). A frame is
``slave id | function code | payload | CRC`` with the CRC sent low byte first; registers are 16-bit
big-endian. Parsing errors raise ``DriverError`` so that a caller can let them through unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from rmskill.errors import DriverError

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
SERVER_DEVICE_FAILURE = 0x04

EXCEPTION_NAMES: dict[int, str] = {
    ILLEGAL_FUNCTION: "illegal function",
    ILLEGAL_DATA_ADDRESS: "illegal data address",
    ILLEGAL_DATA_VALUE: "illegal data value",
    SERVER_DEVICE_FAILURE: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
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


# --- master side --------------------------------------------------------------------------------
def read_request(slave: int, function: int, address: int, count: int) -> bytes:
    """A 0x03/0x04 request for ``count`` registers from ``address``."""
    return with_crc(struct.pack(">BBHH", slave, function, address, count))


def write_request(slave: int, address: int, values: Sequence[int]) -> bytes:
    """A 0x10 request writing 16-bit ``values`` from ``address``."""
    body = struct.pack(">BBHHB", slave, WRITE_MULTIPLE_REGISTERS, address, len(values), 2 * len(values))
    return with_crc(body + struct.pack(f">{len(values)}H", *values))


def reply_length(header: bytes) -> int:
    """Total length of a reply frame from its first three bytes (slave, function, first payload byte)."""
    function = header[1]
    if function & EXCEPTION_FLAG:
        return 5
    if function in READ_FUNCTIONS:
        return 5 + header[2]
    return 8  # 0x10 echoes address and count


def parse_reply(request: bytes, reply: bytes) -> list[int]:
    """Check ``reply`` against the ``request`` it answers; return the registers read (empty for 0x10).

    Raises ``DriverError`` on a CRC mismatch, a wrong slave id or function, a Modbus exception
    reply (naming the exception code), or a payload that does not match the request.
    """
    if not crc_ok(reply):
        got = reply[-2:].hex(" ") if len(reply) >= 2 else "none"
        raise DriverError(f"Modbus reply CRC mismatch (reply {reply.hex(' ')}, CRC bytes {got})")
    slave, function = request[0], request[1]
    if reply[0] != slave:
        raise DriverError(f"Modbus reply from slave {reply[0]}, expected slave {slave}")
    if reply[1] == function | EXCEPTION_FLAG:
        code = reply[2]
        raise DriverError(
            f"Modbus exception code 0x{code:02X} ({exception_name(code)}) for function 0x{function:02X}"
        )
    if reply[1] != function:
        raise DriverError(f"Modbus reply has function 0x{reply[1]:02X}, expected 0x{function:02X}")
    count = struct.unpack(">H", request[4:6])[0]
    if function == WRITE_MULTIPLE_REGISTERS:
        if reply[2:6] != request[2:6]:
            raise DriverError(f"Modbus write echo {reply[2:6].hex(' ')} does not match the request")
        return []
    if reply[2] != 2 * count or len(reply) != 5 + 2 * count:
        raise DriverError(f"Modbus reply carries {reply[2]} data bytes, expected {2 * count}")
    return list(struct.unpack(f">{count}H", reply[3:-2]))


# --- slave side ---------------------------------------------------------------------------------
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
