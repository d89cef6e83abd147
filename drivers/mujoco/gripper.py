"""The simulated plate gripper behind the ``Gripper`` interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rmskill.arm import Gripper, GripperState
from rmskill.drivers.mujoco.workcell import FINGER_OPEN, FINGER_STROKE

if TYPE_CHECKING:
    from rmskill.drivers.mujoco.driver import MujocoArm


class SimGripper(Gripper):
    """Two coupled fingers, force-limited; the arm holds its pose while the fingers move."""

    def __init__(self, arm: MujocoArm):
        self._arm = arm
        self._open = FINGER_OPEN  # inner pad face at full opening, from the centre [m] (the model's, once built)

    @property
    def max_width(self) -> float:
        m = self._arm.model
        if m is not None:
            self._open = float(m.body("finger_left").pos[1])
        return 2 * self._open

    def _finger_q(self) -> np.ndarray:
        m, d = self._arm.model, self._arm.data
        return np.array([d.qpos[m.joint(f"finger_{s}").qposadr[0]] for s in ("left", "right")])

    def width(self) -> float:
        """Distance between the finger pads [m]."""
        if self._arm.data is None:
            return self.max_width
        return float(self.max_width - self._finger_q().sum())

    def state(self) -> GripperState:
        d = self._arm.data
        m = self._arm.model
        speed = sum(abs(d.qvel[m.joint(f"finger_{s}").dofadr[0]]) for s in ("left", "right"))
        target = float(d.ctrl[self._arm._fingers[0]])
        blocked = target - float(self._finger_q().mean()) > 0.0005
        return GripperState(self.width(), bool(speed > 1e-3), bool(blocked and speed < 1e-2))

    def move(self, width: float, speed: float | None = None, force: float | None = None) -> GripperState:
        """Drive both fingers to ``width`` [m]; returns once they stop (at the width or an object)."""
        arm = self._arm
        arm._require()
        goal = float(np.clip(self.max_width / 2.0 - width / 2.0, 0.0, FINGER_STROKE))
        finger_speed = (speed or 0.1) / 2.0  # each finger covers half the width change
        if force is not None:
            arm.model.actuator_forcerange[arm._fingers] = [-force, force]
        if arm.ctrl.mode != "cartesian":
            arm.hold()
        q = float(arm.data.ctrl[arm._fingers[0]])
        dt = 0.002
        while abs(goal - q) > 1e-9:  # ramp the finger target at the commanded speed
            q += float(np.clip(goal - q, -finger_speed * dt, finger_speed * dt))
            arm.data.ctrl[arm._fingers] = q
            arm.advance(dt)
        for _ in range(50):  # let the fingers settle on the object, at most 0.5 s
            arm.advance(0.01)
            if not self.state().moving:
                break
        state = self.state()
        arm.sim.holding(self._plate_between_pads())
        return state

    def follow(self, width: float) -> None:
        """Set the fingers' target opening [m] without stepping the simulation, for a controller that
        steps the arm itself (the UR emulator's tool follows its gripper's finger position this way)."""
        self._arm.data.ctrl[self._arm._fingers] = float(np.clip(self.max_width / 2.0 - width / 2.0, 0.0, FINGER_STROKE))

    def update_holding(self) -> bool:
        """Tell the world whether the plate is held (both pads touch it); returns that."""
        held = self._plate_between_pads()
        if held != (self._arm.sim.grasp is not None):
            self._arm.sim.holding(held)
        return held

    def _plate_between_pads(self) -> bool:
        """True when both finger pads touch one plate (contact, not a guess from the width)."""
        m, d = self._arm.model, self._arm.data
        pads = {m.geom("pad_left").id, m.geom("pad_right").id}
        touching: dict[int, set[int]] = {}
        for geom in self._arm.sim.plate_geoms:
            touching[geom] = set()
        for c in d.contact[: d.ncon]:
            pair = {int(c.geom1), int(c.geom2)}
            for plate in pair & touching.keys():
                touching[plate] |= pair & pads
        return any(t == pads for t in touching.values())
