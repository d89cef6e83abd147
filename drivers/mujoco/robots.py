"""Arm models built offline with MjSpec from published kinematic and inertial parameters.

UR5e: Universal Robots' standard DH table and link masses/centres of mass.
FR3: Franka's modified (Craig) DH table; inertial values from the published Panda/FR3 set.
Meshes are not needed: links are capsules sized to the kinematics (visual only; the arm links do
not collide, the gripper, plate and workcell do).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from rmskill.errors import ConfigError


@dataclass(frozen=True)
class Link:
    """One DH row plus the link's inertial data (in the link's DH frame)."""

    a: float  # [m]
    d: float  # [m]
    alpha: float  # [rad]
    mass: float  # [kg]
    com: tuple[float, float, float]  # [m]
    lower: float  # joint range [rad]
    upper: float
    torque: float  # peak joint torque [Nm]
    armature: float  # reflected rotor inertia [kg m^2]


@dataclass(frozen=True)
class ArmModel:
    """Everything the simulator needs to know about one arm model."""

    name: str
    convention: str  # "dh" (standard) or "mdh" (Craig's modified)
    links: tuple[Link, ...]
    flange_d: float  # modified DH: flange offset along the last z [m]
    rate_hz: float  # native servo rate
    timestep: float  # physics step [s]
    home: tuple[float, ...]  # joint positions [rad]
    stiffness: tuple[float, float]  # Cartesian impedance: translation [N/m], rotation [Nm/rad]
    reach: float  # [m]

    @property
    def dof(self) -> int:
        return len(self.links)

    @property
    def span(self) -> float:
        """Sum of the link offsets [m]: bounds the distance from any joint axis to the flange."""
        return sum(abs(link.a) + abs(link.d) for link in self.links) + self.flange_d

    def base_T_flange(self, q: np.ndarray) -> np.ndarray:
        """Forward kinematics of the DH table: the flange as a 4x4 matrix at joints ``q`` [rad]."""
        out = np.eye(4)
        for link, theta in zip(self.links, np.asarray(q, dtype=float).tolist(), strict=True):
            ct, st, ca, sa = np.cos(theta), np.sin(theta), np.cos(link.alpha), np.sin(link.alpha)
            if self.convention == "dh":  # Rz(q) Tz(d) Tx(a) Rx(alpha)
                step = [[ct, -st * ca, st * sa, link.a * ct], [st, ct * ca, -ct * sa, link.a * st],
                        [0.0, sa, ca, link.d], [0.0, 0.0, 0.0, 1.0]]
            else:  # Rx(alpha) Tx(a) Rz(q) Tz(d)
                step = [[ct, -st, 0.0, link.a], [st * ca, ct * ca, -sa, -sa * link.d],
                        [st * sa, ct * sa, ca, ca * link.d], [0.0, 0.0, 0.0, 1.0]]
            out = out @ np.array(step)
        out[:3, 3] += out[:3, 2] * self.flange_d
        return out


_PI2 = np.pi / 2

UR5E = ArmModel(
    name="ur5e",
    convention="dh",
    links=(
        Link(0.0, 0.1625, _PI2, 3.761, (0.0, -0.02561, 0.00193), -2 * np.pi, 2 * np.pi, 150.0, 0.4),
        Link(-0.425, 0.0, 0.0, 8.058, (0.2125, 0.0, 0.11336), -2 * np.pi, 2 * np.pi, 150.0, 0.4),
        Link(-0.3922, 0.0, 0.0, 2.846, (0.15, 0.0, 0.0265), -np.pi, np.pi, 150.0, 0.2),
        Link(0.0, 0.1333, _PI2, 1.37, (0.0, -0.0018, 0.01634), -2 * np.pi, 2 * np.pi, 28.0, 0.1),
        Link(0.0, 0.0997, -_PI2, 1.3, (0.0, 0.0018, 0.01634), -2 * np.pi, 2 * np.pi, 28.0, 0.1),
        Link(0.0, 0.0996, 0.0, 0.365, (0.0, 0.0, -0.001159), -2 * np.pi, 2 * np.pi, 28.0, 0.1),
    ),
    flange_d=0.0,
    rate_hz=500.0,
    timestep=0.002,
    home=(2.8018, -1.8438, 1.8748, -1.6018, -1.5708, -1.9105),  # TCP [0.4, 0, 0.3], tool down
    stiffness=(4000.0, 300.0),
    reach=0.85,
)

FR3 = ArmModel(
    name="fr3",
    convention="mdh",
    links=(
        Link(0.0, 0.333, 0.0, 4.97, (0.0039, 0.0021, -0.0476), -2.7437, 2.7437, 87.0, 0.1),
        Link(0.0, 0.0, -_PI2, 0.647, (-0.0031, -0.0287, 0.0035), -1.7837, 1.7837, 87.0, 0.1),
        Link(0.0, 0.316, _PI2, 3.229, (0.0275, 0.0393, -0.0665), -2.9007, 2.9007, 87.0, 0.1),
        Link(0.0825, 0.0, _PI2, 3.588, (-0.0532, 0.1044, 0.0275), -3.0421, -0.1518, 87.0, 0.1),
        Link(-0.0825, 0.384, -_PI2, 1.226, (-0.012, 0.041, -0.0384), -2.8065, 2.8065, 12.0, 0.05),
        Link(0.0, 0.0, _PI2, 1.667, (0.0601, -0.0141, -0.0105), 0.5445, 4.5169, 12.0, 0.05),
        Link(0.088, 0.0, _PI2, 0.736, (0.0105, -0.0043, 0.0616), -3.0159, 3.0159, 12.0, 0.05),
    ),
    flange_d=0.107,
    rate_hz=1000.0,
    timestep=0.001,
    home=(0.099, -0.3444, -0.0874, -2.2308, -0.031, 1.8874, 0.0264),  # TCP [0.45, 0, 0.35], tool down
    stiffness=(3000.0, 200.0),
    reach=0.855,
)

MODELS = {m.name: m for m in (UR5E, FR3)}


def arm_model(name: str) -> ArmModel:
    if name not in MODELS:
        raise ConfigError(f"model '{name}' is not simulated (simulated models: {', '.join(MODELS)})")
    return MODELS[name]


def _quat_x(angle: float) -> list[float]:
    return [float(np.cos(angle / 2)), float(np.sin(angle / 2)), 0.0, 0.0]


def _add_link_geom(body: mujoco.MjsBody, start: np.ndarray, end: np.ndarray, radius: float, rgba) -> None:
    if np.linalg.norm(end - start) < 1e-6:
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[radius, 0, 0], pos=start.tolist(),
                      contype=0, conaffinity=0, rgba=rgba, mass=0)
        return
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_CAPSULE, fromto=[*start, *end], size=[radius, 0, 0],
                  contype=0, conaffinity=0, rgba=rgba, mass=0)


def add_arm(spec: mujoco.MjSpec, model: ArmModel, base_pos=(0.0, 0.0, 0.0)) -> mujoco.MjsBody:
    """Add the arm's kinematic chain under the world body; returns the flange body.

    Joint names are ``joint1..jointN``, motor actuators ``motor1..motorN`` (gear 1, torque
    limited). The flange body's frame is the tool flange (z out of the flange).
    """
    grey, blue = [0.7, 0.72, 0.75, 1.0], [0.25, 0.45, 0.75, 1.0]
    parent = spec.worldbody.add_body(name="base", pos=list(base_pos))
    parent.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.075, 0.04, 0], pos=[0, 0, 0.04],
                    contype=0, conaffinity=0, rgba=grey, mass=0)
    for i, link in enumerate(model.links, start=1):
        if model.convention == "dh":
            # T = Rz(q) Tz(d) Tx(a) Rx(alpha): the joint turns about the parent's z axis.
            pos = [link.a, 0.0, link.d]
            axis = [0.0, float(np.sin(link.alpha)), float(np.cos(link.alpha))]
            jpos = [-link.a, 0.0, 0.0]
            body = parent.add_body(name=f"link{i}", pos=pos, quat=_quat_x(link.alpha))
            seg_start = np.array([-link.a, 0.0, 0.0])
            seg_start = seg_start - np.array([0.0, np.sin(link.alpha), np.cos(link.alpha)]) * link.d
            _add_link_geom(body, seg_start, np.zeros(3), 0.045 if i < 4 else 0.035, blue if i % 2 else grey)
        else:
            # T = Rx(alpha) Tx(a) Rz(q) Tz(d): the joint turns about the body's own z axis.
            ca, sa = np.cos(link.alpha), np.sin(link.alpha)
            pos = [link.a, -sa * link.d, ca * link.d]
            axis, jpos = [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]
            body = parent.add_body(name=f"link{i}", pos=pos, quat=_quat_x(link.alpha))
            _add_link_geom(body, np.zeros(3), np.array([0.0, 0.0, -link.d]), 0.05 if i < 5 else 0.04,
                           blue if i % 2 else grey)
        body.mass = link.mass
        body.ipos = list(link.com)
        body.inertia = [max(0.002, 0.02 * link.mass)] * 3
        body.explicitinertial = True
        body.add_joint(name=f"joint{i}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=axis, pos=jpos,
                       range=[link.lower, link.upper], limited=mujoco.mjtLimited.mjLIMITED_TRUE,
                       armature=link.armature, damping=0.5)
        act = spec.add_actuator(name=f"motor{i}", target=f"joint{i}", trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_motor()
        act.ctrlrange = [-link.torque, link.torque]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        parent = body
    flange = parent.add_body(name="flange", pos=[0.0, 0.0, model.flange_d])
    flange.add_site(name="flange", size=[0.005, 0, 0])
    return flange
