"""The UR emulator's operator (port 30020): resets the simulated cell on a loopback client's request and
re-syncs the controller; bad requests get an error line, the service goes on."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from rmskill.config import load_arm_config
from rmskill.drivers.ur.emulator import _PLATE_REPORT, Emulator
from rmskill.drivers.ur.operator_service import EmulatorOperator
from rmskill.errors import DriverError
from rmskill.geometry import Pose

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.45"
PORTS = {"rtde": 0, "dashboard": 0, "script": 0, "primary": 0, "secondary": 0, "operator": 0}


def _config(tmp_path: Path, backend: str):
    return load_arm_config(ROOT / "examples" / "fleet" / "emulated-ur5e-a.yaml").with_changes(
        host=HOST, gripper={"port": str(tmp_path / "ttyUR")}, options={"emulator_backend": backend})


def test_the_operator_resets_the_cell_and_the_controller_holds_the_new_pose(tmp_path, caplog):
    pytest.importorskip("mujoco")
    config = _config(tmp_path, "mujoco")
    with Emulator(config, host=HOST, ports=PORTS, backend="mujoco") as emu:
        c = emu.controller
        assert c.arm.config.truth.tcp_error == config.sim.truth.tcp_error  # the arm file's sim is the cell's
        operator = EmulatorOperator(HOST, emu.ports["operator"])
        start = config.fixture("shelf_2") @ Pose.from_ur([0.01, -0.005, -0.03, 0.0, 0.0, 0.02])
        operator.reset(tcp_pose=start, plate=True, seed=3)
        assert c.motion is None and not c.force_mode.active
        assert c.state.base_T_tcp.distance_mm(start) < 1.0  # the controller's state: the new pose, held
        time.sleep(0.2)  # the control loop holds it there (it is not pulled back to where it was)
        assert c.state.base_T_tcp.distance_mm(start) < 1.0
        assert c.tool.sim.device.object_width is not None  # the simulated Robotiq is closed on the plate
        with pytest.raises(DriverError, match="unknown reset keys"):
            operator.reset(teleport=True)
        with pytest.raises(DriverError, match="refused the reset"):
            operator.reset(q=[0.0, 0.0])  # not 6 joints: the simulator refuses, the cell stays as it was
        assert c.state.base_T_tcp.distance_mm(start) < 1.0
        with socket.create_connection((HOST, emu.ports["operator"]), timeout=2) as s:
            s.sendall(b"not json\n")
            assert json.loads(s.makefile("rb").readline())["ok"] is False
        with caplog.at_level(logging.INFO, logger="rmskill.drivers.ur.controller"):
            operator.reset(plate=True, seed=4)  # still served: home, plate in the gripper
        assert np.isfinite(c.state.q).all()
        reports = [m.groups() for m in map(_PLATE_REPORT.search, caplog.messages) if m]
        assert reports and reports[-1][3] == "held"  # the emulator's log (EmulatorProcess.plate_reports) reads it
        operator.close()


def test_a_kinematic_emulator_has_no_cell_to_reset(tmp_path):
    with Emulator(_config(tmp_path, "kinematic"), host=HOST, ports=PORTS, backend="kinematic") as emu:
        with pytest.raises(DriverError, match="no simulated cell to reset"):
            EmulatorOperator(HOST, emu.ports["operator"]).reset(plate=True)
