"""The embedded MuJoCo backend: a UR5e or FR3 with a plate gripper in a lab cell."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; read when mujoco is first imported

from rmskill.drivers.mujoco.driver import MujocoArm
from rmskill.drivers.mujoco.world import SimWorld

#: Libraries this backend needs at run time (``rmskill drivers`` imports them to check).
REQUIRES = ('mujoco',)

__all__ = ["MujocoArm", "SimWorld"]
