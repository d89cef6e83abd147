"""Fuzz the arm-file loader: files that must be refused, each in one short line naming the file.

The cases the hardening issue measured (bools and strings as numbers, hex, duplicate keys, an
alias bomb, unknown gripper drivers, limits without bounds, fixtures outside the workspace, a
``name`` of ``..``, undecodable bytes, deep nesting, huge integers, huge files and lists) and a
few hundred generated ones (one to three bad keys in a valid file).

    python benchmarks/fuzz_arm_files.py [--generated 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from rmskill.config import MAX_MESSAGE, load_arm_config
from rmskill.errors import ConfigError

GOOD = (Path(__file__).resolve().parents[1] / "examples" / "arms" / "sim-ur5e.yaml").read_text()
LIMITS = ["max_speed", "max_angular_speed", "max_step", "max_force", "servo_timeout", "max_servo_duration"]
BAD_NUMBERS = ["true", "'1'", "0x10", "0o17", "1_000", "1e308", "-1", "0", ".nan", ".inf", "-.inf", "[1]", "{a: 1}",
               "1e6", "null", "'0.1'", "1" * 5000]
BAD_POSES = ["[0, 0, 0]", "[true, 0, 0, 0, 0, 0]", "[1e308, 0, 0, 0, 0, 0]", "['a', 0, 0, 0, 0, 0]",
             "[0.4, 0, 0.3, .nan, 0, 0]", "[0, 0, 0, 0, 0, 0, 0]", "{x: 1}", "0x10"]
# (dotted key, bad YAML values)
TABLE: list[tuple[str, list[str]]] = [
    *[(f"limits.{k}", BAD_NUMBERS) for k in LIMITS],
    ("limits.workspace.min", ["[0, 0]", "[1e9, 0, 0]", "[true, 0, 0]", "[0.9, 0, 0]"]),
    ("limits.workspace.max", ["[0, 0, 0]", "['1', 1, 1]", "[1e308, 1, 1]"]),
    ("name", ["'..'", "a/b", "''", "1", "true", "x" * 65, "'../../etc'", "'a b'", "[a]"]),
    ("driver", ["1", "'../x'", "''"]),
    ("model", ["1", "true", "'a/b'"]),
    ("tcp", BAD_POSES),
    ("home", ["[true, 0, 0, 0, 0, 0]", "[1e9, 0, 0, 0, 0, 0]", "[" + ", ".join(["0"] * 20) + "]", "'home'",
              "[]"]),
    ("gripper.driver", ["nonexistent", "1", "true", "''"]),
    ("gripper.mass", ["true", "-1", "1e9", "'0.9'"]),
    ("gripper.timeout", ["1e308", "0", "-1", "true"]),
    ("gripper.force", ["1e308", "0", "'40'"]),
    ("gripper.center_of_mass", ["[0, 0]", "[true, 0, 0]", "[1e99, 0, 0]"]),
    ("sim.seed", ["-1", "1.5", "true", str(2**64), "'0'"]),
    ("sim.realtime", ["1", "'yes please'", "[]"]),
    ("sim.truth.latency_ms", ["true", "-1", "1e9", "'3'"]),
    ("sim.truth.grasp_noise", ["[1]", "[true, 0]", "[-1, 0]", "[1e9, 0]"]),
    ("sim.truth.tcp_error", BAD_POSES),
    ("fixtures.shelf_1", ["[5, 0, 0.1, 0, 0, 0]", "[0.45, 0, -1, 0, 0, 0]", "[true, 0, 0.1, 0, 0, 0]", "{pose: [0.45]}",
                          "{pose: [0.45, 0, 0.1, 0, 0, 0], kind: '../x'}"]),
    ("fixtures", ["[1, 2]", "{'a/b': [0.45, 0, 0.1, 0, 0, 0]}", "{'..': [0.45, 0, 0.1, 0, 0, 0]}"]),
    ("options", ["[1]", "{'a b': 1}"]),
    ("colour", ["red"]),
]


def with_values(text: str, changes: list[tuple[str, str]]) -> str:
    """``text`` (the good file) with each dotted key set to its YAML value (flow style)."""
    data = yaml.safe_load(text)
    for i, (dotted, _) in enumerate(changes):
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node.get(key), dict | None) else {}
        node[last] = f"__BAD{i}__"
    out = yaml.safe_dump(data, sort_keys=False, width=10**9)
    for i, (_, value) in enumerate(changes):
        out = out.replace(f"__BAD{i}__", value, 1)
    return out


def structural_cases() -> list[tuple[str, bytes]]:
    """Whole-file cases: encodings, duplicates, aliases, nesting, sizes."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    return [
        ("duplicate top-level key", (GOOD + "limits: {max_speed: 100.0}\n").encode()),
        ("duplicate nested key", GOOD.replace("  max_speed: 0.25", "  max_speed: 0.25\n  max_speed: 100.0").encode()),
        ("duplicate fixture", GOOD.replace("fixtures:", "fixtures:\n  shelf_1: [0.45, 0, 0.1, 0, 0, 0]").encode()),
        ("billion laughs under options", (GOOD + "options:\n" + "".join("  " + line + "\n"
                                                                        for line in bomb.splitlines())).encode()),
        ("anchor and alias", GOOD.replace("  seed: 0", "  seed: &s 0\n  realtime: *s").encode()),
        ("merge key", (GOOD.replace("limits:\n", "limits:\n  <<: {max_speed: 9.0}\n", 1)).encode()),
        ("not UTF-8", GOOD.encode() + b"\n# \xff\xfe\xfa\n"),
        ("UTF-16", GOOD.encode("utf-16")),
        ("nested 10000 deep", (GOOD + "options: {x: " + "[" * 10000 + "]" * 10000 + "}\n").encode()),
        ("5000-digit integer", (GOOD.replace("max_force: 60.0", "max_force: " + "9" * 5000)).encode()),
        ("2 MB file", (GOOD + "# " + "x" * 2_000_000 + "\n").encode()),
        ("20000 fixtures", (GOOD + "".join(f"  f{i}: [0.45, 0, 0.1, 0, 0, 0]\n" for i in range(20000))).encode()),
        ("home of 2,000,000 values", (GOOD + "home: [" + "0," * 2_000_000 + "0]\n").encode()),
        ("top-level list", b"- name: a\n"),
        ("empty file", b""),
        ("binary junk", bytes(range(256)) * 4),
        ("tab indentation", GOOD.replace("  max_speed", "\tmax_speed").encode()),
        ("python object tag", (GOOD + "options: {x: !!python/object:os.system [ls]}\n").encode()),
        ("timestamp as number", GOOD.replace("max_force: 60.0", "max_force: 2001-12-14").encode()),
        ("sexagesimal", GOOD.replace("max_force: 60.0", "max_force: 1:30").encode()),
    ]


def table_cases() -> list[tuple[str, bytes]]:
    return [(f"{key}: {value[:30]}", with_values(GOOD, [(key, value)]).encode())
            for key, values in TABLE for value in values]


def generated_cases(n: int, seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        changes = []
        for _ in range(int(rng.integers(1, 4))):
            key, values = TABLE[int(rng.integers(len(TABLE)))]
            changes.append((key, values[int(rng.integers(len(values)))]))
        names = "; ".join(f"{key}={value[:12]}" for key, value in changes)
        out.append((names, with_values(GOOD, changes).encode()))
    return out


def judge(cases: list[tuple[str, bytes]], folder: Path) -> dict:
    """Load each case; count refusals, one-line refusals, the longest message and the slowest load."""
    path = folder / "arm.yaml"
    res = {"cases": len(cases), "refused": 0, "one_line": 0, "names_file": 0, "longest": 0, "slowest": 0.0,
           "accepted": [], "other_errors": []}
    for name, data in cases:
        path.write_bytes(data)
        start = time.monotonic()
        try:
            load_arm_config(path)
            res["accepted"].append(name)
        except ConfigError as err:
            msg = str(err)
            res["refused"] += 1
            res["one_line"] += "\n" not in msg and len(msg) <= MAX_MESSAGE
            res["names_file"] += str(path) in msg
            res["longest"] = max(res["longest"], len(msg))
        except Exception as err:  # anything else is a finding
            res["other_errors"].append(f"{name}: {type(err).__name__}")
        res["slowest"] = max(res["slowest"], time.monotonic() - start)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_arm_config(Path(__file__).resolve().parents[1] / "examples" / "arms" / "sim-ur5e.yaml")  # the base is good
    print(f"{'set':12s} {'cases':>6s} {'refused':>8s} {'one line':>9s} {'names file':>11s} {'longest':>8s} "
          f"{'slowest s':>10s}  accepted / other errors")
    with tempfile.TemporaryDirectory() as tmp:
        for label, cases in (("structural", structural_cases()), ("by key", table_cases()),
                             ("generated", generated_cases(args.generated, args.seed))):
            r = judge(cases, Path(tmp))
            print(f"{label:12s} {r['cases']:6d} {r['refused']:8d} {r['one_line']:9d} {r['names_file']:11d} "
                  f"{r['longest']:8d} {r['slowest']:10.3f}  {r['accepted'][:5]} {r['other_errors'][:5]}")


if __name__ == "__main__":
    main()
