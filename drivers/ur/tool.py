"""The emulated cell's gripper: what moves the simulated arm's fingers when a client drives its gripper.

Chosen by the arm file's ``gripper.driver``:

- ``robotiq``: a simulated Robotiq (``SimulatedRobotiq``) on a new pseudo-terminal, published as a
  symbolic link at the arm file's ``gripper.port`` (e.g. ``/tmp/ttyUR``). A real cell reaches a
  tool-mounted Robotiq the same way: a forwarder (``socat pty,link=/tmp/ttyUR,raw tcp:ROBOT:54321``)
  puts the tool's serial line at a fixed path. The client opens that path as it would on a real arm.
- ``ur_tool_io``: the tool digital outputs that RTDE clients set open and close the fingers; the
  ``object_pin`` tool input reads high while both fingers hold the plate.

On the MuJoCo arm the simulated plate gripper follows the device, so a placement really lets go;
on the kinematic stand-in the device runs alone.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rmskill.config import GripperConfig
from rmskill.errors import ConfigError

log = logging.getLogger(__name__)

#: Ticks between two checks of whether the plate is between the pads (25 x 2 ms).
HOLD_CHECK_TICKS = 25
#: Finger opening speed of the tool-I/O gripper [m/s].
TOOL_IO_SPEED = 0.1


def make_tool(controller: Any, spec: GripperConfig) -> RobotiqTool | ToolIOTool | None:
    """The emulated gripper for the arm file's ``gripper`` section; ``None`` for ``sim`` and ``none``."""
    if spec.driver == "robotiq":
        return RobotiqTool(controller, spec)
    if spec.driver == "ur_tool_io":
        return ToolIOTool(controller, spec)
    return None


class _Fingers:
    """The simulated arm's plate gripper, if it has one, moved from the control loop."""

    def __init__(self, controller: Any):
        arm = controller.arm
        gripper = getattr(arm, "fingers", None)
        self.gripper = gripper if hasattr(gripper, "follow") else None
        self._sim = getattr(arm, "sim", None)
        self._ticks = 0
        self.resync()

    def width(self, default: float) -> float:
        return self.gripper.width() if self.gripper is not None else default

    def resync(self) -> None:
        """Whether the fingers hold the plate, checked now (the cell was reset)."""
        self._ticks = 0
        self.holding = self.gripper is not None and getattr(self._sim, "grasp", None) is not None

    def follow(self, width: float) -> bool:
        """Drive the fingers to ``width`` [m]; returns whether they hold the plate (checked every few ticks)."""
        if self.gripper is None:
            return False
        self.gripper.follow(width)
        self._ticks += 1
        if self._ticks % HOLD_CHECK_TICKS == 0:
            self.holding = self.gripper.update_holding()
        return self.holding


class RobotiqTool:
    """A simulated Robotiq served on a pty linked at ``spec.port``; the fingers follow its position."""

    def __init__(self, controller: Any, spec: GripperConfig):
        from rmskill.drivers.robotiq.simulator import SimulatedRobotiq

        self.fingers = _Fingers(controller)
        self.sim = SimulatedRobotiq(object_width=None, model=spec.model or "2f-85")
        if self.fingers.holding:  # the cell starts with the plate gripped: an active gripper, closed on it
            self.sim.device.hold(self.fingers.width(0.0))
        self.link = spec.port
        try:
            if self.link:
                publish_link(self.sim.port, self.link)
        except BaseException:
            self.sim.stop()
            raise
        log.info("simulated Robotiq %s on %s%s", self.sim.device.spec.name, self.sim.port,
                 f", linked at {self.link}" if self.link else "")

    def resync(self) -> None:
        """After the cell was reset under it: closed on the plate if the fingers now hold one, else open."""
        self.fingers.resync()
        if self.fingers.holding:
            self.sim.device.hold(self.fingers.width(0.0))
        else:
            self.sim.device.object_width = None

    def step(self) -> None:
        device = self.sim.device
        held = self.fingers.follow(device.drive_width())
        if not held and device.object_width is not None:
            device.object_width = None  # the plate is gone: closing fingers now meet nothing
        elif held and device.object_width is None:  # the fingers closed on a plate: the device stops on it
            device.meet_object(self.fingers.width(device.width()))

    def stop(self) -> None:
        self.sim.stop()
        if self.link and os.path.islink(self.link) and os.readlink(self.link) == self.sim.port:
            os.unlink(self.link)


class ToolIOTool:
    """Fingers on the tool digital outputs: ``open_pin`` high opens, ``close_pin`` high closes (with one
    pin wired, its low state is the other motion); ``object_pin`` reads high while the plate is held."""

    def __init__(self, controller: Any, spec: GripperConfig):
        if spec.open_pin is None and spec.close_pin is None:
            raise ConfigError("gripper: ur_tool_io needs open_pin or close_pin")
        self.c, self.spec = controller, spec
        self.fingers = _Fingers(controller)
        self.max_width = spec.max_width or 0.104
        self.width = self.fingers.width(self.max_width)
        if self.fingers.holding and spec.close_pin is not None:  # the cell starts with the plate gripped
            controller.tool_outputs |= 1 << spec.close_pin
        self._goal = self.width

    def resync(self) -> None:
        """After the cell was reset under it: the outputs closed on the plate if the fingers hold one."""
        self.fingers.resync()
        self.width = self._goal = self.fingers.width(self.width)
        if self.spec.close_pin is not None:
            bit = 1 << self.spec.close_pin
            self.c.tool_outputs = self.c.tool_outputs | bit if self.fingers.holding else self.c.tool_outputs & ~bit
        if self.spec.open_pin is not None:
            bit = 1 << self.spec.open_pin
            self.c.tool_outputs = self.c.tool_outputs & ~bit if self.fingers.holding else self.c.tool_outputs | bit

    def goal(self, outputs: int) -> float | None:
        """The opening [m] the outputs ask for; ``None`` to stay (both or neither pin high)."""
        opening = self.spec.open_pin is not None and bool(outputs >> self.spec.open_pin & 1)
        closing = self.spec.close_pin is not None and bool(outputs >> self.spec.close_pin & 1)
        if self.spec.open_pin is None:
            opening = not closing
        if self.spec.close_pin is None:
            closing = not opening
        if opening == closing:
            return None
        return self.max_width if opening else 0.0

    def step(self) -> None:
        goal = self.goal(self.c.tool_outputs)
        if goal is not None and goal != self._goal:  # a new motion starts from where the fingers are
            self._goal, self.width = goal, self.fingers.width(self.width)
        step = TOOL_IO_SPEED * self.c.period
        self.width += max(-step, min(step, self._goal - self.width))
        held = self.fingers.follow(self.width)
        if self.spec.object_pin is not None:
            bit = 1 << self.spec.object_pin
            self.c.tool_inputs = self.c.tool_inputs | bit if held else self.c.tool_inputs & ~bit

    def stop(self) -> None:
        return None


def publish_link(target: str, link: str) -> None:
    """Point the symbolic link ``link`` at ``target``, replacing a stale link; never replaces a file."""
    if os.path.lexists(link):
        if not os.path.islink(link):
            raise ConfigError(f"gripper.port '{link}' exists and is not a link; the emulator will not replace it")
        os.unlink(link)
    os.makedirs(os.path.dirname(os.path.abspath(link)), exist_ok=True)
    os.symlink(target, link)
