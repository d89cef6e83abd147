"""Robotiq 2F-85 / 2F-140 adaptive grippers over serial Modbus RTU, and a simulated one for tests.

``RobotiqGripper`` implements ``rmskill.arm.Gripper``; ``SimulatedRobotiq`` serves a simulated
gripper on a pseudo-terminal; ``check_gripper`` runs the ``rmskill check-gripper`` steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmskill.drivers.robotiq.check import check_gripper
from rmskill.drivers.robotiq.gripper import RobotiqGripper

#: Libraries this backend needs at run time (``rmskill drivers`` imports them to check).
REQUIRES = ('serial', 'minimalmodbus')

if TYPE_CHECKING:
    from rmskill.drivers.robotiq.simulator import SimulatedRobotiq

__all__ = ["RobotiqGripper", "SimulatedRobotiq", "check_gripper"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so ``python -m rmskill.drivers.robotiq.simulator`` runs it only once.
    if name == "SimulatedRobotiq":
        from rmskill.drivers.robotiq.simulator import SimulatedRobotiq

        return SimulatedRobotiq
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
