"""Universal Robots backend: ``URArm`` on ur_rtde, and a controller emulator to test it against.

``URArm(config)`` drives a real (or emulated) e-Series arm; ``rmskill.drivers.ur.emulator``
serves a simulated UR5e on loopback with the interfaces ur_rtde uses.
"""

from rmskill.drivers.ur.driver import URArm

#: Libraries this backend needs at run time (``rmskill drivers`` imports them to check).
EXTRA = "ur"
REQUIRES = ('rtde_control', 'rtde_receive')

__all__ = ["URArm"]
