"""The 1 kHz loop inside the control process: idle reads, control sessions, requests.

Each tick is either an idle ``read_once`` or one ``readOnce``/``writeOnce`` of a control session
(Cartesian pose for ``servo``/``move_to``, joint positions for ``move_joints``). Requests that
need the robot idle (configuration, joint moves, stop, close) first bring a running session to
rest and end it. A libfranka exception ends the session and becomes a fault event.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from typing import Any, TextIO

import numpy as np
import pylibfranka as pf

from rmskill.drivers.franka.follower import CartesianFollower, JointFollower
from rmskill.drivers.franka.shared import SharedBlock
from rmskill.drivers.franka.tracker import Limits

logger = logging.getLogger(__name__)
PERIOD = 1e-3  # robot tick [s]


def classify(err: BaseException) -> str:
    """Short kind of a libfranka failure, for the caller's ``DriverError``."""
    text = str(err)
    if isinstance(err, pf.RealtimeException):
        return "realtime"
    if isinstance(err, pf.NetworkException):
        return "connection"
    if "reflex" in text.lower():
        return "reflex"
    return {pf.ControlException: "control", pf.CommandException: "command"}.get(type(err), "libfranka")


class Controller:
    """Idle loop (``read_once``) or a control session (``readOnce``/``writeOnce``) each tick."""

    def __init__(self, robot: pf.Robot, settings: dict, block: SharedBlock, out: TextIO):
        self.robot, self.settings, self.block, self.out = robot, settings, block, out
        self.mode = getattr(pf.ControllerMode, settings["mode"])
        self.requests: queue.Queue[dict] = queue.Queue()
        self.ctrl: Any = None  # pylibfranka ActiveControlBase while a session runs
        self.follower: CartesianFollower | JointFollower | None = None
        self.t = 0.0
        self.finish_at_rest = False  # end the session once the commanded motion has settled
        self.waiting: list[dict] = []  # requests answered when the session settles or ends
        self.deferred: list[dict] = []  # requests that need the robot idle
        self.last_seq = 0
        self.faulted = False
        self.cycles = self.missed = 0
        self.last_wall = 0.0
        self.prev: tuple[float, np.ndarray, np.ndarray] | None = None
        self.velocity = np.zeros(6)
        self.closing = False
        self.current: dict | None = None  # the request being handled, answered if it fails

    # --- replies ----------------------------------------------------------------------------
    def send(self, **msg: Any) -> None:
        self.out.write(json.dumps(msg) + "\n")
        self.out.flush()

    def fail_all(self, kind: str, error: str) -> None:
        for req in self.waiting + self.deferred:
            self.send(id=req["id"], ok=False, kind=kind, error=error)
        self.waiting, self.deferred = [], []

    # --- state ------------------------------------------------------------------------------
    def publish(self, st: pf.RobotState) -> None:
        t = st.time.to_sec()
        m = np.asarray(st.O_T_EE, dtype=float).reshape(4, 4).T
        if self.prev is not None and t > self.prev[0]:
            dt = t - self.prev[0]
            w = m[:3, :3] @ self.prev[2].T
            raw = np.r_[(m[:3, 3] - self.prev[1]) / dt, [w[2, 1] - w[1, 2], w[0, 2] - w[2, 0], w[1, 0] - w[0, 1]]]
            raw[3:] /= 2.0 * dt
            self.velocity += 0.2 * (raw - self.velocity)
        self.prev = (t, m[:3, 3].copy(), m[:3, :3].copy())
        self.block.write_state(
            time=t,
            q=st.q,
            dq=st.dq,
            O_T_EE=st.O_T_EE,
            O_F_ext_hat_K=st.O_F_ext_hat_K,
            tcp_velocity=self.velocity,
            robot_mode=int(st.robot_mode),
            active=float(self.ctrl is not None),
            cycles=self.cycles,
            missed=self.missed,
        )

    # --- sessions ---------------------------------------------------------------------------
    def start(self, kind: str, finish_at_rest: bool) -> None:
        lim = self.settings
        if kind == "cartesian":
            self.ctrl = self.robot.start_cartesian_pose_control(self.mode)
            st, _ = self.ctrl.readOnce()
            self.follower = CartesianFollower(
                st.O_T_EE_c, Limits(*lim["linear"]), Limits(*lim["angular"]), lim["omega"]
            )
        else:
            self.ctrl = self.robot.start_joint_position_control(self.mode)
            st, _ = self.ctrl.readOnce()
            self.follower = JointFollower(st.q_d, Limits(*lim["joint"]), lim["omega"])
        self.t, self.finish_at_rest, self.last_wall = 0.0, finish_at_rest, time.perf_counter()
        self.publish(st)
        self.write(finished=False)

    def write(self, finished: bool) -> None:
        f = self.follower
        if isinstance(f, CartesianFollower):
            cmd = pf.CartesianPose(f.command())
        else:
            cmd = pf.JointPositions(f.q.tolist())
        cmd.motion_finished = finished
        self.ctrl.writeOnce(cmd)

    def cycle(self) -> None:
        st, d = self.ctrl.readOnce()
        now = time.perf_counter()
        period, self.last_wall = now - self.last_wall, now
        dt = max(d.to_sec(), PERIOD)
        self.missed += max(0, round(dt / PERIOD) - 1)
        self.cycles += 1
        self.t += dt
        self.publish(st)
        if isinstance(self.follower, CartesianFollower):
            self.poll_target()
        self.follower.step(self.t, dt)
        settled = self.follower.at_rest(self.t)
        finished = settled and (self.finish_at_rest or bool(self.deferred))
        self.write(finished)
        self.block.add_timing(period, time.perf_counter() - now)
        if settled:
            for req in self.waiting:
                self.send(id=req["id"], ok=True)
            self.waiting = []
        if finished:
            self.ctrl, self.follower = None, None

    def poll_target(self) -> None:
        seq, xyz, wxyz, duration = self.block.read_target()
        if seq == self.last_seq:
            return
        self.last_seq = seq
        if self.faulted:
            return
        if self.ctrl is None:
            self.start("cartesian", finish_at_rest=False)
        self.finish_at_rest = False
        self.follower.set_target(xyz, wxyz, self.t, duration)

    # --- requests ---------------------------------------------------------------------------
    def handle(self, req: dict) -> None:
        op = req["op"]
        if op in ("stop", "close"):
            if self.ctrl is not None:
                self.follower.freeze(self.t)
                self.deferred.append(req)
                return
            self.closing = op == "close"
            self.send(id=req["id"], ok=True)
        elif op == "move_to":
            if self.ctrl is None:
                self.start("cartesian", finish_at_rest=True)
            elif not isinstance(self.follower, CartesianFollower):
                self.deferred.append(req)
                return
            self.follower.set_target(np.array(req["xyz"]), np.array(req["wxyz"]), self.t, 0.0, True)
            self.waiting.append(req)
        elif self.ctrl is not None:  # the rest needs the robot idle
            self.follower.freeze(self.t)
            self.deferred.append(req)
        elif op == "move_joints":
            self.start("joint", finish_at_rest=True)
            self.follower.set_target(np.array(req["q"]), self.t, req["speed"])
            self.waiting.append(req)
        else:
            self.configure(req)

    def configure(self, req: dict) -> None:
        op = req["op"]
        if op == "set_tcp":
            f_t_ne = np.asarray(self.robot.read_once().F_T_NE, dtype=float).reshape(4, 4).T
            f_t_tcp = np.asarray(req["flange_T_tcp"], dtype=float).reshape(4, 4).T
            self.robot.set_EE((np.linalg.inv(f_t_ne) @ f_t_tcp).T.reshape(-1).tolist())
        elif op == "set_payload":
            self.robot.set_load(req["mass"], req["center_of_mass"], [0.0] * 9)
        elif op == "set_compliance":  # the internal Cartesian impedance, for the next motion
            stiffness = req["stiffness"] or self.settings["cartesian_impedance"]
            if stiffness:
                self.robot.set_cartesian_impedance(stiffness)
            self.mode = pf.ControllerMode.CartesianImpedance if req["stiffness"] else getattr(
                pf.ControllerMode, self.settings["mode"])
        elif op == "recover":
            self.robot.automatic_error_recovery()
            self.faulted = False
            self.last_seq = self.block.read_target()[0]  # drop targets sent before the fault
        else:
            self.send(id=req["id"], ok=False, kind="request", error=f"unknown request {op!r}")
            return
        self.publish(self.robot.read_once())  # so the caller's next state() shows the change
        self.send(id=req["id"], ok=True)

    def step(self) -> None:
        """One tick: a control cycle or an idle read, then whatever requests have arrived."""
        try:
            if self.ctrl is not None:
                self.cycle()
            else:
                self.publish(self.robot.read_once())
                self.poll_target()
            while self.ctrl is None and self.deferred:
                self.current = self.deferred.pop(0)
                self.handle(self.current)
                self.current = None
            while not self.requests.empty() and not self.closing:
                self.current = self.requests.get_nowait()
                self.handle(self.current)
                self.current = None
        except (pf.FrankaException, RuntimeError, ValueError) as err:  # libfranka's, as pybind maps them
            self.ctrl, self.follower, self.faulted = None, None, True
            kind = classify(err)
            logger.error("libfranka %s error: %s", kind, err)
            if self.current is not None and self.current not in self.waiting + self.deferred:
                self.deferred.append(self.current)
            self.current = None
            self.fail_all(kind, str(err))
            self.send(event="fault", kind=kind, error=str(err))
            if kind == "connection":
                self.closing = True
