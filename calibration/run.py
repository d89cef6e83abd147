"""``rmskill calibrate``: run a procedure on the arm an arm file names, and store what it found.

Each procedure's result goes to the arm's calibration store only when the procedure succeeds
and its quality figure passes; a failed run leaves the stored calibration as it was. ``all``
runs the TCP first (the fixtures are measured with it), then every fixture, the servo response
and the payload.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rmskill.calibration.fixture import calibrate_fixture
from rmskill.calibration.operator import Operator, default_operator
from rmskill.calibration.payload import calibrate_payload
from rmskill.calibration.servo import calibrate_servo
from rmskill.calibration.tcp import calibrate_tcp
from rmskill.calibration_store import CalibrationStore
from rmskill.config import ArmConfig, load_arm_config
from rmskill.errors import CalibrationError, ConfigError
from rmskill.geometry import Pose
from rmskill.storage import plain

log = logging.getLogger(__name__)

PROCEDURES = ("tcp", "fixture", "servo", "payload", "all")
FIXTURE_METHODS = ("touch", "teach")
MAX_TCP_RESIDUAL_MM = 0.5  # a larger pivot residual means the tip slipped or the tool is loose
MAX_FIXTURE_RESIDUAL_MM = 0.5  # touch-offs that disagree more than this are not trusted


def _sim_error(measured: Pose, truth: Pose) -> dict:
    """Evaluation only (the simulator's ground truth): how far the result is from the truth."""
    return {"error_mm": round(measured.distance_mm(truth), 4), "error_deg": round(measured.angle_deg(truth), 4)}


class _Session:
    """One connected arm, its store and operator, running procedures in order."""

    def __init__(self, arm, config: ArmConfig, operator: Operator):
        self.arm, self.config, self.operator = arm, config, operator
        self.store = CalibrationStore(config.name)
        stored = self.store.tcp()
        self.tcp = stored or config.flange_T_tcp  # what connect() set
        self.tcp_source = "calibrated" if stored is not None else "nominal"
        self.home = arm.state().base_T_tcp
        self.sim = getattr(arm, "sim", None)

    def _go_home(self) -> None:
        self.arm.move_to(self.home, 0.1)

    def tcp_procedure(self) -> dict:
        result = calibrate_tcp(self.arm, self.operator)
        if result.rms_residual_mm > MAX_TCP_RESIDUAL_MM:
            self.arm.set_tcp(self.tcp)
            raise CalibrationError(f"pivot residual {result.rms_residual_mm:.3f} mm is above "
                                   f"{MAX_TCP_RESIDUAL_MM} mm: the tip slipped on the pivot or the tool is loose; "
                                   "nothing was stored")
        entry = plain(result.entry())
        self.store.save_entry("tcp", entry)
        self.tcp, self.tcp_source = result.flange_T_tcp, "calibrated"
        self.arm.set_tcp(self.tcp)
        out = {**entry, "pivot": plain(result.base_pivot)}
        if self.sim is not None:
            out["sim_check"] = _sim_error(result.flange_T_tcp, self.sim.flange_T_tcp())
        return out

    def fixture_procedure(self, name: str, method: str | None) -> dict:
        if self.tcp_source == "nominal":
            log.warning("fixture '%s' is measured with the nominal TCP: calibrate the TCP first for the "
                        "fixture poses skills will see", name)
        result = calibrate_fixture(self.arm, name, self.config.fixture(name), method, self.operator,
                                   kind=self.config.fixture_kind(name))
        if result.residual_mm > MAX_FIXTURE_RESIDUAL_MM:
            raise CalibrationError(f"fixture '{name}': touch-offs disagree by {result.residual_mm:.3f} mm "
                                   f"(limit {MAX_FIXTURE_RESIDUAL_MM} mm): is the nest loose or dirty? "
                                   "nothing was stored")
        entry = plain(result.entry())
        self.store.save_entry("fixtures", entry, name=name)
        out = {"fixture": name, **entry, "tcp_used": self.tcp_source}
        if self.sim is not None:
            out["sim_check"] = _sim_error(result.base_T_fixture, self.sim.fixture_pose(name))
        return out

    def servo_procedure(self) -> dict:
        self._go_home()
        result = calibrate_servo(self.arm)
        entry = plain(result.entry())
        self.store.save_entry("servo", entry)
        out = dict(entry)
        if self.sim is not None:
            out["sim_check"] = {"error_ms": round(abs(result.latency_ms - self.sim.truth.latency_ms), 3)}
        return out

    def payload_procedure(self) -> dict:
        self.operator.clear_gripper(self.arm)  # the arm file's payload is the empty gripper
        self._go_home()
        result = calibrate_payload(self.arm, restore_tcp=self.tcp)
        entry = plain(result.entry())
        self.store.save_entry("payload", entry)
        return dict(entry)


def calibrate(procedure: str, arm_file: str | Path | ArmConfig | dict, fixture: str | None = None,
              operator: Operator | None = None, method: str | None = None) -> dict:
    """Run ``procedure`` (tcp, fixture, servo, payload or all) on the arm of ``arm_file``.

    Args:
        procedure: Which procedure; ``all`` runs tcp, every fixture (or ``fixture``), servo, payload.
        arm_file: The arm file (or a validated ``ArmConfig``).
        fixture: The fixture to measure; default every fixture in the arm file.
        operator: Who places the tool; default the simulator on a simulated arm, else the console.
        method: Fixture method, ``touch`` or ``teach``; default touch where force is sensed.

    A fixture is measured through the TCP set on the arm: with no calibrated TCP stored, the
    simulator calibrates it first (and stores it); on hardware a warning says the nominal TCP is
    used.

    Returns:
        A JSON-ready summary: for ``tcp`` ``tcp`` (6-list flange->TCP) and ``rms_residual_mm``;
        for one fixture ``fixture`` and ``pose`` (6-list, base frame); for ``servo``
        ``latency_ms``; for ``all`` one such block per procedure. In the simulator each block
        also has ``sim_check``: its error against the simulated truth.
    """
    from rmskill.connect import connect

    if procedure not in PROCEDURES:
        raise ConfigError(f"unknown calibration procedure '{procedure}' (procedures: {', '.join(PROCEDURES)})")
    if method is not None and method not in FIXTURE_METHODS:
        raise ConfigError(f"unknown fixture method '{method}' (methods: {', '.join(FIXTURE_METHODS)})")
    config = load_arm_config(arm_file)
    if fixture is not None:
        config.fixture(fixture)  # a missing name is an error before anything moves
        names = [fixture]
    else:
        names = sorted(config.fixtures)
    if procedure == "fixture" and not names:
        raise ConfigError(f"the arm file '{config.name}' has no fixtures to calibrate")
    with connect(config, calibrated=procedure != "tcp") as arm:
        session = _Session(arm, config, operator or default_operator(arm))
        out: dict[str, Any] = {"procedure": procedure, "arm": config.name, "store": str(session.store.path)}
        if procedure == "tcp":
            out.update(session.tcp_procedure())
        elif procedure == "fixture" and session.tcp_source == "nominal" and session.sim is not None:
            # The simulated operator costs nothing: measure the TCP first, as `all` would.
            log.info("no calibrated TCP for '%s': calibrating it before the fixtures", config.name)
            out["tcp"] = session.tcp_procedure()
            out.update(session.fixture_procedure(names[0], method) if len(names) == 1 else
                       {"fixtures": {name: session.fixture_procedure(name, method) for name in names}})
        elif procedure == "fixture" and len(names) == 1:
            out.update(session.fixture_procedure(names[0], method))
        elif procedure == "fixture":
            out["fixtures"] = {name: session.fixture_procedure(name, method) for name in names}
        elif procedure == "servo":
            out.update(session.servo_procedure())
        elif procedure == "payload":
            out.update(session.payload_procedure())
        else:
            out["tcp"] = session.tcp_procedure()
            out["fixtures"] = {name: session.fixture_procedure(name, method) for name in names}
            out["servo"] = session.servo_procedure()
            if arm.capabilities.senses_wrench:
                out["payload"] = session.payload_procedure()
            else:
                out["payload"] = {"skipped": "this arm does not sense the wrist wrench"}
    return plain(out)


def show(arm_file: str | Path | ArmConfig | dict) -> dict:
    """What the store holds for the arm of ``arm_file``: every entry with its quality figure and date."""
    config = load_arm_config(arm_file)
    store = CalibrationStore(config.name)
    return plain({"arm": config.name, "store": str(store.path), "digest": store.digest(),
                   "calibration": store.load()})
