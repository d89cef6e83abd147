"""``check_skill``: the conformance suite every skill must pass (``rmskill check-skill NAME``).

Like ``check-driver`` for arms: a skill plugin runs it in its CI. On a simulated arm it checks that
the skill's declared features match its shipped weights, that an unmet start condition is refused
before anything moves, that one episode runs and returns finite figures, that the arm-measured
outcome reads no simulator truth, and that the same seed replays the same episode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.check import CheckFailed, CheckResult, expect, run_check
from rmskill.config import load_arm_config
from rmskill.errors import ConfigError, SkillError, StartConditionError
from rmskill.runner import episode_seed, episode_targets, run_episode
from rmskill.skill import Skill, SkillResult, load_skill, skill_class
from rmskill.spec import SkillSpec

#: The arm file used when none is given: the repository's simulated UR5e cell (or, for a skill whose
#: fixture kinds that cell lacks, the first of the repository's simulated cells that has one).
DEFAULT_ARM = Path(__file__).resolve().parents[1] / "examples" / "arms" / "sim-ur5e.yaml"


def default_arm(spec: SkillSpec) -> Path:
    """The simulated arm file to check a skill on: ``DEFAULT_ARM`` when it has a fixture of a kind the
    skill accepts, else the first ``sim-*.yaml`` beside it (nominal before perturbed) that has one."""
    candidates = [DEFAULT_ARM, *sorted(DEFAULT_ARM.parent.glob("sim-*.yaml"), key=lambda p: ("perturbed" in p.name,
                                                                                             p.name))]
    for path in candidates:
        try:
            config = load_arm_config(path)
        except (ConfigError, OSError):
            continue
        if any(f.kind in spec.fixture_kinds for f in config.fixtures.values()):
            return path
    return DEFAULT_ARM  # its error names the fixtures it has


class _NoTruth:
    """Stands in for ``arm.sim`` while the outcome is computed: any use of the simulator fails."""

    def __getattr__(self, name: str) -> Any:
        raise CheckFailed(f"the outcome read the simulator ('sim.{name}'): it must use arm measurements only")


def _finite_result(result: SkillResult) -> str:
    expect(isinstance(result.success, bool), f"success must be a bool, got {type(result.success).__name__}")
    for name in ("peak_force_n", "duration_s"):
        expect(math.isfinite(getattr(result, name)), f"{name} is not finite: {getattr(result, name)}")
    if result.success:
        for name in ("translation_error_mm", "rotation_error_deg"):
            expect(math.isfinite(getattr(result, name)), f"a success must have a finite {name}")
    bad = [k for k, v in result.measurements.items() if not isinstance(v, int | float)]
    expect(not bad, f"measurements must be numbers: {bad}")
    expect(len(result.trajectory) > 0, "the run recorded no learned step (trajectory is empty)")
    return (f"success {result.success}, {result.translation_error_mm:.3f} mm / {result.rotation_error_deg:.3f} deg, "
            f"peak {result.peak_force_n:.1f} N, {len(result.trajectory)} steps")


def _blind(result: SkillResult) -> SkillResult:
    """The result with what only the simulator knows changed: the outcome must not notice."""
    nan = float("nan")
    return dataclasses.replace(result, success=not result.success, translation_error_mm=nan, rotation_error_deg=nan,
                               measured_by="hidden")


def check_skill(skill: str | Skill | type[Skill], arm_file: str | Path | None = None,
                seed: int = 0) -> list[CheckResult]:
    """Run every check; each failure is recorded with a one-line reason and the suite goes on."""
    from rmskill.connect import connect

    results: list[CheckResult] = []
    state: dict[str, Any] = {}

    def run(name: str, fn: Callable[[], str]) -> bool:
        return run_check(results, name, fn)

    def _load() -> str:
        cls = skill_class(skill) if isinstance(skill, str) else skill if isinstance(skill, type) else type(skill)
        expect(isinstance(getattr(cls, "spec", None), SkillSpec), f"{cls.__name__} declares no SkillSpec 'spec'")
        state["skill"] = skill if isinstance(skill, Skill) else load_skill(skill) if isinstance(skill, str) \
            else cls.load()
        spec = state["skill"].spec
        return (f"{len(spec.observation)} observation and {len(spec.action)} action features at {spec.rate_hz:g} Hz; "
                f"targets of kind {', '.join(spec.fixture_kinds)}; start: {spec.start}")

    if not run("load", _load):
        return results
    sk: Skill = state["skill"]

    def _manifest() -> str:
        sk.spec.check_manifest(sk.manifest, f"{sk.name} weights")
        policy = sk.policy
        obs_dim = getattr(policy, "obs_dim", len(sk.spec.observation))
        act_dim = getattr(policy, "action_dim", len(sk.spec.action))
        expect(obs_dim == len(sk.spec.observation) and act_dim == len(sk.spec.action),
                f"the policy maps {obs_dim} -> {act_dim}, the spec declares {len(sk.spec.observation)} -> "
                f"{len(sk.spec.action)}")
        return "the weights name the declared features, in order"

    run("features", _manifest)

    config = load_arm_config(arm_file or default_arm(sk.spec))
    targets = episode_targets(sk, config)
    with connect(config) as arm:
        if arm.sim is None:
            raise ConfigError(f"check-skill needs a simulated arm; '{config.name}' uses driver '{config.driver}'")
        def _start_refused() -> str:
            if sk.spec.start == "any":
                return "the skill declares no start condition"
            sk.sim_start(arm, targets[0], np.random.default_rng([seed, 0]), seed=episode_seed(seed, 0), ready=False)
            arm.recover()
            before = arm.state()
            try:
                sk.run(arm, targets[0])
            except StartConditionError as err:
                after = arm.state()
                expect(after.time == before.time and np.array_equal(after.q, before.q),
                        "the arm moved before the start condition was refused")
                expect("\n" not in str(err), "the refusal must be one line")
                return str(err)
            raise CheckFailed(f"the start condition '{sk.spec.start}' was not refused when unmet")

        run("start_condition", _start_refused)

        def _episode() -> str:
            ran = run_episode(sk, arm, 0, seed, targets)
            expect(ran.started, f"the simulated start did not meet the start condition: {ran.result.message}")
            state["first"] = ran.result
            return _finite_result(ran.result)

        episode_ok = run("episode", _episode)

        def _outcome() -> str:
            result = state["first"]
            driver = arm.unwrapped
            sim = driver.sim
            driver.sim = _NoTruth()
            try:
                outcome = sk.outcome(result)
                blind = sk.outcome(_blind(result))
            finally:
                driver.sim = sim
            expect(math.isfinite(outcome.reward), f"reward is not finite: {outcome.reward}")
            expect(outcome.reward == blind.reward and outcome.success == blind.success,
                    f"the outcome changed ({outcome.reward:.4f} -> {blind.reward:.4f}) when only the simulator's "
                    "truth changed: it must come from arm measurements only")
            return f"reward {outcome.reward:.3f}, success {outcome.success}, from arm measurements"

        if episode_ok:
            run("outcome", _outcome)

        def _replay() -> str:
            again = run_episode(sk, arm, 0, seed, targets).result
            first = state["first"]
            a, b = first.observations, again.observations
            expect(a.shape == b.shape, f"the replay took {len(b)} steps, the first run {len(a)}")
            gap = float(np.max(np.abs(a - b))) if a.size else 0.0
            expect(gap < 1e-6, f"the replay's observations differ by up to {gap:.3g}")
            expect(first.success == again.success, "the replay's success differs")
            return f"{len(a)} steps replayed exactly (largest difference {gap:.1e})"

        if episode_ok:
            run("replay", _replay)

        def _action() -> str:
            obs = state["first"].observations[0]
            action = sk.act(obs)
            expect(action.shape == (len(sk.spec.action),), f"action shape {action.shape}")
            expect(bool(np.all(np.abs(action) <= 1.0)), "actions must be normalised to [-1, 1]")
            return f"act() returns {len(action)} normalised values"

        if episode_ok:
            run("action", _action)
    if not results:
        raise SkillError("check-skill ran no check")
    return results
