"""``rmskill.connect``: arm file in, connected arm out, wrapped in the safety envelope."""

from __future__ import annotations

import logging
from pathlib import Path

from rmskill import registry
from rmskill.calibration_store import CalibrationStore
from rmskill.config import ArmConfig, load_arm_config
from rmskill.errors import DriverError, RmskillError
from rmskill.safety import SafeArm

log = logging.getLogger(__name__)


def open_arm(arm_file_or_config: str | Path | ArmConfig | dict) -> tuple[ArmConfig, object]:
    """Validate the arm file and construct (not connect) its driver."""
    config = load_arm_config(arm_file_or_config)
    driver_cls = registry.load("driver", config.driver)
    return config, driver_cls(config)


def connect(arm_file_or_config: str | Path | ArmConfig | dict, *, calibrated: bool = True) -> SafeArm:
    """Connect the arm an arm file describes; use as ``with rmskill.connect("arm.yaml") as arm:``.

    The TCP comes from the calibration store when one is stored (``calibrated=False`` uses the
    arm file's nominal TCP); the payload is the arm file's gripper.
    """
    config, driver = open_arm(arm_file_or_config)
    try:
        driver.connect()
    except RmskillError:
        raise
    except Exception as err:  # a backend library's own exception: say which arm and where
        raise DriverError(f"could not connect to {config.driver} arm '{config.name}' at {config.host}: {err}") from err
    store = CalibrationStore(config.name)
    tcp = store.tcp() if calibrated else None
    if tcp is not None:
        log.info("using the calibrated TCP of '%s': %s", config.name, tcp)
    driver.set_tcp(tcp or config.flange_T_tcp)
    payload = store.load().get("payload") if calibrated else None
    if payload and "mass" in payload and "center_of_mass" in payload:
        driver.set_payload(payload["mass"], payload["center_of_mass"])
    else:
        driver.set_payload(config.gripper.mass, config.gripper.center_of_mass)
    return SafeArm(driver, config)
