"""``MujocoArm``: the embedded simulator behind the ``Arm`` interface.

Time only passes when the arm is commanded (as fast as possible), unless ``sim.realtime`` is set,
in which case each call also waits for the wall clock. ``servo`` advances exactly one native
period per call by default. Ground truth for evaluation is under ``arm.sim`` (``SimWorld``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence

import mujoco
import numpy as np

from rmskill.arm import Arm, ArmState, Capabilities, Compliance, Wrench
from rmskill.config import ArmConfig
from rmskill.drivers.mujoco.config import MujocoSimConfig
from rmskill.drivers.mujoco.controller import GRAVITY, CartesianImpedance, add_controller
from rmskill.drivers.mujoco.gripper import SimGripper
from rmskill.drivers.mujoco.robots import arm_model
from rmskill.drivers.mujoco.workcell import build_spec
from rmskill.errors import ConfigError, DriverError
from rmskill.geometry import Pose

GRAVITY_Z = float(GRAVITY[2])


class MujocoArm(Arm):
    """A simulated UR5e or FR3 with a plate gripper in a lab cell. See ``SimWorld`` for truth."""

    #: The arm file's ``sim`` section for this backend.
    sim_config = MujocoSimConfig

    def __init__(self, config: ArmConfig):
        self.config = config
        self.arm_model = arm_model(config.model)
        if config.home is not None and len(config.home) != self.arm_model.dof:
            raise ConfigError(f"arm file '{config.name}': key 'home': needs one value per joint of the "
                              f"{config.model} ({self.arm_model.dof}), got {len(config.home)}")
        sim = config.sim
        self.realtime = bool(sim and sim.realtime)
        self.capabilities = Capabilities(
            model=self.arm_model.name, dof=self.arm_model.dof, rate_hz=self.arm_model.rate_hz,
            senses_wrench=True, freedrive=True, simulated=True, realtime=self.realtime, reach=self.arm_model.span,
            compliance=True,
        )
        #: A UR is a stiff position loop under servoL/moveL; an FR3 its own Cartesian impedance.
        self.position_controlled = self.arm_model.name.startswith("ur")
        self.compliance: Compliance | None = None
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self.fingers = SimGripper(self)  # the simulated plate gripper; ``gripper`` unless the arm file names another
        self.gripper = self.fingers
        #: Called after each stepped batch (one servo period, a settle): the video recorder's hook.
        self.step_hooks: list[Callable[[], None]] = []
        self._connected = False
        self._fractions: dict[int, np.ndarray] = {}  # interpolation fractions i / n per period count n

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        from rmskill.drivers.mujoco.world import SimWorld

        spec = build_spec(self.config, self.arm_model)
        add_controller(spec, [link.torque for link in self.arm_model.links])
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._fk_data = mujoco.MjData(self.model)  # scratch for forward_kinematics
        m = self.model
        self._flange = m.body("flange").id
        self._ft_site = m.site("ft").id
        self._ft_force = m.sensor("ft_force").adr[0]
        self._ft_torque = m.sensor("ft_torque").adr[0]
        self._ft_force_view = self.data.sensordata[self._ft_force: self._ft_force + 3]
        self._ft_xmat = self.data.site_xmat[self._ft_site]
        self._fingers = np.array([m.actuator("finger_left").id, m.actuator("finger_right").id])
        self._torques = self.data.ctrl[: self.arm_model.dof]  # cached views into the data
        self._qpos0 = self.data.qpos[:1]
        n = self.arm_model.dof
        self.ctrl = CartesianImpedance(m, self.data, n, self._flange, self.arm_model.stiffness,
                                       np.array(self.config.home or self.arm_model.home),
                                       position_controlled=self.position_controlled)
        self.set_compliance(self.compliance)
        self._substeps = max(1, round(1.0 / (self.arm_model.rate_hz * m.opt.timestep)))
        truth = self.config.truth
        self._latency_steps = round(truth.latency_ms / 1000.0 / m.opt.timestep)
        self._pending: deque[tuple[int, np.ndarray, np.ndarray]] = deque()
        self._step_count = 0
        self._wall_start = time.monotonic()
        self._wrench_noise = truth.wrench_noise_n
        self.set_tcp(self.config.flange_T_tcp)
        self.payload = (self.config.gripper.mass, np.array(self.config.gripper.center_of_mass))
        self._gripper_mass = float(m.body_subtreemass[m.body("gripper").id])
        self.sim = SimWorld(self)
        self._connected = True
        self.sim.reset()

    def close(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def _require(self) -> None:
        if not self._connected:
            raise DriverError("the simulated arm is not connected (call connect() or use 'with')")

    # --- stepping -----------------------------------------------------------------------
    def _command(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """Queue a Cartesian target; it reaches the controller after the simulated latency."""
        if self._latency_steps:
            self._pending.append((self._step_count + self._latency_steps, pos, quat))
        else:
            self.ctrl.set_target(pos, quat)

    def _step(self, n: int) -> None:
        """``n`` physics steps, then the checks and hooks of a stepped batch."""
        self._physics(n)
        self._after_batch()

    def _physics(self, n: int) -> None:
        m, d, ctrl, pending = self.model, self.data, self.ctrl, self._pending
        step1, step2, apply = mujoco.mj_step1, mujoco.mj_step2, ctrl.apply
        for _ in range(n):
            while pending and pending[0][0] <= self._step_count:
                ctrl.set_target(*pending.popleft()[1:])
            if ctrl.due:
                ctrl.prepare()
            step1(m, d)
            apply()
            step2(m, d)
            self._step_count += 1

    def _after_batch(self) -> None:
        if self.realtime:
            ahead = self.data.time - (time.monotonic() - self._wall_start)
            if ahead > 0:
                time.sleep(ahead)
        if not math.isfinite(self._qpos0[0]):
            raise DriverError("the simulation diverged (non-finite state); reconnect the arm")
        for hook in self.step_hooks:
            hook()

    def restart_clock(self) -> None:
        """Real time goes on from the simulated time now (after a reset turned the clock back)."""
        self._wall_start = time.monotonic() - float(self.data.time)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass holding the current targets."""
        self._step(max(1, round(seconds / self.model.opt.timestep)))

    # --- sensing ------------------------------------------------------------------------
    def state(self) -> ArmState:
        self._require()
        d, n = self.data, self.arm_model.dof
        pos, quat = self.ctrl.tcp_pose(d)
        vel = self.ctrl.jacobian(d, pos) @ d.qvel[:n]
        width = self.fingers.width() if self.gripper is self.fingers else None  # another gripper reports its own
        return ArmState(
            time=float(d.time), q=d.qpos[:n].copy(), dq=d.qvel[:n].copy(), base_T_tcp=Pose(pos, quat),
            tcp_velocity=vel, wrench=self._wrench(pos), gripper_width=width,
        )

    def forward_kinematics(self, q: Sequence[float]) -> Pose:
        """``base_T_tcp`` at joints ``q`` [rad], through the TCP currently set (the arm does not move)."""
        self._require()
        d = self._fk_data
        d.qpos[: self.arm_model.dof] = np.asarray(q, dtype=float)
        mujoco.mj_kinematics(self.model, d)
        return Pose(d.xpos[self._flange].copy(), d.xquat[self._flange].copy()) @ self.flange_T_tcp

    def force_norm(self) -> float:
        """Magnitude of the sensed contact force [N], cheaply (the safety envelope's per-step check)."""
        # |R f + m g| = |f + R^T m g|, and R^T e_z is the third row of R: no matrix product needed.
        fx, fy, fz = self._ft_force_view.tolist()
        _, _, _, _, _, _, r0, r1, r2 = self._ft_xmat.tolist()
        w = float(self.payload[0]) * GRAVITY_Z  # Python floats: numpy scalar arithmetic costs more here
        return math.sqrt((fx + w * r0) ** 2 + (fy + w * r1) ** 2 + (fz + w * r2) ** 2)

    def _wrench(self, tcp_pos: np.ndarray) -> Wrench:
        """Wrist F/T reading, payload compensated, as force/torque at the TCP in the base frame."""
        d = self.data
        rot = d.site_xmat[self._ft_site].reshape(3, 3)
        # The sensor reads the force the flange exerts on the tool: in static free space it
        # carries the payload's weight; contact adds to it. Reported: what the world exerts.
        f = rot @ d.sensordata[self._ft_force: self._ft_force + 3]
        t = rot @ d.sensordata[self._ft_torque: self._ft_torque + 3]
        mass, com = self.payload
        flange_pos = d.site_xpos[self._ft_site]
        com_world = flange_pos + d.xmat[self._flange].reshape(3, 3) @ com
        weight = mass * GRAVITY
        f_ext = -(f + weight)
        t_ext = -(t + np.cross(com_world - flange_pos, weight))
        t_tcp = t_ext - np.cross(tcp_pos - flange_pos, f_ext)
        if self._wrench_noise:
            f_ext = f_ext + self.sim.rng.normal(0.0, self._wrench_noise, 3)
        return Wrench(f_ext, t_tcp)

    # --- motion -------------------------------------------------------------------------
    def servo(self, pose: Pose, duration: float | None = None) -> None:
        if not self._connected:
            self._require()
        periods = 1 if duration is None else max(1, round(duration / (1.0 / self.arm_model.rate_hz)))
        if self.ctrl.mode != "cartesian":
            self._cartesian()
        if periods == 1:
            if self._latency_steps or self._substeps != 1:
                self._command(pose.xyz, pose.wxyz)
                self._physics(self._substeps)
            else:  # _command and _physics(1), inlined: the streaming case
                ctrl = self.ctrl
                ctrl.set_target(pose.xyz, pose.wxyz)
                ctrl.prepare()
                mujoco.mj_step1(self.model, self.data)
                ctrl.apply()
                mujoco.mj_step2(self.model, self.data)
                self._step_count += 1
            self._after_batch()
            return
        # The driver interpolates: one target per native period (linear, normalised quaternion lerp),
        # computed at once; a stepped batch (checks, hooks, real-time pacing) per period only where
        # something looks at it (a recorder, the wall clock) or the targets queue (latency).
        p0, q0 = self._last_target()
        q1 = pose.wxyz if np.dot(q0, pose.wxyz) >= 0 else -pose.wxyz
        s = self._fractions.get(periods)
        if s is None:
            s = self._fractions[periods] = np.arange(1, periods + 1, dtype=float)[:, None] / periods
        positions = p0 + s * (pose.xyz - p0)
        turning = q0.tolist() != q1.tolist()
        if turning:
            quats = (1 - s) * q0 + s * q1
            quats /= np.sqrt(np.einsum("ij,ij->i", quats, quats))[:, None]
        if self.step_hooks or self.realtime or self._latency_steps or self._substeps != 1:
            for i, p in enumerate(positions):
                self._command(p, quats[i] if turning else q1)
                self._step(self._substeps)
            return
        ctrl = self.ctrl
        if turning:
            m, d, step1, step2 = self.model, self.data, mujoco.mj_step1, mujoco.mj_step2
            for p, q in zip(positions, quats, strict=True):  # _physics(1) per target, inlined
                ctrl.set_target(p, q)
                ctrl.prepare()
                step1(m, d)
                ctrl.apply()
                step2(m, d)
        else:  # no turn: the same quaternion throughout, not one rounded differently each period
            ctrl.stream(positions, q1)
        self._step_count += periods
        self._after_batch()

    def _last_target(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pending:
            return self._pending[-1][1], self._pending[-1][2]
        return np.array(self.ctrl.target_pos), np.array(self.ctrl.target_quat)

    def move_to(self, pose: Pose, speed: float = 0.1) -> None:
        self._require()
        start = self.state().base_T_tcp
        dist = max(start.distance_mm(pose) / 1000.0, np.radians(start.angle_deg(pose)) * 0.1)
        duration = max(dist / max(speed, 1e-4), 0.05)
        period = 1.0 / self.arm_model.rate_hz
        steps = max(1, round(duration / period))
        self._cartesian()
        for i in range(1, steps + 1):
            s = i / steps
            s = s * s * (3 - 2 * s)  # smooth start and stop
            self._command_pose(start.interpolate(pose, s))
            self._step(self._substeps)
        self._settle(pose)

    def _cartesian(self) -> None:
        """Cartesian control from here on; coming from joint control, hold where the arm is first."""
        if self.ctrl.mode != "cartesian":
            self.hold(reanchor=True)

    def servo_joints(self, q: Sequence[float], duration: float | None = None) -> None:
        """Stream joint targets ``q`` [rad] (servoJ, speedJ): the joint loop tracks them over ``duration``
        [s] (one native period by default), each joint on its own."""
        self._require()
        ctrl = self.ctrl
        if ctrl.mode != "joint":
            ctrl.mode = "joint"
            ctrl.reset_feedforward()
            ctrl.target_q = self.data.qpos[: self.arm_model.dof].copy()
            self._pending.clear()
        period = 1.0 / self.arm_model.rate_hz
        periods = 1 if duration is None else max(1, round(duration / period))
        q0, q1 = np.array(ctrl.target_q), np.asarray(q, dtype=float)
        for i in range(1, periods + 1):
            ctrl.target_q = q0 + (q1 - q0) * (i / periods)
            self._step(self._substeps)

    def _command_pose(self, pose: Pose) -> None:
        self._command(np.array(pose.xyz), np.array(pose.wxyz))

    def _settle(self, pose: Pose, tol_mm: float = 0.02, timeout: float = 1.0) -> None:
        period = 1.0 / self.arm_model.rate_hz
        for _ in range(round(timeout / period)):
            self._step(self._substeps)
            st = self.state()
            if st.base_T_tcp.distance_mm(pose) < tol_mm and np.linalg.norm(st.tcp_velocity[:3]) < 1e-3:
                return

    def move_joints(self, q: Sequence[float], speed: float = 0.5) -> None:
        self._require()
        q = np.asarray(q, dtype=float)
        if q.shape != (self.arm_model.dof,):
            raise DriverError(f"move_joints needs {self.arm_model.dof} joint positions, got {q.size}")
        q0 = self.data.qpos[: self.arm_model.dof].copy()
        duration = max(float(np.max(np.abs(q - q0))) / max(speed, 1e-3), 0.05)
        steps = max(1, round(duration * self.arm_model.rate_hz))
        self.ctrl.mode = "joint"
        for i in range(1, steps + 1):
            s = i / steps
            self.ctrl.target_q = q0 + (q - q0) * s * s * (3 - 2 * s)
            self._step(self._substeps)
        self.advance(0.3)
        self.hold()

    def hold(self, reanchor: bool = False) -> None:
        """Hold still under Cartesian control: at the current target when the arm is within 2 mm of
        it (re-anchoring to the measured pose would add the static sag again), else where it is."""
        self._pending.clear()
        pos, quat = self.ctrl.tcp_pose(self.data)
        near = np.linalg.norm(pos - self.ctrl.target_pos) < 0.002
        if reanchor or self.ctrl.mode != "cartesian" or not near:
            self.ctrl.target_pos, self.ctrl.target_quat = pos, quat
        self.ctrl.mode = "cartesian"
        self.ctrl.reset_feedforward()

    def stop(self) -> None:
        """Come to rest (see ``hold``)."""
        if self._connected:
            self.hold()
            self.advance(0.02)

    def freedrive(self, on: bool) -> None:
        self._require()
        if on:
            self.ctrl.mode = "float"
        else:
            self.hold()

    # --- compliance ---------------------------------------------------------------------
    def set_compliance(self, compliance: Compliance | None) -> None:
        """The controller's impedance per axis (``None``: the arm's own: stiff for a UR, the FR3's
        impedance). Takes effect at once; the target stays where it is, except that an arm made stiff
        again holds where it is (a stiff loop pulling back to a target it was pushed from would press)."""
        was, self.compliance = self.compliance, compliance
        if not hasattr(self, "ctrl"):
            return
        if compliance is None:
            self.ctrl.set_own()
            if was is not None and self._connected:
                self.hold(reanchor=True)  # as a UR leaving force mode: stop where the arm is
        else:
            self.ctrl.set_impedance(compliance.stiffness, compliance.damping_ratio, compliance.wrench)

    # --- configuration ------------------------------------------------------------------
    def set_tcp(self, flange_T_tcp: Pose) -> None:
        if self._connected:  # the same flange target, expressed through the new TCP
            self._pending.clear()
            target = Pose(self.ctrl.target_pos, self.ctrl.target_quat) @ self.flange_T_tcp.inverse() @ flange_T_tcp
            self.ctrl.target_pos, self.ctrl.target_quat = np.array(target.xyz), np.array(target.wxyz)
        self.flange_T_tcp = flange_T_tcp
        self.ctrl.set_tcp(flange_T_tcp.xyz, flange_T_tcp.wxyz)

    def set_payload(self, mass: float, center_of_mass: Sequence[float]) -> None:
        """The payload the wrist F/T reading is compensated with (the controller's own load
        rejection does not depend on it, as on a position-controlled arm)."""
        self.payload = (float(mass), np.asarray(center_of_mass, dtype=float))
