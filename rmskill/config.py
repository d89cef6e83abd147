"""The arm file: YAML validated by pydantic. Unknown keys and bad values are errors naming the key.

Poses in the file are 6-lists ``[x, y, z, rx, ry, rz]`` (metres, rotation vector in radians).
Strict: numbers are numbers (no ``true`` or ``"1"`` for 1.0, no ``0x10``), every limit and size
has an upper bound, and duplicate keys, anchors and aliases are refused (``load_arm_config``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rmskill import registry
from rmskill.errors import ConfigError
from rmskill.geometry import Pose

#: Largest coordinate [m] or rotation-vector component [rad] anywhere in an arm file.
MAX_COORDINATE = 10.0
Coordinate = Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Pose6 = Annotated[list[Coordinate], Field(min_length=6, max_length=6)]
Vec3 = Annotated[list[Coordinate], Field(min_length=3, max_length=3)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
#: An arm file larger than this is refused unread [bytes].
MAX_FILE_BYTES = 128 * 1024
#: Deepest level of mappings within mappings and lists an arm file may have.
MAX_DEPTH = 16
#: Longest error message (the start is kept).
MAX_MESSAGE = 300


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


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


MAX_FIXTURES = 1000


class Limits(_Strict):
    """The safety envelope's limits. SI units."""

    workspace: Workspace = Workspace()
    max_speed: float = Field(0.25, gt=0, le=5.0, description="TCP speed [m/s]")
    max_angular_speed: float = Field(1.0, gt=0, le=10.0, description="TCP angular speed [rad/s]")
    max_step: float = Field(0.01, gt=0, le=0.5, description="largest jump between two servo targets [m]")
    max_force: float = Field(60.0, gt=0, le=2000.0, description="largest sensed contact force [N]")
    servo_timeout: float = Field(0.1, gt=0, le=10.0, description="servo watchdog: longest gap between commands [s]")
    max_servo_duration: float = Field(1.0, gt=0, le=10.0, description="longest duration of one servo command [s]")
    max_stiffness: float = Field(10000.0, gt=0, le=1e6, description="stiffest compliance a contact phase may ask "
                                 "for, translation [N/m]")
    max_rotational_stiffness: float = Field(1000.0, gt=0, le=1e5, description="stiffest compliance a contact phase "
                                            "may ask for, rotation [Nm/rad]")
    max_torque: float = Field(10.0, gt=0, le=500.0, description="largest torque a force-controlled axis may apply "
                              "[Nm]")


class GripperConfig(_Strict):
    """The gripper ``rmskill.connect()`` builds as ``arm.gripper``.

    ``driver``: ``sim`` (the simulator's own gripper), ``none`` (no gripper), or a plugin of the
    ``rmskill.grippers`` group: ``robotiq`` (serial, ``port``), ``ur_tool_io`` (UR tool digital I/O:
    ``open_pin``/``close_pin``/``object_pin``/``settle_time``), ``franka_hand`` (through pylibfranka).
    """

    driver: str = "sim"
    port: str | None = Field(None, max_length=256, description="serial device of a serial gripper, e.g. "
                             "/dev/ttyUSB0 or /tmp/ttyUR")
    model: str | None = Field(None, max_length=64, description="gripper model, e.g. 2f-85 or 2f-140 for robotiq")
    mass: float = Field(0.9, ge=0, le=50.0, description="gripper mass [kg], part of the payload")
    center_of_mass: Vec3 = [0.0, 0.0, 0.06]
    max_width: float | None = Field(None, gt=0, le=1.0, description="opening used by open() [m]; the model's "
                                    "stroke by default")
    timeout: float = Field(1.0, gt=0, le=60.0, description="reply timeout [s]")
    force: float = Field(40.0, gt=0, le=2000.0, description="default grip force [N]")
    open_pin: int | None = Field(0, ge=0, le=1, description="ur_tool_io: tool digital output that opens (None: unused)")
    close_pin: int | None = Field(1, ge=0, le=1, description="ur_tool_io: tool digital output that closes "
                                  "(None: unused)")
    object_pin: int | None = Field(None, ge=0, le=1, description="ur_tool_io: tool digital input that is high while "
                                   "the fingers hold an object (None: not wired)")
    settle_time: float = Field(0.5, ge=0, le=10.0, description="ur_tool_io: time the fingers take to open or close "
                               "[s]")

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        known = {"sim", "none", *registry.available("gripper")}
        if v not in known:
            raise ValueError(f"unknown gripper driver {v[:64]!r} (known: {', '.join(sorted(known))})")
        return v


class Truth(_Strict):
    """The simulated reality, where it differs from the nominal arm file. Read only by the
    simulator and by evaluation; skills and calibration never see it."""

    tcp_error: Pose6 = [0.0] * 6
    fixture_error: Pose6 | Annotated[dict[str, Pose6], Field(max_length=MAX_FIXTURES)] = [0.0] * 6
    grasp_offset: Pose6 = [0.0] * 6
    grasp_noise: Annotated[list[Annotated[float, Field(ge=0, le=100.0)]], Field(min_length=2, max_length=2)] = [
        0.0, 0.0]
    latency_ms: float = Field(0.0, ge=0, le=1000.0)
    wrench_noise_n: float = Field(0.0, ge=0, le=1000.0)

    def fixture_error_for(self, name: str) -> Pose:
        err = self.fixture_error
        if isinstance(err, dict):
            return Pose.from_ur(err.get(name, [0.0] * 6))
        return Pose.from_ur(err)


class SimConfig(_Strict):
    """The simulator's settings: what every simulated backend reads. A backend adds its own keys by
    subclassing this and naming the subclass in its driver class's ``sim_config``; the arm file's
    ``sim`` section is validated against the subclass of its driver.

    Attributes:
        seed: Seeds the simulator's per-episode noise.
        realtime: Each command also waits for the wall clock (time passes on its own, as on hardware).
        truth: The simulated reality (below).
    """

    seed: int = Field(0, ge=0, lt=2**63)
    realtime: bool = False
    truth: Truth = Truth()

    def check(self, config: ArmConfig) -> None:
        """Checks against the rest of the arm file (a backend's subclass adds its own; ``ValueError``)."""


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
    kind: str = Field("slot", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    geometry: Annotated[dict[Identifier, Annotated[float, Field(ge=-1e6, le=1e6)]], Field(max_length=64)] = {}


class ArmConfig(_Strict):
    """One arm: which driver, where it is, its tool, its limits, its fixtures."""

    name: Identifier
    driver: Identifier
    model: Identifier
    host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9_.:-]{1,253}$")
    tcp: Pose6 = [0.0] * 6
    home: Annotated[list[Annotated[float, Field(ge=-13.0, le=13.0)]], Field(min_length=1, max_length=16)] | None = (
        None)
    limits: Limits = Limits()
    fixtures: Annotated[dict[Identifier, Fixture], Field(max_length=MAX_FIXTURES)] = {}
    gripper: GripperConfig = GripperConfig()
    options: Annotated[dict[Identifier, Any], Field(max_length=64)] = {}
    sim: SimConfig | None = None

    @field_validator("fixtures", mode="before")
    @classmethod
    def _bare_poses(cls, v: Any) -> Any:
        if isinstance(v, dict):
            if len(v) > MAX_FIXTURES:
                raise ValueError(f"at most {MAX_FIXTURES} fixtures, got {len(v)}")
            return {k: {"pose": f} if isinstance(f, list | tuple) else f for k, f in v.items()}
        return v

    @model_validator(mode="after")
    def _fixtures_in_workspace(self) -> ArmConfig:
        box = self.limits.workspace
        for name, fixture in self.fixtures.items():
            for axis, v, lo, hi in zip("xyz", fixture.pose[:3], box.min, box.max, strict=True):
                if not lo <= v <= hi:
                    raise ValueError(f"fixture '{name}' {axis}={v} m is outside the workspace [{lo}, {hi}] m")
        if self.sim is not None:
            self.sim.check(self)
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


def _format_error(err: ValidationError, source: str, prefix: str = "") -> str:
    first = err.errors()[0]
    loc = prefix + ".".join(str(p)[:64] for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    more = f" (and {len(err.errors()) - 1} more problems)" if len(err.errors()) > 1 else ""
    return f"{source}: key '{loc}': {msg}{more}" if loc else f"{source}: {msg}{more}"


def validation_error(err: ValidationError, source: str) -> ConfigError:
    """A pydantic ``ValidationError`` as the one-line ``ConfigError`` an arm file gives (other YAML files too)."""
    return ConfigError(_one_line(_format_error(err, source)))


def one_line(message: str) -> str:
    """``message`` as one line of at most ``MAX_MESSAGE`` characters."""
    return _one_line(message)


def _one_line(message: str) -> str:
    """A message as one line of at most ``MAX_MESSAGE`` characters."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def _sim_schema(driver: Any) -> type[SimConfig]:
    """The ``SimConfig`` subclass the arm's driver declares (``sim_config``), else ``SimConfig``."""
    if not isinstance(driver, str):
        return SimConfig
    try:
        cls = registry.load("driver", driver)
    except ConfigError:
        return SimConfig  # the unknown driver is reported with its key by the arm file's own check
    schema = getattr(cls, "sim_config", SimConfig)
    return schema if isinstance(schema, type) and issubclass(schema, SimConfig) else SimConfig


def parse_arm_config(data: Any, source: str = "arm file") -> ArmConfig:
    if not isinstance(data, dict):
        raise ConfigError(_one_line(f"{source}: expected a mapping of keys, got {type(data).__name__}"))
    try:
        sim = data.get("sim")
        if isinstance(sim, dict):  # the simulator section as the arm's driver defines it
            data = {**data, "sim": _sim_schema(data.get("driver")).model_validate(sim)}
        return ArmConfig.model_validate(data)
    except ValidationError as err:
        if err.title != ArmConfig.__name__:  # raised by the simulator's own schema
            raise ConfigError(_one_line(_format_error(err, source, prefix="sim."))) from None
        raise ConfigError(_one_line(_format_error(err, source))) from None
    except (RecursionError, ValueError, OverflowError, TypeError) as err:  # e.g. an integer too long to convert
        raise ConfigError(_one_line(f"{source}: {type(err).__name__}: {err}")) from None


def parse_gripper_config(options: dict[str, Any], source: str = "gripper options") -> GripperConfig:
    """A ``GripperConfig`` from ``options``, given outside an arm file (``check-gripper``'s flags);
    a bad value is a one-line ``ConfigError`` naming ``source`` and the key."""
    try:
        return GripperConfig.model_validate(options)
    except ValidationError as err:
        raise ConfigError(_one_line(_format_error(err, source))) from None


class _ArmFileLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that refuses duplicate keys, anchors, aliases, merge keys, deep structures, and
    numbers other than plain decimals (no ``0x10``, ``0o7``, ``1_000``, ``1:30``, ``.inf``)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in an arm file",
                                              event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "YAML anchors (&name) are not allowed in an arm file",
                                              event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_DEPTH} levels deep",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(None, None, f"key {str(key)[:40]!r} is not a name",
                                                        key_node.start_mark)
            if key in out:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key[:64]}'",
                                                        key_node.start_mark)
            out[key] = self.construct_object(value_node, deep=deep)
        return out

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        if not _DECIMAL_INT.fullmatch(text):
            raise yaml.constructor.ConstructorError(None, None, f"{text[:40]!r} is not a plain decimal number",
                                                    node.start_mark)
        return int(text)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        text = self.construct_scalar(node)
        if not _DECIMAL_FLOAT.fullmatch(text):
            raise yaml.constructor.ConstructorError(None, None, f"{text[:40]!r} is not a plain decimal number",
                                                    node.start_mark)
        return float(text)


_DECIMAL_INT = re.compile(r"[-+]?[0-9]{1,30}")
_DECIMAL_FLOAT = re.compile(r"[-+]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][-+]?[0-9]{1,3})?")
_ArmFileLoader.add_constructor("tag:yaml.org,2002:int", _ArmFileLoader.construct_yaml_int)
_ArmFileLoader.add_constructor("tag:yaml.org,2002:float", _ArmFileLoader.construct_yaml_float)
_ArmFileLoader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node, True))


def read_arm_file(path: Path) -> Any:
    """The arm file's YAML as Python data; any problem is a one-line ``ConfigError`` naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {size} bytes is larger than an arm file may be ({MAX_FILE_BYTES} bytes)")
        text = path.read_bytes().decode("utf-8")
        return yaml.load(text, Loader=_ArmFileLoader)  # a SafeLoader subclass
    except ConfigError:
        raise
    except UnicodeDecodeError as err:
        raise ConfigError(_one_line(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})")) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(_one_line(f"{path}:{where} is not valid YAML ({err.problem or err.context})")) from None
    except yaml.YAMLError as err:
        raise ConfigError(_one_line(f"{path}: is not valid YAML ({err})")) from None
    except (OSError, RecursionError, ValueError, OverflowError, MemoryError) as err:
        raise ConfigError(_one_line(f"{path}: cannot be read ({type(err).__name__}: {err})")) from None


def load_arm_config(path_or_config: str | Path | ArmConfig | dict) -> ArmConfig:
    """Read and validate an arm file (or pass through an ``ArmConfig``/dict)."""
    if isinstance(path_or_config, ArmConfig):
        return path_or_config
    if isinstance(path_or_config, dict):
        return parse_arm_config(path_or_config)
    path = Path(path_or_config)
    if not path.is_file():
        raise ConfigError(_one_line(f"arm file '{path}' does not exist"))
    return parse_arm_config(read_arm_file(path), source=str(path))
