"""Run ur_rtde's own Python examples, unchanged but for the robot's address, against the UR emulator.

    python benchmarks/ur_rtde_examples.py --examples PATH/TO/ur_rtde/examples/py [--host 127.0.0.61]

The examples are not shipped here (they are ur_rtde's): point ``--examples`` at a checkout's
``examples/py``. Each script gets a fresh emulator (MuJoCo backend) on a loopback address of its own,
its robot address ("127.0.0.1", "localhost" or a 192.168.x.x literal, in either quotes) replaced by
that address, and a time limit; scripts that loop until Ctrl-C get SIGINT after ``--interrupt-after``
seconds, as a user would send it. ``--programs DIR`` gives the dashboard a program store (``.urp``
names). The table says how each ended, what it printed last, what the emulator refused, and how far
the TCP travelled (its path, sampled over RTDE at 20 Hz while the script ran) and where it ended
against where it began, so a "success" without motion shows.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ARM_FILE = ROOT / "examples" / "arms" / "emulated-ur5e.yaml"
ADDRESS = re.compile(r"""(["'])(127\.0\.0\.1|localhost|192\.168\.\d+\.\d+)\1""")


def tcp(host: str) -> list[float] | None:
    """The emulated arm's TCP pose, read over RTDE with ur_rtde (None if it cannot be read)."""
    code = (f"import rtde_receive, json; r = rtde_receive.RTDEReceiveInterface({host!r}); "
            "print(json.dumps(r.getActualTCPPose())); r.disconnect()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    try:
        return [float(v) for v in yaml.safe_load(out.stdout.strip().splitlines()[-1])]
    except Exception:
        return None


class TcpTravel:
    """The TCP's path length [mm] over RTDE while a script runs (a receive client of our own):
    ``start()``, then ``stop()``."""

    def __init__(self, host: str) -> None:
        self.host, self.length, self.samples = host, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TcpTravel:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        try:
            import rtde_receive

            receive = rtde_receive.RTDEReceiveInterface(self.host)
        except Exception:
            return
        last = None
        while not self._stop.wait(0.05):
            try:
                xyz = receive.getActualTCPPose()[:3]
            except Exception:
                break
            if last is not None:
                self.length += sum((a - b) ** 2 for a, b in zip(xyz, last, strict=True)) ** 0.5 * 1000.0
            last, self.samples = xyz, self.samples + 1
        try:
            receive.disconnect()
        except Exception:
            pass


def run_one(script: Path, host: str, timeout: float, interrupt_after: float, work: Path,
            programs: Path | None = None) -> dict:
    from rmskill.drivers.ur.emulator import EmulatorProcess

    data = yaml.safe_load(ARM_FILE.read_text())
    data["host"] = host
    data["gripper"]["port"] = str(work / f"tty_{script.stem}")
    if programs is not None:
        data.setdefault("options", {})["emulator_programs"] = str(programs.resolve())
    cell = work / f"{script.stem}.yaml"
    cell.write_text(yaml.safe_dump(data))
    source = script.read_text()
    patched = work / script.name
    patched.write_text(ADDRESS.sub(lambda m: f"{m.group(1)}{host}{m.group(1)}", source))
    loops = "KeyboardInterrupt" in source
    emulator = EmulatorProcess(cell, host=host, backend="mujoco").start()
    try:
        before = tcp(host)
        start = time.monotonic()
        travel = TcpTravel(host).start()
        proc = subprocess.Popen([sys.executable, str(patched)], cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        hung, interrupted = False, False
        try:
            out, _ = proc.communicate(timeout=interrupt_after if loops else timeout)
        except subprocess.TimeoutExpired:
            if loops:
                proc.send_signal(signal.SIGINT)
                interrupted = True
                try:
                    out, _ = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    hung = True
            else:
                hung = True
            if hung:
                proc.kill()
                out, _ = proc.communicate()
        seconds = time.monotonic() - start
        travel.stop()
        after = tcp(host)
    finally:
        emulator.stop()
        log = "\n".join(emulator.log)
    refused = [line.strip() for line in log.splitlines()
               if re.search(r"not emulated|refused|script stopped|protective stop|program error", line)]
    lines = [line for line in (out or "").splitlines() if line.strip()]
    moved = None
    if before is not None and after is not None:
        moved = sum((a - b) ** 2 for a, b in zip(after[:3], before[:3], strict=True)) ** 0.5 * 1000.0
    return {"script": script.name, "exit": proc.returncode, "seconds": seconds, "hung": hung,
            "interrupted": interrupted, "last": lines[-1][:90] if lines else "", "refused": refused[:2],
            "moved_mm": moved, "path_mm": travel.length if travel.samples > 1 else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, required=True, help="ur_rtde's examples/py folder")
    parser.add_argument("--host", default="127.0.0.61", help="loopback address for the emulators")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before a script counts as hung")
    parser.add_argument("--programs", type=Path, help="a folder of .urp names for the dashboard's program store")
    parser.add_argument("--interrupt-after", type=float, default=5.0,
                        help="seconds before SIGINT to a script that loops until Ctrl-C")
    args = parser.parse_args(argv)
    scripts = sorted(args.examples.glob("*.py"))
    if not scripts:
        print(f"no .py files in {args.examples}", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            row = run_one(script, args.host, args.timeout, args.interrupt_after, Path(tmp), args.programs)
            rows.append(row)
            print(f"{row['script']}: exit {row['exit']}, {row['seconds']:.1f} s", file=sys.stderr)
    print("| example | exit | s | ended by | TCP path mm | end - start mm | last line printed | emulator refused |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ended = "HUNG (killed)" if r["hung"] else ("SIGINT, as asked" if r["interrupted"] else "itself")
        moved = "?" if r["moved_mm"] is None else f"{r['moved_mm']:.1f}"
        path = "?" if r["path_mm"] is None else f"{r['path_mm']:.1f}"
        refused = "; ".join(r["refused"]) or "-"
        print(f"| {r['script']} | {r['exit']} | {r['seconds']:.1f} | {ended} | {path} | {moved} | "
              f"`{r['last'].replace('|', '/')}` | {refused.replace('|', '/')[:120]} |")
    return 1 if any(r["hung"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
