"""The privileged scripted expert for the pick's lift: it reads the simulator's truth (where the
plate is in the true nest) and steers the arm so the plate rises through the middle of the guide
walls. Used only to label data for the base policy; a real arm never runs it.
"""

from __future__ import annotations

import numpy as np

from rmskill.skill import Context
from rmskill.skills.plate_pick.skill import POSE, PickConfig
from rmskill.skills.plate_placement.skill import COMMAND_DELTA, yaw_of


class PickExpert:
    """``expert(obs, ctx) -> normalised action`` for ``PlatePick.run(..., act=expert)``.

    Attributes:
        gain: Fraction of the command's remaining lateral and yaw error corrected per step.
        integral: Fraction of the tracking offset (measured minus commanded) removed per step.
        rise_mm: Rise per control step [mm].
    """

    def __init__(self, config: PickConfig | None = None, gain: float = 0.35, integral: float = 0.1,
                 rise_mm: float = 0.4):
        self.config = config or PickConfig()
        self.gain, self.integral, self.rise_mm = gain, integral, rise_mm

    def goal(self, obs: np.ndarray, ctx: Context) -> np.ndarray:
        """The measured-TCP pose (nest frame: mm, deg) that puts the held plate mid-nest."""
        sim = ctx.arm.sim
        plate = sim.fixture_pose(ctx.target).inverse() @ sim.plate_pose()
        off = np.array([*(plate.xyz * 1000.0), yaw_of(plate)])
        goal = obs[POSE] - off
        goal[2] = obs[POSE][2]
        return goal

    def __call__(self, obs: np.ndarray, ctx: Context) -> np.ndarray:
        g = self.goal(obs, ctx)
        e = g - obs[POSE]
        e_cmd = g - (obs[POSE] + obs[COMMAND_DELTA])
        d = np.zeros(4)
        d[[0, 1, 3]] = self.gain * e_cmd[[0, 1, 3]] + self.integral * (e[[0, 1, 3]] - e_cmd[[0, 1, 3]])
        d[2] = -self.rise_mm
        return np.clip(d / np.asarray(self.config.action_scale), -1.0, 1.0)
