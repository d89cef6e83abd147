"""A tube rack's grid as the arm file declares it: rows, columns, pitch and the holes' shape.

Frame (the fixture's pose in the arm file): origin at the centre of hole A1 in the rack's top
surface, z down into the holes, x along a row (columns 1, 2, ...), y along a column (rows A, B, ...).
A hole's frame is the rack frame moved to that hole's centre; a seated tube's tip is ``depth`` below.
Shared by the simulator's rack builder, the rack calibration and the tube insertion skill.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, fields

import numpy as np

from rmskill.errors import ConfigError
from rmskill.geometry import Pose

_HOLE = re.compile(r"^([A-Z])([0-9]{1,2})$")


@dataclass(frozen=True)
class RackGeometry:
    """Attributes (SI units, as in the arm file's ``geometry``):
        rows, columns: Grid size (rows lettered A.., columns numbered 1..).
        pitch: Distance between neighbouring hole centres [m].
        hole_diameter: Hole diameter below the chamfer [m].
        chamfer: 45-degree lead-in at the top of each hole, width and depth [m].
        depth: Hole depth from the top surface to the floor [m].
    """

    rows: int = 4
    columns: int = 6
    pitch: float = 0.025
    hole_diameter: float = 0.0165
    chamfer: float = 0.001
    depth: float = 0.025

    @classmethod
    def from_fixture(cls, name: str, geometry: dict[str, float]) -> RackGeometry:
        """From an arm file fixture's ``geometry`` mapping; a ``ConfigError`` names unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(geometry) - known)
        if unknown:
            raise ConfigError(f"fixture '{name}': unknown rack geometry {unknown} (keys: {', '.join(sorted(known))})")
        values = {k: (int(v) if k in ("rows", "columns") else float(v)) for k, v in geometry.items()}
        rack = cls(**values)
        if not (1 <= rack.rows <= 26 and 1 <= rack.columns <= 99):
            raise ConfigError(f"fixture '{name}': a rack has 1-26 rows and 1-99 columns, not "
                              f"{rack.rows} x {rack.columns}")
        if not (0 < rack.hole_diameter < rack.pitch and rack.chamfer >= 0 and rack.depth > rack.chamfer):
            raise ConfigError(f"fixture '{name}': rack geometry must have 0 < hole_diameter < pitch and "
                              f"depth > chamfer >= 0 (got {values})")
        return rack

    @property
    def radius(self) -> float:
        return self.hole_diameter / 2

    def holes(self) -> list[str]:
        """Every hole's label, row by row: ``A1``, ``A2``, ..."""
        return [f"{string.ascii_uppercase[r]}{c + 1}" for r in range(self.rows) for c in range(self.columns)]

    def hole_xy(self, label: str) -> np.ndarray:
        """A hole's centre in the rack frame [m]; a ``ConfigError`` for a label off the grid."""
        match = _HOLE.match(label)
        row = string.ascii_uppercase.index(match.group(1)) if match else -1
        column = int(match.group(2)) - 1 if match else -1
        if not (0 <= row < self.rows and 0 <= column < self.columns):
            last = f"{string.ascii_uppercase[self.rows - 1]}{self.columns}"
            raise ConfigError(f"no hole '{label}' in a {self.rows} x {self.columns} rack (holes A1 to {last})")
        return np.array([column * self.pitch, row * self.pitch])

    def rack_T_hole(self, label: str) -> Pose:
        x, y = self.hole_xy(label)
        return Pose([x, y, 0.0])


def rack_of(config, target: str) -> tuple[str, str, RackGeometry]:
    """``rack_1/B3`` -> (``rack_1``, ``B3``, the rack's geometry), checked against the arm file."""
    fixture, _, hole = target.partition("/")
    config.fixture(fixture)  # a ConfigError naming the fixtures
    if config.fixture_kind(fixture) != "rack":
        raise ConfigError(f"'{fixture}' is a '{config.fixture_kind(fixture)}' fixture, not a rack")
    rack = RackGeometry.from_fixture(fixture, config.fixtures[fixture].geometry)
    if not hole:
        raise ConfigError(f"target '{target}' names a rack, not a hole: say which, e.g. '{fixture}/B3'")
    rack.hole_xy(hole)
    return fixture, hole, rack
