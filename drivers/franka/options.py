"""The Franka driver's ``options`` in the arm file, validated like the rest of the arm file.

Example::

    options:
      realtime: ignore              # only for simulators / non-real-time kernels
      controller: joint_impedance   # or cartesian_impedance
      collision_thresholds:
        torque: [20, 20, 18, 18, 16, 14, 12]      # [Nm], or {lower: [...], upper: [...]}
        force: [20, 20, 20, 25, 25, 25]           # [N, N, N, Nm, Nm, Nm]
      joint_impedance: [3000, 3000, 3000, 2500, 2500, 2000, 2000]   # [Nm/rad]
      cartesian_impedance: [3000, 3000, 3000, 300, 300, 300]        # [N/m, Nm/rad]
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rmskill.config import ArmConfig
from rmskill.errors import ConfigError

Positive = Annotated[float, Field(gt=0)]


Vec6 = Annotated[list[Positive], Field(min_length=6, max_length=6)]
Vec7 = Annotated[list[Positive], Field(min_length=7, max_length=7)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Thresholds(_Strict):
    """Contact/collision thresholds: libfranka's lower (contact) and upper (collision) bounds."""

    lower: list[Positive]
    upper: list[Positive]


class CollisionThresholds(_Strict):
    """Joint torques [Nm] (7) and Cartesian forces/torques [N, Nm] (6); a plain list sets both bounds."""

    torque: Vec7 | Thresholds = [20.0, 20.0, 18.0, 18.0, 16.0, 14.0, 12.0]
    force: Vec6 | Thresholds = [20.0, 20.0, 20.0, 25.0, 25.0, 25.0]

    def bounds(self) -> tuple[list[float], list[float], list[float], list[float]]:
        """(lower torque, upper torque, lower force, upper force), checked for length."""
        out: list[list[float]] = []
        for name, value, n in (("torque", self.torque, 7), ("force", self.force, 6)):
            lower, upper = (value.lower, value.upper) if isinstance(value, Thresholds) else (value, value)
            if len(lower) != n or len(upper) != n:
                raise ConfigError(f"options.collision_thresholds.{name}: lower and upper need {n} numbers")
            out += [list(lower), list(upper)]
        return out[0], out[1], out[2], out[3]


class FrankaOptions(_Strict):
    """Driver settings. Dynamics bounds apply to the 1 kHz interpolation, not to the robot."""

    realtime: Literal["enforce", "ignore"] = "enforce"
    controller: Literal["joint_impedance", "cartesian_impedance"] = "joint_impedance"
    collision_thresholds: CollisionThresholds | None = None
    joint_impedance: Vec7 | None = None
    cartesian_impedance: Vec6 | None = None
    max_acceleration: Positive = Field(2.0, description="TCP acceleration [m/s^2]")
    max_jerk: Positive = Field(200.0, description="TCP jerk [m/s^3]")
    max_angular_acceleration: Positive = Field(5.0, description="[rad/s^2]")
    max_angular_jerk: Positive = Field(500.0, description="[rad/s^3]")
    max_joint_speed: Positive = Field(1.0, description="[rad/s]")
    max_joint_acceleration: Positive = Field(3.0, description="[rad/s^2]")
    max_joint_jerk: Positive = Field(300.0, description="[rad/s^3]")
    tracking_bandwidth: Positive = Field(60.0, description="interpolator bandwidth [rad/s]")
    move_tolerance_mm: Positive = Field(1.0, description="move_to arrival tolerance [mm]")
    connect_timeout: Positive = Field(10.0, description="[s]")


def parse_options(config: ArmConfig) -> FrankaOptions:
    """Validate ``config.options``; a ``ConfigError`` names the offending key."""
    try:
        return FrankaOptions.model_validate(config.options)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if "[" not in str(p))  # drop union-branch tags
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"arm '{config.name}': key 'options.{loc}': {msg}") from None


def control_settings(config: ArmConfig, options: FrankaOptions) -> dict:
    """Everything the control process needs, as plain JSON-able values (SI units)."""
    lim = config.limits
    return {
        "host": config.host,
        "realtime": options.realtime,
        "mode": "CartesianImpedance" if options.controller == "cartesian_impedance" else "JointImpedance",
        "collision": options.collision_thresholds.bounds() if options.collision_thresholds else None,
        "joint_impedance": options.joint_impedance,
        "cartesian_impedance": options.cartesian_impedance,
        "linear": [lim.max_speed, options.max_acceleration, options.max_jerk],
        "angular": [lim.max_angular_speed, options.max_angular_acceleration, options.max_angular_jerk],
        "joint": [options.max_joint_speed, options.max_joint_acceleration, options.max_joint_jerk],
        "omega": options.tracking_bandwidth,
        "flange_T_tcp": config.flange_T_tcp.to_franka(),
    }
