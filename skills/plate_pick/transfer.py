"""``plate_transfer``: pick a plate out of one nest and place it into another.

``rmskill.transfer(arm, "shelf_1", "shelf_2")`` or ``rmskill run plate_transfer --arm F --from shelf_1
--to shelf_2``. The placement aims the plate's centre, as the pick's wrist measured it in the fingers
(relative to the TCP the arm controls), at the nest.
"""

from __future__ import annotations

import math

from rmskill.skill import Skill, SkillResult
from rmskill.transfers import Transfer


class PlateTransfer(Transfer):
    """``plate_pick`` then ``plate_placement``."""

    name = "plate_transfer"
    pick_skill = "plate_pick"
    place_skill = "plate_placement"

    def handoff(self, pick_result: SkillResult, place: Skill) -> Skill:
        """The placement aims with the grasp offset the pick measured (0 where it measured none)."""
        m = pick_result.measurements
        x, y = m.get("grasp_x_mm", 0.0), m.get("grasp_y_mm", 0.0)
        if not (math.isfinite(x) and math.isfinite(y)):
            x = y = 0.0
        return place.configure(grasp_x_mm=float(x), grasp_y_mm=float(y))
