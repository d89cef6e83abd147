"""Shared memory between the caller's process and the 1 kHz control process.

Two lock-free slots guarded by sequence counters (a seqlock: odd while being written), plus a
ring of loop periods for the benchmark. The control process writes ``state``; the caller writes
``target``; the ring holds per-cycle timing. Only numpy and the standard library here.
"""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory

import numpy as np

#: Field name -> length, in float64, of the state slot.
STATE_FIELDS: dict[str, int] = {
    "time": 1,  # robot time [s]
    "q": 7,  # [rad]
    "dq": 7,  # [rad/s]
    "O_T_EE": 16,  # measured pose, column-major
    "O_F_ext_hat_K": 6,  # external wrench [N, Nm], base frame
    "tcp_velocity": 6,  # [m/s, rad/s], base frame, from measured poses
    "robot_mode": 1,  # libfranka RobotMode value
    "active": 1,  # 1 while a control session runs
    "target_done": 1,  # seq of the last target the commanded pose has settled on
    "cycles": 1,  # control cycles run
    "missed": 1,  # robot ticks missed (libfranka Duration above 1 ms)
}
#: Field name -> length of the target slot: TCP position [m], quaternion wxyz, duration [s].
TARGET_FIELDS: dict[str, int] = {"xyz": 3, "wxyz": 4, "duration": 1, "seq": 1}
RING = 65536


def _layout(fields: dict[str, int], start: int) -> tuple[dict[str, slice], int]:
    out, i = {}, start
    for name, n in fields.items():
        out[name] = slice(i, i + n)
        i += n
    return out, i


_STATE, _STATE_END = _layout(STATE_FIELDS, 1)  # [0] is the state seqlock counter
_TARGET, _TARGET_END = _layout(TARGET_FIELDS, _STATE_END + 1)  # [_STATE_END] its counter
_RING_COUNT = _TARGET_END
_SIZE = _RING_COUNT + 1 + 2 * RING


class SharedBlock:
    """The shared block; ``create()`` in the caller, ``attach(name)`` in the control process."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool):
        self._shm = shm
        self._owner = owner
        self.buf = np.ndarray((_SIZE,), dtype=np.float64, buffer=shm.buf)

    @classmethod
    def create(cls) -> SharedBlock:
        block = cls(shared_memory.SharedMemory(create=True, size=_SIZE * 8), owner=True)
        block.buf[:] = 0.0
        return block

    @classmethod
    def attach(cls, name: str) -> SharedBlock:
        shm = shared_memory.SharedMemory(name=name)
        # Python < 3.13 registers attached blocks too, and would unlink the caller's at our exit.
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(shm, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def close(self) -> None:
        del self.buf
        self._shm.close()
        if self._owner:
            self._shm.unlink()

    # --- seqlock ----------------------------------------------------------------------------
    def _write(self, counter: int, layout: dict[str, slice], values: dict[str, object]) -> None:
        self.buf[counter] += 1.0
        for key, value in values.items():
            self.buf[layout[key]] = value
        self.buf[counter] += 1.0

    def _read(self, counter: int, start: int, end: int) -> np.ndarray:
        while True:
            before = self.buf[counter]
            data = self.buf[start:end].copy()
            if before % 2 == 0 and self.buf[counter] == before:
                return data

    def write_state(self, **values: object) -> None:
        self._write(0, _STATE, values)

    def read_state(self) -> dict[str, np.ndarray]:
        data = self._read(0, 1, _STATE_END)
        return {k: data[s.start - 1 : s.stop - 1] for k, s in _STATE.items()}

    def write_target(self, xyz: np.ndarray, wxyz: np.ndarray, duration: float) -> int:
        """Publish the next servo target; returns its sequence number."""
        seq = int(self.buf[_TARGET["seq"]][0]) + 1
        self._write(_STATE_END, _TARGET, {"xyz": xyz, "wxyz": wxyz, "duration": duration, "seq": seq})
        return seq

    def read_target(self) -> tuple[int, np.ndarray, np.ndarray, float]:
        data = self._read(_STATE_END, _STATE_END + 1, _TARGET_END)
        off = _STATE_END + 1
        get = {k: data[s.start - off : s.stop - off] for k, s in _TARGET.items()}
        return int(get["seq"][0]), get["xyz"], get["wxyz"], float(get["duration"][0])

    # --- loop timing ------------------------------------------------------------------------
    def add_timing(self, period: float, work: float) -> None:
        """Record one cycle: wall-clock ``period`` [s] since the last, and ``work`` [s] spent in it."""
        n = int(self.buf[_RING_COUNT])
        i = _RING_COUNT + 1 + 2 * (n % RING)
        self.buf[i : i + 2] = (period, work)
        self.buf[_RING_COUNT] = n + 1

    def timing(self) -> np.ndarray:
        """(period, work) [s] of recent cycles, shape (n, 2), oldest first (n <= ``RING``)."""
        n = int(self.buf[_RING_COUNT])
        ring = self.buf[_RING_COUNT + 1 :].reshape(RING, 2).copy()
        if n <= RING:
            return ring[:n]
        i = n % RING
        return np.concatenate([ring[i:], ring[:i]])
