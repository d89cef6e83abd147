"""``plate_transfer``: pick a plate out of one nest and place it into another.

``rmskill.transfer(arm, "shelf_1", "shelf_2")`` or ``rmskill run plate_transfer --arm F --from shelf_1
--to shelf_2``. The placement aims the plate's centre, as the pick's wrist measured it in the fingers
(relative to the TCP the arm controls), at the nest. Before the pick the arm weighs its empty
gripper above the target; above the target with the plate it weighs again, against that reading,
to find where the plate sits after the way there (it may creep in the fingers), and once seated it
sets the plate down again onto that aim (``reseat``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rmskill.skill import Context, Skill, SkillResult
from rmskill.skills.plate_placement.skill import PlacementObserver, approach, nest_offset, weigh
from rmskill.transfers import Transfer


class PlateTransfer(Transfer):
    """``plate_pick`` then ``plate_placement``."""

    name = "plate_transfer"
    pick_skill = "plate_pick"
    place_skill = "plate_placement"

    tare: tuple[float, ...] | None = None

    def prepare(self, arm: Any, source: str, target: str) -> None:
        """Weigh the empty gripper where the placement will weigh the plate: above the target, at the
        placement's pre-insert height (its approach: up, across, down). A wrist's reading drifts with
        the arm's pose (a Franka's estimate from its joint torques does), so the tare is taken there."""
        self.tare = None
        if not arm.capabilities.senses_wrench:
            return
        cfg = self.place.config
        base_T_nest, source_kind = self.place.resolve_target(arm, target)
        ctx = Context(arm=arm, target=target, base_T_target=base_T_nest, target_source=source_kind,
                      start_time=float(arm.state().time))
        goal = nest_offset(base_T_nest, np.array([0.0, 0.0, -cfg.pre_insert_mm, 0.0]))
        gripper = arm.config.gripper
        arm.set_payload(gripper.mass, np.asarray(gripper.center_of_mass))
        approach(ctx, PlacementObserver(base_T_nest), goal, cfg.approach_speed, cfg.approach_accel,
                 self.place.rate_hz)
        reading = weigh(arm, goal, cfg.weigh_settle_s, cfg.weigh_s)
        if reading is not None and np.all(np.isfinite(np.concatenate(reading))):
            self.tare = tuple(float(v) for v in np.concatenate(reading))

    def handoff(self, pick_result: SkillResult, place: Skill) -> Skill:
        """The placement aims with the grasp offset the pick measured (0 where it measured none), weighs
        the plate above the target against the empty gripper's reading there (``prepare``) to see
        where it sits in the fingers after the way, and sets it down again onto its aim once seated
        (``reseat``)."""
        m = pick_result.measurements
        x, y = m.get("grasp_x_mm", 0.0), m.get("grasp_y_mm", 0.0)
        if not (math.isfinite(x) and math.isfinite(y)):
            x = y = 0.0
        return place.configure(grasp_x_mm=float(x), grasp_y_mm=float(y), tare=self.tare, reseat=True)
