"""The control process: owns the pylibfranka ``Robot`` and runs the 1 kHz loop.

Started by ``client.ControlProcess`` as ``python -m rmskill.drivers.franka.worker SHM_NAME``. Requests come
as JSON lines on stdin, replies and fault events go out as JSON lines on the original stdout
(fd 1 is pointed at stderr so nothing libfranka prints can corrupt them). Servo targets and the
robot state travel through shared memory (``shared.SharedBlock``), not through the pipe. Running
in its own process keeps the loop clear of the caller's GIL, and keeps pylibfranka out of the
caller's process (it cannot share one with franky).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

import pylibfranka as pf

from rmskill.drivers.franka.controller import Controller, classify
from rmskill.drivers.franka.shared import SharedBlock


def connect(settings: dict) -> pf.Robot:
    """Connect, then apply collision behaviour, impedances and the TCP from the arm file."""
    realtime = pf.RealtimeConfig.kIgnore if settings["realtime"] == "ignore" else pf.RealtimeConfig.kEnforce
    robot = pf.Robot(settings["host"], realtime)
    if settings["collision"]:
        robot.set_collision_behavior(*settings["collision"])
    if settings["joint_impedance"]:
        robot.set_joint_impedance(settings["joint_impedance"])
    if settings["cartesian_impedance"]:
        robot.set_cartesian_impedance(settings["cartesian_impedance"])
    return robot


def main() -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed to stdout now goes to stderr
    logging.basicConfig(level=logging.WARNING, format="franka-worker %(levelname)s: %(message)s")
    block = SharedBlock.attach(sys.argv[1])
    settings = json.loads(sys.stdin.readline())
    try:
        robot = connect(settings)
    except Exception as err:  # every libfranka failure becomes one reply the caller can read
        out.write(json.dumps({"id": 0, "ok": False, "kind": classify(err), "error": str(err)}) + "\n")
        out.flush()
        block.close()
        return
    ctl = Controller(robot, settings, block, out)

    def read_requests() -> None:
        for line in sys.stdin:
            ctl.requests.put(json.loads(line))
        ctl.requests.put({"id": -1, "op": "close"})  # caller gone: stop and exit

    threading.Thread(target=read_requests, daemon=True).start()
    try:
        ctl.configure({"id": 0, "op": "set_tcp", "flange_T_tcp": settings["flange_T_tcp"]})
    except Exception as err:
        ctl.send(id=0, ok=False, kind=classify(err), error=str(err))
        block.close()
        return
    while not ctl.closing:
        ctl.step()
    block.close()


if __name__ == "__main__":
    main()
