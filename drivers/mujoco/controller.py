"""The simulated arm's low-level controller: Cartesian impedance at the TCP the controller was
told about (not the true one), with the controller's own dynamics model, target-velocity
feed-forward and payload feed-forward.

Runs once per physics step between ``mj_step1`` and ``mj_step2``; written for speed (MuJoCo's C
helpers, cached views and preallocated arrays), since Python here is the simulator's cost.
"""

from __future__ import annotations

import mujoco
import numpy as np

GRAVITY = np.array([0.0, 0.0, -9.81])


class CartesianImpedance:
    """tau = J^T (K e + D (v_target - v)) + bias + payload, plus null-space posture (7-dof arms).

    Attributes:
        target_pos: TCP target position [m], world frame.
        target_quat: TCP target orientation, wxyz.
        mode: ``"cartesian"``, ``"joint"`` (PD to ``target_q``) or ``"float"`` (gravity only).
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, dof: int, flange_body: int,
                 stiffness: tuple[float, float], home: np.ndarray):
        self.m = model
        self.dof = n = dof
        self.body = flange_body
        self.kt, self.kr = stiffness
        self.dt_, self.dr = 2.0 * np.sqrt(self.kt * 3.0), 2.0 * np.sqrt(self.kr * 0.05)
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

    def compute(self, data: mujoco.MjData) -> np.ndarray:
        """Joint torques [Nm] for the current state (call after ``mj_step1``)."""
        qvel = self._qvel
        if self.mode == "joint":
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
        w[:3] = self.kt * (tp - pos) + self.dt_ * (vff - vel[:3])
        w[3:] = self.kr * self._erot + self.dr * (self._wff - vel[3:])
        if self.extra_payload:  # lift the load: +m g up, and its moment about the TCP (cross by hand)
            fz = -self.extra_payload * GRAVITY[2]
            lx, ly, _ = (self._xmat @ self.extra_com + self._xpos - pos).tolist()
            w[2] += fz
            w[3] += ly * fz
            w[4] -= lx * fz
        tau = self._bias + jac.T @ w
        if self.dof > 6:  # posture in the null space of the TCP task, projector refreshed at 100 Hz
            if self._null is None or self._null_age >= 10:
                pinv_t = np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), jac)
                self._null = np.eye(self.dof) - jac.T @ pinv_t
                self._null_age = 0
            self._null_age += 1
            tau += self._null @ (10.0 * (self.home - self._qpos) - 1.0 * qvel)
        return tau
