"""Who places the tool during a taught calibration step: a person at the arm, or the simulator.

A procedure asks an ``Operator`` to put a mark of the tool on a point and waits until it is
there; then it reads the arm's measured pose. ``ConsoleOperator`` asks a person (freedrive on,
Enter to confirm); ``SimOperator`` plays that person in the simulator, placing the *true* tool
with a small, realistic alignment error, so the procedure sees only what an arm would measure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from rmskill.arm import Arm
from rmskill.errors import CalibrationError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)


class Operator(Protocol):
    """The person (or simulator) who moves the tool when a procedure asks."""

    def say(self, message: str) -> None:
        """Show a message that needs no answer."""

    def clear_gripper(self, arm: Arm) -> None:
        """Take any plate out of the gripper."""

    def load_gripper(self, arm: Arm, item: str) -> None:
        """Put ``item`` (e.g. "a tube") into the gripper, firmly, at the arm's home."""

    def touch_pivot(self, arm: Arm, mark: str, tool_point: np.ndarray, index: int, hint: str) -> None:
        """Put ``tool_point`` (a mark of the tool, TCP frame [m]) on the fixed pivot, in a new
        orientation (the ``index``-th); return once it is there."""

    def teach_point(self, arm: Arm, fixture: str, point: np.ndarray, instruction: str) -> None:
        """Put the TCP on ``point`` of the nest (fixture frame [m]) and confirm."""

    def finish(self, arm: Arm) -> None:
        """The taught poses are recorded: leave the arm clear and held."""


class ConsoleOperator:
    """A person at the arm: hand-guides it in freedrive and presses Enter at each point."""

    def __init__(self, ask: Callable[[str], str] = input, show: Callable[[str], None] = print):
        self._ask = ask
        self._show = show

    def say(self, message: str) -> None:
        self._show(message)

    def clear_gripper(self, arm: Arm) -> None:
        self._ask("Take any plate out of the gripper, keep the cell clear, then press Enter ")

    def load_gripper(self, arm: Arm, item: str) -> None:
        gripper = getattr(arm, "gripper", None)
        if gripper is None or not gripper.state().object_detected:
            self._ask(f"Put {item} into the gripper, then press Enter ")

    def _guided(self, arm: Arm, message: str) -> None:
        arm.freedrive(True)
        try:
            self._ask(message + " - press Enter when it is there ")
        finally:
            arm.freedrive(False)

    def touch_pivot(self, arm: Arm, mark: str, tool_point: np.ndarray, index: int, hint: str) -> None:
        self._guided(arm, f"[{mark} #{index + 1}] touch the pivot with the {mark} in a new orientation. {hint}")

    def teach_point(self, arm: Arm, fixture: str, point: np.ndarray, instruction: str) -> None:
        self._guided(arm, f"[{fixture}] {instruction}")

    def finish(self, arm: Arm) -> None:
        self._ask("Done: guide the tool clear of the pivot and fixtures (freedrive), then press Enter ")


class SimOperator:
    """The simulator playing the operator: places the true tool, with alignment noise.

    Attributes:
        spread_deg: Tilt of the tool from its starting orientation for the pivot poses [deg].
        noise_mm: Standard deviation of the placement error per axis [mm].
        seed: Seed of the placement noise; default the simulator's own seeded generator.
        pivot: Where the pivot is, in the base frame [m]; by default 20 mm below the true TCP
            at the first pivot request.
    """

    def __init__(self, spread_deg: float = 30.0, noise_mm: float = 0.02, seed: int | None = None,
                 pivot: np.ndarray | None = None):
        self.spread_deg = spread_deg
        self.noise_mm = noise_mm
        self.rng = None if seed is None else np.random.default_rng(seed)
        self.pivot = None if pivot is None else np.asarray(pivot, dtype=float)
        self._start: Pose | None = None

    @staticmethod
    def _world(arm: Arm):
        sim = getattr(arm, "sim", None)
        if sim is None:
            raise CalibrationError("SimOperator needs a simulated arm (arm.sim); use ConsoleOperator on hardware")
        return sim

    def say(self, message: str) -> None:
        log.info("%s", message)

    def clear_gripper(self, arm: Arm) -> None:
        sim = self._world(arm)
        sim.reset(plate=False, q=np.array(arm.state().q))
        arm.stop()

    def load_gripper(self, arm: Arm, item: str) -> None:
        """A freshly gripped item, the arm at home (as an episode starts)."""
        self._world(arm).reset(plate=True)
        arm.stop()

    def _noise(self, arm: Arm) -> np.ndarray:
        rng = self.rng if self.rng is not None else self._world(arm).rng
        return rng.normal(0.0, self.noise_mm / 1000.0, 3)

    def _place(self, arm: Arm, base_T_true_tcp: Pose) -> None:
        arm.stop()  # ends any servo stream; the arm then holds where the operator leaves it
        self._world(arm).teleport(base_T_true_tcp, true_tcp=True)

    def pivot_orientation(self, index: int) -> Rotation:
        """The ``index``-th orientation: tilted by ``spread_deg`` about a horizontal axis that
        turns by the golden angle each time, and turned about the tool axis by up to 40 deg."""
        assert self._start is not None
        azimuth = index * 2.39996
        axis = np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
        tilt = Rotation.from_rotvec(axis * np.radians(self.spread_deg))
        turn = Rotation.from_rotvec([0.0, 0.0, np.radians(40.0 * np.sin(1.7 * index + 0.5))])
        return tilt * self._start.rotation * turn

    def touch_pivot(self, arm: Arm, mark: str, tool_point: np.ndarray, index: int, hint: str) -> None:
        sim = self._world(arm)
        if self._start is None:
            self._start = sim.tcp_pose()
            if self.pivot is None:
                self.pivot = self._start.xyz + np.array([0.0, 0.0, -0.02])
        rot = self.pivot_orientation(index)
        xyz = self.pivot + self._noise(arm) - rot.apply(np.asarray(tool_point, dtype=float))
        self._place(arm, Pose.from_quat_xyzw(xyz, rot.as_quat()))

    def finish(self, arm: Arm) -> None:
        """Put the tool back where the first pivot request found it."""
        if self._start is not None:
            self._place(arm, self._start)
            self._start = None

    def teach_point(self, arm: Arm, fixture: str, point: np.ndarray, instruction: str) -> None:
        sim = self._world(arm)
        base_T_fixture = sim.fixture_pose(fixture)
        xyz = base_T_fixture.apply(np.asarray(point, dtype=float)) + self._noise(arm)
        self._place(arm, Pose(xyz, base_T_fixture.wxyz))


def default_operator(arm: Arm) -> Operator:
    """The simulator plays the operator on a simulated arm; a person does on hardware."""
    return SimOperator() if getattr(arm, "sim", None) is not None else ConsoleOperator()
