"""The simulated arm's low-level controller, at the TCP the controller was told about (not the
true one), with the controller's own dynamics model, target-velocity feed-forward and payload
feed-forward: a stiff position loop (a UR: computed torque, about 150 rad/s bandwidth) or a
Cartesian impedance (an FR3's own, or any arm's where a contact phase asks for compliance).

Runs once per physics step between ``mj_step1`` and ``mj_step2``; written for speed (MuJoCo's C
helpers, cached views and preallocated arrays), since Python here is the simulator's cost.
"""

from __future__ import annotations

import mujoco
import numpy as np

GRAVITY = np.array([0.0, 0.0, -9.81])
#: Bandwidth of the stiff position loop [rad/s]: a UR's joint servos, as the TCP feels them.
POSITION_BANDWIDTH = 150.0
#: Effective TCP mass [kg] and inertia [kg m^2] the impedance's damping is computed for.
IMPEDANCE_MASS = (3.0, 0.05)
#: Damping of a force-controlled (free) axis, as for a spring of this stiffness [N/m, Nm/rad].
FREE_AXIS_DAMPING_AS = (1000.0, 50.0)


class CartesianImpedance:
    """tau = J^T (K e + D (v_target - v) + w) + bias + payload, plus null-space posture (7-dof arms);
    or, on a position-controlled arm without compliance, tau = M J^-1 (Kp e + Kd (v_target - v)) + bias.

    Attributes:
        target_pos: TCP target position [m], world frame.
        target_quat: TCP target orientation, wxyz.
        mode: ``"cartesian"``, ``"joint"`` (PD to ``target_q``) or ``"float"`` (gravity only).
        position_controlled: The arm's own behaviour is a stiff position loop (a UR), not an impedance.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, dof: int, flange_body: int,
                 stiffness: tuple[float, float], home: np.ndarray, position_controlled: bool = False):
        self.m = model
        self.dof = n = dof
        self.body = flange_body
        self.default_stiffness = stiffness
        self.position_controlled = position_controlled
        self.compliant = False  # an impedance asked for by a contact phase is in force
        self.set_impedance((stiffness[0],) * 3 + (stiffness[1],) * 3)
        self.compliant = False
        self.kp, self.kd = POSITION_BANDWIDTH ** 2, 2.0 * POSITION_BANDWIDTH
        self.kq, self.dq = 400.0, 40.0
        self.home = np.asarray(home, dtype=float)
        self.period = model.opt.timestep
        self.tcp_pos = np.zeros(3)  # flange_T_tcp the controller uses
        self.tcp_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.target_pos = np.zeros(3)
        self.target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.target_q = self.home.copy()
        self.mode = "cartesian"
        # The load the arm actually carries beyond its own links (the held plate), fed forward the
        # way a stiff position loop rejects a static load: tracking does not sag under it.
        self.extra_payload = 0.0  # [kg]
        self.extra_com = np.zeros(3)  # [m] in the flange frame
        # Cached views into the data this controller drives.
        self._qpos, self._qvel = data.qpos[:n], data.qvel[:n]
        self._bias = data.qfrc_bias[:n]
        self._xpos, self._xquat = data.xpos[flange_body], data.xquat[flange_body]
        self._xmat = data.xmat[flange_body].reshape(3, 3)
        self._jac_full = np.zeros((6, model.nv))
        self._jac = self._jac_full[:, :n]
        self._q, self._qc, self._qe = np.zeros(4), np.zeros(4), np.zeros(4)
        self._erot, self._wff = np.zeros(3), np.zeros(3)
        self._wrench = np.zeros(6)
        self._prev_pos: np.ndarray | None = None
        self._prev_quat = np.zeros(4)
        self._null: np.ndarray | None = None
        self._null_age = 0
        self._data = data
        self._acc_full = np.zeros(model.nv)
        self._macc_full = np.zeros(model.nv)
        self._prev_q: np.ndarray | None = None

    def set_impedance(self, stiffness, damping_ratio: float = 1.0, wrench=(0.0,) * 6) -> None:
        """Per-axis Cartesian impedance (base frame): ``stiffness`` [N/m x3, Nm/rad x3] (0: free axis,
        pushing with ``wrench`` [N x3, Nm x3]), damped at ``damping_ratio`` of critical."""
        k = np.asarray(stiffness, dtype=float)
        mass = np.repeat(IMPEDANCE_MASS, 3)
        as_k = np.where(k > 0, k, np.repeat(FREE_AXIS_DAMPING_AS, 3))
        self.k, self.d = k, 2.0 * float(damping_ratio) * np.sqrt(as_k * mass)
        self.free = k == 0.0
        self.wrench_ff = np.where(self.free, np.asarray(wrench, dtype=float), 0.0)
        self.compliant = True

    def set_own(self) -> None:
        """Back to the arm's own behaviour: the stiff loop, or the arm's own impedance."""
        kt, kr = self.default_stiffness
        self.set_impedance((kt,) * 3 + (kr,) * 3)
        self.compliant = False
    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP (through the configured TCP): position [m], quaternion wxyz."""
        body = self.body
        pos = data.xpos[body] + data.xmat[body].reshape(3, 3) @ self.tcp_pos
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, data.xquat[body], self.tcp_quat)
        return pos, quat

    def jacobian(self, data: mujoco.MjData, point: np.ndarray) -> np.ndarray:
        """6 x dof geometric Jacobian of ``point`` (world frame) on the flange body."""
        jac = np.zeros((6, self.m.nv))
        mujoco.mj_jac(self.m, data, jac[:3], jac[3:], point, self.body)
        return jac[:, : self.dof]

    def reset_feedforward(self) -> None:
        """Forget the previous target (no velocity feed-forward on the next step) and the cached
        null-space projector, so that an episode started from the same state replays exactly."""
        self._prev_pos = None
        self._null = None
        self._prev_q = None

    def compute(self, data: mujoco.MjData) -> np.ndarray:
        """Joint torques [Nm] for the current state (call after ``mj_step1``)."""
        qvel = self._qvel
        if self.mode == "joint":
            if self.position_controlled:
                return self._joint_position(data)
            return self._bias + self.kq * (self.target_q - self._qpos) - self.dq * qvel
        if self.mode == "float":
            return self._bias - 2.0 * qvel
        pos = self._xpos + self._xmat @ self.tcp_pos
        mujoco.mju_mulQuat(self._q, self._xquat, self.tcp_quat)
        mujoco.mj_jac(self.m, data, self._jac_full[:3], self._jac_full[3:], pos, self.body)
        jac = self._jac
        vel = jac @ qvel
        mujoco.mju_negQuat(self._qc, self._q)
        mujoco.mju_mulQuat(self._qe, self.target_quat, self._qc)
        mujoco.mju_quat2Vel(self._erot, self._qe, 1.0)
        w = self._wrench
        tp, tq = self.target_pos, self.target_quat
        if self._prev_pos is None:  # target velocity feed-forward (zero on the first step)
            vff = 0.0
            self._wff[:] = 0.0
            self._prev_pos = np.empty(3)
        else:
            vff = (tp - self._prev_pos) / self.period
            mujoco.mju_negQuat(self._qc, self._prev_quat)
            mujoco.mju_mulQuat(self._qe, tq, self._qc)
            mujoco.mju_quat2Vel(self._wff, self._qe, self.period)
        self._prev_pos[:] = tp
        self._prev_quat[:] = tq
        if self.position_controlled and not self.compliant:
            return self._cartesian_position(jac, pos, vel, tp - pos, vff)
        free = self.free
        w[:3] = self.k[:3] * (tp - pos) + self.d[:3] * (np.where(free[:3], 0.0, vff) - vel[:3])
        w[3:] = self.k[3:] * self._erot + self.d[3:] * (np.where(free[3:], 0.0, self._wff) - vel[3:])
        w += self.wrench_ff
        self._payload_wrench(w, pos)
        tau = self._bias + jac.T @ w
        if self.dof > 6:  # posture in the null space of the TCP task, projector refreshed at 100 Hz
            if self._null is None or self._null_age >= 10:
                pinv_t = np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), jac)
                self._null = np.eye(self.dof) - jac.T @ pinv_t
                self._null_age = 0
            self._null_age += 1
            tau += self._null @ (10.0 * (self.home - self._qpos) - 1.0 * qvel)
        return tau

    def _payload_wrench(self, w: np.ndarray, pos: np.ndarray) -> None:
        """Add the held load's feed-forward to ``w``: +m g up, and its moment about the TCP."""
        if self.extra_payload:  # lift the load: +m g up, and its moment about the TCP (cross by hand)
            fz = -self.extra_payload * GRAVITY[2]
            lx, ly, _ = (self._xmat @ self.extra_com + self._xpos - pos).tolist()
            w[2] += fz
            w[3] += ly * fz
            w[4] -= lx * fz

    def _mass_times(self, data: mujoco.MjData, acc: np.ndarray) -> np.ndarray:
        """M(q) acc for the arm joints [Nm] (coupling to the fingers and the load ignored)."""
        self._acc_full[: self.dof] = acc
        mujoco.mj_mulM(self.m, data, self._macc_full, self._acc_full)
        return self._macc_full[: self.dof]

    def _cartesian_position(self, jac: np.ndarray, pos: np.ndarray, vel: np.ndarray, err: np.ndarray,
                            vff) -> np.ndarray:
        """The stiff loop: TCP acceleration Kp e + Kd (v_target - v), through J^-1 and M (computed torque)."""
        acc = np.empty(6)
        acc[:3] = self.kp * err + self.kd * (vff - vel[:3])
        acc[3:] = self.kp * self._erot + self.kd * (self._wff - vel[3:])
        qdd = jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), acc)
        w = self._wrench
        w[:] = 0.0
        self._payload_wrench(w, pos)
        return self._bias + self._mass_times(self._data, qdd) + jac.T @ w

    def _joint_position(self, data: mujoco.MjData) -> np.ndarray:
        """The stiff loop in joint space: each joint tracks ``target_q`` with its velocity fed forward."""
        tq = self.target_q
        dq_ff = 0.0 if self._prev_q is None else (tq - self._prev_q) / self.period
        self._prev_q = np.array(tq, dtype=float)
        qdd = self.kp * (tq - self._qpos) + self.kd * (dq_ff - self._qvel)
        return self._bias + self._mass_times(data, qdd)
