"""The 2F-85/2F-140 register layout, the models' ranges, and the scaling from SI units to bytes.

Three robot-output (request) registers from 0x03E8 and three robot-input (status) registers from
0x07D0; each register carries two bytes, high byte first:

=========  ============================================  ==========================================
register   request (0x03E8..0x03EA)                      status (0x07D0..0x07D2)
=========  ============================================  ==========================================
+0         action request (rACT, rGTO, rATR, rARD), 0     gripper status (gACT, gGTO, gSTA, gOBJ), 0
+1         0, position request rPR                        fault (gFLT low nibble, kFLT high), gPR echo
+2         speed rSP, force rFR                           position gPO, finger current gCU
=========  ============================================  ==========================================

Position bytes run from 0 (open) to 255 (closed); speed and force bytes 0-255 span the model's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rmskill.errors import ConfigError

SLAVE_ID = 9
BAUDRATE = 115200
REQUEST_ADDRESS = 0x03E8
STATUS_ADDRESS = 0x07D0
REGISTER_COUNT = 3

# gSTA
STA_RESET, STA_ACTIVATING, STA_ACTIVATED = 0, 1, 3
# gOBJ
OBJ_MOVING, OBJ_CONTACT_OPENING, OBJ_CONTACT_CLOSING, OBJ_ARRIVED = 0, 1, 2, 3

FAULTS: dict[int, str] = {
    0x05: "action delayed: the activation must complete before the action",
    0x07: "the activation bit must be set before an action",
    0x08: "maximum operating temperature exceeded (>= 85 C); let it cool below 80 C",
    0x09: "no communication for at least 1 s",
    0x0A: "under minimum operating voltage",
    0x0B: "automatic release in progress",
    0x0C: "internal fault",
    0x0D: "activation fault: check for interference",
    0x0E: "overcurrent triggered",
    0x0F: "automatic release completed",
}


def fault_text(code: int) -> str:
    """``'0x0E (overcurrent triggered)'`` for a gFLT code."""
    return f"0x{code:02X} ({FAULTS.get(code, 'unknown fault')})"


@dataclass(frozen=True)
class ModelSpec:
    """One gripper model: stroke [m], speed range [m/s], force range [N]."""

    name: str
    stroke: float
    min_speed: float
    max_speed: float
    min_force: float
    max_force: float


MODELS: dict[str, ModelSpec] = {
    "2f-85": ModelSpec("2f-85", 0.085, 0.020, 0.150, 20.0, 235.0),
    "2f-140": ModelSpec("2f-140", 0.140, 0.030, 0.250, 10.0, 125.0),
}


def model_spec(name: str | None) -> ModelSpec:
    """The spec for ``name`` (any case; ``None`` is the 2F-85); an unknown name lists the valid ones."""
    key = (name or "2f-85").strip().lower()
    if key not in MODELS:
        raise ConfigError(f"gripper.model '{name}' is not a Robotiq model (valid: {', '.join(MODELS)})")
    return MODELS[key]


def to_byte(value: float, lo: float, hi: float) -> int:
    """Linear map of ``value`` in [lo, hi] onto 0-255, clamped to the range."""
    return round(255 * min(max((value - lo) / (hi - lo), 0.0), 1.0))


def from_byte(byte: float, lo: float, hi: float) -> float:
    """Inverse of ``to_byte``."""
    return lo + (hi - lo) * byte / 255


def width_to_position(width: float, stroke: float) -> int:
    """Finger opening [m] to the position byte (0 = fully open at ``stroke``, 255 = closed)."""
    if not math.isfinite(width):
        raise ConfigError(f"gripper width must be finite, got {width}")
    return 255 - to_byte(width, 0.0, stroke)


def position_to_width(position: float, stroke: float) -> float:
    """Position byte to finger opening [m]."""
    return stroke * (1.0 - position / 255)


@dataclass(frozen=True)
class Command:
    """The robot-output registers. Position, speed and force are bytes 0-255."""

    act: bool = False
    gto: bool = False
    atr: bool = False
    ard: bool = False
    position: int = 0
    speed: int = 0
    force: int = 0

    def to_registers(self) -> list[int]:
        action = int(self.act) | int(self.gto) << 3 | int(self.atr) << 4 | int(self.ard) << 5
        return [action << 8, self.position & 0xFF, (self.speed & 0xFF) << 8 | (self.force & 0xFF)]

    @classmethod
    def from_registers(cls, regs: list[int]) -> Command:
        action = regs[0] >> 8
        return cls(
            act=bool(action & 0x01),
            gto=bool(action & 0x08),
            atr=bool(action & 0x10),
            ard=bool(action & 0x20),
            position=regs[1] & 0xFF,
            speed=regs[2] >> 8,
            force=regs[2] & 0xFF,
        )


@dataclass(frozen=True)
class Status:
    """The robot-input registers, decoded. ``position`` and ``position_echo`` are bytes 0-255."""

    act: bool = False
    gto: bool = False
    sta: int = STA_RESET
    obj: int = OBJ_MOVING
    fault: int = 0
    controller_fault: int = 0
    position_echo: int = 0
    position: int = 0
    current: int = 0

    @property
    def activated(self) -> bool:
        return self.act and self.sta == STA_ACTIVATED

    @property
    def moving(self) -> bool:
        return self.gto and self.obj == OBJ_MOVING

    @property
    def object_detected(self) -> bool:
        return self.gto and self.obj in (OBJ_CONTACT_OPENING, OBJ_CONTACT_CLOSING)

    def to_registers(self) -> list[int]:
        status = int(self.act) | int(self.gto) << 3 | (self.sta & 3) << 4 | (self.obj & 3) << 6
        fault = (self.fault & 0x0F) | (self.controller_fault & 0x0F) << 4
        return [status << 8, fault << 8 | self.position_echo, self.position << 8 | self.current]

    @classmethod
    def from_registers(cls, regs: list[int]) -> Status:
        status, fault = regs[0] >> 8, regs[1] >> 8
        return cls(
            act=bool(status & 0x01),
            gto=bool(status & 0x08),
            sta=(status >> 4) & 3,
            obj=(status >> 6) & 3,
            fault=fault & 0x0F,
            controller_fault=fault >> 4,
            position_echo=regs[1] & 0xFF,
            position=regs[2] >> 8,
            current=regs[2] & 0xFF,
        )
