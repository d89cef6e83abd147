"""rmskill: precise robot skills on any arm (UR, Franka, MuJoCo), one interface."""

from rmskill.arm import Arm, ArmState, Capabilities, Gripper, GripperState, Wrench
from rmskill.connect import connect
from rmskill.errors import (
    CalibrationError,
    ConfigError,
    DriverError,
    RmskillError,
    SafetyViolation,
    SkillError,
    StartConditionError,
)
from rmskill.geometry import Pose

__version__ = "0.1.0"

__all__ = [
    "Arm", "ArmState", "CalibrationError", "Capabilities", "ConfigError", "DriverError", "Gripper",
    "GripperState", "Pose", "RmskillError", "SafetyViolation", "SkillError", "StartConditionError", "Wrench",
    "__version__",
    "connect", "load_skill", "transfer",
]


def __getattr__(name: str):
    # Lazy so that `import rmskill` stays light (no MuJoCo/torch until a skill is loaded).
    if name == "load_skill":
        from rmskill.skill import load_skill

        return load_skill
    if name == "transfer":
        from rmskill.transfers import transfer

        return transfer
    raise AttributeError(f"module 'rmskill' has no attribute {name!r}")
