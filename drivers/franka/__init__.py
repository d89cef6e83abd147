"""Franka FR3 backend over pylibfranka (libfranka's FCI), tested against franky-sim.

``FrankaArm(config)`` is the ``Arm``; its 1 kHz loop runs in a separate control process, so
this package can be imported (and the arm file validated) without pylibfranka installed.
"""

from rmskill.drivers.franka.arm import FrankaArm, describe_failure
from rmskill.drivers.franka.options import FrankaOptions, parse_options

#: Libraries this backend needs at run time (``rmskill drivers`` imports them to check).
EXTRA = "franka"
REQUIRES = ('pylibfranka',)

__all__ = ["FrankaArm", "FrankaOptions", "describe_failure", "parse_options"]
