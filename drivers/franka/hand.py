"""``FrankaHand``: the Franka Hand through pylibfranka's ``Gripper``, where the robot's server offers one.

As with the arm, the caller's process never imports pylibfranka: the hand runs in a small child
process (``python -m rmskill.drivers.franka.hand HOST``) that answers one JSON line per request.
A server without a gripper (nothing on port 1338) is one ``DriverError`` line at connect.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from typing import Any

from rmskill.arm import Arm, Gripper, GripperState
from rmskill.config import GripperConfig
from rmskill.errors import ConfigError, DriverError

log = logging.getLogger(__name__)

GRIPPER_PORT = 1338  # the Franka Hand's command port on the robot
DEFAULT_SPEED = 0.05  # [m/s]
PROBE_TIMEOUT = 1.0  # [s]
OBJECT_MARGIN = 0.002  # [m] fingers stopped this far short of a grasp's width are on an object


class FrankaHand(Gripper):
    """The Franka Hand of the arm ``arm`` (its ``config.host``). Widths [m], speeds [m/s], forces [N]."""

    def __init__(self, config: GripperConfig, arm: Arm | None = None) -> None:
        arm_config = getattr(arm, "config", None)
        if arm_config is None:
            raise ConfigError("gripper: franka_hand is reached through its arm's host; build it with the arm")
        self.config, self.host = config, arm_config.host
        self.max_width = config.max_width or 0.08
        self.default_force = config.force
        self._proc: subprocess.Popen[str] | None = None
        self._grasp_width: float | None = None  # width of the last grasp [m]; None after a move

    # --- lifecycle ----------------------------------------------------------------------------
    def connect(self) -> None:
        try:
            with socket.create_connection((self.host, GRIPPER_PORT), timeout=PROBE_TIMEOUT):
                pass
        except OSError as err:
            raise DriverError(f"the Franka Hand is not available at {self.host}: nothing answers on its port "
                              f"{GRIPPER_PORT} ({err.strerror or err}); the robot or simulator offers no "
                              "gripper") from None
        self._proc = subprocess.Popen([sys.executable, "-m", "rmskill.drivers.franka.hand", self.host],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        try:
            reply = self._request("read")
        except DriverError:
            self.disconnect()
            raise
        if not self.config.max_width:
            self.max_width = float(reply["max_width"])

    def disconnect(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _request(self, op: str, **args: float) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdout is None:
            raise DriverError(f"the Franka Hand at {self.host} is not connected; call connect() first")
        proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise DriverError(f"the Franka Hand process for {self.host} ended without answering '{op}'")
        reply = json.loads(line)
        if "error" in reply:
            raise DriverError(f"Franka Hand at {self.host}: {op} failed: {reply['error']}")
        return reply

    # --- Gripper interface --------------------------------------------------------------------
    def state(self) -> GripperState:
        """Opening [m]; an object is detected when a grasp holds and stopped the fingers short of its width."""
        reply = self._request("read")
        width = float(reply["width"])
        stopped_short = self._grasp_width is not None and width > self._grasp_width + OBJECT_MARGIN
        return GripperState(width=width, moving=False, object_detected=bool(reply["is_grasped"]) and stopped_short)

    def move(self, width: float, speed: float | None = None, force: float | None = None) -> GripperState:
        """Open to ``width`` (a position move), or close to it with ``force`` [N] (a grasp that holds
        whatever stops the fingers on the way)."""
        speed = DEFAULT_SPEED if speed is None else speed
        current = self.state().width
        if force is None and width >= current:
            self._grasp_width = None
            self._request("move", width=width, speed=speed)
        else:
            self._grasp_width = width
            self._request("grasp", width=width, speed=speed, force=force or self.default_force,
                          epsilon_inner=width, epsilon_outer=self.max_width)
        return self.state()


def _serve(host: str) -> None:
    """The child process: one pylibfranka ``Gripper``, one JSON reply per request line."""
    import pylibfranka as pf

    try:
        hand = pf.Gripper(host)
    except Exception as err:
        print(json.dumps({"error": f"cannot connect: {err}"}), flush=True)
        return
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op == "move":
                hand.move(request["width"], request["speed"])
            elif op == "grasp":
                hand.grasp(request["width"], request["speed"], request["force"], request["epsilon_inner"],
                           request["epsilon_outer"])
            elif op == "homing":
                hand.homing()
            s = hand.read_once()
            reply: dict[str, Any] = {"width": s.width, "max_width": s.max_width, "is_grasped": s.is_grasped}
        except Exception as err:  # a refused command: answer it, keep serving
            reply = {"error": str(err) or type(err).__name__}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1])
