"""The fleet file: the cells that fine-tune one skill together (``rmskill finetune SKILL --fleet F``).

YAML, strict as the arm file (the same safe loader: no duplicate keys, anchors or aliases)::

    name: lab-fleet                     # optional
    cells:
      - arm: emulated-ur5e-a.yaml       # an arm file, relative to this file
        node: 10.0.0.12                 # optional: the Ray node (IP or node id) that drives this arm
      - arm: ../arms/sim-fr3-perturbed.yaml

Each cell is a real, emulated or simulated arm. Arms of one ``model`` share a learner (and a weights
folder); the arm names must differ, and so must the hosts the arm files name (a controller each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rmskill.config import ArmConfig, load_arm_config, one_line, read_arm_file, validation_error
from rmskill.errors import ConfigError

#: Most cells a fleet file may list.
MAX_CELLS = 256
NodeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,253}$")]


class CellEntry(BaseModel):
    """One cell of the fleet file: its arm file and, optionally, the Ray node that drives it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    arm: Annotated[str, Field(min_length=1, max_length=1024)]
    node: NodeName | None = None


class FleetFile(BaseModel):
    """The fleet file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")] | None = None
    cells: Annotated[list[CellEntry], Field(min_length=1, max_length=MAX_CELLS)]


@dataclass(frozen=True)
class Cell:
    """One validated cell: its arm file (resolved), the arm's config, the node to run on (or any)."""

    arm_file: Path
    config: ArmConfig
    node: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> str:
        return self.config.model


@dataclass(frozen=True)
class Fleet:
    path: Path
    name: str
    cells: list[Cell]

    @property
    def models(self) -> list[str]:
        """The arm models of the fleet, in the order they first appear."""
        return list(dict.fromkeys(c.model for c in self.cells))


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet file and every arm file it lists; any problem is one ``ConfigError`` line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(one_line(f"fleet file '{path}' does not exist"))
    try:
        spec = FleetFile.model_validate(read_arm_file(path))
    except ValidationError as err:
        raise validation_error(err, str(path)) from None
    cells: list[Cell] = []
    for k, entry in enumerate(spec.cells):
        arm_file = (path.parent / entry.arm).resolve()
        try:
            config = load_arm_config(arm_file)
        except ConfigError as err:
            raise ConfigError(one_line(f"{path}: cells[{k}]: {err}")) from None
        cells.append(Cell(arm_file, config, entry.node))
    _check_distinct(path, cells)
    return Fleet(path, spec.name or path.stem, cells)


def _check_distinct(path: Path, cells: list[Cell]) -> None:
    """Two cells may not be one arm: distinct names, and distinct hosts for arms that are not simulated."""
    seen: dict[str, int] = {}
    hosts: dict[str, int] = {}
    for k, cell in enumerate(cells):
        if cell.name in seen:
            raise ConfigError(one_line(f"{path}: cells[{seen[cell.name]}] and cells[{k}] are both arm "
                                        f"'{cell.name}'; each cell needs an arm of its own name"))
        seen[cell.name] = k
        if "host" not in cell.config.model_fields_set:  # a simulated arm reaches no controller
            continue
        if cell.config.host in hosts:
            other = cells[hosts[cell.config.host]].name
            raise ConfigError(one_line(f"{path}: arms '{other}' and '{cell.name}' are both at host "
                                        f"{cell.config.host}; one controller cannot be two cells"))
        hosts[cell.config.host] = k
