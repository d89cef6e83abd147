"""The simulated lab cell: table, arm, plate gripper, an SBS plate held by contact, shelf nests.

Frames: a fixture pose is the TCP pose at which the plate sits seated in that nest (z down,
x along the plate's long side), as an integrator teaches it. The TCP sits at the centre of the
held plate. Everything ``sim.truth`` changes is applied here: the gripper is mounted at the
true TCP and each nest is built at its true pose.
"""

from __future__ import annotations

import mujoco
import numpy as np

from rmskill.config import ArmConfig
from rmskill.drivers.mujoco import tube
from rmskill.drivers.mujoco.robots import ArmModel, add_arm
from rmskill.errors import DriverError
from rmskill.geometry import Pose

# ANSI/SLAS 1-2004 footprint and a typical 96-well plate height, [m].
PLATE_LENGTH, PLATE_WIDTH, PLATE_HEIGHT = 0.12776, 0.08548, 0.01435
PLATE_MASS = 0.15  # [kg], plate with a little medium
NEST_CLEARANCE = 0.0003  # per side [m]
WALL_HEIGHT, WALL_THICKNESS = 0.006, 0.006  # [m]
CHAMFER = 0.002  # lead-in width and depth at the top of each guide wall [m]
FINGER_OPEN = 0.052  # inner face of each finger at full opening, from the centre [m]
FINGER_STROKE = 0.030  # travel of each finger [m]
PAD_TOP, PAD_BOTTOM = -0.0070, -0.0025  # finger pad extent along the tool z, TCP frame [m]
PAD_HALF_X = 0.015  # half the pad's width along the plate's long side [m]
GRIPPER_MASS = 0.9  # [kg], palm and fingers

RGBA_PLATE = [0.85, 0.88, 0.95, 1.0]
RGBA_NEST = [0.55, 0.55, 0.6, 1.0]
RGBA_GRIPPER = [0.2, 0.2, 0.22, 1.0]


def _box(body, half, pos, quat=(1, 0, 0, 0), rgba=RGBA_NEST, contype=2, conaffinity=1, friction=0.25,
         name: str | None = None, mass: float | None = None) -> None:
    kwargs = dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half), pos=list(pos), quat=list(quat),
                  rgba=rgba, contype=contype, conaffinity=conaffinity, friction=[friction, 0.005, 0.0001])
    if name:
        kwargs["name"] = name
    if mass is not None:
        kwargs["mass"] = mass
    body.add_geom(**kwargs)


def add_gripper(flange, flange_T_tcp: Pose, model_name: str, open_: float = FINGER_OPEN,
                pads: tuple[float, float, float] = (PAD_TOP, PAD_BOTTOM, PAD_HALF_X), pad_affinity: int = 1) -> None:
    """A parallel plate gripper: palm on the flange, two fingers sliding along the tool y axis.

    ``open_``: inner pad face from the centre with the fingers open [m]; ``pads``: the pads' top and
    bottom along the tool z and half width along x, TCP frame [m]; ``pad_affinity``: what they touch.
    """
    pad_top, pad_bottom, pad_half_x = pads
    grip = flange.add_body(name="gripper", pos=flange_T_tcp.xyz.tolist(), quat=flange_T_tcp.wxyz.tolist())
    grip.add_site(name="tcp_true", size=[0.004, 0, 0], rgba=[1, 0, 0, 1])
    # Force/torque sensor frame at the flange, expressed in the gripper body.
    tcp_T_flange = flange_T_tcp.inverse()
    grip.add_site(name="ft", pos=tcp_T_flange.xyz.tolist(), quat=tcp_T_flange.wxyz.tolist(), size=[0.002, 0, 0])
    # Palm just below the flange; the tool axis is +z of the TCP frame (pointing away from the flange).
    depth = float(flange_T_tcp.xyz[2])
    palm_half_z = 0.02
    palm_z = -depth + palm_half_z
    finger_mass = 0.05
    palm_mass = GRIPPER_MASS - 2 * finger_mass
    _box(grip, [0.03, 0.065, palm_half_z], [0, 0, palm_z], rgba=RGBA_GRIPPER, contype=0, conaffinity=0,
         mass=palm_mass)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        finger = grip.add_body(name=f"finger_{side}", pos=[0, sign * open_, 0])
        finger.add_joint(name=f"finger_{side}", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, -sign, 0],
                         range=[0, FINGER_STROKE], limited=mujoco.mjtLimited.mjLIMITED_TRUE, damping=5.0,
                         armature=0.01)
        # Upper finger (clear of the plate) and the rubber pad that touches the plate side.
        reach = (depth - 2 * palm_half_z + pad_top) / 2  # from the palm down to the pad
        _box(finger, [0.012, 0.004, reach], [0, sign * 0.006, pad_top - reach], rgba=RGBA_GRIPPER,
             contype=0, conaffinity=0, mass=finger_mass * 0.6)
        pad_half_z = (pad_bottom - pad_top) / 2
        _box(finger, [pad_half_x, 0.003, pad_half_z], [0, sign * 0.003, pad_top + pad_half_z],
             rgba=[0.1, 0.1, 0.1, 1], contype=1, conaffinity=pad_affinity, friction=1.2, name=f"pad_{side}",
             mass=finger_mass * 0.4)


def plate_name(index: int) -> str:
    """Body, joint and box geom name of plate ``index`` (``plate``, ``plate_1``, ...)."""
    return "plate" if index == 0 else f"plate_{index}"


def plate_count(config: ArmConfig) -> int:
    """Plates the cell is built with: one per ``slot`` fixture plus one for the gripper, so that
    ``SimWorld.reset`` can lay out any arrangement of the arm file's nests."""
    slots = sum(f.kind == "slot" for f in config.fixtures.values())
    listed = len(config.sim.plates or []) if config.sim is not None else 0
    return 1 + max(slots, listed)


def add_plate(spec: mujoco.MjSpec, index: int = 0) -> None:
    name = plate_name(index)
    plate = spec.worldbody.add_body(name=name, pos=[0.3, 0.2 * index, 0.5])
    plate.add_freejoint(name=name)
    _box(plate, [PLATE_LENGTH / 2, PLATE_WIDTH / 2, PLATE_HEIGHT / 2], [0, 0, 0], rgba=RGBA_PLATE,
         contype=1, conaffinity=1, friction=0.25, name=name, mass=PLATE_MASS)
    # A1 corner marker, visual only.
    plate.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.008, 0.008, 0.0002],
                   pos=[PLATE_LENGTH / 2 - 0.012, PLATE_WIDTH / 2 - 0.012, -PLATE_HEIGHT / 2 - 0.0002],
                   rgba=[0.9, 0.3, 0.2, 1], contype=0, conaffinity=0, mass=0)


def _rot_y(angle: float) -> list[float]:
    return [float(np.cos(angle / 2)), 0.0, float(np.sin(angle / 2)), 0.0]


def _rot_z(angle: float) -> list[float]:
    return [float(np.cos(angle / 2)), 0.0, 0.0, float(np.sin(angle / 2))]


def add_nest(spec: mujoco.MjSpec, name: str, base_T_fixture: Pose) -> None:
    """An SBS nest: seat plus four chamfered guide walls, in the fixture frame (z down)."""
    nest = spec.worldbody.add_body(name=f"nest_{name}", pos=base_T_fixture.xyz.tolist(),
                                   quat=base_T_fixture.wxyz.tolist())
    seat_z = PLATE_HEIGHT / 2  # plate bottom when seated (z points down)
    top_z = seat_z - WALL_HEIGHT
    outer_x = PLATE_LENGTH / 2 + NEST_CLEARANCE + WALL_THICKNESS
    outer_y = PLATE_WIDTH / 2 + NEST_CLEARANCE + WALL_THICKNESS
    _box(nest, [outer_x, outer_y, 0.004], [0, 0, seat_z + 0.004])  # the seat
    nest.add_site(name=f"seat_{name}", size=[0.003, 0, 0], rgba=[0, 1, 0, 1])
    straight = WALL_HEIGHT - CHAMFER
    t = WALL_THICKNESS
    # Each wall: along the long side (normal x) or the short side (normal y). Build for +x and rotate.
    for k, (inner, length) in enumerate(
        [(PLATE_LENGTH / 2 + NEST_CLEARANCE, outer_y), (PLATE_WIDTH / 2 + NEST_CLEARANCE, outer_x)] * 2
    ):
        yaw = [0.0, np.pi / 2, np.pi, -np.pi / 2][k]
        wall = nest.add_frame(quat=_rot_z(yaw))
        # Lower straight part, top cap behind the chamfer, and the 45-degree chamfer face.
        wall.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[t / 2, length, straight / 2],
                      pos=[inner + t / 2, 0, seat_z - straight / 2], rgba=RGBA_NEST, contype=2, conaffinity=1,
                      friction=[0.25, 0.005, 0.0001])
        wall.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[(t - CHAMFER) / 2, length, CHAMFER / 2],
                      pos=[inner + CHAMFER + (t - CHAMFER) / 2, 0, top_z + CHAMFER / 2], rgba=RGBA_NEST,
                      contype=2, conaffinity=1, friction=[0.25, 0.005, 0.0001])
        half_t = 0.002
        mid = np.array([inner + CHAMFER / 2, top_z + CHAMFER / 2])
        normal = np.array([-1.0, -1.0]) / np.sqrt(2.0)  # into the cavity and up (z is down)
        centre = mid - normal * half_t
        wall.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[CHAMFER / np.sqrt(2.0), length, half_t],
                      pos=[centre[0], 0, centre[1]], quat=_rot_y(-3 * np.pi / 4), rgba=RGBA_NEST,
                      contype=2, conaffinity=1, friction=[0.25, 0.005, 0.0001])



def add_shelf_slot(spec: mujoco.MjSpec, name: str, base_T_fixture: Pose, geometry: dict | None = None) -> None:
    """A ``slot`` fixture: an SBS nest on a shelf board with a leg (board and leg visual only)."""
    add_nest(spec, name, base_T_fixture)
    under = base_T_fixture.apply([0.0, 0.0, PLATE_HEIGHT / 2 + 0.008 + 0.01])
    _box(spec.worldbody, [0.09, 0.075, 0.01], under, rgba=[0.45, 0.35, 0.25, 1], contype=0, conaffinity=0)
    leg = max(under[2] - 0.01, 0.001) / 2
    _box(spec.worldbody, [0.03, 0.03, leg], [under[0], under[1], leg], rgba=[0.4, 0.4, 0.42, 1], contype=0,
         conaffinity=0)


#: Builder per arm-file fixture kind: ``build(spec, name, true base_T_fixture, geometry)``.
FIXTURE_BUILDERS = {"slot": add_shelf_slot, "rack": tube.add_rack}


def build_spec(config: ArmConfig, model: ArmModel) -> mujoco.MjSpec:
    """The whole cell for one arm file, with ``sim.truth`` applied."""
    truth = config.truth
    spec = mujoco.MjSpec()
    spec.modelname = f"rmskill_{config.name}"
    spec.compiler.degree = False
    spec.option.timestep = model.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.option.noslip_iterations = 0
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 960
    spec.stat.extent = 1.2
    spec.stat.center = [0.35, 0.0, 0.3]
    world = spec.worldbody
    world.add_light(pos=[0.5, -0.5, 2.0], dir=[-0.2, 0.2, -1.0], diffuse=[0.8, 0.8, 0.8])
    world.add_light(pos=[-0.5, 0.8, 1.5], dir=[0.3, -0.4, -1.0], diffuse=[0.4, 0.4, 0.4])
    _box(world, [0.9, 0.8, 0.02], [0.3, 0, -0.02], rgba=[0.82, 0.78, 0.7, 1], contype=0, conaffinity=0)
    world.add_camera(name="overview", pos=[1.25, -0.95, 0.75], xyaxes=[0.6, 0.8, 0, -0.3, 0.22, 0.93])

    flange = add_arm(spec, model)
    flange_T_tcp_true = config.flange_T_tcp @ Pose.from_ur(truth.tcp_error)
    holds_tube = config.gripper.model == "tube"  # tube fingers, and a tube in place of the plate
    if holds_tube:
        add_gripper(flange, flange_T_tcp_true, model.name, tube.TUBE_OPEN,
                    (tube.TUBE_PAD_TOP, tube.TUBE_PAD_BOTTOM, tube.TUBE_PAD_HALF_X), pad_affinity=4)
    else:
        add_gripper(flange, flange_T_tcp_true, model.name)
    for side in ("left", "right"):
        act = spec.add_actuator(name=f"finger_{side}", target=f"finger_{side}", trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=2000.0, kv=60.0)
        act.forcerange = [-config.gripper.force, config.gripper.force]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [0.0, FINGER_STROKE]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    # The fingers are coupled (rack and pinion, as on a real parallel gripper): a sideways push on a
    # held plate reaches the wrist instead of sliding both fingers across the palm.
    couple = spec.add_equality(name="fingers_coupled", type=mujoco.mjtEq.mjEQ_JOINT, name1="finger_left",
                               name2="finger_right")
    couple.data[:5] = [0.0, 1.0, 0.0, 0.0, 0.0]
    couple.solref = [0.005, 1.0]
    spec.add_sensor(name="ft_force", type=mujoco.mjtSensor.mjSENS_FORCE, objtype=mujoco.mjtObj.mjOBJ_SITE,
                    objname="ft")
    spec.add_sensor(name="ft_torque", type=mujoco.mjtSensor.mjSENS_TORQUE, objtype=mujoco.mjtObj.mjOBJ_SITE,
                    objname="ft")
    if holds_tube:
        tube.add_tube(spec)
    else:
        for index in range(plate_count(config)):
            add_plate(spec, index)
    for name, fixture in config.fixtures.items():
        if fixture.kind not in FIXTURE_BUILDERS:
            raise DriverError(f"fixture '{name}': the simulator cannot build a '{fixture.kind}' (kinds: "
                              f"{', '.join(sorted(FIXTURE_BUILDERS))})")
        FIXTURE_BUILDERS[fixture.kind](spec, name, config.fixture(name) @ truth.fixture_error_for(name),
                                       fixture.geometry)
    # Stiff, well-damped contacts: as stiff as the time step allows, so a 40 N grip or a plate
    # pressed into its seat sinks in by micrometres, not millimetres.
    for geom in spec.geoms:
        if geom.contype or geom.conaffinity:
            geom.solref = [0.005, 1.0]
            geom.solimp = [0.99, 0.999, 0.0005, 0.5, 2.0]
    return spec
