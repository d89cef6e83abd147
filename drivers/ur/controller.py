"""The emulated UR controller: registers, robot and safety modes, and the 500 Hz control loop.

One thread owns the simulated arm and steps it every period in real time; the RTDE, dashboard
and script servers only touch it through this class, under its lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from rmskill.arm import Arm, Wrench
from rmskill.config import ArmConfig
from rmskill.errors import ConfigError
from rmskill.geometry import Pose

from .force_mode import ForceMode
from .kinematic_arm import URKinematics
from .motion import Motion, Setpoint

log = logging.getLogger(__name__)

ROBOT_MODE = {"POWER_OFF": 3, "IDLE": 5, "RUNNING": 7}
SAFETY_NORMAL, SAFETY_PROTECTIVE_STOP = 1, 3
RUNTIME_STOPPED, RUNTIME_PLAYING, RUNTIME_PAUSED = 1, 2, 3
N_REG = 48
SETTLE_MM = 0.05  # [mm] a move has arrived when the TCP is this close to its target
SETTLE_TIMEOUT = 0.5  # [s] longest wait for that after the motion profile has ended
FORCE_FILTER = 0.016  # [s] time constant of the force the safety system compares with its limit
CATCH_UP = 0.1  # [s] the loop catches up on a delay up to this long; a longer one is skipped
HISTORY = 500  # control periods of joint positions kept (get_actual_joint_positions_history)


class Registers:
    """The controller's general-purpose RTDE registers (inputs written by clients, outputs by programs)."""

    def __init__(self) -> None:
        self.input = {"int": [0] * N_REG, "double": [0.0] * N_REG, "bit": [False] * 128}
        self.output = {"int": [0] * N_REG, "double": [0.0] * N_REG, "bit": [False] * 128}
        self.other_inputs: dict[str, Any] = {}
        self.owners: dict[str, object] = {}
        self._last_input = time.monotonic()

    def touch(self) -> None:
        """An RTDE input package arrived (the watchdog's input)."""
        self._last_input = time.monotonic()

    def input_age(self) -> float:
        """Seconds since the last RTDE input package."""
        return time.monotonic() - self._last_input

    def claim(self, names: list[str], owner: object) -> list[str]:
        """Give ``names`` to ``owner``; returns those already owned by someone else (IN_USE)."""
        in_use = [n for n in names if self.owners.get(n, owner) is not owner]
        if not in_use:
            for n in names:
                self.owners[n] = owner
        return in_use

    def release(self, owner: object) -> bool:
        """Free what ``owner`` held; True if it held any."""
        held = [n for n, o in self.owners.items() if o is owner]
        for n in held:
            del self.owners[n]
        return bool(held)


class Controller:
    """A UR controller around one simulated ``Arm``, stepped at ``1 / period`` Hz in real time."""

    def __init__(self, arm: Arm, config: ArmConfig, period: float = 0.002):
        self.arm, self.config, self.period = arm, config, period
        self.kin = URKinematics(config.model)
        self.kin.flange_T_tcp = config.flange_T_tcp
        self.lock = threading.RLock()
        self.registers = Registers()
        self.robot_mode = ROBOT_MODE["RUNNING"]
        self.safety_mode = SAFETY_NORMAL
        self.program: Any = None  # a ControlProgram while one runs
        self.program_name = "<unnamed>"
        self.motion: Motion | None = None
        self.freedrive = False
        self.payload = (0.0, [0.0, 0.0, 0.0])
        #: Safety force limit [N]; UR's default for normal mode is 150 N.
        self.force_limit = float(config.options.get("emulator_force_limit", 150.0))
        self.safety_force = 0.0  # [N] the filtered TCP force the limit is judged on
        self.tick_count = 0
        self._settling = 0.0
        self.overruns = 0
        self.subscribers: list[Callable[[int, dict[str, Any]], None]] = []
        self.tool: Any = None  # the emulated gripper (``tool.make_tool``), stepped with the arm
        self.tool_outputs = 0  # tool digital outputs, bit i = output i
        self.tool_inputs = 0  # tool digital inputs, bit i = input i
        self.digital_outputs = 0  # standard (bits 0-7) and configurable (bits 8-15) digital outputs
        self.analog_outputs = [0.0, 0.0]  # standard analog outputs [A or V]
        self.speed_slider = 1.0  # the pendant's speed slider, set over RTDE: scales the time of every motion
        self.paused = False
        self.force_mode = ForceMode()
        self.ft_offset = np.zeros(6)  # zero_ftsensor(): subtracted from the sensed wrench
        self.target_payload_inertia = [0.0] * 6
        self.q_history: deque[np.ndarray] = deque(maxlen=HISTORY)
        self.raw_state = self.state = arm.state()
        self._hold = Setpoint(pose=self.state.base_T_tcp)

    # --- control loop ---------------------------------------------------------------------
    def run(self, stop_event: threading.Event) -> None:
        """Step every ``period`` [s] until ``stop_event`` is set (absolute deadlines, no drift)."""
        deadline = time.monotonic()
        while not stop_event.is_set():
            self.tick()
            deadline += self.period
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -CATCH_UP:  # far behind (the machine stalled): skip ahead instead of bursting
                self.overruns += 1
                deadline = time.monotonic()
            # a little behind: the next periods run back to back, so controller time keeps up with the clock

    def tick(self) -> None:
        """One control period: run the program, move the arm, publish the state."""
        with self.lock:
            try:
                if self.program is not None and not self.paused:
                    self.program.step()
                if self.tool is not None:
                    self.tool.step()
                self._step_arm()
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:  # a program error, not a crash
                log.error("control program error: %s", err)
                self.stop_program(f"runtime error: {err}")
                self.state = self._zeroed(self.arm.state())
            snapshot = self.snapshot()
            self.tick_count += 1
        for publish in list(self.subscribers):
            try:
                publish(self.tick_count, snapshot)
            except Exception:  # one bad client must not stop the arm's control loop
                log.exception("publishing state failed; dropping that subscriber")
                self.subscribers.remove(publish)

    def _step_arm(self) -> None:
        motion = self.motion
        running = self.robot_mode == ROBOT_MODE["RUNNING"] and not self.freedrive and not self.paused
        if motion is not None and running:
            self._hold = motion.step(self.period * self.speed_slider)
        servo_joints = getattr(self.arm, "servo_joints", None)
        force = self.force_mode.active and running
        if self._hold.q is not None and servo_joints is not None and not force:
            servo_joints(self._hold.q, self.period)
        else:  # arms without joint servo follow the joint path through its TCP poses
            pose = self._hold.pose if self._hold.pose is not None else self.kin.forward(self._hold.q)  # type: ignore[arg-type]
            if force:
                pose = self.force_mode.step(pose, self._wrench_vector(), self.period)
            self.arm.servo(pose, self.period)
        self.raw_state = self.arm.state()
        self.state = self._zeroed(self.raw_state)
        self.q_history.append(self.state.q.copy())
        wrench = self.raw_state.wrench
        if wrench is not None:  # the safety system judges the force as it estimates it: low-pass filtered
            self.safety_force += self.period / (FORCE_FILTER + self.period) * (wrench.force_norm - self.safety_force)
        if self.safety_force > self.force_limit and self.safety_mode == SAFETY_NORMAL:
            self.protective_stop(f"TCP force {self.safety_force:.0f} N above the {self.force_limit:.0f} N limit")
            return
        if motion is not None and motion.done:
            # like a real controller, a move ends once the arm has arrived (or gives up settling)
            if not self._arrived(self._hold) and self._settling < SETTLE_TIMEOUT:
                motion.done = False
                self._settling += self.period
            else:
                self.motion, self._settling = None, 0.0

    def _arrived(self, setpoint: Setpoint) -> bool:
        if setpoint.q is not None:
            return float(np.max(np.abs(self.state.q - setpoint.q))) < 1e-4
        assert setpoint.pose is not None
        return self.state.base_T_tcp.distance_mm(setpoint.pose) < SETTLE_MM

    def _wrench_vector(self) -> np.ndarray:
        w = self.state.wrench
        return np.zeros(6) if w is None else np.r_[w.force, w.torque]

    def _zeroed(self, state):
        """``state`` with the F/T offset of the last ``zero_ftsensor()`` taken off its wrench."""
        if state.wrench is None or not np.any(self.ft_offset):
            return state
        return replace(state, wrench=Wrench(state.wrench.force - self.ft_offset[:3],
                                            state.wrench.torque - self.ft_offset[3:]))

    # --- commands used by programs and servers ----------------------------------------------
    def start_motion(self, motion: Motion | None) -> None:
        """Replace the current motion; ``None`` stops and holds the measured pose."""
        self.motion, self._settling = motion, 0.0
        self.force_mode.rebase()
        if motion is None:
            self.hold_here()

    def zero_ft_sensor(self) -> None:
        """zero_ftsensor(): the wrench sensed now reads zero from here on."""
        w = self.raw_state.wrench
        self.ft_offset = np.zeros(6) if w is None else np.r_[w.force, w.torque]

    def end_force_mode(self) -> None:
        self.force_mode.stop()
        self.start_motion(None)

    def joints_within_limits(self, q) -> bool:
        """is_within_safety_limits(q): every joint in its range and the TCP in the arm file's workspace."""
        q = np.asarray(q, dtype=float)
        lo, hi = self.kin.ranges
        if q.shape != (6,) or not np.all(np.isfinite(q)) or np.any(q < lo) or np.any(q > hi):
            return False
        return self.in_workspace(self.kin.forward(q))

    def pose_within_limits(self, pose: Pose) -> bool:
        """is_within_safety_limits(pose): in the arm file's workspace and reachable within the joint ranges."""
        if not self.in_workspace(pose):
            return False
        q = self.kin.solve(pose, self.state.q)
        return q is not None and self.joints_within_limits(q)

    def in_workspace(self, pose: Pose) -> bool:
        box = self.config.limits.workspace
        return all(lo <= v <= hi for v, lo, hi in zip(pose.xyz.tolist(), box.min, box.max, strict=True))

    def reset_world(self, **start: Any) -> None:
        """The emulator's operator (``operator.py``): ``sim.reset(**start)`` on the simulated cell, then
        the controller re-synced to the new state: no motion, no force mode, holding where the arm now is,
        the gripper device matching the fingers. What a person does between episodes on a real cell."""
        sim = getattr(self.arm, "sim", None)
        if sim is None:
            raise ConfigError("this emulator's arm has no simulated cell to reset (the kinematic stand-in)")
        with self.lock:
            _log_plate(sim)
            sim.reset(**start)  # may raise: the cell is as it was
            self.force_mode.stop()
            if self.program is not None:  # the next servoL/speedL starts a new motion from the new state
                self.program.servo = self.program.speed = None
            self.raw_state = self.arm.state()
            self.state = self._zeroed(self.raw_state)
            self.q_history.clear()
            self.safety_force = 0.0
            self.start_motion(None)
            if self.tool is not None:
                self.tool.resync()

    def hold_here(self) -> None:
        self._hold = Setpoint(pose=self.state.base_T_tcp)

    def set_tcp(self, flange_T_tcp: Pose) -> None:
        self.kin.flange_T_tcp = flange_T_tcp
        self.arm.set_tcp(flange_T_tcp)
        self.state = self.arm.state()
        if self.motion is None:
            self.hold_here()

    def set_payload(self, mass: float, cog: list[float]) -> None:
        self.payload = (float(mass), [float(c) for c in cog])
        self.arm.set_payload(mass, cog)

    def write_outputs(self, values: dict[str, Any]) -> None:
        """Apply the outputs an RTDE input package sets (rtde_io): digital outputs (each masked: only the
        mask's bits change), analog outputs and the speed slider."""
        mask = int(values.get("tool_digital_output_mask", 0))
        if mask:
            value = int(values.get("tool_digital_output", 0))
            self.tool_outputs = (self.tool_outputs & ~mask) | (value & mask)
        for name, shift in (("standard", 0), ("configurable", 8)):
            mask = int(values.get(f"{name}_digital_output_mask", 0)) << shift
            if mask:
                value = int(values.get(f"{name}_digital_output", 0)) << shift
                self.digital_outputs = (self.digital_outputs & ~mask) | (value & mask)
        mask = int(values.get("standard_analog_output_mask", 0))
        for i in range(2):
            if mask & (1 << i):
                self.analog_outputs[i] = float(values.get(f"standard_analog_output_{i}", 0.0))
        if int(values.get("speed_slider_mask", 0)):
            self.speed_slider = float(np.clip(values.get("speed_slider_fraction", 1.0), 0.0, 1.0))

    def set_freedrive(self, on: bool) -> None:
        self.freedrive = on
        self.motion = None
        self.arm.freedrive(on)
        self.hold_here()

    def stop_program(self, reason: str) -> None:
        if self.program is not None:
            log.info("control program stopped: %s", reason)
        self.program, self.paused = None, False
        self.force_mode.stop()
        self.start_motion(None)

    def load_program(self, program: Any, name: str) -> bool:
        """Start ``program`` (replacing any running one); refused unless the arm is running."""
        with self.lock:
            if self.robot_mode != ROBOT_MODE["RUNNING"] or self.safety_mode != SAFETY_NORMAL:
                log.warning("program '%s' refused: robot mode %d, safety mode %d", name, self.robot_mode,
                            self.safety_mode)
                return False
            self.stop_program("replaced by a new program")
            self.program, self.program_name = program, name
            return True

    def protective_stop(self, reason: str) -> None:
        """Stop the arm and the program, as the safety system does."""
        with self.lock:
            log.warning("protective stop: %s", reason)
            self.safety_mode = SAFETY_PROTECTIVE_STOP
            self.force_mode.stop()
            self.stop_program(f"protective stop ({reason})")
            self.arm.stop()

    def unlock_protective_stop(self) -> bool:
        with self.lock:
            was = self.safety_mode == SAFETY_PROTECTIVE_STOP
            self.safety_mode = SAFETY_NORMAL
            return was

    def set_robot_mode(self, mode: str) -> None:
        with self.lock:
            self.robot_mode = ROBOT_MODE[mode]
            if mode != "RUNNING":
                self.stop_program(f"robot mode {mode}")

    def release(self, owner: object) -> None:
        """An RTDE client went away; if it drove the program's registers, stop the program."""
        with self.lock:
            if self.registers.release(owner) and self.program is not None:
                self.stop_program("RTDE connection of the control client lost")

    # --- state ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The RTDE output values of this period, by variable name (registers included)."""
        s, regs = self.state, self.registers
        running = self.program is not None
        normal = self.safety_mode == SAFETY_NORMAL
        wrench = np.r_[s.wrench.force, s.wrench.torque] if s.wrench is not None else np.zeros(6)
        tcp = s.base_T_tcp.to_ur()
        target = self._hold.pose.to_ur() if self._hold.pose is not None else tcp
        values: dict[str, Any] = {
            "timestamp": self.tick_count * self.period,  # controller time [s], one step per period
            "actual_q": s.q.tolist(), "target_q": s.q.tolist(),
            "actual_qd": s.dq.tolist(), "target_qd": s.dq.tolist(),
            "actual_TCP_pose": tcp, "target_TCP_pose": target,
            "actual_TCP_speed": s.tcp_velocity.tolist(), "target_TCP_speed": s.tcp_velocity.tolist(),
            "actual_TCP_force": wrench.tolist(), "ft_raw_wrench": wrench.tolist(),
            "robot_mode": self.robot_mode, "safety_mode": self.safety_mode, "safety_status": self.safety_mode,
            "joint_mode": [253] * 6,
            "runtime_state": (RUNTIME_PAUSED if self.paused else RUNTIME_PLAYING) if running else RUNTIME_STOPPED,
            "robot_status_bits": int(self.robot_mode != ROBOT_MODE["POWER_OFF"]) | (int(running) << 1),
            "safety_status_bits": (1 if normal else 0) | (0 if normal else 1 << 2),
            "speed_scaling": self.speed_slider, "target_speed_fraction": self.speed_slider,
            "standard_analog_output0": self.analog_outputs[0], "standard_analog_output1": self.analog_outputs[1],
            "actual_main_voltage": 48.0, "actual_robot_voltage": 48.0, "joint_temperatures": [30.0] * 6,
            "payload": self.payload[0], "payload_cog": self.payload[1],
            # tool I/O are bits 16 and 17 of the digital bit fields, as on a real controller
            "actual_digital_output_bits": (self.tool_outputs << 16) | self.digital_outputs,
            "actual_digital_input_bits": self.tool_inputs << 16,
            "tcp_offset": self.kin.flange_T_tcp.to_ur(), "actual_execution_time": 0.1,
        }
        for direction, bank in (("input", regs.input), ("output", regs.output)):
            for kind in ("int", "double"):
                for i, v in enumerate(bank[kind]):
                    values[f"{direction}_{kind}_register_{i}"] = v
        return values


#: The emulator's log line at each operator reset (``EmulatorProcess.plate_reports`` reads it back).
PLATE_REPORT = "operator reset; the plate was %.3f mm / %.3f deg from %s's seat (%s)"


def _log_plate(sim: Any) -> None:
    """The emulator's own log says where the last episode left the plate, as a person looking at the cell
    would see it; nothing of it goes to the client (whose episodes are scored by the arm's sensing)."""
    if not log.isEnabledFor(logging.INFO) or not hasattr(sim, "placement_error"):
        return
    slots = [name for name, f in sim.arm.config.fixtures.items() if f.kind == "slot"]
    if not slots:
        return
    errors = {name: sim.placement_error(name) for name in slots}
    name = min(errors, key=lambda n: errors[n][0])
    mm, deg = errors[name]
    held = "held" if sim.held is not None else ("in the nest" if sim.nest_of(sim.carried or 0) == name else "loose")
    log.info(PLATE_REPORT, mm, deg, name, held)
