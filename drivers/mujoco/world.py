"""``SimWorld``: what only a simulator can do: reset episodes, teleport, read ground truth, render.

Skills and calibration never use it to decide anything; evaluation, tests and the simulated
operator do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco
import numpy as np

from rmskill.errors import DriverError
from rmskill.geometry import Pose

if TYPE_CHECKING:
    from rmskill.drivers.mujoco.driver import MujocoArm


class SimWorld:
    """Ground truth and episode control for one ``MujocoArm``."""

    def __init__(self, arm: MujocoArm):
        self.arm = arm
        seed = arm.config.sim.seed if arm.config.sim else 0
        self.rng = np.random.default_rng(seed)
        m = arm.model
        # The labware the gripper holds: the plate, or in a tube cell (``gripper.model: tube``) the tube.
        self.item = "tube" if arm.config.gripper.model == "tube" else "plate"
        self.held_geom = "tube_grip" if self.item == "tube" else "plate"  # what the finger pads touch
        self._plate_q = m.joint(self.item).qposadr[0]
        self._plate_v = m.joint(self.item).dofadr[0]
        self._tcp_true = m.site("tcp_true").id
        self._scratch = mujoco.MjData(m)
        self.grasp: Pose | None = None  # true tcp_T_plate of the current episode

    # --- truth --------------------------------------------------------------------------
    @property
    def truth(self):
        return self.arm.config.truth

    def fixture_pose(self, name: str) -> Pose:
        """True ``base_T_fixture`` (the seated plate's pose)."""
        return self.arm.config.fixture(name) @ self.truth.fixture_error_for(name)

    def flange_T_tcp(self) -> Pose:
        return self.arm.config.flange_T_tcp @ Pose.from_ur(self.truth.tcp_error)

    def tcp_pose(self) -> Pose:
        """True ``base_T_tcp`` (where the physical tool point is)."""
        d = self.arm.data
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self._tcp_true])
        return Pose(d.site_xpos[self._tcp_true].copy(), quat)

    def plate_pose(self) -> Pose:
        d = self.arm.data
        i = self._plate_q
        return Pose(d.qpos[i: i + 3].copy(), d.qpos[i + 3: i + 7].copy())

    def placement_error(self, fixture: str) -> tuple[float, float]:
        """Plate against the nest's true seat: translation [mm] and rotation angle [deg]."""
        plate, seat = self.plate_pose(), self.fixture_pose(fixture)
        return plate.distance_mm(seat), plate.angle_deg(seat)

    # --- episode control ----------------------------------------------------------------
    def _set_plate(self, pose: Pose) -> None:
        d = self.arm.data
        d.qpos[self._plate_q: self._plate_q + 3] = pose.xyz
        d.qpos[self._plate_q + 3: self._plate_q + 7] = pose.wxyz
        d.qvel[self._plate_v: self._plate_v + 6] = 0.0

    def sample_grasp(self) -> Pose:
        """True ``tcp_T_plate`` for one episode: the grasp offset plus seeded per-episode noise."""
        mm, deg = self.truth.grasp_noise
        noise = Pose.from_rotvec(
            self.rng.normal(0.0, mm / 1000.0, 3) * np.array([1.0, 0.0, 0.3]),
            np.array([0.0, 0.0, 1.0]) * np.radians(self.rng.normal(0.0, deg)),
        )
        return Pose.from_ur(self.truth.grasp_offset) @ noise

    def reset(self, tcp_pose: Pose | None = None, q: np.ndarray | None = None, plate: bool | None = None,
              seed: int | None = None) -> None:
        """Start an episode: arm at ``tcp_pose`` (or ``q``, or home), plate gripped if ``plate``
        (``None``: as the arm file's ``sim.plates`` says: gripped by default, else seated in the
        fixture it names, or nowhere); ``False`` parks it out of reach."""
        layout = self.arm.config.sim.plates if self.arm.config.sim is not None else None
        from_layout = plate is None
        if from_layout:
            plate = layout is None
        arm = self.arm
        m, d = arm.model, arm.data
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mujoco.mj_resetData(m, d)
        arm._pending.clear()
        n = arm.arm_model.dof
        d.qpos[:n] = arm.ctrl.home if q is None else q
        if tcp_pose is not None:
            d.qpos[:n] = self.solve_ik(tcp_pose, d.qpos[:n])
        d.ctrl[arm._fingers] = 0.0
        mujoco.mj_forward(m, d)
        arm.hold(reanchor=True)
        if plate:
            self.grasp = self.sample_grasp()
            self._set_plate(self.tcp_pose() @ self.grasp)
            if self.item == "tube":
                from rmskill.drivers.mujoco.tube import close_fingers_on_tube

                close_fingers_on_tube(self)
            else:
                self._close_fingers_on_plate()
            self.holding(True)
        else:
            self.holding(False)
            seated = layout[0] if from_layout and layout else None  # in its nest, or parked out of reach
            self._set_plate(self.fixture_pose(seated) if seated else Pose([0.0, -0.6, 0.0075]))
            mujoco.mj_forward(m, d)
        arm.advance(0.3)  # settle: the episode starts at rest
        arm.hold()

    def holding(self, held: bool) -> None:
        """Record whether the plate is in the gripper; the controller carries its weight if so."""
        from rmskill.drivers.mujoco.tube import TUBE_LENGTH, TUBE_MASS
        from rmskill.drivers.mujoco.workcell import PLATE_MASS

        ctrl = self.arm.ctrl
        if held:
            self.grasp = self.tcp_pose().inverse() @ self.plate_pose()
            flange_T_plate = self.flange_T_tcp() @ self.grasp
            mass, com = PLATE_MASS, np.array(flange_T_plate.xyz)
            if self.item == "tube":
                mass, com = TUBE_MASS, np.array((flange_T_plate @ Pose([0.0, 0.0, -TUBE_LENGTH / 2])).xyz)
            ctrl.extra_payload, ctrl.extra_com = mass, com
        else:
            self.grasp = None
            ctrl.extra_payload = 0.0

    def _close_fingers_on_plate(self) -> None:
        """Start with the fingers touching the plate and squeezing (an already gripped plate)."""
        from rmskill.drivers.mujoco.workcell import FINGER_OPEN, FINGER_STROKE, PAD_HALF_X, PLATE_WIDTH

        arm = self.arm
        m, d = arm.model, arm.data
        # The plate's long sides where the pads (+-15 mm along x) will touch them, in the TCP frame.
        sides = np.array([[x, sy * PLATE_WIDTH / 2, 0.0] for sy in (1, -1) for x in (-PAD_HALF_X, PAD_HALF_X)])
        y = self.grasp.apply(sides)[:, 1]
        for side, q in (("left", FINGER_OPEN - y[:2].max()), ("right", FINGER_OPEN + y[2:].min())):
            d.qpos[m.joint(f"finger_{side}").qposadr[0]] = q + 2e-5
        d.ctrl[arm._fingers] = FINGER_STROKE
        mujoco.mj_forward(m, d)

    def solve_ik(self, base_T_tcp: Pose, q0: np.ndarray, true_tcp: bool = False, tol_mm: float = 1e-3) -> np.ndarray:
        """Joint positions that put the configured (or the true) TCP at ``base_T_tcp``."""
        arm = self.arm
        m, d = arm.model, self._scratch
        n = arm.arm_model.dof
        d.qpos[:] = arm.data.qpos
        d.qpos[:n] = q0
        tcp = self.flange_T_tcp() if true_tcp else arm.flange_T_tcp
        lo, hi = m.jnt_range[:n, 0], m.jnt_range[:n, 1]
        err = np.zeros(6)
        for _ in range(200):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            flange = Pose(d.xpos[arm._flange].copy(), d.xquat[arm._flange].copy())
            cur = flange @ tcp
            err[:3] = base_T_tcp.xyz - cur.xyz
            qe = np.zeros(4)
            mujoco.mju_mulQuat(qe, base_T_tcp.wxyz, cur.inverse().wxyz)
            mujoco.mju_quat2Vel(err[3:], qe, 1.0)
            if np.linalg.norm(err[:3]) < tol_mm / 1000 and np.linalg.norm(err[3:]) < 1e-5:
                return d.qpos[:n].copy()
            jac = arm.ctrl.jacobian(d, cur.xyz)
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            dq *= min(1.0, 0.2 / (np.max(np.abs(dq)) + 1e-12))
            d.qpos[:n] = np.clip(d.qpos[:n] + dq, lo, hi)
        raise DriverError(f"no joint solution reaches {base_T_tcp} (residual {np.linalg.norm(err[:3]) * 1000:.2f} mm)")

    def teleport(self, base_T_tcp: Pose, true_tcp: bool = False) -> None:
        """Move the arm instantly (and the held plate with it); velocities zeroed."""
        arm = self.arm
        n = arm.arm_model.dof
        carried = self.tcp_pose().inverse() @ self.plate_pose() if self.grasp is not None else None
        arm.data.qpos[:n] = self.solve_ik(base_T_tcp, arm.data.qpos[:n].copy(), true_tcp=true_tcp)
        arm.data.qvel[:] = 0.0
        mujoco.mj_forward(arm.model, arm.data)
        if carried is not None:
            self._set_plate(self.tcp_pose() @ carried)
            mujoco.mj_forward(arm.model, arm.data)
        arm.hold(reanchor=True)

    def render(self, path: str, width: int = 960, height: int = 720, camera: str = "overview") -> None:
        from rmskill.drivers.mujoco.render import render_png

        render_png(self.arm.model, self.arm.data, path, width, height, camera)
