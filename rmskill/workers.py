"""Simulated episodes spread over Ray actors (``--workers N``, the optional extra ``rmskill[ray]``).

Each actor connects the arm once and runs the episode indices it is handed; an episode is seeded
by its index (``rmskill.runner``), so the results do not depend on the worker count or on which
actor ran what. An evaluation runs episodes in the calling process too (``dispatch_beside``), from
the start, while the actors start (importing torch and MuJoCo takes seconds) and beside them after.
A local Ray starts by itself (and stops when the pool closes); ``address`` (or
``RAY_ADDRESS``) joins a running cluster instead. Ray is imported only here, only when asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from rmskill.config import ArmConfig
from rmskill.errors import ConfigError, RmskillError, SkillError
from rmskill.skill import Skill

log = logging.getLogger(__name__)

RAY_INSTALL = "pip install 'rmskill[ray]'"
IN_FLIGHT = 2  # calls queued per actor, so that it never waits on the driver between episodes
_ENV = ("RMSKILL_HOME",)  # what an actor must see as the driver does (the calibration store)


def require_ray(workers: int) -> ModuleType:
    """The ``ray`` module, or a one-line ``ConfigError`` naming the install command."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--workers {workers} needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


def check_workers(workers: int) -> None:
    """Refuse a worker count below 1, or above 1 without Ray, before anything starts."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1:
        require_ray(workers)


_QUIET = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": True}


def start_local_ray(workers: int) -> ModuleType:
    """A local Ray for ``workers`` actors, quiet, without a dashboard.

    Its workers run at the driver's priority (Ray's default lowers them to niceness 15): they are the
    run's work, as the episodes are in this process with one worker.
    """
    ray = require_ray(workers)
    ray.init(address="local", num_cpus=max(workers, os.cpu_count() or 1), object_store_memory=128 * 1024**2,
             _system_config={"worker_niceness": 0}, **_QUIET)
    return ray


def join_ray(address: str, workers: int) -> ModuleType:
    """Connect to the Ray cluster at ``address``, or a one-line ``ConfigError`` saying why not."""
    ray = require_ray(workers)
    try:
        ray.init(address=address, **_QUIET)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot join the Ray cluster at '{address}': {first}") from None
    return ray


def _log_levels() -> dict[str, int]:
    """The driver's logging levels (root and rmskill's own), for actors to log as it does."""
    levels = {"": logging.getLogger().level}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if name.startswith("rmskill") and isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


class EpisodeWorker:
    """One simulator in its own process: the arm connected once, episodes run by index."""

    def __init__(self, skill: Skill, config: ArmConfig, seed: int, targets: list[str], videos: str | None,
                 env: dict[str, str | None], log_levels: dict[str, int]):
        for name, value in env.items():  # unset in the driver: unset here too, whatever Ray's processes inherited
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        logging.basicConfig(level=log_levels.get("", logging.WARNING),
                            format="%(levelname)s %(name)s: %(message)s")
        for name, level in log_levels.items():
            logging.getLogger(name).setLevel(level)
        import torch

        torch.set_num_threads(1)  # one core per actor: actors beside each other must not fight
        self.skill, self.config, self.seed, self.targets = skill, config, seed, targets
        self.videos = None if videos is None else Path(videos)
        self.arm: Any = None

    def open(self, operated: bool = False) -> bool:
        """Connect the arm; returns whether it is simulated. A real arm is refused (evaluation reads the
        simulator's truth), unless ``operated`` (a fleet) and its cell has an operator (``Arm.operator``):
        no person can answer a prompt in an actor."""
        from rmskill.connect import connect

        self.arm = connect(self.config)
        if self.arm.sim is None and not (operated and self.arm.operator is not None):
            self.arm.close()
            if operated:
                raise SkillError(f"arm '{self.config.name}' (driver '{self.config.driver}') needs a person to start "
                                 "each episode, and a fleet cell cannot prompt one; a fleet takes simulated arms "
                                 "and emulated ones with options.emulator_operator")
            raise SkillError(f"--workers needs a simulated arm; '{self.config.name}' uses driver "
                             f"'{self.config.driver}'")
        return self.arm.sim is not None

    def episode(self, index: int) -> tuple[int, dict[str, Any]]:
        from rmskill.evaluate import episode_record

        return index, episode_record(self.skill, self.arm, index, self.seed, self.targets, self.videos)

    def finetune_episode(self, index: int, policy: Any, reward: str) -> tuple[Any, Any, Any, float]:
        """Fine-tuning episode ``index`` acted by ``policy`` (a learner's ``policy()``), scored by ``reward``:
        ``rmskill.finetune.collect``'s (run, episode, score, wall seconds)."""
        from rmskill.finetune import collect
        from rmskill.learning.outcome import SOURCES

        return collect(self.skill, self.arm, index, self.seed, self.targets, policy, SOURCES[reward]())

    def ping(self, index: int) -> tuple[int, dict[str, Any]]:
        """No simulation: what a call costs in Ray alone (``benchmarks/bench_scale.py``)."""
        return index, {}

    def close(self) -> None:
        if self.arm is not None:
            self.arm.close()
            self.arm = None


def _get(ray: ModuleType, refs: Any) -> Any:
    """``ray.get``, with an actor's own error raised as itself (one line in the CLI), not as Ray's wrapper."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, RmskillError):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RmskillError(f"a simulator worker died: {first}") from err


def dispatch(ray: ModuleType, actors: list[Any], call: Callable[[Any, int], Any],
             indices: Iterable[int]) -> Iterator[Any]:
    """``call(actor, index)`` for every index, each actor kept ``IN_FLIGHT`` calls deep; results as they finish.

    An actor that finishes gets the next index, so a slow actor takes fewer episodes.
    """
    todo = iter(indices)
    pending: dict[Any, Any] = {}

    def submit(actor: Any) -> None:
        index = next(todo, None)
        if index is not None:
            pending[call(actor, index)] = actor

    for _ in range(IN_FLIGHT):
        for actor in actors:
            submit(actor)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        actor = pending.pop(ref)
        submit(actor)
        yield _get(ray, ref)


def dispatch_beside(ray: ModuleType, actors: list[Any], opening: list[Any], call: Callable[[Any, int], Any],
                    local: Callable[[int], Any], indices: Iterable[int]) -> Iterator[Any]:
    """As ``dispatch``, with this process running ``local(index)`` between looks at the actors.

    ``opening[k]`` is actor ``k``'s ``open`` call: the actor gets work once it returns, so this process
    runs episodes from the first moment while the actors import and connect. Each actor is kept
    ``IN_FLIGHT`` calls deep; this process takes the next index whenever it is free.
    """
    todo = iter(indices)
    pending: dict[Any, Any] = {}
    starting = dict(zip(opening, actors, strict=True))

    def submit(actor: Any) -> None:
        index = next(todo, None)
        if index is not None:
            pending[call(actor, index)] = actor

    def ready(refs: list[Any]) -> list[Any]:
        return ray.wait(refs, num_returns=len(refs), timeout=0)[0] if refs else []

    while True:
        for ref in ready(list(starting)):
            actor = starting.pop(ref)
            _get(ray, ref)  # an actor that could not connect raises its own error here
            for _ in range(IN_FLIGHT):
                submit(actor)
        for ref in ready(list(pending)):
            actor = pending.pop(ref)
            submit(actor)
            yield _get(ray, ref)
        index = next(todo, None)
        if index is None:
            break
        yield local(index)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        pending.pop(ref)
        yield _get(ray, ref)


class WorkerPool:
    """``workers`` simulator actors for one evaluation; use as ``with WorkerPool(...) as pool:``.

    Args:
        skill: The loaded, configured skill each actor runs (sent once to each).
        config: The validated arm file (a simulated arm).
        seed: The run's seed; episode ``i`` is seeded by ``(seed, i)``.
        targets: The episodes' targets, cycled by index.
        workers: Number of actors (each takes one CPU).
        address: A Ray cluster to join (``ray://host:10001``, ``host:6379`` or ``auto``); default:
            ``RAY_ADDRESS`` if set, else a local Ray started here with ``workers`` CPUs.
        videos: A folder for one video per episode (written by the actor's node).
        cells: Actor ``k`` connects ``cells[k]`` instead of ``config`` (fine-tuning: a sim seed per cell;
            a fleet: each cell's arm).
        cell_targets: Actor ``k`` cycles ``cell_targets[k]`` instead of ``targets`` (a fleet).
        nodes: Actor ``k`` runs on the Ray node ``nodes[k]`` (an IP or a node id; ``None``: anywhere).
        operated: Arms with an operator (``Arm.operator``: an emulated cell) are accepted (a fleet).
        wait_open: Wait on entry until every actor has connected its arm; ``False``: the ``open`` calls
            are left in ``opening`` (``dispatch_beside`` hands an actor work once its call returns).
    """

    def __init__(self, skill: Skill, config: ArmConfig, seed: int, targets: list[str], workers: int,
                 address: str | None = None, videos: Path | None = None, cells: list[ArmConfig] | None = None,
                 cell_targets: list[list[str]] | None = None, nodes: list[str | None] | None = None,
                 operated: bool = False, wait_open: bool = True):
        self.ray = require_ray(workers)
        self.args = (skill, config, seed, targets, None if videos is None else str(videos))
        self.cells = cells or [config] * workers  # actor k's arm file (fine-tuning: its own sim seed)
        self.cell_targets = cell_targets or [targets] * workers
        self.nodes = nodes or [None] * workers
        self.operated = operated
        self.wait_open = wait_open
        self.opening: list[Any] = []  # the actors' open calls, where not waited on at entry
        self.simulated: list[bool] = []  # per actor, once open
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.actors: list[Any] = []
        self._started = False

    def __enter__(self) -> WorkerPool:
        try:
            self._start_ray()
            self._check_capacity()
            env = {k: os.environ.get(k) for k in _ENV}
            actor_cls = self.ray.remote(num_cpus=1, max_restarts=0)(EpisodeWorker)
            levels = _log_levels()
            skill_ref = self.ray.put(self.args[0])  # one copy in the object store, not one per actor
            seed, videos = self.args[2], self.args[4]
            self.actors = [actor_cls.options(**self._placement(self.nodes[k])).remote(
                skill_ref, self.cells[k], seed, self.cell_targets[k], videos, env, levels)
                for k in range(self.workers)]
            self.opening = [a.open.remote(self.operated) for a in self.actors]
            if self.wait_open:
                self.simulated = _get(self.ray, self.opening)
        except BaseException:
            self.close(graceful=False)
            raise
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.close(graceful=exc_type is None)

    def _start_ray(self) -> None:
        ray = self.ray
        if ray.is_initialized():  # the caller's own Ray (a script, a benchmark): use it, leave it running
            return
        if self.address:
            join_ray(self.address, self.workers)
        else:
            start_local_ray(self.workers)
        self._started = True
        log.info("Ray %s: %s", "joined" if self.address else "started locally", ray.get_runtime_context().gcs_address)

    def _placement(self, node: str | None) -> dict[str, Any]:
        """Ray's options that pin an actor to ``node`` (an IP or a node id); a node not in the cluster is
        a one-line ``ConfigError`` naming those that are."""
        if node is None:
            return {}
        alive = [n for n in self.ray.nodes() if n.get("Alive")]
        for n in alive:
            if node == n.get("NodeID"):
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}
            if node == n.get("NodeManagerAddress"):
                return {"resources": {f"node:{node}": 0.001}}
        known = ", ".join(f"{n.get('NodeManagerAddress')} ({str(n.get('NodeID'))[:12]}...)" for n in alive)
        raise ConfigError(f"node '{node}' is not in the Ray cluster (nodes: {known or 'none'})")

    def _check_capacity(self) -> None:
        cpus = self.ray.cluster_resources().get("CPU", 0)
        if cpus < self.workers:
            raise ConfigError(f"--workers: {self.workers} simulator actor(s) need {self.workers} CPUs in Ray; the "
                              f"cluster has {cpus:g}")

    def run(self, indices: Iterable[int], local: Callable[[int], tuple[int, dict[str, Any]]] | None = None
            ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, record) of each episode, in the order they finish; ``local(index)``: this process runs
        episodes too (``dispatch_beside``)."""
        call = lambda actor, i: actor.episode.remote(i)  # noqa: E731
        if local is None:
            return dispatch(self.ray, self.actors, call, indices)
        return dispatch_beside(self.ray, self.actors, self.opening, call, local, indices)

    def close(self, graceful: bool = True) -> None:
        """Close each actor's arm, then end the actors (at once, when not ``graceful``: Ctrl-C, an error)."""
        ray = self.ray
        if self.actors and graceful:
            try:
                ray.get([a.close.remote() for a in self.actors], timeout=30)
            except Exception as err:  # a dead or stuck actor: it is killed below all the same
                log.debug("closing the workers: %s", err)
        if self.actors:
            for actor in self.actors:
                ray.kill(actor)
            self.actors = []
        if self._started:
            ray.shutdown()
            self._started = False
