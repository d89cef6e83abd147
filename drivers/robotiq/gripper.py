"""The Robotiq 2F-85 / 2F-140 adaptive gripper over its serial Modbus RTU interface (115200 8N1, slave 9).

``close()`` is the ``Gripper`` finger motion; the serial link is ``connect()``/``disconnect()``, or use
the gripper as a context manager::

    with RobotiqGripper(GripperConfig(driver="robotiq", port="/dev/ttyUSB0")) as gripper:
        state = gripper.close()          # blocks until the fingers stop
        print(state.width, state.object_detected)
"""

from __future__ import annotations

import logging
import math
import time

from rmskill.arm import Arm, Gripper, GripperState
from rmskill.config import GripperConfig
from rmskill.drivers.robotiq import modbus
from rmskill.drivers.robotiq.client import ModbusRtuClient
from rmskill.drivers.robotiq.registers import (
    BAUDRATE,
    OBJ_MOVING,
    REGISTER_COUNT,
    REQUEST_ADDRESS,
    SLAVE_ID,
    STATUS_ADDRESS,
    Command,
    Status,
    fault_text,
    model_spec,
    position_to_width,
    to_byte,
    width_to_position,
)
from rmskill.errors import ConfigError, DriverError

log = logging.getLogger(__name__)

#: Status polling period while waiting for activation or motion [s].
POLL_PERIOD = 0.01
#: Longest activation the manual allows for, with margin [s].
ACTIVATION_TIMEOUT = 10.0


class RobotiqGripper(Gripper):
    """A Robotiq 2F gripper on ``config.port``.

    Args:
        config: ``port`` (serial device path), ``model`` (``"2f-85"`` default, or ``"2f-140"``),
            ``timeout`` (reply timeout in [s]), ``force`` (default grip force in [N]) and
            ``max_width`` (opening used by ``open()`` in [m]; the model's stroke by default).
        arm: The arm it is mounted on (unused: the serial link is the gripper's own).
    """

    def __init__(self, config: GripperConfig, arm: Arm | None = None) -> None:
        if not config.port:
            raise ConfigError("gripper.port is required for the robotiq gripper (e.g. /dev/ttyUSB0)")
        self.config = config
        self.spec = model_spec(config.model)
        if config.max_width is not None and config.max_width > self.spec.stroke:
            raise ConfigError(
                f"gripper.max_width {config.max_width} m exceeds the {self.spec.name} stroke "
                f"{self.spec.stroke} m"
            )
        self.max_width = config.max_width or self.spec.stroke
        self.default_force = config.force
        self.default_speed = self.spec.max_speed
        self._client = ModbusRtuClient(config.port, SLAVE_ID, BAUDRATE, config.timeout)

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return self._client.port

    @property
    def connected(self) -> bool:
        return self._client.is_open

    def connect(self, activate: bool = True) -> None:
        """Open the port, check the gripper answers, and activate it unless it already is."""
        self._client.open()
        try:
            if activate:
                self.activate()
            else:
                self.status()
        except BaseException:
            self._client.close()
            raise

    def disconnect(self) -> None:
        """Close the serial port; the gripper keeps its last command."""
        self._client.close()

    def __enter__(self) -> RobotiqGripper:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # --- registers ----------------------------------------------------------------------------
    def status(self) -> Status:
        """Read the three status registers; a nonzero gFLT raises ``DriverError`` naming the fault."""
        status = self._read_status()
        if status.fault:
            raise DriverError(f"gripper on '{self.port}' reports fault {fault_text(status.fault)}")
        return status

    def _read_status(self) -> Status:
        regs = self._client.read_registers(modbus.READ_INPUT_REGISTERS, STATUS_ADDRESS, REGISTER_COUNT)
        return Status.from_registers(regs)

    def _command(self, command: Command) -> None:
        self._client.write_registers(REQUEST_ADDRESS, command.to_registers())

    # --- activation ---------------------------------------------------------------------------
    def activate(self, reset: bool = False) -> None:
        """Activate (rACT) and wait for gSTA == 3. The activation stroke moves the fingers fully,
        so an already active gripper is left alone unless ``reset`` is set."""
        if not reset:
            current = self._read_status()  # a fault is not an error here: the reset clears it
            if current.activated and not current.fault:
                log.debug("gripper on %s already active", self.port)
                return
        log.info("activating the %s gripper on %s", self.spec.name, self.port)
        self._command(Command(act=False))  # reset, then a rising edge of rACT: also clears faults
        self._command(Command(act=True))
        deadline = time.monotonic() + ACTIVATION_TIMEOUT
        while not self.status().activated:
            if time.monotonic() > deadline:
                raise DriverError(
                    f"gripper on '{self.port}' did not activate within {ACTIVATION_TIMEOUT:g} s"
                )
            time.sleep(POLL_PERIOD)

    # --- Gripper interface --------------------------------------------------------------------
    def state(self) -> GripperState:
        """Opening [m], whether the fingers move, and whether they stopped on an object."""
        status = self.status()
        return self._to_state(status)

    def move(self, width: float, speed: float | None = None, force: float | None = None) -> GripperState:
        """Move to ``width`` [m] at ``speed`` [m/s] with grip ``force`` [N]; blocks until the fingers
        stop (arrived, or on an object) and returns the final state.

        Speed and force are clamped to the model's ranges; a width outside [0, stroke] or a
        non-finite value is a ``ConfigError`` and sends nothing.
        """
        speed = self.default_speed if speed is None else speed
        force = self.default_force if force is None else force
        for name, value in (("width", width), ("speed", speed), ("force", force)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"gripper {name} must be a finite, non-negative number, got {value}")
        if width > self.spec.stroke + 1e-6:
            raise ConfigError(
                f"gripper width {width} m exceeds the {self.spec.name} stroke {self.spec.stroke} m"
            )
        spec = self.spec
        if not spec.min_speed <= speed <= spec.max_speed or not spec.min_force <= force <= spec.max_force:
            log.warning(
                "%s: speed %.3f m/s / force %.1f N clamped to [%g, %g] m/s / [%g, %g] N",
                spec.name,
                speed,
                force,
                spec.min_speed,
                spec.max_speed,
                spec.min_force,
                spec.max_force,
            )
        position = width_to_position(width, spec.stroke)
        command = Command(
            act=True,
            gto=True,
            position=position,
            speed=to_byte(speed, spec.min_speed, spec.max_speed),
            force=to_byte(force, spec.min_force, spec.max_force),
        )
        status = self.status()
        if not status.activated:
            raise DriverError(f"gripper on '{self.port}' is not activated; call connect() or activate()")
        log.debug("move to %.4f m (position %d) at %.3f m/s, %.1f N", width, position, speed, force)
        self._command(command)
        return self._wait_motion(position, self._motion_timeout(speed))

    def _motion_timeout(self, speed: float) -> float:
        """Longest a full stroke may take at ``speed`` [m/s], with margin, in [s]."""
        speed = min(max(speed, self.spec.min_speed), self.spec.max_speed)
        return 2.0 * self.spec.stroke / speed + 1.0 + self.config.timeout

    def _wait_motion(self, position: int, timeout: float) -> GripperState:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            # The echo of our position request says the status reflects this command.
            if status.gto and status.position_echo == position and status.obj != OBJ_MOVING:
                state = self._to_state(status)
                log.debug("motion done: %s", state)
                return state
            if time.monotonic() > deadline:
                raise DriverError(
                    f"gripper on '{self.port}' did not finish its motion within {timeout:.1f} s "
                    f"(position {status.position}/255, requested {position}/255)"
                )
            time.sleep(POLL_PERIOD)

    def _to_state(self, status: Status) -> GripperState:
        width = max(0.0, position_to_width(status.position, self.spec.stroke))
        return GripperState(width=width, moving=status.moving, object_detected=status.object_detected)

    def __repr__(self) -> str:
        return f"RobotiqGripper(model={self.spec.name!r}, port={self.port!r})"
