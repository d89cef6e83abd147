"""Fuzz (hypothesis, bounded to seconds): the safety envelope lets no limit-breaking command reach
the driver and latches every violation; the arm-file loader refuses bad files in one short line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmskill.config import MAX_MESSAGE, load_arm_config
from rmskill.connect import open_arm
from rmskill.envelope_spy import EnvelopeSpy
from rmskill.errors import ConfigError, DriverError, SafetyViolation
from rmskill.geometry import Pose
from rmskill.safety import SafeArm

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_ARMS: dict[str, tuple[SafeArm, EnvelopeSpy]] = {}


def spied(name: str) -> tuple[SafeArm, EnvelopeSpy]:
    """One spied simulated arm per model for the whole module (connecting takes a while)."""
    if name not in _ARMS:
        config, driver = open_arm(ARMS / f"{name}.yaml")
        driver.connect()
        spy = EnvelopeSpy(driver, config)
        _ARMS[name] = SafeArm(spy, config), spy
    return _ARMS[name]


numbers = st.one_of(st.floats(-1.0, 1.0), st.sampled_from([0.0, 1e-3, 2e-3, 5e-3, 0.01, 0.011, math.nan, math.inf]))
durations = st.one_of(st.none(), st.sampled_from([0.002, 0.001, 0.02, 0.0, -0.01, math.nan, math.inf, 1e6, 1.0, 1.01]),
                      st.floats(0.0, 2.0))
command = st.one_of(
    st.tuples(st.just("servo"), st.lists(numbers, min_size=3, max_size=3), st.floats(0.0, math.pi), durations),
    st.tuples(st.just("move_to"), st.lists(st.floats(-0.1, 0.1), min_size=3, max_size=3), st.floats(0.0, 2.0),
              st.sampled_from([0.05, 0.1, 0.25, 0.3, 0.0, -1.0, math.nan])),
    st.tuples(st.just("move_joints"), st.floats(-1.0, 1.0), st.integers(0, 6), st.sampled_from([0.1, 0.5, 1.0, 2.0])),
    st.tuples(st.sampled_from(["stop", "recover", "fail_before", "fail_after"])),
)


@pytest.mark.parametrize("name", ["sim-ur5e", "sim-fr3"])
@FAST
@given(commands=st.lists(command, min_size=1, max_size=20))
def test_no_limit_breaking_command_reaches_the_driver(name, commands):
    arm, spy = spied(name)
    arm.sim.reset(plate=False)
    arm.stop()
    arm.recover()
    spy.log.breaches.clear()
    for cmd in commands:
        stops, fault_before = spy.log.stops, arm.fault
        here = arm.state()
        try:
            if cmd[0] == "servo":
                _, delta, angle, duration = cmd
                target = (here.base_T_tcp @ Pose.from_rotvec([0, 0, 0], [0.0, 0.0, angle])).to_ur()
                arm.servo([v + d * 0.02 for v, d in zip(target, [*delta, 0, 0, 0], strict=True)], duration)
            elif cmd[0] == "move_to":
                _, delta, angle, speed = cmd
                arm.move_to(Pose(here.base_T_tcp.xyz + delta, here.base_T_tcp.wxyz) @
                            Pose.from_rotvec([0, 0, 0], [angle, 0.0, 0.0]), speed)
            elif cmd[0] == "move_joints":
                _, delta, joint, speed = cmd
                q = here.q.copy()
                q[min(joint, len(q) - 1)] += delta
                arm.move_joints(q, speed)
            elif cmd[0] == "stop":
                arm.stop()
            elif cmd[0] == "recover":
                arm.recover()
            else:
                spy.fail_next = cmd[0].removeprefix("fail_")
        except (SafetyViolation, DriverError) as err:
            if fault_before is None:  # a new violation or driver failure: the arm was stopped and it latched
                assert spy.log.stops > stops and arm.fault is not None, err
            continue
    assert spy.log.breaches == []


def _good() -> dict:
    return yaml.safe_load((ARMS / "sim-ur5e.yaml").read_text())


BAD_VALUES = {
    "limits.max_speed": ["true", "'1'", "0x10", "1e308", "-1", ".nan", "6.0", "[1]"],
    "limits.servo_timeout": ["1e12", "0", "true"],
    "limits.max_force": ["2001", "1e308", "'60'"],
    "name": ["'..'", "a/b", "''", "1"],
    "gripper.driver": ["nonexistent", "1"],
    "gripper.timeout": ["1e308", "0"],
    "tcp": ["[0, 0, 0]", "[true, 0, 0, 0, 0, 0]", "[1e308, 0, 0, 0, 0, 0]"],
    "fixtures.shelf_1": ["[5, 0, 0.1, 0, 0, 0]", "[0.45, 0, -1, 0, 0, 0]"],
    "sim.seed": ["-1", "1.5", "true"],
    "home": ["[true, 0, 0, 0, 0, 0]", "[1e9, 0, 0, 0, 0, 0]"],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.sampled_from([(k, v) for k, vs in BAD_VALUES.items() for v in vs]), min_size=1,
                        max_size=3, unique_by=lambda c: c[0]))
def test_bad_arm_files_are_refused_in_one_line(tmp_path, changes):
    data = _good()
    for i, (dotted, _) in enumerate(changes):
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = f"__BAD{i}__"
    text = yaml.safe_dump(data, sort_keys=False, width=10**9)
    for i, (_, value) in enumerate(changes):
        text = text.replace(f"__BAD{i}__", value, 1)
    path = tmp_path / "arm.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_arm_config(path)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) <= MAX_MESSAGE and str(path) in msg


GOOD_TEXT = (ARMS / "sim-ur5e.yaml").read_text()


@pytest.mark.parametrize(("label", "data", "words"), [
    ("duplicate key", (GOOD_TEXT + "limits: {max_speed: 100.0}\n").encode(), "duplicate key 'limits'"),
    ("alias", GOOD_TEXT.replace("  seed: 0", "  seed: &s 0\n  realtime: *s").encode(), "anchors"),
    ("alias bomb", (GOOD_TEXT + "options:\n  a: &a [x, x]\n  b: [*a, *a]\n").encode(), "anchors"),
    ("hex", GOOD_TEXT.replace("max_force: 60.0", "max_force: 0x10").encode(), "plain decimal"),
    ("not UTF-8", GOOD_TEXT.encode() + b"# \xff\n", "not UTF-8"),
    ("deep", (GOOD_TEXT + "options: {x: " + "[" * 5000 + "]" * 5000 + "}\n").encode(), "levels deep"),
    ("huge integer", GOOD_TEXT.replace("max_force: 60.0", "max_force: " + "9" * 5000).encode(), "plain decimal"),
    ("huge file", (GOOD_TEXT + "#" * 200_000 + "\n").encode(), "larger than"),
])
def test_structural_refusals(tmp_path, label, data, words):
    path = tmp_path / "arm.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=words) as err:
        load_arm_config(path)
    assert "\n" not in str(err.value) and len(str(err.value)) <= MAX_MESSAGE, label
