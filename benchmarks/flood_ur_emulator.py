"""Flood the UR emulator as a careless or hostile client would, and check it stays small and serves.

After each flood: the emulator's resident memory (now and peak, from /proc), and whether an
unmodified ur_rtde client still connects, reads the TCP pose and moves. Needs ur_rtde and the
standard UR ports (30004, 29999, 30003) free on 127.0.0.1.

    python benchmarks/flood_ur_emulator.py [--mib 120]
"""

from __future__ import annotations

import argparse
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from rmskill.drivers.ur.emulator import DEFAULT_PORTS, EmulatorProcess

ARM_FILE = Path(__file__).resolve().parents[1] / "examples" / "arms" / "emulated-ur5e.yaml"
HOST = "127.0.0.1"
MIB = 1 << 20


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory [MB] of process ``pid``."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def blast(port: int, head: bytes, total: int, chunk: bytes = b"x" * 65536) -> tuple[int, float]:
    """Send ``head`` then filler up to ``total`` bytes; returns bytes the server took and seconds."""
    sent, start = 0, time.monotonic()
    with socket.create_connection((HOST, port), timeout=10) as s:
        try:
            s.sendall(head)
            sent = len(head)
            while sent < total:
                sent += s.send(chunk[: min(len(chunk), total - sent)])
        except OSError:  # dropped by the server: what it should do
            pass
    return sent, time.monotonic() - start


def dashboard_lines(total: int) -> tuple[int, float]:
    """Many short dashboard commands, read back: the server must answer them in linear time."""
    line, sent, start = b"robotmode\n", 0, time.monotonic()
    with socket.create_connection((HOST, DEFAULT_PORTS["dashboard"]), timeout=30) as s:
        f = s.makefile("rwb")
        f.readline()
        batch = line * 4096
        while sent < total:
            f.write(batch)
            f.flush()
            for _ in range(4096):
                f.readline()
            sent += len(batch)
    return sent, time.monotonic() - start


def idle_connections(n: int) -> tuple[int, float]:
    """Open ``n`` idle connections to every port; seconds until a dashboard greeting arrives."""
    start, socks = time.monotonic(), []
    try:
        for port in DEFAULT_PORTS.values():
            socks += [socket.create_connection((HOST, port), timeout=30) for _ in range(n)]
        with socket.create_connection((HOST, DEFAULT_PORTS["dashboard"]), timeout=30) as s:
            s.makefile("rb").readline()
        return len(socks), time.monotonic() - start
    finally:
        for s in socks:
            s.close()


def resets(n: int) -> tuple[int, float]:
    """Connect, send half a message, and reset (RST) the connection, ``n`` times per port."""
    start = time.monotonic()
    for port in DEFAULT_PORTS.values():
        for _ in range(n):
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(b"\x00\x10V" if port == DEFAULT_PORTS["rtde"] else b"half a line")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    return 3 * n, time.monotonic() - start


def well_behaved_client() -> str:
    """An unmodified ur_rtde client: connect, read the pose, move 1 cm and back, disconnect."""
    import rtde_control
    import rtde_receive

    recv = rtde_receive.RTDEReceiveInterface(HOST)
    ctrl = rtde_control.RTDEControlInterface(HOST)
    try:
        pose = recv.getActualTCPPose()
        ctrl.moveL([pose[0] + 0.01, *pose[1:]], 0.1, 0.5)
        ctrl.moveL(pose, 0.1, 0.5)
        back = recv.getActualTCPPose()
        err = sum((a - b) ** 2 for a, b in zip(pose[:3], back[:3], strict=True)) ** 0.5
        ctrl.stopScript()
        return "served" if err < 1e-3 else f"moved wrong ({err * 1000:.2f} mm)"
    finally:
        ctrl.disconnect()
        recv.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=120, help="size of each byte flood [MiB]")
    parser.add_argument("--idle", type=int, default=200, help="idle connections per port")
    args = parser.parse_args()
    size = args.mib * MIB
    floods: list[tuple[str, Callable[[], tuple[int, float]]]] = [
        ("RTDE header size 1, then junk", lambda: blast(DEFAULT_PORTS["rtde"], struct.pack(">HB", 1, 86), size)),
        ("RTDE header size 65535, then junk", lambda: blast(DEFAULT_PORTS["rtde"], struct.pack(">HB", 65535, 86),
                                                            size)),
        ("script bytes without a newline", lambda: blast(DEFAULT_PORTS["script"], b"", size // 2)),
        ("script 'def' without its 'end'", lambda: blast(DEFAULT_PORTS["script"], b"def p():\n", size // 2,
                                                         b"  textmsg(1)\n" * 4096)),
        ("dashboard bytes without a newline", lambda: blast(DEFAULT_PORTS["dashboard"], b"", size // 4)),
        ("dashboard 1 MiB of short commands", lambda: dashboard_lines(MIB)),
        ("dashboard 4 MiB of short commands", lambda: dashboard_lines(4 * MIB)),
        (f"{args.idle} idle connections per port", lambda: idle_connections(args.idle)),
        ("client resets (RST) x 50 per port", lambda: resets(50)),
    ]
    with EmulatorProcess(ARM_FILE, host=HOST, backend="kinematic", log_lines=None) as emulator:
        assert emulator.proc is not None
        pid = emulator.proc.pid
        rss, peak = memory_mb(pid)
        print(f"{'flood':40s} {'taken MiB':>9s} {'s':>6s} {'RSS MB':>7s} {'peak MB':>8s}  ur_rtde after")
        print(f"{'(start)':40s} {'':>9s} {'':>6s} {rss:7.1f} {peak:8.1f}  {well_behaved_client()}")
        for name, flood in floods:
            taken, seconds = flood()
            time.sleep(0.3)
            rss, peak = memory_mb(pid)
            print(f"{name:40s} {taken / MIB:9.2f} {seconds:6.2f} {rss:7.1f} {peak:8.1f}  {well_behaved_client()}")
        emulator.stop()
        log = "\n".join(emulator.log)
    tracebacks = log.count("Traceback")
    dropped = log.count("dropped client")
    gone = log.count("went away")
    print(f"\nemulator log: {len(log.splitlines())} lines, {dropped} 'dropped client', {gone} 'went away', "
          f"{tracebacks} tracebacks")


if __name__ == "__main__":
    main()
