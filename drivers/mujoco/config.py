"""The simulator's own keys in the arm file's ``sim`` section (``MujocoArm.sim_config``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rmskill.config import SimConfig


class MujocoSimConfig(SimConfig):
    """``sim`` for the MuJoCo cell: the common keys (seed, realtime, truth) and where the plates start.

    Attributes:
        plates: Where the plates start: ``None`` (default) one plate in the gripper; a list of
            fixture names: one plate starts seated in each of those fixtures and the gripper is
            empty (``[]``: no plate in the cell).
    """

    plates: list[str] | None = Field(None, max_length=1000)

    def check(self, config: Any) -> None:
        names = self.plates or []
        if len(set(names)) != len(names):
            raise ValueError(f"sim.plates names a fixture twice ({names}); a fixture holds one plate")
        unknown = [n for n in names if n not in config.fixtures]
        if unknown:
            raise ValueError(f"sim.plates names {unknown}, not fixtures of this arm "
                             f"(fixtures: {', '.join(sorted(config.fixtures)) or 'none'})")
