"""RTDE wire format (protocol version 2), as a UR controller speaks it on port 30004.

A message is ``uint16 size`` (header included, big-endian), ``uint8 type``, payload. Data packages
start with a ``uint8`` recipe id followed by the recipe's fields, big-endian.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

HEADER = struct.Struct(">HB")

REQUEST_PROTOCOL_VERSION = ord("V")
GET_URCONTROL_VERSION = ord("v")
TEXT_MESSAGE = ord("M")
DATA_PACKAGE = ord("U")
SETUP_OUTPUTS = ord("O")
SETUP_INPUTS = ord("I")
START = ord("S")
PAUSE = ord("P")

#: RTDE type name -> struct format of one value.
TYPE_FORMATS = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT32": "I",
    "UINT64": "Q",
    "INT32": "i",
    "DOUBLE": "d",
    "VECTOR3D": "3d",
    "VECTOR6D": "6d",
    "VECTOR6INT32": "6i",
    "VECTOR6UINT32": "6I",
}

_OUTPUT_TYPES: dict[str, str] = {
    "timestamp": "DOUBLE",
    "actual_execution_time": "DOUBLE",
    "robot_mode": "INT32",
    "safety_mode": "INT32",
    "safety_status": "INT32",
    "joint_mode": "VECTOR6INT32",
    "runtime_state": "UINT32",
    "robot_status_bits": "UINT32",
    "safety_status_bits": "UINT32",
    "actual_digital_input_bits": "UINT64",
    "actual_digital_output_bits": "UINT64",
    "actual_tool_accelerometer": "VECTOR3D",
    "elbow_position": "VECTOR3D",
    "elbow_velocity": "VECTOR3D",
    "payload_cog": "VECTOR3D",
    "output_bit_registers0_to_31": "UINT32",
    "output_bit_registers32_to_63": "UINT32",
}
for _name in (
    "target_q target_qd target_qdd target_current target_moment actual_q actual_qd actual_qdd "
    "actual_current actual_current_as_torque actual_moment joint_control_output actual_TCP_pose "
    "actual_TCP_speed actual_TCP_force target_TCP_pose target_TCP_speed joint_temperatures "
    "actual_joint_voltage ft_raw_wrench payload_inertia tcp_offset"
).split():
    _OUTPUT_TYPES[_name] = "VECTOR6D"
for _name in (
    "speed_scaling target_speed_fraction actual_momentum actual_main_voltage actual_robot_voltage "
    "actual_robot_current standard_analog_input0 standard_analog_input1 standard_analog_output0 "
    "standard_analog_output1 payload tool_analog_input0 tool_analog_input1 tool_output_voltage"
).split():
    _OUTPUT_TYPES[_name] = "DOUBLE"

_INPUT_TYPES: dict[str, str] = {
    "external_force_torque": "VECTOR6D",
    "speed_slider_mask": "UINT32",
    "speed_slider_fraction": "DOUBLE",
    "standard_digital_output_mask": "UINT8",
    "standard_digital_output": "UINT8",
    "configurable_digital_output_mask": "UINT8",
    "configurable_digital_output": "UINT8",
    "tool_digital_output_mask": "UINT8",
    "tool_digital_output": "UINT8",
    "standard_analog_output_mask": "UINT8",
    "standard_analog_output_type": "UINT8",
    "standard_analog_output_0": "DOUBLE",
    "standard_analog_output_1": "DOUBLE",
}

_REGISTER = re.compile(r"^(input|output)_(int|double|bit)_register_(\d+)$")
_REGISTER_TYPES = {"int": "INT32", "double": "DOUBLE", "bit": "BOOL"}
N_REGISTERS = 48
N_BIT_REGISTERS = 128


def register(name: str) -> tuple[str, str, int] | None:
    """``("input", "double", 3)`` for ``input_double_register_3``; ``None`` for other names."""
    m = _REGISTER.match(name)
    if m is None:
        return None
    index = int(m.group(3))
    limit = N_BIT_REGISTERS if m.group(2) == "bit" else N_REGISTERS
    return (m.group(1), m.group(2), index) if index < limit else None


def output_type(name: str) -> str | None:
    """RTDE type of an output variable, or ``None`` when the controller does not have it."""
    reg = register(name)
    if reg is not None:
        return _REGISTER_TYPES[reg[1]]  # input registers can be read back as outputs too
    return _OUTPUT_TYPES.get(name)


def input_type(name: str) -> str | None:
    """RTDE type of an input variable, or ``None`` when it is not an input."""
    reg = register(name)
    if reg is not None:
        return _REGISTER_TYPES[reg[1]] if reg[0] == "input" else None
    return _INPUT_TYPES.get(name)


@dataclass(frozen=True)
class Recipe:
    """A set-up recipe: its id, variable names and the struct that packs its values."""

    recipe_id: int
    names: tuple[str, ...]
    types: tuple[str, ...]

    @cached_property
    def fmt(self) -> struct.Struct:
        return struct.Struct(">B" + "".join(TYPE_FORMATS[t] for t in self.types))

    def unpack(self, payload: bytes) -> dict[str, object]:
        """Values by name from a data package payload (recipe id byte included)."""
        flat = self.fmt.unpack(payload)[1:]
        values: dict[str, object] = {}
        i = 0
        for name, typ in zip(self.names, self.types, strict=True):
            n = 6 if typ.startswith("VECTOR6") else 3 if typ == "VECTOR3D" else 1
            values[name] = flat[i] if n == 1 else list(flat[i : i + n])
            i += n
        return values

    def pack(self, values: Mapping[str, object]) -> bytes:
        """A complete DATA_PACKAGE message with ``values`` (missing names are sent as zeros)."""
        flat: list[object] = [self.recipe_id]
        for name, typ in zip(self.names, self.types, strict=True):
            v = values.get(name, 0)
            if typ.startswith("VECTOR"):
                n = 3 if typ == "VECTOR3D" else 6
                flat.extend(list(v) if isinstance(v, list | tuple) else [0] * n)  # type: ignore[arg-type]
            elif typ in ("INT32", "UINT32", "UINT64", "UINT8"):
                flat.append(int(v))  # type: ignore[call-overload]
            elif typ == "BOOL":
                flat.append(bool(v))
            else:
                flat.append(float(v))  # type: ignore[arg-type]
        return message(DATA_PACKAGE, self.fmt.pack(*flat))


def message(msg_type: int, payload: bytes = b"") -> bytes:
    """Frame ``payload`` with the RTDE header."""
    return HEADER.pack(HEADER.size + len(payload), msg_type) + payload


def text_message(text: str, source: str = "rmskill-emulator", level: int = 1) -> bytes:
    """A protocol-v2 text message (level 0 exception, 1 error, 2 warning, 3 info)."""
    t, s = text.encode()[:255], source.encode()[:255]
    return message(TEXT_MESSAGE, bytes([len(t)]) + t + bytes([len(s)]) + s + bytes([level]))
