"""``rmskill check-gripper robotiq``: activate, close, report, open, one result per step.

Device errors never escape: the failing step is recorded with the error's message and the check
stops there, so a script (``--json``) always gets a list back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rmskill.arm import GripperState
from rmskill.config import GripperConfig
from rmskill.drivers.robotiq.gripper import RobotiqGripper
from rmskill.errors import RmskillError

log = logging.getLogger(__name__)


def _step(name: str, ok: bool, detail: str) -> dict:
    return {"step": name, "ok": ok, "detail": detail}


def check_gripper(config: GripperConfig) -> list[dict]:
    """Run the steps against the gripper in ``config``; returns ``{"step", "ok", "detail"}`` dicts.

    Steps: ``connect`` (open the port, activate), ``close``, ``report`` (width [m] and whether an
    object stopped the fingers), ``open``. Widths in the details are in mm.
    """
    results: list[dict] = []
    try:
        gripper = RobotiqGripper(config)
    except RmskillError as err:
        return [_step("configure", False, str(err))]

    def run(name: str, action: Callable[[], str]) -> bool:
        try:
            detail = action()
        except RmskillError as err:
            log.debug("check-gripper step %s failed: %s", name, err)
            results.append(_step(name, False, str(err)))
            return False
        results.append(_step(name, True, detail))
        return True

    def connect() -> str:
        gripper.connect()
        return f"{gripper.spec.name} on {gripper.port} answered and is activated"

    closed: dict[str, GripperState] = {}

    def close() -> str:
        closed["state"] = state = gripper.close()
        return f"fingers stopped at {state.width * 1000:.1f} mm"

    def report() -> str:
        state = closed["state"]
        held = "object detected" if state.object_detected else "no object (fully closed)"
        return f"width {state.width * 1000:.1f} mm, {held}"

    def open_() -> str:
        state = gripper.open()
        return f"opened to {state.width * 1000:.1f} mm"

    try:
        for name, action in (("connect", connect), ("close", close), ("report", report), ("open", open_)):
            if not run(name, action):
                break
    finally:
        gripper.disconnect()
    return results
