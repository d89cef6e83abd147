"""The simulated gripper's behaviour, independent of the bus: registers in, finger motion over time.

Activation, motion at the commanded speed, a stop on an object while closing, and the faults the
manual names for commands sent out of order (0x05, 0x07). Time is ``time.monotonic()`` [s].
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from rmskill.drivers.robotiq.registers import (
    OBJ_ARRIVED,
    OBJ_CONTACT_CLOSING,
    OBJ_MOVING,
    STA_ACTIVATED,
    STA_ACTIVATING,
    STA_RESET,
    Command,
    Status,
    from_byte,
    model_spec,
    position_to_width,
    width_to_position,
)

FAULT_ACTION_DELAYED = 0x05
FAULT_NOT_ACTIVATED = 0x07


class SimulatedDevice:
    """One 2F gripper's state. Thread-safe; every access first advances the motion to now.

    Args:
        model: ``"2f-85"`` or ``"2f-140"``.
        object_width: Width of the object between the fingers in [m]; ``None`` for none.
        activation_time: Duration of the activation in [s]; the fingers end it fully open.
    """

    def __init__(self, model: str = "2f-85", object_width: float | None = 0.05, activation_time: float = 0.2):
        self.spec = model_spec(model)
        self.object_width = object_width
        self.activation_time = activation_time
        self.command = Command()
        self.sta = STA_RESET
        self.obj = OBJ_MOVING
        self.fault = 0
        self.position = 0.0  # finger position in register units, 0 (open) .. 255 (closed)
        self._activated_at = 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def set_fault(self, code: int) -> None:
        with self._lock:
            self.fault = code & 0x0F

    @property
    def object_position(self) -> float | None:
        """Finger position at which the object stops closing fingers, in register units."""
        if self.object_width is None:
            return None
        return float(width_to_position(self.object_width, self.spec.stroke))

    def hold(self, width: float) -> None:
        """Start activated and closed on an object ``width`` [m] wide (a cell that starts with a part held)."""
        with self._lock:
            self.object_width = width
            self.command = Command(act=True, gto=True, position=255, speed=255, force=128)
            self.sta, self.obj, self.fault = STA_ACTIVATED, OBJ_CONTACT_CLOSING, 0
            self.position = float(width_to_position(width, self.spec.stroke))
            self._last = time.monotonic()

    def meet_object(self, width: float) -> None:
        """An object the fingers met at ``width`` [m] (a simulator's contact): from now on closing fingers
        stop there, and fingers closing past it stop on it and report it (gOBJ = 2)."""
        with self._lock:
            self._advance(time.monotonic())
            self.object_width = width
            obstacle = float(width_to_position(width, self.spec.stroke))
            cmd = self.command
            if self.sta == STA_ACTIVATED and cmd.gto and cmd.position > obstacle and self.position >= obstacle:
                self.position, self.obj = obstacle, OBJ_CONTACT_CLOSING

    def width(self) -> float:
        """The fingers' opening now [m]."""
        with self._lock:
            self._advance(time.monotonic())
            return position_to_width(self.position, self.spec.stroke)

    def drive_width(self) -> float:
        """The opening [m] the finger drive pushes toward now: where the fingers are while they move, the
        requested opening once they have stopped on an object (the grip force squeezes it)."""
        with self._lock:
            self._advance(time.monotonic())
            gripping = self.sta == STA_ACTIVATED and self.command.gto and self.obj == OBJ_CONTACT_CLOSING
            position = self.command.position if gripping else self.position
            return position_to_width(position, self.spec.stroke)

    # --- registers ----------------------------------------------------------------------------
    def request_registers(self) -> list[int]:
        with self._lock:
            return self.command.to_registers()

    def status_registers(self) -> list[int]:
        with self._lock:
            self._advance(time.monotonic())
            cmd = self.command
            holding = cmd.gto and self.obj == OBJ_CONTACT_CLOSING
            current = cmd.force // 4 + 5 if holding else (12 if self._moving else 0)
            return Status(
                act=cmd.act,
                gto=cmd.gto,
                sta=self.sta,
                obj=self.obj if cmd.gto else OBJ_MOVING,
                fault=self.fault,
                position_echo=cmd.position,
                position=round(self.position),
                current=current,
            ).to_registers()

    def write(self, offset: int, values: Sequence[int]) -> None:
        """Write request registers from ``offset`` (0 = 0x03E8) and react to the new command."""
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            regs = self.command.to_registers()
            regs[offset : offset + len(values)] = values
            previous, self.command = self.command, Command.from_registers(regs)
            self._react(previous, self.command, now)

    # --- behaviour ----------------------------------------------------------------------------
    @property
    def _moving(self) -> bool:
        return self.sta == STA_ACTIVATED and self.command.gto and self.obj == OBJ_MOVING

    def _react(self, previous: Command, cmd: Command, now: float) -> None:
        if not cmd.act:
            self.sta, self.obj, self.fault = STA_RESET, OBJ_MOVING, 0
            return
        if not previous.act:  # rising edge of rACT: (re)activate, clearing faults
            self.sta, self.fault = STA_ACTIVATING, 0
            self._activated_at = now + self.activation_time
        if not cmd.gto:
            self.obj = OBJ_MOVING
            return
        if self.sta == STA_ACTIVATING:
            self.fault = FAULT_ACTION_DELAYED
        elif self.sta != STA_ACTIVATED:
            self.fault = FAULT_NOT_ACTIVATED
        elif not self.fault:
            self.obj = OBJ_MOVING
            self._advance(now)  # settles at once when already there or already on the object

    def _advance(self, now: float) -> None:
        dt, self._last = now - self._last, now
        if self.sta == STA_ACTIVATING and now >= self._activated_at:
            self.sta, self.position = STA_ACTIVATED, 0.0
            if self.fault == FAULT_ACTION_DELAYED:
                self.fault = 0
            dt = 0.0
        if not self._moving:
            return
        cmd = self.command
        rate = from_byte(cmd.speed, self.spec.min_speed, self.spec.max_speed) / self.spec.stroke * 255
        target = float(cmd.position)
        stop_at = target
        obstacle = self.object_position
        closing = target > self.position
        if closing and obstacle is not None and self.position <= obstacle < target:
            stop_at = obstacle
        step = rate * dt
        if abs(stop_at - self.position) <= step:
            self.position = stop_at
            self.obj = OBJ_CONTACT_CLOSING if stop_at != target else OBJ_ARRIVED
        else:
            self.position += step if stop_at > self.position else -step
