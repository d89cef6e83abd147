"""``SimWorld``: what only a simulator can do: reset episodes, teleport, read ground truth, render.

Skills and calibration never use it to decide anything; evaluation, tests and the simulated
operator do.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
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
        from rmskill.drivers.mujoco.workcell import plate_count, plate_name

        # The labware the gripper holds: plates, or in a tube cell (``gripper.model: tube``) one tube.
        self.item = "tube" if arm.config.gripper.model == "tube" else "plate"
        if self.item == "tube":
            names, geoms = ["tube"], ["tube_grip"]
        else:
            names = geoms = [plate_name(i) for i in range(plate_count(arm.config))]
        self._plate_q = [int(m.joint(n).qposadr[0]) for n in names]
        self._plate_v = [int(m.joint(n).dofadr[0]) for n in names]
        self.plate_geoms = [int(m.geom(n).id) for n in geoms]  # what the pads touch of each item, by index
        self._tcp_true = m.site("tcp_true").id
        self._scratch = mujoco.MjData(m)
        self.grasp: Pose | None = None  # true tcp_T_plate while a plate is held
        self.held: int | None = None  # the plate in the gripper
        self.carried: int | None = None  # the plate last in the gripper (held or since released)

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

    @property
    def plate_count(self) -> int:
        """Plates in the cell (those not laid out wait out of reach)."""
        return len(self._plate_q)

    def plate_pose(self, index: int | None = None) -> Pose:
        """True pose of plate ``index``; default the plate in (or last in) the gripper, else plate 0."""
        if index is None:
            index = self.carried if self.carried is not None else 0
        d, i = self.arm.data, self._plate_q[index]
        return Pose(d.qpos[i: i + 3].copy(), d.qpos[i + 3: i + 7].copy())

    def nest_of(self, index: int, tol_mm: float = 1.0) -> str | None:
        """The ``slot`` fixture plate ``index`` rests in (within ``tol_mm`` beyond the clearance
        of its true seat, and level), or None."""
        from rmskill.drivers.mujoco.workcell import NEST_CLEARANCE

        plate = self.plate_pose(index)
        for name, fixture in self.arm.config.fixtures.items():
            if fixture.kind != "slot":
                continue
            rel = self.fixture_pose(name).inverse() @ plate
            lateral_mm = float(np.hypot(*rel.xyz[:2])) * 1000.0
            if lateral_mm < NEST_CLEARANCE * 1000.0 * 2 + tol_mm and abs(rel.xyz[2]) * 1000.0 < tol_mm \
                    and rel.angle_deg(Pose.identity()) < 2.0:
                return name
        return None

    def plate_at(self, fixture: str) -> int | None:
        """The plate resting in ``fixture``, or None."""
        return next((i for i in range(self.plate_count) if i != self.held and self.nest_of(i) == fixture), None)

    def layout(self) -> list[str]:
        """The fixtures that hold a plate now, in arm-file order (the held plate is in none)."""
        full = {self.nest_of(i) for i in range(self.plate_count) if i != self.held}
        return [name for name in self.arm.config.fixtures if name in full]

    def placement_error(self, fixture: str) -> tuple[float, float]:
        """Plate against the nest's true seat: translation [mm] and rotation angle [deg]. The plate
        is the one in (or last in) the gripper, else the one nearest that seat."""
        seat = self.fixture_pose(fixture)
        index = self.carried
        if index is None:
            index = min(range(self.plate_count), key=lambda i: self.plate_pose(i).distance_mm(seat))
        plate = self.plate_pose(index)
        return plate.distance_mm(seat), plate.angle_deg(seat)

    # --- episode control ----------------------------------------------------------------
    def _set_plate(self, pose: Pose, index: int = 0) -> None:
        d, q, v = self.arm.data, self._plate_q[index], self._plate_v[index]
        d.qpos[q: q + 3] = pose.xyz
        d.qpos[q + 3: q + 7] = pose.wxyz
        d.qvel[v: v + 6] = 0.0

    def _park(self, index: int) -> None:
        """Out of reach, beside the cell (each plate its own spot, so parked plates never touch)."""
        self._set_plate(Pose([-0.3 * (index + 1), -0.6, 0.0075]), index)

    def sample_seating(self) -> Pose:
        """Where a plate set into a nest by hand comes to rest: anywhere in the clearance, seeded
        (``fixture_T_plate``; x, y within +-0.15 mm, yaw within +-0.1 deg)."""
        xy = self.rng.uniform(-0.15e-3, 0.15e-3, 2)
        return Pose.from_rotvec([*xy, -1e-5], [0.0, 0.0, np.radians(self.rng.uniform(-0.1, 0.1))])

    def sample_grasp(self) -> Pose:
        """True ``tcp_T_plate`` for one episode: the grasp offset plus seeded per-episode noise."""
        mm, deg = self.truth.grasp_noise
        noise = Pose.from_rotvec(
            self.rng.normal(0.0, mm / 1000.0, 3) * np.array([1.0, 0.0, 0.3]),
            np.array([0.0, 0.0, 1.0]) * np.radians(self.rng.normal(0.0, deg)),
        )
        return Pose.from_ur(self.truth.grasp_offset) @ noise

    def reset(self, tcp_pose: Pose | None = None, q: np.ndarray | None = None, plate: bool | None = None,
              seed: int | None = None, plates: Sequence[str] | None = None) -> None:
        """Start an episode: arm at ``tcp_pose`` (or ``q``, or home); a plate gripped if ``plate``;
        one plate seated in each fixture of ``plates`` (anywhere in its clearance, seeded).

        Both ``None``: as the arm file's ``sim.plates`` says (default one plate gripped). ``plate``
        given alone: that plate only (``False``: nothing in the cell). The gripped plate's offset in
        the fingers is ``sim.truth.grasp_offset`` plus noise; a plate a skill picks up sits where
        the pick put it. Plates not laid out wait out of reach.

        A start that cannot be reached raises ``DriverError`` and leaves the simulation as it was.
        """
        if plates is None and plate is None:
            plates = self.arm.config.sim.plates if self.arm.config.sim is not None else None
            plate = plates is None
        plates = list(plates or [])
        unknown = [n for n in plates if n not in self.arm.config.fixtures]
        if unknown or len(set(plates)) != len(plates):
            raise DriverError(f"cannot lay plates out in {plates}: each must be a different fixture of "
                              f"{', '.join(self.arm.config.fixtures)}")
        if len(plates) + bool(plate) > self.plate_count:
            raise DriverError(f"the cell has {self.plate_count} plates; {len(plates) + bool(plate)} asked for")
        arm = self.arm
        n = arm.arm_model.dof
        start = np.array(arm.ctrl.home if q is None else q, dtype=float).reshape(-1)
        if start.shape != (n,) or not np.all(np.isfinite(start)):
            raise DriverError(f"sim.reset needs {n} finite joint positions, got {start.tolist()}")
        if tcp_pose is not None:
            start = self.solve_ik(tcp_pose, start)  # may raise: nothing has changed yet
        saved = copy.copy(arm.data), self.rng, self.grasp, self.held, self.carried
        try:
            self._reset(start, bool(plate), plates, seed)
        except BaseException:
            arm.data.qpos[:], arm.data.qvel[:], arm.data.ctrl[:] = saved[0].qpos, saved[0].qvel, saved[0].ctrl
            arm.data.time = saved[0].time
            mujoco.mj_forward(arm.model, arm.data)
            self.rng, self.grasp, self.held, self.carried = saved[1:]
            arm.hold(reanchor=True)
            raise

    def _reset(self, start: np.ndarray, plate: bool, plates: list[str], seed: int | None) -> None:
        arm = self.arm
        m, d = arm.model, arm.data
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mujoco.mj_resetData(m, d)
        arm.restart_clock()
        arm._pending.clear()
        d.qpos[: arm.arm_model.dof] = start
        d.ctrl[arm._fingers] = 0.0
        for index in range(self.plate_count):
            self._park(index)
        for index, name in enumerate(plates, start=1 if plate else 0):
            self._set_plate(self.fixture_pose(name) @ self.sample_seating(), index)
        mujoco.mj_forward(m, d)
        arm.hold(reanchor=True)
        self.carried = None
        if plate:
            self.grasp = self.sample_grasp()
            self._set_plate(self.tcp_pose() @ self.grasp, 0)
            if self.item == "tube":
                from rmskill.drivers.mujoco.tube import close_fingers_on_tube

                close_fingers_on_tube(self)
            else:
                self._close_fingers_on_plate()
            self.holding(True)
        else:
            self.holding(False)
        arm.advance(0.3)  # settle: the episode starts at rest
        arm.hold()

    def holding(self, held: bool) -> None:
        """Record whether a plate (or tube) is in the gripper (the one nearest the TCP); the controller
        carries its weight if so."""
        from rmskill.drivers.mujoco.tube import TUBE_LENGTH, TUBE_MASS
        from rmskill.drivers.mujoco.workcell import PLATE_MASS

        ctrl = self.arm.ctrl
        if held:
            tcp = self.tcp_pose()
            self.held = self.carried = min(range(self.plate_count),
                                           key=lambda i: self.plate_pose(i).distance_mm(tcp))
            self.grasp = tcp.inverse() @ self.plate_pose(self.held)
            flange_T_plate = self.flange_T_tcp() @ self.grasp
            mass, com = PLATE_MASS, np.array(flange_T_plate.xyz)
            if self.item == "tube":
                mass, com = TUBE_MASS, np.array((flange_T_plate @ Pose([0.0, 0.0, -TUBE_LENGTH / 2])).xyz)
            ctrl.extra_payload, ctrl.extra_com = mass, com
        else:
            self.grasp = self.held = None
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
        d.qpos[:] = arm.model.qpos0  # not the live state: the solution must not depend on what ran before
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
        held = self.held
        carried = self.tcp_pose().inverse() @ self.plate_pose(held) if held is not None else None
        arm.data.qpos[:n] = self.solve_ik(base_T_tcp, arm.data.qpos[:n].copy(), true_tcp=true_tcp)
        arm.data.qvel[:] = 0.0
        mujoco.mj_forward(arm.model, arm.data)
        if carried is not None:
            self._set_plate(self.tcp_pose() @ carried, held)
            mujoco.mj_forward(arm.model, arm.data)
        arm.hold(reanchor=True)

    def render(self, path: str, width: int = 960, height: int = 720, camera: str = "overview") -> None:
        from rmskill.drivers.mujoco.render import render_png

        render_png(self.arm.model, self.arm.data, path, width, height, camera)

    def record(self, path: str, fps: float = 20.0, width: int = 320, height: int = 240):
        """A video recorder of the cell (``with sim.record("out.mp4"): ...``): a wrist-side and a front
        view side by side, ``fps`` frames per simulated second; see ``drivers.mujoco.record``."""
        from rmskill.drivers.mujoco.record import VideoRecorder

        return VideoRecorder(self.arm, path, fps=fps, width=width, height=height)

    def cameras(self, width: int = 320, height: int = 240):
        """The recorder's views (wrist-side and front) as one renderer: ``cameras.frame()`` is an RGB array."""
        from rmskill.drivers.mujoco.record import Cameras

        return Cameras(self.arm, width, height)
