"""Run franky-sim (the libfranka protocol peer, MuJoCo FR3) on a loopback address only.

franky-sim binds its TCP servers to the ``--hostname`` it is given, but its per-client UDP
socket to ``0.0.0.0``; ``serve()`` pins every bind to the loopback host, so nothing listens
beyond this machine. Used by the tests and benchmarks::

    with FrankySim() as sim:            # on a free 127.0.0.9x
        arm = FrankaArm(config.with_changes(host=sim.host))

or from a shell: ``python -m rmskill.drivers.franka.simulator --host 127.0.0.1``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import IO

logger = logging.getLogger(__name__)
PORTS = (1337, 1338)  # robot, gripper


def available() -> str | None:
    """``None`` when franky-sim and pylibfranka are installed, else the reason they are not."""
    missing = [m for m in ("franky_sim", "pylibfranka") if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)} (pip install pylibfranka franky-sim)" if missing else None


def _ports_free(host: str) -> bool:
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as franky-sim binds
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


#: Loopback addresses a simulator picks from when none is given (not 127.0.0.1, where a user's own
#: franky-sim or another test run may serve): runs side by side never clash.
SIM_HOSTS = tuple(f"127.0.0.{k}" for k in range(91, 100))


def free_loopback_host() -> str:
    """The first of ``SIM_HOSTS`` whose robot and gripper ports are free."""
    for _ in range(50):
        for host in SIM_HOSTS:
            if _ports_free(host):
                return host
        time.sleep(0.1)
    raise OSError(f"ports {PORTS} are taken on every one of {SIM_HOSTS[0]}..{SIM_HOSTS[-1]}")


class FrankySim:
    """franky-sim (``-s mujoco``) in a subprocess on ``host``; a context manager.

    Args:
        host: Loopback address to serve on; ``None`` picks a free one.
        startup_timeout: Seconds [s] to wait for the robot port to accept connections.
    """

    def __init__(self, host: str | None = None, startup_timeout: float = 30.0):
        self.host = host or free_loopback_host()
        if not self.host.startswith("127."):
            raise ValueError(f"franky-sim is only served on loopback here, not on {self.host}")
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> FrankySim:
        cmd = [sys.executable, "-m", "rmskill.drivers.franka.simulator", "--host", self.host]
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + self.startup_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"franky-sim exited with code {self.proc.returncode}: {err[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, PORTS[0]), 0.2):
                logger.info("franky-sim serving on %s", self.host)
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"franky-sim did not open {self.host}:{PORTS[0]} within {self.startup_timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> FrankySim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str) -> None:
    """Run franky-sim in this process, every socket bound to ``host``."""
    bind = socket.socket.bind

    def loopback_bind(sock: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
            address = (host, *address[1:])
        bind(sock, address)

    socket.socket.bind = loopback_bind  # type: ignore[method-assign]
    from franky_sim.run_server import main

    sys.argv = ["franky-sim", "-s", "mujoco", "--hostname", host]
    main()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error(f"--host must be a loopback address (127.x.y.z), got {args.host}")
    serve(args.host)
