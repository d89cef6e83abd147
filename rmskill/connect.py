"""``rmskill.connect``: arm file in, connected arm out, wrapped in the safety envelope."""

from __future__ import annotations

import logging
from pathlib import Path

from rmskill import registry
from rmskill.arm import Arm, Gripper
from rmskill.calibration_store import CalibrationStore
from rmskill.config import ArmConfig, load_arm_config
from rmskill.errors import ConfigError, DriverError, RmskillError
from rmskill.safety import SafeArm

log = logging.getLogger(__name__)


def open_arm(arm_file_or_config: str | Path | ArmConfig | dict) -> tuple[ArmConfig, object]:
    """Validate the arm file and construct (not connect) its driver."""
    config = load_arm_config(arm_file_or_config)
    driver_cls = registry.load("driver", config.driver)
    return config, driver_cls(config)


def connect_gripper(config: ArmConfig, arm: Arm) -> Gripper | None:
    """The arm file's gripper, connected, for the connected driver ``arm``.

    ``sim`` is the simulator's own gripper, ``none`` is no gripper; any other name is a plugin of the
    ``rmskill.grippers`` entry-point group, built as ``cls(gripper_config, arm)`` and then ``connect()``-ed.
    A gripper that cannot be reached is a one-line ``DriverError`` naming the gripper, where and the arm.
    """
    spec = config.gripper
    if spec.driver == "none":
        return None
    if spec.driver == "sim":
        if arm.gripper is None:
            raise ConfigError(f"arm '{config.name}': gripper driver 'sim' is the simulator's own gripper and the "
                              f"'{config.driver}' driver has none; name a gripper (known: "
                              f"{', '.join(sorted(registry.available('gripper')))}) or 'none'")
        return arm.gripper
    gripper_cls = registry.load("gripper", spec.driver)
    where = f"port '{spec.port}'" if spec.port else f"host {config.host}"
    try:
        gripper = gripper_cls(spec, arm)
        gripper.connect()
    except ConfigError:
        raise
    except Exception as err:  # a DriverError, or a library's own exception: one line, naming gripper and arm
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DriverError(f"cannot reach the {spec.driver} gripper of arm '{config.name}' on {where}: "
                          f"{detail}") from None
    log.info("gripper of '%s': %s on %s", config.name, spec.driver, where)
    return gripper


def connect(arm_file_or_config: str | Path | ArmConfig | dict, *, calibrated: bool = True) -> SafeArm:
    """Connect the arm an arm file describes; use as ``with rmskill.connect("arm.yaml") as arm:``.

    The TCP comes from the calibration store when one is stored (``calibrated=False`` uses the
    arm file's nominal TCP); the payload is the arm file's gripper, which is built through the
    gripper registry and attached as ``arm.gripper`` (an unreachable one is a ``DriverError``).
    """
    config, driver = open_arm(arm_file_or_config)
    try:
        driver.connect()
    except RmskillError:
        raise
    except Exception as err:  # a backend library's own exception: say which arm and where
        raise DriverError(f"could not connect to {config.driver} arm '{config.name}' at {config.host}: {err}") from err
    try:
        driver.gripper = connect_gripper(config, driver)
    except BaseException:
        driver.close()
        raise
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
