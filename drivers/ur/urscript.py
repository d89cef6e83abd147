"""A small URScript runner for programs other than ur_rtde's control script (the script port, the
primary/secondary interfaces, ur_rtde's sendCustomScript/sendCustomScriptFunction, python-urx).

It runs a list of statements one after another: moves (movej, movel, stopj, stopl), sleep, register
and digital output writes, set_tcp, set_payload, textmsg. A statement it does not know stops the
program with an error in the log, as a compile error on PolyScope would: never a silent success.
"""

from __future__ import annotations

import ast
import logging
import operator
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from rmskill.geometry import Pose

from .motion import JointMove, LinearMove

if TYPE_CHECKING:
    from .controller import Controller

log = logging.getLogger(__name__)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_DEF = re.compile(r"^\s*def\s+\w+\s*\(\s*\)\s*:\s*$")
_OUTPUT = re.compile(r"^(digital_out|tool_digital_out)\[(\d+)\]\s*=\s*(True|False)$")


class ScriptError(ValueError):
    """A statement the runner cannot execute."""


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.List):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.Name) and node.id in ("True", "False"):
        return node.id == "True"
    raise ScriptError(f"expression not supported: {ast.unparse(node)[:80]}")


def parse(text: str) -> list[tuple[str, list[Any], dict[str, Any], bool]]:
    """Statements of ``text`` (one ``def ...: end`` program or loose lines): (name, args, kwargs,
    whether the first argument was a pose ``p[...]``) each. ``ScriptError`` on what it cannot run."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or _DEF.match(line) or line == "end":
            continue
        assigned = _OUTPUT.match(line)  # python-urx writes the old form: digital_out[2]=True
        if assigned:
            line = f"set_{assigned.group(1)}({assigned.group(2)}, {assigned.group(3)})"
        is_pose = bool(re.match(r"^\w+\(\s*p\[", line))
        try:
            tree = ast.parse(re.sub(r"\bp\[", "[", line), mode="eval").body
        except SyntaxError:
            raise ScriptError(f"not a statement this emulator runs: {line[:80]!r}") from None
        if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
            raise ScriptError(f"not a statement this emulator runs: {line[:80]!r}")
        name = tree.func.id
        if name not in RUNNERS:
            raise ScriptError(f"URScript function {name}() is not emulated")
        if name == "textmsg":
            continue
        out.append((name, [_value(a) for a in tree.args], {k.arg: _value(k.value) for k in tree.keywords if k.arg},
                    is_pose))
    return out


class ScriptProgram:
    """Runs parsed statements on the controller, one control period at a time (as ``ControlProgram``)."""

    def __init__(self, controller: Controller, name: str, statements: list):
        self.c, self.name, self.statements = controller, name, list(statements)
        self.waiting: Any = None  # a motion, or the controller time [s] a sleep ends at
        self.t = 0.0

    def step(self) -> None:
        c = self.c
        self.t += c.period
        if self.waiting is not None:
            if isinstance(self.waiting, float):
                if self.t < self.waiting:
                    return
            elif c.motion is self.waiting and not self.waiting.done:
                return
            self.waiting = None
        while self.statements and self.waiting is None:
            name, args, kwargs, is_pose = self.statements.pop(0)
            try:
                RUNNERS[name](self, args, kwargs, is_pose)
            except (ScriptError, ValueError, TypeError, IndexError) as err:
                log.error("script '%s' stopped at %s(): %s", self.name, name, err)
                c.stop_program(f"runtime error in {name}(): {err}")
                return
        if not self.statements and self.waiting is None:
            c.stop_program(f"script '{self.name}' finished")

    def move(self, args, kwargs, is_pose, linear: bool) -> None:
        c = self.c
        target = np.asarray(args[0], dtype=float)
        if target.shape != (6,):
            raise ScriptError("a move target needs 6 values")
        defaults = (1.2, 0.25) if linear else (1.4, 1.05)
        a = float(kwargs.get("a", args[1] if len(args) > 1 else defaults[0]))
        v = float(kwargs.get("v", args[2] if len(args) > 2 else defaults[1]))
        if linear:
            pose = Pose.from_ur(target) if is_pose else c.kin.forward(target)
            motion: Any = LinearMove(c.state.base_T_tcp, pose, v, a)
        else:
            q = c.kin.solve(Pose.from_ur(target), c.state.q) if is_pose else target
            if q is None:
                raise ScriptError(f"no inverse kinematics for {target.tolist()}")
            motion = JointMove(c.state.q, q, v, a)
        c.start_motion(motion)
        self.waiting = motion

    def register(self, args, kind: str) -> None:
        i, v = int(args[0]), args[1]
        if not 0 <= i < len(self.c.registers.output[kind]):
            raise ScriptError(f"register {i} out of range")
        self.c.registers.output[kind][i] = int(v) if kind == "int" else (bool(v) if kind == "bit" else float(v))

    def digital(self, args, shift: int, tool: bool = False) -> None:
        n, on = int(args[0]), bool(args[1])
        if tool:
            self.c.tool_outputs = (self.c.tool_outputs & ~(1 << n)) | (int(on) << n)
        else:
            bit = 1 << (n + shift)
            self.c.digital_outputs = (self.c.digital_outputs & ~bit) | (bit if on else 0)


RUNNERS: dict[str, Any] = {
    "movej": lambda p, a, k, pose: p.move(a, k, pose, linear=False),
    "movel": lambda p, a, k, pose: p.move(a, k, pose, linear=True),
    "stopj": lambda p, a, k, pose: p.c.start_motion(None),
    "stopl": lambda p, a, k, pose: p.c.start_motion(None),
    "sleep": lambda p, a, k, pose: setattr(p, "waiting", p.t + float(a[0])),
    "sync": lambda p, a, k, pose: None,
    "textmsg": lambda p, a, k, pose: None,
    "write_output_integer_register": lambda p, a, k, pose: p.register(a, "int"),
    "write_output_float_register": lambda p, a, k, pose: p.register(a, "double"),
    "write_output_boolean_register": lambda p, a, k, pose: p.register(a, "bit"),
    "set_digital_out": lambda p, a, k, pose: p.digital(a, 0),
    "set_standard_digital_out": lambda p, a, k, pose: p.digital(a, 0),
    "set_configurable_digital_out": lambda p, a, k, pose: p.digital(a, 8),
    "set_tool_digital_out": lambda p, a, k, pose: p.digital(a, 0, tool=True),
    "set_tcp": lambda p, a, k, pose: p.c.set_tcp(Pose.from_ur(a[0])),
    "set_payload": lambda p, a, k, pose: p.c.set_payload(float(a[0]), list(a[1]) if len(a) > 1 else [0.0] * 3),
}
