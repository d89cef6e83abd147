"""The privileged scripted expert: it reads the simulator's truth (where the tube really is in the
fingers, where the hole really is) and steers the tube's tip onto the true hole axis with the tube
upright in it. Used only to label data for the base policy; a real arm never runs it.
"""

from __future__ import annotations

import numpy as np

from rmskill.calibration.rack_geometry import rack_of
from rmskill.skill import Context
from rmskill.skills.tube_insertion.skill import (
    COMMAND_DELTA,
    DEPTH,
    FX,
    FY,
    FZ,
    POSE,
    TX,
    TY,
    InsertionConfig,
    Z,
)


class InsertionExpert:
    """``expert(obs, ctx) -> normalised action`` for ``TubeInsertion.run(..., act=expert)``.

    Attributes:
        gain: Fraction of the remaining lateral and tilt error of the command corrected per step.
        integral: Fraction of the command's tracking offset (measured minus commanded) removed per step.
        lead_in_mm: Height of the tip above the top surface [mm] below which it slows down.
        contact_n, contact_nm: Sensed force [N] and moment about the tip [Nm] above which it steers
            by the truth: laterally once the tube touches something, the tilt once a moment shows.
            Without contact it aims where the arm believes the hole is and keeps the tilt, as the
            student must (what it cannot sense, the student could only learn as a bias).
        push_n: Downward force it holds once the tube is on the floor [N].
    """

    def __init__(self, config: InsertionConfig | None = None, gain: float = 0.3, integral: float = 0.1,
                 lead_in_mm: float = 2.0, contact_n: float = 1.0, contact_nm: float = 0.02, push_n: float = 5.0):
        self.config = config or InsertionConfig()
        self.gain, self.integral = gain, integral
        self.lead_in_mm, self.contact_n, self.contact_nm, self.push_n = lead_in_mm, contact_n, contact_nm, push_n

    def goal(self, ctx: Context) -> np.ndarray:
        """The measured-TCP command (hole frame: mm, deg) that puts the true tip on the true hole
        axis at the top surface with the tube along that axis."""
        sim = ctx.arm.sim
        tcp = ctx.arm.state().base_T_tcp
        tcp_T_tube = tcp.inverse() @ sim.plate_pose()
        fixture, hole, rack = rack_of(ctx.arm.config, ctx.target)
        true_hole = sim.fixture_pose(fixture) @ rack.rack_T_hole(hole)
        goal = ctx.base_T_target.inverse() @ true_hole @ tcp_T_tube.inverse()
        return np.array([*(goal.xyz * 1000.0), *np.degrees(goal.rotvec[:2])])

    def __call__(self, obs: np.ndarray, ctx: Context) -> np.ndarray:
        g = self.goal(ctx)
        z = obs[Z]
        if np.linalg.norm(obs[[FX, FY, FZ]]) < self.contact_n:
            g[:2] = 0.0
        if np.hypot(obs[TX], obs[TY]) < self.contact_nm:
            g[3:] = (obs[POSE] + obs[COMMAND_DELTA])[3:]  # keep the commanded tilt
        e = g - obs[POSE]
        e_cmd = g - (obs[POSE] + obs[COMMAND_DELTA])
        d = np.zeros(5)
        d[[0, 1, 3, 4]] = self.gain * e_cmd[[0, 1, 3, 4]] + self.integral * (e - e_cmd)[[0, 1, 3, 4]]
        depth, push = obs[DEPTH], -obs[FZ]
        lateral = float(np.hypot(*e[:2]))
        if z > depth - 1.0 and push > 1.0:
            d[2] = 0.05 if push < self.push_n else -0.02 * (push - self.push_n)
        elif -self.lead_in_mm < z < 1.0 and lateral > 0.6:
            d[2] = 0.0  # at the chamfer, off the axis: let the lateral correction work first
        elif z < -self.lead_in_mm - 1.0:
            d[2] = 0.5
        elif z < depth - 3.0:
            d[2] = 0.25
        else:
            d[2] = 0.1
        return np.clip(d / np.asarray(self.config.action_scale), -1.0, 1.0)
