"""``URToolIOGripper``: a gripper wired to the UR tool's digital outputs (pneumatic or simple electric).

Outputs are set through ur_rtde's ``RTDEIOInterface`` and read back, with the optional "object
detected" tool input, through a small ``RTDEReceiveInterface``. Pins (arm file ``gripper``):
``open_pin`` high opens, ``close_pin`` high closes; with only one wired, its low state is the other
motion. Such a gripper measures no width: ``state().width`` is the commanded opening (``max_width``
open, 0 closed) and ``settle_time`` [s] is how long a motion is taken to last.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rmskill.arm import Arm, Gripper, GripperState
from rmskill.config import GripperConfig
from rmskill.errors import ConfigError, DriverError

log = logging.getLogger(__name__)

TOOL_BIT = 16  # tool I/O are bits 16 and 17 of the controller's digital I/O bit fields
READBACK_TIMEOUT = 0.2  # [s] longest wait for the controller to show a switched output
STATE_FREQUENCY = 125.0  # [Hz] of the gripper's own receive interface
DEFAULT_MAX_WIDTH = 0.1  # [m] nominal opening when the arm file gives none


class URToolIOGripper(Gripper):
    """A gripper on the tool digital outputs of the UR arm ``arm`` (its ``config.host``)."""

    def __init__(self, config: GripperConfig, arm: Arm | None = None) -> None:
        if config.open_pin is None and config.close_pin is None:
            raise ConfigError("gripper: ur_tool_io needs open_pin or close_pin (tool digital output 0 or 1)")
        if config.open_pin is not None and config.open_pin == config.close_pin:
            raise ConfigError(f"gripper: open_pin and close_pin are both tool output {config.open_pin}")
        arm_config = getattr(arm, "config", None)
        if arm_config is None:
            raise ConfigError("gripper: ur_tool_io is driven through its arm's controller; build it with the arm")
        self.config, self.host = config, arm_config.host
        self.max_width = config.max_width or DEFAULT_MAX_WIDTH
        self._io: Any = None
        self._recv: Any = None
        self._width = self.max_width
        self._switched = 0.0  # monotonic time of the last switch [s]

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._recv is not None and bool(self._recv.isConnected())

    def connect(self) -> None:
        try:
            import rtde_io
            import rtde_receive
        except ImportError as err:
            raise DriverError(f"the ur_tool_io gripper needs ur_rtde ({err}); pip install 'rmskill[ur]'") from None
        try:
            self._recv = rtde_receive.RTDEReceiveInterface(
                self.host, STATE_FREQUENCY, ["timestamp", "actual_digital_input_bits", "actual_digital_output_bits"])
            self._io = rtde_io.RTDEIOInterface(self.host)
        except Exception as err:  # ur_rtde raises RuntimeError for refused or timed out
            self.disconnect()
            raise DriverError(f"cannot reach the UR tool I/O at {self.host}: {err}") from None
        commanded = self._commanded(self._outputs())
        self._width = self.max_width if commanded is None else commanded

    def disconnect(self) -> None:
        for link in (self._io, self._recv):
            if link is not None:
                try:
                    link.disconnect()
                except Exception as err:  # best effort: the controller may be gone
                    log.debug("while closing the tool I/O link: %s", err)
        self._io = self._recv = None

    # --- pins ---------------------------------------------------------------------------------
    def _require(self) -> None:
        if self._io is None or not self.connected:
            raise DriverError(f"the tool I/O gripper at {self.host} is not connected; call connect() first")

    def _outputs(self) -> int:
        return int(self._recv.getActualDigitalOutputBits()) >> TOOL_BIT & 0b11

    def _levels(self, opening: bool) -> dict[int, bool]:
        """The output level of each wired pin for an opening (True) or closing motion."""
        levels = {}
        if self.config.open_pin is not None:
            levels[self.config.open_pin] = opening
        if self.config.close_pin is not None:
            levels[self.config.close_pin] = not opening
        return levels

    def _commanded(self, outputs: int) -> float | None:
        """The opening [m] ``outputs`` command; ``None`` when they command neither motion."""
        for opening, width in ((True, self.max_width), (False, 0.0)):
            if all(bool(outputs >> pin & 1) == level for pin, level in self._levels(opening).items()):
                return width
        return None

    def _object_detected(self) -> bool:
        pin = self.config.object_pin
        if pin is None:
            return False
        return bool(int(self._recv.getActualDigitalInputBits()) >> (TOOL_BIT + pin) & 1)

    # --- Gripper interface --------------------------------------------------------------------
    def state(self) -> GripperState:
        """The commanded opening [m], whether the settle time is still running, the object input."""
        self._require()
        moving = time.monotonic() - self._switched < self.config.settle_time
        return GripperState(width=self._width, moving=moving, object_detected=self._object_detected())

    def move(self, width: float, speed: float | None = None, force: float | None = None) -> GripperState:
        """Open (``width`` at least half of ``max_width``) or close; blocks for ``settle_time`` [s], or
        until the object input goes high while closing. Speed and force are set on the gripper itself."""
        self._require()
        opening = width >= self.max_width / 2
        levels = self._levels(opening)
        for pin, level in levels.items():  # release the other motion's pin first
            if not level and not self._io.setToolDigitalOut(pin, False):
                raise DriverError(f"the UR controller at {self.host} refused to set tool output {pin}")
        for pin, level in levels.items():
            if level and not self._io.setToolDigitalOut(pin, True):
                raise DriverError(f"the UR controller at {self.host} refused to set tool output {pin}")
        self._switched = time.monotonic()
        goal = self.max_width if opening else 0.0
        deadline = self._switched + READBACK_TIMEOUT
        while self._commanded(self._outputs()) != goal:
            if time.monotonic() > deadline:
                raise DriverError(f"tool outputs at {self.host} did not switch within {READBACK_TIMEOUT:g} s "
                                  f"(read {self._outputs():02b}, wanted pins {levels})")
            time.sleep(0.002)
        self._width = goal
        while time.monotonic() - self._switched < self.config.settle_time:
            if not opening and self._object_detected():
                break
            time.sleep(0.005)
        return self.state()

    def __repr__(self) -> str:
        pins = f"open_pin={self.config.open_pin}, close_pin={self.config.close_pin}"
        return f"URToolIOGripper(host={self.host!r}, {pins})"
