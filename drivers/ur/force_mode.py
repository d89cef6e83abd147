"""UR force mode on the emulated controller: an admittance outer loop over the stiff position loop.

On compliant axes of the task frame (selection vector 1) the controller moves the TCP so that it
applies ``wrench`` to the environment: the force error accelerates the TCP along the axis, the
damping setting brakes it, and the limits cap its speed. Non-compliant axes follow the program's
motion (moveL, servoL, speedL or the last pose held) exactly. ``force_mode_set_damping`` (0..1) and
``force_mode_set_gain_scaling`` (0..2) act as on PolyScope; ur_rtde's control script sets 0.025 and 0.5.
Only force mode type 2 (the task frame as given) is emulated.
"""

from __future__ import annotations

import numpy as np

from rmskill.geometry import Pose

#: Force-to-acceleration gain at gain scaling 1: translation [(m/s^2)/N], rotation [(rad/s^2)/Nm].
ADMITTANCE = (0.1, 2.0)
#: Braking rate [1/s] at damping 0 and at damping 1 (UR: 1 stops at once when no force acts).
#: In free air force mode moves at ADMITTANCE * gain scaling / braking per newton (2 mm/s per N at
#: damping 0.5 and gain scaling 1); pressing on a hard surface, the loop's bandwidth is set by the two
#: together: these keep force mode steady on contact up to gain scaling 1 and let it ring at 2, as
#: ur_rtde documents for ``forceModeSetGainScaling`` (5 times these rang at 0.5 against a nest).
BRAKING = (0.8, 100.0)


class ForceMode:
    """One ``force_mode(task_frame, selection_vector, wrench, type, limits)`` call, stepped each period.

    Attributes:
        offset: The displacement force control has added to the program's pose so far, base frame:
            translation [m] and rotation vector [rad].
    """

    def __init__(self, damping: float = 0.025, gain_scaling: float = 0.5):
        self.damping, self.gain_scaling = damping, gain_scaling
        self.task_frame = Pose()
        self.selection = np.zeros(6, dtype=bool)
        self.wrench = np.zeros(6)
        self.limits = np.zeros(6)
        self.velocity = np.zeros(6)  # task frame
        self.offset = np.zeros(6)
        self.active = False

    def set(self, task_frame: Pose, selection: np.ndarray, wrench: np.ndarray, limits: np.ndarray) -> None:
        self.task_frame = task_frame
        self.selection = np.asarray(selection, dtype=float) != 0.0
        self.wrench = np.asarray(wrench, dtype=float)
        self.limits = np.abs(np.asarray(limits, dtype=float))
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.velocity[:] = 0.0
        self.offset[:] = 0.0

    def rebase(self) -> None:
        """A new motion starts from the measured pose, which already includes the offset."""
        self.offset[:] = 0.0

    def step(self, pose: Pose, external: np.ndarray, dt: float) -> Pose:
        """The pose to servo to this period: ``pose`` (the program's) plus the force-controlled offset.

        Args:
            external: The sensed wrench the environment exerts on the TCP, base frame [N, Nm].
            dt: Control period [s].
        """
        rot = self.task_frame.rotation_matrix
        applied = -np.r_[rot.T @ external[:3], rot.T @ external[3:]]  # what the TCP exerts, task frame
        error = np.where(self.selection, self.wrench - applied, 0.0)
        gain = np.repeat(ADMITTANCE, 3) * self.gain_scaling
        braking = BRAKING[0] + (BRAKING[1] - BRAKING[0]) * float(np.clip(self.damping, 0.0, 1.0))
        self.velocity += dt * (gain * error - braking * self.velocity)
        self.velocity = np.where(self.selection, np.clip(self.velocity, -self.limits, self.limits), 0.0)
        self.offset[:3] += rot @ self.velocity[:3] * dt
        self.offset[3:] += rot @ self.velocity[3:] * dt
        turn = Pose.from_rotvec((0.0, 0.0, 0.0), self.offset[3:])
        return Pose(pose.xyz + self.offset[:3], (turn @ Pose((0, 0, 0), pose.wxyz)).wxyz)
