"""The privileged scripted expert: it reads the simulator's truth (where the plate really is in the
gripper, where the nest really is) and steers the plate into the true seat. Used only to label
data for the base policy; a real arm never runs it.
"""

from __future__ import annotations

import numpy as np

from rmskill.skill import Context
from rmskill.skills.plate_placement.skill import COMMAND_DELTA, FZ, POSE, PlacementConfig, Z, yaw_of


class PlacementExpert:
    """``expert(obs, ctx) -> normalised action`` for ``PlatePlacement.run(..., act=expert)``.

    Attributes:
        gain: Fraction of the remaining lateral and yaw error of the command corrected per step.
        integral: Fraction of the command's tracking offset (measured minus commanded) removed per
            step, so the measured TCP, not only the command, ends on the goal.
        jam_mm, jam_deg: Misalignment beyond which the lead-in cannot guide the plate: lift.
        hover_mm: Height above the seat [mm] below which it moves slowly.
        push_n: Downward force it holds once the plate is on the seat [N].
        chamfer_push_n: Force on the lead-in above which it eases off [N].
        lead_in_mm: Height above the seat [mm] below which it steers by the truth.
    """

    def __init__(self, config: PlacementConfig | None = None, gain: float = 0.35, jam_mm: float = 1.5,
                 jam_deg: float = 1.0, hover_mm: float = 10.0, push_n: float = 6.0, chamfer_push_n: float = 8.0,
                 lead_in_mm: float = 7.0, integral: float = 0.1):
        self.config = config or PlacementConfig()
        self.gain, self.jam_mm, self.jam_deg = gain, jam_mm, jam_deg
        self.hover_mm, self.push_n, self.chamfer_push_n = hover_mm, push_n, chamfer_push_n
        self.lead_in_mm, self.integral = lead_in_mm, integral

    def goal(self, ctx: Context) -> np.ndarray:
        """The measured-TCP pose (nest frame: mm, deg) at which the plate sits in the true seat."""
        sim = ctx.arm.sim
        tcp = ctx.arm.state().base_T_tcp
        tcp_T_plate = tcp.inverse() @ sim.plate_pose()
        goal = ctx.base_T_target.inverse() @ sim.fixture_pose(ctx.target) @ tcp_T_plate.inverse()
        return np.array([*(goal.xyz * 1000.0), yaw_of(goal)])

    def __call__(self, obs: np.ndarray, ctx: Context) -> np.ndarray:
        g = self.goal(ctx)
        if g[2] - obs[Z] > self.lead_in_mm:
            # Clear of the nest the expert aims where the arm believes the nest is, as the student
            # must; the truth steers only in the lead-in, where contact can tell the student too.
            g[[0, 1, 3]] = 0.0
        e = g - obs[POSE]  # from where the TCP is
        e_cmd = g - (obs[POSE] + obs[COMMAND_DELTA])  # from where it is commanded to be
        lateral = float(np.hypot(e[0], e[1]))
        height = e[2]  # [mm] above the seat (the nest z axis points down, into the nest)
        push = -obs[FZ]
        d = np.zeros(4)
        seated = height < 1.0 and push > 1.0
        if seated:  # on the seat the plate floats in the grip: stop steering, press gently
            d[2] = 0.05 if push < self.push_n else -0.02 * (push - self.push_n)
        else:
            d[:2] = self.gain * e_cmd[:2] + self.integral * (e[:2] - e_cmd[:2])
            d[3] = self.gain * e_cmd[3] + self.integral * (e[3] - e_cmd[3])
            if (lateral > self.jam_mm or abs(e[3]) > self.jam_deg) and height < self.hover_mm:
                d[2] = -0.5  # on the wall or the chamfer, far off: lift clear and realign
            elif push > self.chamfer_push_n:
                d[2] = -0.05  # pressing on the lead-in: ease off while the lateral correction works
            elif height > self.hover_mm:
                d[2] = min(1.5, 0.5 * (height - self.hover_mm) + 0.3)
            elif height > 1.5:
                d[2] = 0.3  # 15 mm/s through the lead-in
            else:
                d[2] = 0.1  # <= 5 mm/s in the last millimetres
        return np.clip(d / np.asarray(self.config.action_scale), -1.0, 1.0)
