"""A command thread for blocking client calls, so the caller can keep watching the link meanwhile."""

from __future__ import annotations

import queue
import threading
from typing import Any


class Job:
    """One ur_rtde call handed to the command thread; ``done`` is set when it returns or raises."""

    def __init__(self, fn: Any, args: tuple[Any, ...]):
        self.fn, self.args = fn, args
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class CommandThread:
    """Runs ur_rtde calls one after another in a daemon thread, so the caller can keep watching
    the link while a call blocks (ur_rtde waits up to minutes on a controller that went away)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="ur-command").start()

    def submit(self, fn: Any, *args: Any) -> Job:
        job = Job(fn, args)
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job.result = job.fn(*job.args)
            except BaseException as err:
                job.error = err
            finally:
                job.done.set()
