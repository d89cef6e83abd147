"""Servo response: command-to-motion latency and step tracking, from a small excitation in free space.

The arm holds still, then is commanded a 2 mm step along the base x axis, ramped at a safe speed,
and back. The latency is the time from the first changed command to the first measured motion,
beyond the minimum any arm needs (one period for the command to act, one for the motion to be
measured): an arm that acts on each command in its next cycle has zero latency. Its resolution
is one native period (UR 2 ms, Franka 1 ms). Rise time, overshoot, settling and steady-state
error come from the same responses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rmskill.arm import Arm
from rmskill.errors import CalibrationError
from rmskill.geometry import Pose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServoResult:
    """Measured servo response.

    Attributes:
        latency_ms: Command-to-motion latency, median over the steps [ms].
        latency_spread_ms: Max minus min latency over the steps (the quality figure) [ms].
        period_ms: The native servo period, the resolution of the latency [ms].
        rise_ms: 10-90 % rise time of the step response [ms].
        overshoot_pct: Peak overshoot past the step [%].
        settling_ms: Time from the command's end to within 5 % of the step; NaN when the
            response had not settled by the end of the record [ms].
        steady_error_mm: Tracking error after settling [mm].
        steps: Number of steps measured.
    """

    latency_ms: float
    latency_spread_ms: float
    period_ms: float
    rise_ms: float
    overshoot_pct: float
    settling_ms: float
    steady_error_mm: float
    steps: int

    def entry(self) -> dict:
        """The calibration store entry (figures that could not be measured are ``None``)."""
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else round(v, 4) if isinstance(v, float)
                    else v) for k, v in self.__dict__.items()}


def _onset(y: np.ndarray, rest: np.ndarray, floor: float) -> int | None:
    """First sample of ``y`` that leaves the rest band: the rest samples' linear trend,
    extrapolated, +- 6 sigma of their scatter about it (or ``floor``)."""
    k = np.arange(len(rest))
    drift = np.polyfit(k, rest, 1)
    band = max(6.0 * float(np.std(rest - np.polyval(drift, k))), floor)
    moved = np.flatnonzero(np.abs(y - np.polyval(drift, len(rest) + np.arange(len(y)))) > band)
    return int(moved[0]) if moved.size else None


def _step_figures(t: np.ndarray, y: np.ndarray, step: float, t_end: float) -> tuple[float, float, float, float]:
    """Rise time, overshoot [%], settling time after the command's end, and final error (SI)."""
    s = y / step  # normalised: 0 at rest, 1 at the target
    up10, up90 = np.flatnonzero(s >= 0.1), np.flatnonzero(s >= 0.9)
    rise = float(t[up90[0]] - t[up10[0]]) if up10.size and up90.size else float("nan")
    overshoot = max(0.0, float(s.max() - 1.0)) * 100.0
    outside = np.flatnonzero(np.abs(s - 1.0) > 0.05)
    settle = max(0.0, float(t[outside[-1] + 1] - t_end)) if outside.size and outside[-1] + 1 < len(t) else float("nan")
    tail = y[-max(5, len(y) // 10):]
    return rise, overshoot, settle, float(abs(np.mean(tail) - step))


def calibrate_servo(arm: Arm, step: float = 0.002, speed: float = 0.05, repeats: int = 2, rest_s: float = 0.04,
                    hold_s: float = 0.4, settle_s: float = 1.5, axis: tuple[float, float, float] = (1.0, 0.0, 0.0),
                    floor: float = 1e-6) -> ServoResult:
    """Measure latency and step tracking with ``repeats`` steps out and back.

    Args:
        arm: The arm (a ``SafeArm``), in free space with room for ``step`` along ``axis``.
        step: Step size [m].
        speed: Ramp speed of the commanded step [m/s] (within the arm's speed limit).
        repeats: Out-and-back pairs.
        rest_s: Still time recorded before each step [s].
        hold_s: Time recorded after each step [s].
        settle_s: Longest wait for the arm to be still before each step [s].
        axis: Step direction in the base frame.
        floor: Smallest motion counted as motion [m] (above the encoder noise).
    """
    period = arm.native_period
    direction = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    home = arm.state().base_T_tcp
    arm.move_to(home, 0.05)
    ramp = max(1, int(np.ceil(step / (speed * period))))
    latencies, figures = [], []
    offset = 0.0
    for k in range(2 * repeats):
        goal = step if k % 2 == 0 else 0.0
        target = lambda x: Pose(home.xyz + direction * x, home.wxyz)  # noqa: E731
        n_rest, n_hold = max(10, round(rest_s / period)), max(ramp + 10, round(hold_s / period))
        for _ in range(round(settle_s / period)):  # wait until still, holding the last target
            arm.servo(target(offset), period)
            if np.linalg.norm(arm.state().tcp_velocity[:3]) < 2e-5:
                break
        t, y = [], []
        for i in range(n_rest + ramp + n_hold):
            x = offset + (goal - offset) * min(1.0, max(0, i - n_rest + 1) / ramp)
            arm.servo(target(x), period)
            state = arm.state()
            t.append(state.time)
            y.append(float(np.dot(state.base_T_tcp.xyz - home.xyz, direction)))
        t_arr, y_arr, cmd_start = np.array(t), np.array(y), n_rest
        first = _onset(y_arr[cmd_start:], y_arr[:cmd_start], floor)
        if first is None:
            raise CalibrationError(f"the arm did not move after a {step * 1000:.1f} mm servo step: "
                                   "is it in freedrive, stopped, or blocked?")
        # Sample i follows command i; the earliest a command can show is sample i + 1 (one period
        # to act, one to be measured): the latency is the delay beyond that.
        latencies.append(max(0, first - 1) * period)
        sign = 1.0 if goal > offset else -1.0
        rel = (y_arr[cmd_start:] - offset) * sign
        t_rel = t_arr[cmd_start:] - t_arr[cmd_start] + period
        figures.append(_step_figures(t_rel, rel, step, ramp * period))
        offset = goal
    arm.move_to(home, 0.05)
    lat = np.array(latencies)
    fig = [float(np.median(col[np.isfinite(col)])) if np.isfinite(col).any() else float("nan")
           for col in np.array(figures).T]
    result = ServoResult(float(np.median(lat) * 1000), float(np.ptp(lat) * 1000), period * 1000,
                         float(fig[0] * 1000), float(fig[1]), float(fig[2] * 1000), float(fig[3] * 1000),
                         len(latencies))
    log.info("servo: latency %.1f ms (spread %.1f ms), rise %.1f ms, overshoot %.1f %%", result.latency_ms,
             result.latency_spread_ms, result.rise_ms, result.overshoot_pct)
    return result
