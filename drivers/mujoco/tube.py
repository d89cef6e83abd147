"""The simulated tube cell: a test tube, fingers that hold it, and tube racks (fixture kind ``rack``).

A cell whose gripper is ``model: tube`` (``gripper: {driver: sim, model: tube}`` in the arm file)
gets tube fingers and a tube in place of the plate. The TCP of such a cell is the held tube's tip
(the centre of its bottom face), z pointing out of the tip. The tube's body frame is the same, so
``sim.truth.grasp_offset`` is the true ``tcp_T_tube``: its rotation tilts the tube about its tip.

The tube is a cylinder; the pads grip a square collar around its upper part (hidden, as wide as
the tube) so that the grip holds by friction at several points. Each rack hole is a ring of flat
wall segments with a 45-degree chamfer ring at the top and a flat floor, stiff like the nests.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from rmskill.calibration.rack_geometry import RackGeometry
from rmskill.geometry import Pose

if TYPE_CHECKING:
    from rmskill.drivers.mujoco.world import SimWorld

TUBE_DIAMETER, TUBE_LENGTH = 0.016, 0.100  # [m]
TUBE_MASS = 0.02  # [kg], a tube with a little liquid
GRIP_TOP, GRIP_BOTTOM = -0.097, -0.060  # the collar the pads hold, tube frame z (tip at 0) [m]
TUBE_OPEN = 0.016  # inner pad face from the centre with the fingers open [m]
TUBE_PAD_TOP, TUBE_PAD_BOTTOM = -0.088, -0.068  # tube pads along the tool z, TCP frame [m]
TUBE_PAD_HALF_X = 0.006
HOLE_SEGMENTS = 20  # flat wall segments around each hole
WALL = 0.0035  # wall thickness around each hole [m]

RGBA_TUBE = [0.75, 0.85, 0.95, 0.9]
RGBA_RACK = [0.3, 0.45, 0.7, 1.0]


def add_tube(spec: mujoco.MjSpec) -> None:
    """A free tube, parked until an episode grips it (body frame at the tip, z out of the tip)."""
    tube = spec.worldbody.add_body(name="tube", pos=[0.0, -0.6, 0.1])
    tube.add_freejoint(name="tube")
    r = TUBE_DIAMETER / 2
    tube.add_geom(name="tube", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[r, TUBE_LENGTH / 2, 0],
                  pos=[0, 0, -TUBE_LENGTH / 2], rgba=RGBA_TUBE, contype=1, conaffinity=1,
                  friction=[0.3, 0.005, 0.0001], mass=TUBE_MASS)
    half = (GRIP_BOTTOM - GRIP_TOP) / 2
    tube.add_geom(name="tube_grip", type=mujoco.mjtGeom.mjGEOM_BOX, size=[r * 0.7, r, half],
                  pos=[0, 0, GRIP_TOP + half], rgba=[0, 0, 0, 0], contype=4, conaffinity=0,
                  friction=[1.0, 0.005, 0.0001], mass=0.0)


def _rot(axis: int, angle: float) -> list[float]:
    q = [math.cos(angle / 2), 0.0, 0.0, 0.0]
    q[1 + axis] = math.sin(angle / 2)
    return q


def add_rack(spec: mujoco.MjSpec, name: str, base_T_fixture: Pose, geometry: dict[str, float] | None = None) -> None:
    """A ``rack`` fixture: its holes on the grid of ``geometry`` (``RackGeometry``), at its true pose."""
    rack = RackGeometry.from_fixture(name, geometry or {})
    r, c, t = rack.radius, rack.chamfer, WALL
    n = HOLE_SEGMENTS
    half_w = (r + t) * math.tan(math.pi / n) * 1.05  # segments overlap at the corners: no gaps
    straight = rack.depth - c
    half_c = 0.0005
    mid = np.array([r + c / 2, c / 2])
    chamfer_at = mid - np.array([-1.0, -1.0]) / math.sqrt(2.0) * half_c  # behind the 45-degree face
    colour = dict(rgba=RGBA_RACK, contype=2, conaffinity=1, friction=[0.3, 0.005, 0.0001])
    for label in rack.holes():
        pose = base_T_fixture @ rack.rack_T_hole(label)
        hole = spec.worldbody.add_body(name=f"{name}/{label}", pos=pose.xyz.tolist(), quat=pose.wxyz.tolist())
        for k in range(n):
            seg = hole.add_frame(quat=_rot(2, 2 * math.pi * k / n))
            box = mujoco.mjtGeom.mjGEOM_BOX
            seg.add_geom(type=box, size=[t / 2, half_w, straight / 2], pos=[r + t / 2, 0, c + straight / 2], **colour)
            if c > 0:
                seg.add_geom(type=box, size=[(t - c) / 2, half_w, c / 2], pos=[r + c + (t - c) / 2, 0, c / 2],
                             **colour)
                seg.add_geom(type=box, size=[c / math.sqrt(2.0), half_w, half_c],
                             pos=[chamfer_at[0], 0, chamfer_at[1]], quat=_rot(1, -3 * math.pi / 4), **colour)
        hole.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[r + t, r + t, 0.002], pos=[0, 0, rack.depth + 0.002],
                      **colour)
    # The block the holes are cut in, and its stand (visual only).
    span = np.array([(rack.columns - 1) * rack.pitch, (rack.rows - 1) * rack.pitch])
    centre = base_T_fixture.apply([*(span / 2), rack.depth / 2 + 0.002])
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[*(span / 2 + rack.pitch / 2 - 0.004),
                            rack.depth / 2 - 0.003], pos=centre.tolist(), quat=base_T_fixture.wxyz.tolist(),
                            rgba=[0.3, 0.45, 0.7, 0.35], contype=0, conaffinity=0)
    leg = max(centre[2] - rack.depth / 2, 0.001) / 2
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.03, 0.03, leg],
                            pos=[centre[0], centre[1], leg], rgba=[0.4, 0.4, 0.42, 1], contype=0, conaffinity=0)


def close_fingers_on_tube(world: SimWorld) -> None:
    """Start with the pads on the tube's collar and squeezing (an already gripped tube)."""
    from rmskill.drivers.mujoco.workcell import FINGER_STROKE

    arm = world.arm
    m, d = arm.model, arm.data
    r = TUBE_DIAMETER / 2
    zs = (TUBE_PAD_TOP, TUBE_PAD_BOTTOM)
    faces = np.array([[x, sy * r, z] for sy in (1, -1) for x in (-TUBE_PAD_HALF_X, TUBE_PAD_HALF_X) for z in zs])
    y = world.grasp.apply(faces)[:, 1]
    for side, q in (("left", TUBE_OPEN - y[:4].max()), ("right", TUBE_OPEN + y[4:].min())):
        d.qpos[m.joint(f"finger_{side}").qposadr[0]] = q + 2e-5
    d.ctrl[arm._fingers] = FINGER_STROKE
    mujoco.mj_forward(m, d)
