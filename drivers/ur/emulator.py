"""A UR controller emulator on loopback that the unmodified ur_rtde client talks to.

Serves RTDE (30004), the dashboard (29999), the script port (30003) and the primary/secondary
client interfaces' state stream (30001/30002) for a simulated arm:
the MuJoCo arm when ``rmskill.drivers.mujoco`` is available, else a kinematic stand-in. The arm file's
``sim`` section (``seed``, ``truth``) is the simulated cell's, as for the MuJoCo driver. A loopback-only
operator (30020, ``operator_service.py``) resets the simulated cell between episodes on request.

    python -m rmskill.drivers.ur.emulator examples/arms/emulated-ur5e.yaml

ur_rtde always connects to the standard ports, so use those with it; other ports are for
clients of your own. Binds 127.0.0.1 unless told otherwise; any loopback address (127.0.0.x) works,
and ur_rtde connects to whichever host it is given, so several emulators can run side by side.

The arm file's gripper is emulated too (``tool.py``): with ``gripper: {driver: robotiq, port: PATH}``
a simulated Robotiq is served on a pseudo-terminal linked at PATH, and the simulated plate gripper
follows it; with ``driver: ur_tool_io`` the fingers follow the tool digital outputs.
"""

from __future__ import annotations

import argparse
import logging
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from rmskill.arm import Arm
from rmskill.config import ArmConfig, load_arm_config
from rmskill.errors import ConfigError

from . import dashboard, operator_service, primary_server, script_server
from .controller import PLATE_REPORT, Controller
from .kinematic_arm import KinematicArm
from .listener import Listener, check_bind
from .rtde_server import RTDEConnection
from .tool import make_tool

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"rtde": 30004, "dashboard": 29999, "script": 30003, "primary": 30001, "secondary": 30002,
                 "operator": operator_service.PORT}
#: PolyScope 5.15: an e-Series controller, so ur_rtde streams at 500 Hz.
DEFAULT_VERSION = (5, 15, 0, 12345)
READY = b"UR emulator ready"
#: ``PLATE_REPORT`` read back: distance, angle, nest, where the plate was.
_PLATE_REPORT = re.compile(re.escape(PLATE_REPORT.split("%")[0])
                           + r"([\d.]+) mm / ([\d.]+) deg from (\S+)'s seat \(([\w ]+)\)")


def make_arm(config: ArmConfig, backend: str = "auto") -> Arm:
    """The simulated arm behind the emulator: ``"mujoco"``, ``"kinematic"`` or ``"auto"``.

    ``auto`` takes the MuJoCo arm when it imports and builds, else the kinematic stand-in.
    The emulator steps the arm itself in real time, so the simulator is not asked to.
    ``options.emulator_plates`` (fixture names) lays the simulated cell out as the MuJoCo arm's
    ``sim.plates`` does: a plate seated in each, the gripper empty; default one plate in the gripper.
    """
    backend = str(config.options.get("emulator_backend", backend)) if backend == "auto" else backend
    plates = config.options.get("emulator_plates")
    if backend in ("auto", "mujoco"):
        try:
            from rmskill.drivers.mujoco import MujocoArm  # type: ignore[attr-defined]

            sim: dict[str, Any] = {"realtime": False} if plates is None else {"realtime": False, "plates": plates}
            sim_config = config.with_changes(driver="mujoco", sim=sim)
            arm: Arm = MujocoArm(sim_config)
            arm.connect()
            log.info("emulator arm: MujocoArm (%s)", config.model)
            return arm
        except ConfigError:  # a bad emulator_plates: say so, whichever backend was asked for
            raise
        except Exception as err:  # the simulator is optional here
            if backend == "mujoco":
                raise
            log.info("MujocoArm not available (%s); using the kinematic stand-in", err)
    if plates is not None:
        log.warning("options.emulator_plates is ignored: the kinematic stand-in has no plates")
    arm = KinematicArm(config)
    arm.connect()
    return arm


class Emulator:
    """The emulated controller and its three servers; ``start()``/``stop()`` or a ``with`` block.

    Runs in this process. ur_rtde's constructors hold the GIL while they wait for the
    controller, so an ur_rtde client must live in another process: use ``EmulatorProcess``.
    """

    def __init__(self, config: ArmConfig, host: str = "127.0.0.1", ports: dict[str, int] | None = None,
                 backend: str = "auto", arm: Arm | None = None, allow_remote: bool = False):
        check_bind(host, allow_remote)
        self.config, self.host = config, host
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.version = DEFAULT_VERSION
        self.serial = "20235500001"
        self.model_name = config.model.upper().removesuffix("E")  # the dashboard says "UR5"
        self.controller = Controller(arm if arm is not None else make_arm(config, backend), config)
        folder = config.options.get("emulator_programs")
        self.programs = dashboard.ProgramStore(Path(folder).expanduser() if folder else None)
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._listeners = [
            Listener(host, self.ports["rtde"], self._rtde_client, "rtde", allow_remote),
            Listener(host, self.ports["dashboard"], lambda s: dashboard.serve_client(self, s), "dashboard",
                     allow_remote),
            Listener(host, self.ports["script"], lambda s: script_server.serve_client(self, s), "script",
                     allow_remote),
            Listener(host, self.ports["primary"], lambda s: primary_server.serve_client(self, s), "primary",
                     allow_remote),
            Listener(host, self.ports["secondary"], lambda s: primary_server.serve_client(self, s), "secondary",
                     allow_remote),
            Listener(host, self.ports["operator"], lambda s: operator_service.serve_client(self.controller, s),
                     "operator", allow_remote),
        ]

    def _rtde_client(self, sock: socket.socket) -> None:
        conn = RTDEConnection(sock, self.controller, self.version)
        self.controller.subscribers.append(conn.publish)
        conn.serve()

    def start(self) -> Emulator:
        """Bind all ports and start the 500 Hz control loop; returns self."""
        started: list[Listener] = []
        try:
            for listener in self._listeners:
                listener.start()
                started.append(listener)
        except OSError:
            for listener in started:
                listener.stop()
            raise
        self.ports = {name: listener.port for name, listener in zip(DEFAULT_PORTS, self._listeners, strict=True)}
        try:
            self.controller.tool = make_tool(self.controller, self.config.gripper)
        except BaseException:
            for listener in started:
                listener.stop()
            raise
        self._loop = threading.Thread(target=self.controller.run, args=(self._stop,), name="ur-control-loop",
                                      daemon=True)
        self._loop.start()
        return self

    def stop(self) -> None:
        """Stop the loop and close every port and connection."""
        self._stop.set()
        for listener in self._listeners:
            listener.stop()
        if self._loop is not None:
            self._loop.join(timeout=1.0)
        if self.controller.tool is not None:
            self.controller.tool.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(config: ArmConfig | str | Path, host: str = "127.0.0.1", stop_event: threading.Event | None = None,
          ports: dict[str, int] | None = None, backend: str = "auto", announce: bool = False,
          allow_remote: bool = False) -> None:
    """Serve the emulator until ``stop_event`` is set (or forever). Blocks.

    ``announce`` prints a ready line on stdout once every port is bound (for parent processes).
    A ``host`` other than loopback needs ``allow_remote`` (there is no authentication).
    """
    stop_event = stop_event or threading.Event()
    with Emulator(load_arm_config(config), host=host, ports=ports, backend=backend,
                  allow_remote=allow_remote) as emulator:
        log.info("UR emulator for '%s' on %s (ports %s)", emulator.config.name, host, emulator.ports)
        tool = emulator.controller.tool
        if tool is not None and getattr(tool, "link", None):
            log.info("simulated %s gripper at %s", emulator.config.gripper.driver, tool.link)
        if announce:
            sys.stdout.buffer.write(READY + b"\n")
            sys.stdout.flush()
        stop_event.wait()


class EmulatorProcess:
    """The emulator in a child process, as ur_rtde needs (its constructors hold the GIL, so a
    server in the same Python process would never answer them). ``kill()`` simulates a crash.

    The child's log (stderr) is read all along by a thread that keeps its last ``log_lines`` lines
    (``None``: all) in ``log``, complete once ``stop()`` or ``kill()`` returns: a pipe nobody reads
    fills after 64 KiB, and the emulator's next log line would then block its control loop mid-run."""

    def __init__(self, arm_file: str | Path, host: str = "127.0.0.1", backend: str = "auto",
                 ports: dict[str, int] | None = None, allow_remote: bool = False, log_lines: int | None = 500):
        self.arm_file, self.host, self.backend = str(arm_file), host, backend
        self.allow_remote = allow_remote
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: deque[str] = deque(maxlen=log_lines)
        self._reader: threading.Thread | None = None

    def plate_reports(self) -> list[tuple[float, float, str, str]]:
        """Where each operator reset so far found the plate, from the emulator's own log (truth no client
        sees): (distance [mm], angle [deg], the nearest nest, "in the nest" / "held" / "loose")."""
        return [(float(m[1]), float(m[2]), m[3], m[4]) for m in map(_PLATE_REPORT.search, list(self.log)) if m]

    def _read_log(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.log.append(line.decode(errors="replace").rstrip("\n"))

    def start(self, timeout: float = 20.0) -> EmulatorProcess:
        """Start the child and wait until all its ports accept connections."""
        args = [sys.executable, "-m", "rmskill.drivers.ur.emulator", self.arm_file, "--host", self.host,
                "--backend", self.backend]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        if self.allow_remote:
            args.append("--allow-remote")
        taken = [port for port in self.ports.values() if _accepts(self.host, port)]
        if taken:
            raise RuntimeError(f"ports {taken} on {self.host} are in use (another emulator or controller?)")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.log.clear()
        self._reader = threading.Thread(target=self._read_log, args=(self.proc.stderr,), daemon=True,
                                        name="ur-emulator-log")
        self._reader.start()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != READY:
            self.kill()
            err = "\n".join(self.log)
            raise RuntimeError(f"UR emulator did not start within {timeout:.0f} s: {err[-2000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL: every connection drops at once, as when a controller dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._join_log()

    def _join_log(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def stop(self) -> None:
        """SIGTERM and wait; falls back to ``kill()``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._join_log()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arm_file", help="arm YAML file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host (no authentication: anyone reaching it moves the arm)")
    parser.add_argument("--backend", choices=["auto", "mujoco", "kinematic"], default="auto")
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ports = {name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS}
    serve(args.arm_file, host=args.host, stop_event=stop, ports=ports, backend=args.backend, announce=True,
          allow_remote=args.allow_remote)


if __name__ == "__main__":
    main()
