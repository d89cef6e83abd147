"""Universal Robots backend: ``URArm`` on ur_rtde, and a controller emulator to test it against.

``URArm(config)`` drives a real (or emulated) e-Series arm; ``rmskill.drivers.ur.emulator``
serves a simulated UR5e on loopback with the interfaces ur_rtde uses.
"""

from rmskill.drivers.ur.driver import URArm

__all__ = ["URArm"]
