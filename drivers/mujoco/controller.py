"""The simulated arm's low-level controller, at the TCP the controller was told about (not the
true one), with the controller's own dynamics model, target-velocity feed-forward and payload
feed-forward: a stiff position loop (a UR: computed torque, about 150 rad/s bandwidth) or a
Cartesian impedance (an FR3's own, or any arm's where a contact phase asks for compliance).

Both are one law at the TCP, ``tau = bias + J^T (K e + D (v_target - v) + w)``: the impedance with
diagonal ``K``, ``D`` (base frame), the stiff loop with ``K = Kp Lambda`` and ``D = Kd Lambda``, where
``Lambda = A^T M A`` is the TCP's inertia (``A = J^T (J J^T + eps I)^-1``): computed torque,
``M J^-1 (Kp e + Kd (v_target - v))``, to within the singularity damping.

MuJoCo evaluates the law in C, every physics step: six actuators with a site transmission from the
controller's TCP site to a mocap target site (``add_controller``) measure the pose error along their
gears, ``J v`` and apply ``J^T``; their stiffness is theirs (an affine bias). Python sets, per physics
step, the bias torques and the Cartesian damping (explicit, as the torque loop it replaces: two numpy
operations); per new target, the mocap pose and the velocity feed-forward; and every ``MODEL_PERIOD``
the slowly varying parts: the gears (the columns of a square root of ``Lambda``, or the base axes, in
the target's frame), the held load's and the push's feed-forward (joint torques ``J^T w``) and, on a
redundant arm (the FR3), the null-space direction ``u`` of a posture actuator on a fixed tendon ``u^T q``.
Between refreshes ``J`` and the pose error are those of each step; ``Lambda`` and ``u`` are up to
``MODEL_PERIOD`` old.
"""

from __future__ import annotations

import mujoco
import numpy as np
from scipy.linalg.lapack import dposv, dpotrf

GRAVITY = np.array([0.0, 0.0, -9.81])
#: Bandwidth of the stiff position loop [rad/s]: a UR's joint servos, as the TCP feels them.
POSITION_BANDWIDTH = 150.0
#: Effective TCP mass [kg] and inertia [kg m^2] the impedance's damping is computed for.
IMPEDANCE_MASS = (3.0, 0.05)
#: Damping of a force-controlled (free) axis, as for a spring of this stiffness [N/m, Nm/rad].
FREE_AXIS_DAMPING_AS = (1000.0, 50.0)
#: Period [s] at which the controller's dynamics model is refreshed: the TCP inertia the stiff loop
#: scales by, the held load's moment and the null-space direction (the pose error, the velocity and
#: the Jacobian that maps the TCP wrench to torques are those of every physics step) ...
MODEL_PERIOD = 0.01
#: ... where a joint has turned more than this [rad] since the last refresh (the model is a function
#: of the joint positions; this much changes the TCP inertia and the Jacobian by at most about 0.15 %
#: on either arm near its working pose).
MODEL_MOTION = 1e-3
#: Damping of the task-space inverse ``J^T (J J^T + eps I)^-1`` near a singularity.
SINGULAR_DAMPING = 1e-6
#: Names of the controller's parts in the model.
TCP_SITE, TARGET = "controller_tcp", "controller_target"
CARTESIAN_ACTUATORS = tuple(f"cartesian{i}" for i in range(6))
NULL_SPACE = "controller_null_space"
#: The redundant arm's posture in the null space of the TCP task: stiffness [Nm/rad], damping [Nms/rad].
POSTURE_GAINS = (10.0, 1.0)


def add_controller(spec: mujoco.MjSpec, joint_torques: list[float]) -> None:
    """Add what the controller drives to ``spec`` (built by ``build_spec``): a TCP site on the flange
    (moved by ``set_tcp``), a mocap target, six Cartesian actuators between the two, and each arm
    joint's torque limit on the sum of the actuators that drive it."""
    hidden = {"size": [0.004, 0.0, 0.0], "group": 5, "rgba": [0.0, 0.0, 0.0, 0.0]}
    spec.body("flange").add_site(name=TCP_SITE, **hidden)
    spec.worldbody.add_body(name=TARGET, mocap=True).add_site(name=TARGET, **hidden)
    for name in CARTESIAN_ACTUATORS:
        act = spec.add_actuator(name=name, target=TCP_SITE, refsite=TARGET, trntype=mujoco.mjtTrn.mjTRN_SITE)
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = 1.0
        act.gear = [0.0] * 6  # set by the controller
    if len(joint_torques) > 6:  # the posture acts along the null-space direction u: a fixed tendon u^T q
        tendon = spec.add_tendon(name=NULL_SPACE)
        for i in range(1, len(joint_torques) + 1):
            tendon.wrap_joint(f"joint{i}", 0.0)  # coefficients set by the controller
        act = spec.add_actuator(name=NULL_SPACE, target=NULL_SPACE, trntype=mujoco.mjtTrn.mjTRN_TENDON)
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = 1.0
        act.biasprm[:3] = [0.0, -POSTURE_GAINS[0], -POSTURE_GAINS[1]]
    for i, torque in enumerate(joint_torques, start=1):
        joint = spec.joint(f"joint{i}")
        joint.actfrcrange = [-torque, torque]
        joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE


class CartesianImpedance:
    """tau = J^T (K e + D (v_target - v) + w) + bias + payload, plus null-space posture (7-dof arms);
    or, on a position-controlled arm without compliance, tau = M J^-1 (Kp e + Kd (v_target - v)) + bias.

    Call ``prepare`` before ``mj_step1`` when ``due``, ``apply`` between ``mj_step1`` and ``mj_step2``.

    Attributes:
        target_pos: TCP target position [m], world frame.
        target_quat: TCP target orientation, wxyz.
        mode: ``"cartesian"``, ``"joint"`` (PD to ``target_q``) or ``"float"`` (gravity only).
        position_controlled: The arm's own behaviour is a stiff position loop (a UR), not an impedance.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, dof: int, flange_body: int,
                 stiffness: tuple[float, float], home: np.ndarray, position_controlled: bool = False):
        self.m = model
        self._data = data
        self.dof = n = dof
        self.body = flange_body
        self.default_stiffness = stiffness
        self.position_controlled = position_controlled
        self.kp, self.kd = POSITION_BANDWIDTH ** 2, 2.0 * POSITION_BANDWIDTH
        self.kq, self.dq = 400.0, 40.0
        self.home = np.asarray(home, dtype=float)
        self.period = model.opt.timestep
        self._every = max(1, round(MODEL_PERIOD / self.period))
        # The controller's parts in the model, and cached views into model and data.
        self._site = model.site(TCP_SITE).id
        model.site_sameframe[self._site] = 0  # it moves off the flange's frame with ``set_tcp``
        first = model.actuator(CARTESIAN_ACTUATORS[0]).id
        if [model.actuator(a).id for a in CARTESIAN_ACTUATORS] != list(range(first, first + 6)):
            raise ValueError("the Cartesian actuators must be consecutive")
        cart = self._cart = slice(first, first + 6)
        self._gear, self._biasprm = model.actuator_gear[cart], model.actuator_biasprm[cart]
        self._cart_ctrl, self._cart_vel = data.ctrl[cart], data.actuator_velocity[cart]
        mocap = model.body(TARGET).mocapid[0]
        self._mocap_pos, self._mocap_quat = data.mocap_pos[mocap], data.mocap_quat[mocap]
        self._torques = data.ctrl[:n]
        self._qpos, self._qvel = data.qpos[:n], data.qvel[:n]
        self._bias = data.qfrc_bias[:n]
        self._xpos = data.xpos[flange_body]
        self._xmat = data.xmat[flange_body].reshape(3, 3)
        self._jac_full = np.zeros((6, model.nv))
        self._jacp, self._jacr, self._jac = self._jac_full[:3], self._jac_full[3:], self._jac_full[:, :n]
        self._mass_full = np.zeros((model.nv, model.nv))
        self._rot = np.zeros(9)
        self._rot33 = self._rot.reshape(3, 3)
        self._axes: np.ndarray | None = None  # the stiff loop's actuator axes W (world), or None: base axes
        self._wrench_tcp = np.zeros(6)
        self._retune = True
        self._model_q = np.zeros(n)  # the joint positions the model was last refreshed at
        self._qc, self._qe = np.zeros(4), np.zeros(4)
        self._vw = np.zeros(6)  # the target's motion over one step [m, rad]
        self._vw_pos, self._vw_rot = self._vw[:3], self._vw[3:]
        self._ff = np.zeros(6)  # Cartesian actuator forces fed forward this step (the target's twist)
        self._twist_gain = np.zeros((6, 6))  # target motion over one step -> actuator forces
        self._joint_ff = np.zeros(n)  # held load and pushing wrench, as joint torques
        self._jjt = np.zeros((6, 6))
        self._damping_eye = SINGULAR_DAMPING * np.eye(6)
        self._posture: tuple[np.ndarray, np.ndarray] | None = None  # tendon coefficients, its ctrl
        if n > 6:
            adr = model.tendon_adr[model.tendon(NULL_SPACE).id]
            self._posture = (model.wrap_prm[adr: adr + n], data.ctrl[model.actuator(NULL_SPACE).id:][:1])
        self._damping = np.zeros(6)  # per actuator, on its velocity
        self._scratch = np.zeros(6)
        self._acc_full = np.zeros(model.nv)
        self._macc_full = np.zeros(model.nv)
        # State.
        self._mode = "cartesian"
        self.compliant = False  # an impedance asked for by a contact phase is in force
        self.set_impedance((stiffness[0],) * 3 + (stiffness[1],) * 3)
        self.compliant = False
        self._tcp_pos = np.zeros(3)  # flange_T_tcp the controller uses
        self._tcp_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._tp = np.zeros(3)
        self._tq = np.array([1.0, 0.0, 0.0, 0.0])
        self.target_q = self.home.copy()
        # The load the arm actually carries beyond its own links (the held plate), fed forward the
        # way a stiff position loop rejects a static load: tracking does not sag under it.
        self._extra_payload = 0.0  # [kg]
        self._extra_com = np.zeros(3)  # [m] in the flange frame
        self._first = True  # no previous target: no velocity feed-forward
        self._prev_quat: list[float] = []
        self._prev_q: np.ndarray | None = None
        self._age = self._every
        self._new_target = True
        self._twist_on = False
        self._turning = True  # the rotation part of the target's last step may be non-zero
        self.due = True  # ``prepare`` must run before the next step

    # --- what the driver sets -------------------------------------------------------------
    @property
    def target_pos(self) -> np.ndarray:
        return self._tp

    @target_pos.setter
    def target_pos(self, pos: np.ndarray) -> None:
        self._tp = pos
        self._new_target = self.due = True

    @property
    def target_quat(self) -> np.ndarray:
        return self._tq

    @target_quat.setter
    def target_quat(self, quat: np.ndarray) -> None:
        self._tq = quat
        self._new_target = self.due = True

    def set_target(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """The TCP target: position [m], quaternion wxyz (world frame)."""
        self._tp, self._tq = pos, quat
        self._new_target = self.due = True

    @property
    def tcp_pos(self) -> np.ndarray:
        return self._tcp_pos

    @property
    def tcp_quat(self) -> np.ndarray:
        return self._tcp_quat

    def set_tcp(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """``flange_T_tcp`` the controller uses (its TCP site moves with it)."""
        self._tcp_pos, self._tcp_quat = np.array(pos, dtype=float), np.array(quat, dtype=float)
        self.m.site_pos[self._site] = self._tcp_pos
        self.m.site_quat[self._site] = self._tcp_quat
        self._stale()

    @property
    def extra_payload(self) -> float:
        return self._extra_payload

    @extra_payload.setter
    def extra_payload(self, mass: float) -> None:
        self._extra_payload = float(mass)
        self._stale()

    @property
    def extra_com(self) -> np.ndarray:
        return self._extra_com

    @extra_com.setter
    def extra_com(self, com: np.ndarray) -> None:
        self._extra_com = np.asarray(com, dtype=float)
        self._stale()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = mode
        if mode != "cartesian":  # the Cartesian and posture actuators let go
            self._biasprm[:, 1] = 0.0
            self._cart_ctrl[:] = 0.0
            if self._posture is not None:
                self._posture[0][:] = 0.0
                self._posture[1][:] = 0.0
        self._stale()

    def _stale(self) -> None:
        """Refresh the dynamics model, and set the gains anew, before the next step."""
        self._age = self._every
        self._retune = True
        self.due = True

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
        self._stale()

    def set_own(self) -> None:
        """Back to the arm's own behaviour: the stiff loop, or the arm's own impedance."""
        kt, kr = self.default_stiffness
        self.set_impedance((kt,) * 3 + (kr,) * 3)
        self.compliant = False

    # --- measurements -----------------------------------------------------------------------
    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP (through the configured TCP): position [m], quaternion wxyz."""
        body = self.body
        pos = data.xpos[body] + data.xmat[body].reshape(3, 3) @ self._tcp_pos
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, data.xquat[body], self._tcp_quat)
        return pos, quat

    def jacobian(self, data: mujoco.MjData, point: np.ndarray) -> np.ndarray:
        """6 x dof geometric Jacobian of ``point`` (world frame) on the flange body."""
        jac = np.zeros((6, self.m.nv))
        mujoco.mj_jac(self.m, data, jac[:3], jac[3:], point, self.body)
        return jac[:, : self.dof]

    def reset_feedforward(self) -> None:
        """Forget the previous target (no velocity feed-forward on the next step), and refresh the
        dynamics model from the state now, so that an episode started from the same state replays exactly."""
        self._first = True
        self._prev_quat = []
        self._prev_q = None
        self._new_target = True
        self._stale()

    # --- the loop -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Before ``mj_step1``: refresh the dynamics model when it is due; pass a new target on to the
        mocap target with its velocity feed-forward (for one step), or end the feed-forward."""
        if self._mode != "cartesian":
            self.due = False
            return
        if self._age >= self._every:
            self._age = 0
            if self._retune or np.abs(self._qpos - self._model_q).max() > MODEL_MOTION:
                self._refresh()
        if self._new_target:
            self._new_target = False
            tp, mocap = self._tp, self._mocap_pos
            quat = self._tq.tolist()
            turned = quat != self._prev_quat
            if self._first:  # target velocity feed-forward (zero on the first step)
                self._first = False
                mocap[:] = tp
                self._mocap_quat[:] = quat
                self._ff[:] = 0.0
                self._twist_on = False
            else:
                # The target's motion over one step: translation (the mocap holds the previous target),
                # rotation vector.
                np.subtract(tp, mocap, out=self._vw_pos)
                mocap[:] = tp
                if turned:
                    self._mocap_quat[:] = quat
                    self._orient()
                    # An array, not the list: a Ctrl-C landing in the binding's conversion of a list
                    # came out as a TypeError, not KeyboardInterrupt.
                    mujoco.mju_negQuat(self._qc, np.asarray(self._prev_quat))
                    mujoco.mju_mulQuat(self._qe, self._tq, self._qc)
                    mujoco.mju_quat2Vel(self._vw_rot, self._qe, 1.0)
                elif self._turning:
                    self._vw_rot[:] = 0.0
                self._turning = turned
                np.dot(self._twist_gain, self._vw, out=self._ff)
                self._twist_on = True
            self._prev_quat = quat
        elif self._twist_on:  # the target holds: no target velocity
            self._ff[:] = 0.0
            self._twist_on = False
        self.due = self._twist_on

    def stream(self, positions: np.ndarray, quat: np.ndarray) -> None:
        """One physics step per row of ``positions`` [m], all at orientation ``quat`` (wxyz), the target
        moving by an even stride: as ``set_target``, ``prepare`` and a step per row, the stride's
        velocity feed-forward computed at the first row (and at each refresh) rather than at each."""
        m, d, step1, step2, apply = self.m, self._data, mujoco.mj_step1, mujoco.mj_step2, self.apply
        mocap, general = self._mocap_pos, True
        for p in positions:
            if general or self._age >= self._every:
                self.set_target(p, quat)
                self.prepare()
                general = self._first or self._mode != "cartesian" or not self._twist_on
            else:
                self._tp = p
                mocap[:] = p
            step1(m, d)
            apply()
            step2(m, d)

    def apply(self) -> None:
        """Between ``mj_step1`` and ``mj_step2``: this step's joint torques and Cartesian damping."""
        if self._mode == "cartesian":
            np.add(self._bias, self._joint_ff, out=self._torques)
            np.multiply(self._damping, self._cart_vel, out=self._scratch)
            np.subtract(self._ff, self._scratch, out=self._cart_ctrl)
            self._age += 1
            if self._age >= self._every:
                self.due = True
        elif self._mode == "joint":
            if self.position_controlled:
                self._torques[:] = self._joint_position(self._data)
            else:
                self._torques[:] = self._bias + self.kq * (self.target_q - self._qpos) - self.dq * self._qvel
        else:  # float
            self._torques[:] = self._bias - 2.0 * self._qvel

    def _refresh(self) -> None:
        """The slowly varying part of the law, from the kinematics and mass matrix MuJoCo last computed:
        the Cartesian actuators' gears (and, when the behaviour changed, their gains), the wrench fed
        forward, the null-space posture's direction."""
        m, d, n = self.m, self._data, self.dof
        # From the flange's frame, not the sites': they move with model parameters (``set_tcp``) only
        # at the next kinematics, and what was computed before must not depend on what ran before.
        xmat = self._xmat
        mujoco.mj_jac(m, d, self._jacp, self._jacr, xmat @ self._tcp_pos + self._xpos, self.body)
        jac, jjt = self._jac, self._jjt
        np.dot(jac, jac.T, out=jjt)
        jjt += self._damping_eye
        stiff = self.position_controlled and not self.compliant
        # The wrench fed forward at the TCP (world frame): the push along free axes, the held load's
        # +m g up and its moment about the TCP; as joint torques J^T w.
        w = self._wrench_tcp
        w[:] = 0.0 if stiff else self.wrench_ff
        if self._extra_payload:
            fz = -self._extra_payload * GRAVITY[2]
            lx, ly, _ = (xmat @ (self._extra_com - self._tcp_pos)).tolist()  # from the TCP to the load
            w[2] += fz
            w[3] += ly * fz
            w[4] -= lx * fz
        np.dot(jac.T, w, out=self._joint_ff)
        _, inv_t, _ = dposv(jjt, jac)  # A^T = (J J^T + eps I)^-1 J
        if stiff:
            # K = Kp Lambda, D = Kd Lambda with Lambda = A^T M A, A = J^T (J J^T + eps I)^-1: the actuators'
            # world axes are the columns of W = A^T L (L L^T = M, Cholesky), so that W W^T = Lambda.
            mujoco.mj_fullM(m, d, self._mass_full)
            chol, _ = dpotrf(self._mass_full[:n, :n], lower=1, clean=1)
            axes = self._axes = inv_t @ chol
            self._twist_gain[:] = (self.kd / self.period) * axes.T
            if self._retune:
                self._biasprm[:, 1] = -self.kp
                self._damping[:] = self.kd
                if self._posture is not None:
                    self._posture[0][:] = 0.0
                    self._posture[1][:] = 0.0
        else:
            if self._retune:
                self._biasprm[:, 1] = -self.k
                self._damping[:] = self.d
                self._twist_gain[:] = np.diag(np.where(self.free, 0.0, self.d / self.period))
                self._gear[:] = 0.0
            self._axes = None  # the base axes
            if self._posture is not None:  # u: the null space of J (N = I - J^T (J J^T + eps I)^-1 J = u u^T)
                null = np.eye(n) - jac.T @ inv_t
                k = int(np.argmax(np.diag(null)))
                coef, ctrl = self._posture
                coef[:] = null[:, k] / np.sqrt(null[k, k])
                ctrl[0] = POSTURE_GAINS[0] * float(coef @ self.home)
        self._retune = False
        self._model_q[:] = self._qpos
        self._orient()

    def _orient(self) -> None:
        """The gears in the target's frame (the reference site's, which turns with the target):
        ``blockdiag(R, R)^T W``, the base axes ``W = I`` of the impedance, or the stiff loop's ``W``."""
        mujoco.mju_quat2Mat(self._rot, self._tq)
        rot = self._rot33
        if self._axes is None:
            self._gear[:3, :3] = self._gear[3:, 3:] = rot
        else:
            self._gear[:] = np.matmul(rot.T, self._axes.reshape(2, 3, 6)).reshape(6, 6).T

    def _mass_times(self, data: mujoco.MjData, acc: np.ndarray) -> np.ndarray:
        """M(q) acc for the arm joints [Nm] (coupling to the fingers and the load ignored)."""
        self._acc_full[: self.dof] = acc
        mujoco.mj_mulM(self.m, data, self._macc_full, self._acc_full)
        return self._macc_full[: self.dof]

    def _joint_position(self, data: mujoco.MjData) -> np.ndarray:
        """The stiff loop in joint space: each joint tracks ``target_q`` with its velocity fed forward."""
        tq = self.target_q
        dq_ff = 0.0 if self._prev_q is None else (tq - self._prev_q) / self.period
        self._prev_q = np.array(tq, dtype=float)
        qdd = self.kp * (tq - self._qpos) + self.kd * (dq_ff - self._qvel)
        return self._bias + self._mass_times(data, qdd)
