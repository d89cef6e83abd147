"""The arm file: YAML validated by pydantic. Unknown keys and bad values are errors naming the key.

Poses in the file are 6-lists ``[x, y, z, rx, ry, rz]`` (metres, rotation vector in radians).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rmskill.errors import ConfigError
from rmskill.geometry import Pose

Pose6 = Annotated[list[float], Field(min_length=6, max_length=6)]
Vec3 = Annotated[list[float], Field(min_length=3, max_length=3)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Workspace(_Strict):
    """Axis-aligned box the TCP must stay in, in the base frame [m]."""

    min: Vec3 = [-1.0, -1.0, 0.0]
    max: Vec3 = [1.0, 1.0, 1.2]

    @model_validator(mode="after")
    def _ordered(self) -> Workspace:
        for axis, lo, hi in zip("xyz", self.min, self.max, strict=True):
            if lo >= hi:
                raise ValueError(f"workspace min {axis}={lo} must be below max {axis}={hi}")
        return self


class Limits(_Strict):
    """The safety envelope's limits. SI units."""

    workspace: Workspace = Workspace()
    max_speed: float = Field(0.25, gt=0, description="TCP speed [m/s]")
    max_angular_speed: float = Field(1.0, gt=0, description="TCP angular speed [rad/s]")
    max_step: float = Field(0.01, gt=0, description="largest jump between two servo targets [m]")
    max_force: float = Field(60.0, gt=0, description="largest sensed contact force [N]")
    servo_timeout: float = Field(0.1, gt=0, description="servo watchdog: longest gap between commands [s]")


class GripperConfig(_Strict):
    """The gripper: ``sim`` (the simulator's own gripper), ``none``, or a gripper plugin (e.g. ``robotiq``)."""

    driver: str = "sim"
    port: str | None = None
    model: str | None = None
    mass: float = Field(0.9, ge=0, description="gripper mass [kg], part of the payload")
    center_of_mass: Vec3 = [0.0, 0.0, 0.06]
    max_width: float | None = Field(None, gt=0)
    timeout: float = Field(1.0, gt=0, description="reply timeout [s]")
    force: float = Field(40.0, gt=0, description="default grip force [N]")


class Truth(_Strict):
    """The simulated reality, where it differs from the nominal arm file. Read only by the
    simulator and by evaluation; skills and calibration never see it."""

    tcp_error: Pose6 = [0.0] * 6
    fixture_error: Pose6 | dict[str, Pose6] = [0.0] * 6
    grasp_offset: Pose6 = [0.0] * 6
    grasp_noise: Annotated[list[float], Field(min_length=2, max_length=2)] = [0.0, 0.0]
    latency_ms: float = Field(0.0, ge=0)
    wrench_noise_n: float = Field(0.0, ge=0)

    def fixture_error_for(self, name: str) -> Pose:
        err = self.fixture_error
        if isinstance(err, dict):
            return Pose.from_ur(err.get(name, [0.0] * 6))
        return Pose.from_ur(err)


class SimConfig(_Strict):
    """The simulator's settings.

    Attributes:
        seed: Seeds the simulator's per-episode noise.
        realtime: Each command also waits for the wall clock (time passes on its own, as on hardware).
        plates: Where the labware starts: ``None`` (default) one item in the gripper; a list of
            fixture names: one item starts seated in each of those fixtures and the gripper is empty
            (``[]``: nothing in the cell).
        truth: The simulated reality (below).
    """

    seed: int = 0
    realtime: bool = False
    plates: list[str] | None = None
    truth: Truth = Truth()


class Fixture(_Strict):
    """A named place in the cell. In the arm file either a bare pose (a ``slot``) or a mapping.

    Attributes:
        pose: Nominal ``base_T_fixture`` as ``[x, y, z, rx, ry, rz]`` (m, rad): the TCP pose of a
            seated object for a ``slot``; the fixture's origin for other kinds.
        kind: What the fixture is; a skill declares the kinds it accepts (``SkillSpec.fixture_kinds``)
            and calibration picks its procedure by kind. ``slot``: a place that holds one labware
            item (a shelf position, an instrument's deck position).
        geometry: Dimensions of the fixture, by name, for the skills and calibration procedures of
            its kind (SI units, e.g. ``rows``, ``pitch``).
    """

    pose: Pose6
    kind: str = Field("slot", pattern=r"^[a-z][a-z0-9_]*$")
    geometry: dict[str, float] = {}


class ArmConfig(_Strict):
    """One arm: which driver, where it is, its tool, its limits, its fixtures."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    driver: str
    model: str
    host: str = "127.0.0.1"
    tcp: Pose6 = [0.0] * 6
    home: list[float] | None = None
    limits: Limits = Limits()
    fixtures: dict[str, Fixture] = {}
    gripper: GripperConfig = GripperConfig()
    options: dict[str, Any] = {}
    sim: SimConfig | None = None

    @field_validator("fixtures", mode="before")
    @classmethod
    def _bare_poses(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"pose": f} if isinstance(f, list | tuple) else f for k, f in v.items()}
        return v

    @field_validator("fixtures")
    @classmethod
    def _fixture_names(cls, v: dict[str, Fixture]) -> dict[str, Fixture]:
        for key in v:
            if not key.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"fixture name {key!r} must be letters, digits, '_' or '-'")
        return v

    @model_validator(mode="after")
    def _plates_in_fixtures(self) -> ArmConfig:
        names = (self.sim.plates or []) if self.sim is not None else []
        if len(set(names)) != len(names):
            raise ValueError(f"sim.plates names a fixture twice ({names}); a fixture holds one item")
        for name in names:
            if name not in self.fixtures:
                raise ValueError(f"sim.plates names '{name}', which is not a fixture "
                                 f"(fixtures: {', '.join(sorted(self.fixtures)) or 'none'})")
        return self

    @property
    def flange_T_tcp(self) -> Pose:
        return Pose.from_ur(self.tcp)

    def fixture(self, name: str) -> Pose:
        """Nominal ``base_T_fixture``; a ``ConfigError`` lists the fixtures that exist."""
        if name not in self.fixtures:
            known = ", ".join(sorted(self.fixtures)) or "none"
            raise ConfigError(f"fixture '{name}' is not in the arm file '{self.name}' (fixtures: {known})")
        return Pose.from_ur(self.fixtures[name].pose)

    def fixture_kind(self, name: str) -> str:
        self.fixture(name)  # the ConfigError listing the fixtures
        return self.fixtures[name].kind

    def fixtures_of(self, kinds: tuple[str, ...] | list[str]) -> list[str]:
        """Names of the fixtures of any of ``kinds``, sorted."""
        return sorted(n for n, f in self.fixtures.items() if f.kind in kinds)

    @property
    def truth(self) -> Truth:
        return self.sim.truth if self.sim is not None else Truth()

    def with_changes(self, **changes: Any) -> ArmConfig:
        """A validated copy with top-level keys replaced (mappings within mappings merged key by key)."""
        data = self.model_dump()
        _merge(data, changes)
        return parse_arm_config(data, source=f"{self.name} (modified)")


def _merge(dst: dict, src: dict) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = value


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    more = f" (and {len(err.errors()) - 1} more problems)" if len(err.errors()) > 1 else ""
    return f"{source}: key '{loc}': {msg}{more}"


def parse_arm_config(data: Any, source: str = "arm file") -> ArmConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return ArmConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def load_arm_config(path_or_config: str | Path | ArmConfig | dict) -> ArmConfig:
    """Read and validate an arm file (or pass through an ``ArmConfig``/dict)."""
    if isinstance(path_or_config, ArmConfig):
        return path_or_config
    if isinstance(path_or_config, dict):
        return parse_arm_config(path_or_config)
    path = Path(path_or_config)
    if not path.is_file():
        raise ConfigError(f"arm file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_arm_config(data, source=str(path))
