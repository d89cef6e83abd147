"""The ``rmskill`` command line. Errors print one line and exit non-zero; ``--debug`` shows the traceback."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rmskill import __version__, registry
from rmskill.errors import ConfigError, Interrupted, RmskillError
from rmskill.storage import plain

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="rmskill: precise robot skills on any arm (UR, Franka, MuJoCo).")
out = Console()
err_console = Console(stderr=True)

ArmOpt = typer.Option(..., "--arm", help="Arm file (YAML).", exists=False)
JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON result.")
SetOpt = typer.Option(None, "--set", metavar="KEY=VALUE",
                      help="A skill setting (e.g. touch_check=true); repeatable. Unknown names are refused.")


AllowOtherArmOpt = typer.Option(False, "--allow-other-arm",
                                help="Use weights fine-tuned for another arm, model or calibration.")
RecordRunOpt = typer.Option(None, "--record", help="Write a video of the simulated run here (.mp4 or .gif; "
                            "wrist-side and front views); needs the video extra.")
RecordEvalOpt = typer.Option(None, "--record", help="Write one video per simulated episode into this folder "
                             "(episode_NNN.mp4); needs the video extra.")
WorkersOpt = typer.Option(1, "--workers", help="Simulators running episodes side by side, each a Ray actor (extra: "
                         "ray); the results equal --workers 1, episode for episode.")
AddressOpt = typer.Option(None, "--address", help="Ray cluster to join with --workers (e.g. ray://HOST:10001 or auto; "
                          "default: a local Ray starts by itself and stops after).")


def _settings(items: list[str] | None) -> dict[str, Any]:
    from rmskill.settings import parse_assignments

    return parse_assignments(items or [])


def _emit_json(data: Any) -> None:
    print(json.dumps(plain(data), indent=2, allow_nan=False, default=float))


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested results as (dotted key, short text) rows."""
    if isinstance(data, dict):
        rows: list[tuple[str, str]] = []
        for key, value in data.items():
            rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(data, list) and data and all(isinstance(v, int | float) for v in data):
        return [(prefix, "[" + ", ".join(_text(v) for v in data) + "]")]
    if isinstance(data, list) and data and any(isinstance(v, dict | list) for v in data):
        rows = []
        for i, value in enumerate(data):
            rows.extend(_flatten(value, f"{prefix}[{i}]"))
        return rows
    return [(prefix, _text(data))]


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _show(data: dict, as_json: bool, title: str | None = None) -> None:
    """A result: only JSON on stdout for scripts (``--json``), a table of its figures for people."""
    if as_json:
        _emit_json(data)
        return
    table = Table("", "", title=escape(title) if title else None, show_header=False, box=None, pad_edge=False)
    for key, value in _flatten(plain(data)):
        table.add_row(escape(key), escape(value))
    out.print(table)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info logs."),
) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def info(
    arm: Path | None = typer.Option(None, "--arm", help="Also describe this arm file."),
    render: Path | None = typer.Option(None, "--render", help="Render the simulated cell to this PNG."),
    as_json: bool = JsonOpt,
) -> None:
    """Versions, paths, and (with --arm) the arm, its fixtures and its calibration."""
    from rmskill.calibration_store import CalibrationStore, rmskill_home

    data: dict[str, Any] = {"rmskill": __version__, "python": platform.python_version(), "home": str(rmskill_home())}
    for lib in ("mujoco", "torch", "numpy"):
        try:
            data[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            data[lib] = None
    if arm is not None:
        from rmskill.config import load_arm_config

        cfg = load_arm_config(arm)
        store = CalibrationStore(cfg.name)
        stored = str(store.path) if store.path.is_file() else None
        data["arm"] = {"name": cfg.name, "driver": cfg.driver, "model": cfg.model, "host": cfg.host,
                       "fixtures": sorted(cfg.fixtures), "calibration": stored}
    if render is not None:
        if arm is None:
            raise ConfigError("--render needs --arm (the simulated arm file to render)")
        from rmskill.connect import connect

        with connect(arm) as live:
            if live.sim is None:
                raise ConfigError(f"--render needs a simulated arm; '{arm}' uses driver '{live.config.driver}'")
            live.sim.render(str(render))
        data["render"] = str(render)
    _show(data, as_json)


@app.command()
def drivers(as_json: bool = JsonOpt) -> None:
    """Each backend, gripper, emulator and skill installed, and whether its libraries really import."""
    rows = []
    for kind in ("driver", "gripper", "server", "skill"):
        for name, plugin in sorted(registry.available(kind).items()):
            ok, note = plugin.check()
            rows.append({"kind": kind, "name": name, "target": plugin.target, "available": ok, "problem": note})
    if as_json:
        _emit_json(rows)
        return
    table = Table("kind", "name", "available", "entry point / problem")
    for r in rows:
        table.add_row(r["kind"], r["name"], "[green]yes[/green]" if r["available"] else "[red]no[/red]",
                      escape(r["target"] if r["available"] else r["problem"]))
    out.print(table)


def _report_checks(results: list[dict], as_json: bool, title: str) -> None:
    if as_json:
        _emit_json({"ok": all(r["ok"] for r in results), "checks": results})
    else:
        table = Table("check", "result", "detail", title=escape(title))
        for r in results:
            verdict = "[green]pass[/green]" if r["ok"] else "[red]FAIL[/red]"
            table.add_row(escape(r.get("name") or r.get("step", "?")), verdict, escape(r["detail"]))
        out.print(table)
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@app.command("check-driver")
def check_driver_cmd(arm_file: Path | None = typer.Argument(None, help="Arm file of the arm to check (or --arm)."),
                     arm: Path | None = typer.Option(None, "--arm", help="Arm file of the arm to check."),
                     servo_seconds: float = typer.Option(1.0, "--servo-seconds", help="Servo stream length [s]."),
                     as_json: bool = JsonOpt) -> None:
    """Run the conformance suite against an arm; exit 0 only when every check passes."""
    from rmskill.check import check_driver

    path = arm or arm_file
    if path is None or (arm is not None and arm_file is not None and arm != arm_file):
        raise ConfigError("check-driver needs one arm file: --arm ARM_FILE (or the file as its argument)")
    results = [r.as_dict() for r in check_driver(path, servo_seconds)]
    _report_checks(results, as_json, f"check-driver {path}")


@app.command("check-skill")
def check_skill_cmd(skill: str = typer.Argument(..., help="Skill name, e.g. plate_placement."),
                    arm: Path | None = typer.Option(None, "--arm", help="Simulated arm file (default: the "
                                                    "repository's examples/arms/sim-ur5e.yaml, or the first "
                                                    "sim-*.yaml there with a fixture the skill accepts)."),
                    seed: int = typer.Option(0, "--seed", help="Seed of the checked episode."),
                    as_json: bool = JsonOpt) -> None:
    """Run the skill conformance suite on a simulated arm; exit 0 only when every check passes."""
    from rmskill.check_skill import check_skill

    results = [r.as_dict() for r in check_skill(skill, arm, seed=seed)]
    _report_checks(results, as_json, f"check-skill {skill}")


@app.command("check-gripper")
def check_gripper_cmd(
    driver: str = typer.Argument(..., help="Gripper driver, e.g. robotiq."),
    port: str = typer.Option(..., "--port", help="Serial port, e.g. /dev/ttyUSB0."),
    model: str | None = typer.Option(None, "--model", help="Gripper model, e.g. 2f-85."),
    timeout: float = typer.Option(1.0, "--timeout", help="Reply timeout [s]."),
    as_json: bool = JsonOpt,
) -> None:
    """Check a gripper's wiring: activate, close, report, open; exit 0 only when all worked."""
    from rmskill.config import parse_gripper_config

    options = {"driver": driver, "port": port, "model": model, "timeout": timeout}
    config = parse_gripper_config(options, source="check-gripper")
    plugin = registry.lookup("gripper", driver)
    plugin.load()  # a missing library becomes a clear error here
    checker = getattr(sys.modules[plugin.target.partition(":")[0]], "check_gripper", None)
    if checker is None:
        raise ConfigError(f"gripper driver '{driver}' has no check procedure")
    results = checker(config)
    _report_checks(results, as_json, f"check-gripper {driver} on {port}")


@app.command()
def calibrate(
    procedure: str = typer.Argument(..., help="tcp, fixture, servo, payload, all, or show."),
    arm: Path = ArmOpt,
    fixture: str | None = typer.Option(None, "--fixture", help="Fixture to calibrate (default: every one)."),
    method: str | None = typer.Option(None, "--method", help="Fixture method: touch (default) or teach."),
    as_json: bool = JsonOpt,
) -> None:
    """Calibrate a new arm (TCP, fixtures, servo response, payload) and store the results."""
    from rmskill.calibration.run import calibrate as run_calibration
    from rmskill.calibration.run import show
    from rmskill.config import load_arm_config

    if procedure == "show":
        _show(show(arm), as_json, f"calibration of {arm}")
        return
    config = load_arm_config(arm)
    try:
        if config.driver == "mujoco":  # no operator prompts: a spinner is safe
            with err_console.status(f"calibrating {procedure} on {arm} ..."):
                data = run_calibration(procedure, config, fixture=fixture, method=method)
        else:
            data = run_calibration(procedure, config, fixture=fixture, method=method)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: the arm was stopped; the procedure in progress stored nothing (finished "
                          f"ones are kept; see: rmskill calibrate show --arm {arm})") from None
    _show(data, as_json, f"calibrate {procedure} on {arm}")


@app.command("run")
def run_skill(
    skill: str = typer.Argument(..., help="Skill or transfer name, e.g. plate_placement, plate_transfer."),
    arm: Path = ArmOpt,
    target: str | None = typer.Option(None, "--target", "--to", help="Fixture name in the arm file."),
    source: str | None = typer.Option(None, "--from", help="A transfer's source fixture (pick from it)."),
    weights: Path | None = typer.Option(None, "--weights", help="Weights folder (default: shipped)."),
    set_: list[str] | None = SetOpt,
    allow_other_arm: bool = AllowOtherArmOpt,
    record: Path | None = RecordRunOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run a skill once on an arm, from where the arm is; or a transfer (--from A --to B)."""
    from rmskill.evaluate import run_once

    is_transfer = skill in registry.available("transfer")
    if target is None:
        raise ConfigError(f"'{skill}' needs {'--to' if is_transfer else '--target'} FIXTURE")
    try:
        if is_transfer:
            from rmskill.transfers import run_transfer_once

            if source is None:
                raise ConfigError(f"transfer '{skill}' needs --from FIXTURE and --to FIXTURE")
            if weights is not None or set_:
                raise ConfigError(f"transfer '{skill}' runs its skills' shipped weights and settings "
                                  "(--weights and --set are for one skill)")
            data = run_transfer_once(skill, arm, source, target)
        elif source is not None:
            raise ConfigError(f"--from is for transfers ({', '.join(sorted(registry.available('transfer')))}), "
                              f"not the skill '{skill}'")
        else:
            data = run_once(skill, arm, target, weights=weights, settings=_settings(set_),
                            allow_other_arm=allow_other_arm, record=record)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {skill} to '{target}' was stopped and the arm holds where it is") from None
    _show(data, as_json, f"{skill} to {target}")
    if not data.get("success"):
        raise typer.Exit(1)


def _progress(label: str):
    """A live line on stderr: label, bar, done/total, elapsed, remaining, then the run's figures."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = [BarColumn(bar_width=16)] if err_console.width >= 110 else []  # narrow terminals: the figures first
    return Progress(TextColumn(escape(label)), *bar, MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                    TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), console=err_console, transient=False,
                    expand=False)


@contextlib.contextmanager
def _quiet_episodes():
    """In eval and finetune a safety stop ends one episode and is counted; its warning would drown the
    live line (``-v`` shows them)."""
    safety_log = logging.getLogger("rmskill.safety")
    level = safety_log.level
    if logging.getLogger().level >= logging.WARNING:
        safety_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        safety_log.setLevel(level)


@app.command("eval")
def eval_skill(
    skill: str = typer.Argument(..., help="Skill name, e.g. plate_placement."),
    arm: Path = ArmOpt,
    episodes: int = typer.Option(50, "--episodes", help="Number of randomized episodes."),
    seed: int = typer.Option(0, "--seed", help="Seed for start poses and simulator noise."),
    weights: Path | None = typer.Option(None, "--weights", help="Weights folder (default: shipped)."),
    set_: list[str] | None = SetOpt,
    allow_other_arm: bool = AllowOtherArmOpt,
    record: Path | None = RecordEvalOpt,
    workers: int = WorkersOpt,
    address: str | None = AddressOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate a skill over randomized simulated episodes: success rate and error statistics."""
    from rmskill.config import load_arm_config
    from rmskill.evaluate import evaluate
    from rmskill.skill import load_skill
    from rmskill.workers import check_workers

    loaded = load_skill(skill, weights=weights).configure(**_settings(set_))  # bad input: before the bar
    loaded.allow_other_arm = allow_other_arm
    load_arm_config(arm)
    check_workers(workers)
    if address is not None and workers == 1:
        raise ConfigError("--address is the Ray cluster for --workers N (N above 1); with one worker nothing joins it")
    from rmskill.evaluate import summarize

    results: dict[int, dict] = {}  # by episode index: with workers, episodes finish out of order
    try:
        with _progress("eval") as bar, _quiet_episodes():
            task = bar.add_task("eval", total=episodes, stats="")

            def tick(i: int, row: dict) -> None:
                results[i] = row
                rows = results.values()
                ok = sum(r["success"] for r in rows) / len(rows)
                err = np.nanmean([r["translation_error_mm"] for r in rows])
                bar.update(task, advance=1, stats=f"ok {ok:.0%} mean error {err:.3f} mm")

            data = evaluate(loaded, arm, episodes, seed=seed, progress=tick, record=record, workers=workers,
                            address=address)
    except KeyboardInterrupt:
        if results:
            order = sorted(results)
            which = "the first" if order[-1] == len(order) - 1 else "the finished"
            _eval_table({"skill": skill, "seed": seed, **summarize([results[i] for i in order], order)}, as_json,
                        f"{skill} on {arm}: {which} {len(results)} of {episodes} episodes")
        raise Interrupted(f"interrupted after {len(results)} of {episodes} episodes"
                          + ("; the figures above cover those" if results else "")) from None
    _eval_table(data, as_json, f"{skill} on {arm}: {episodes} episodes")


def _eval_table(data: dict, as_json: bool, title: str) -> None:
    if as_json:
        _emit_json(data)
        return
    table = Table("metric", "mean", "p50", "p95", "max", title=escape(title))
    for key in ("translation_error_mm", "rotation_error_deg"):
        s = data[key]
        table.add_row(key, *(f"{s[k]:.3f}" for k in ("mean", "p50", "p95", "max")))
    out.print(table)
    out.print(f"success rate {data['success_rate']:.1%}, peak force mean {data['peak_force_n']['mean']:.1f} N, "
              f"max {data['peak_force_n']['max']:.1f} N")
    for failure in data["failures"][:10]:
        out.print(f"  episode {failure['episode'] + 1} ({escape(failure['target'])}): {escape(failure['message'])}")


@app.command()
def finetune(
    skill: str = typer.Argument(..., help="Skill name, e.g. plate_placement."),
    arm: Path | None = typer.Option(None, "--arm", help="Arm file (YAML); or --fleet."),
    fleet: Path | None = typer.Option(None, "--fleet", help="Fleet file (YAML): its arms fine-tune together, one "
                                      "Ray actor each (extra: ray), one learner per arm model; --out gets a "
                                      "weights folder per model."),
    method: str = typer.Option("role-model", "--method", help="role-model, residual, or hybrid."),
    episodes: int = typer.Option(200, "--episodes", help="Total episodes (including resumed ones); with --fleet, "
                                 "episodes per arm."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory (episodes, checkpoints, weights)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    reward: str = typer.Option("arm", "--reward", help="arm (measured, default), truth (simulator), operator."),
    seed: int = typer.Option(0, "--seed", help="Seeds the learner and the episodes (kept on --resume)."),
    set_: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE",
                                          help="A skill or learner setting (e.g. explore_std=0.04); repeatable."),
    workers: int = typer.Option(1, "--workers", help="Simulated cells collecting episodes side by side, each a Ray "
                                "actor (extra: ray); one learner, here, trains on each episode as it is written."),
    address: str | None = AddressOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fine-tune a skill's residual corrector on site, without demonstrations."""
    from rmskill.config import load_arm_config
    from rmskill.finetune import finetune as run_finetune
    from rmskill.finetune import split_settings
    from rmskill.skill import load_skill
    from rmskill.workers import check_workers

    settings = _settings(set_)
    changes, _ = split_settings(load_skill(skill), method, settings)  # bad input: before the bar
    load_skill(skill).configure(**changes)
    if (arm is None) == (fleet is None):
        raise ConfigError("give either --arm ARM_FILE or --fleet FLEET_FILE")
    total = episodes
    if fleet is not None:
        from rmskill.fleet import load_fleet
        from rmskill.workers import require_ray

        if workers != 1:
            raise ConfigError("--fleet runs one actor per arm in the fleet file; --workers does not apply")
        cells = len(load_fleet(fleet).cells)
        require_ray(cells)
        total = episodes * cells
    else:
        load_arm_config(arm)
        check_workers(workers)
        if address is not None and workers == 1:
            raise ConfigError("--address is the Ray cluster for --workers N (N above 1) or --fleet; with one worker "
                              "nothing joins it")
    seen: list[dict] = []
    with _progress("finetune") as bar, _quiet_episodes():
        task = bar.add_task("finetune", total=total, stats="")

        def tick(i: int, row: dict) -> None:
            seen.append(row)
            recent = seen[-20:]
            ok = sum(r["success"] for r in recent) / len(recent)
            reward = np.mean([r["reward"] for r in recent])
            errs = [r["truth"]["translation_error_mm"] for r in recent if r.get("truth")]
            err = f" err {np.nanmean(errs):.2f}mm" if errs else ""
            bar.update(task, completed=i + 1, stats=f"last 20: ok {ok:.0%} reward {reward:+.2f}{err}")

        data = run_finetune(skill, arm, method, episodes, out_dir, resume=resume, reward=reward, seed=seed,
                            progress=tick, settings=settings, workers=workers, address=address, fleet=fleet)
    if as_json:
        _emit_json(data)
        return
    if fleet is not None:
        rows = {f"{name} ({c['model']}): episodes, success (arm-measured)":
                f"{c['episodes']}, " + ("-" if c["reward_success_rate"] is None else f"{c['reward_success_rate']:.0%}")
                for name, c in data["cells"].items()}
        rows["mean policy lag (episodes)"] = f"{data['mean_policy_lag']:.2f}"
        _show(rows, False, f"finetune {skill} ({method}) on fleet {fleet}")
        for model, m in data["models"].items():
            out.print(f"weights for {model}: {escape(m['weights'])} (try: rmskill eval {skill} --arm ARM_FILE "
                      f"--weights {escape(m['weights'])})")
        return
    last = data.get("last_20") or {}
    summary = {"episodes": data["episodes"], "success (arm-measured reward)": data["reward_success_rate"]}
    if last:
        summary.update({"last 20: success (simulator truth)": last["success_rate"],
                        "last 20: mean error mm": last["translation_error_mm"]["mean"]})
    if "mean_policy_lag" in data:
        summary.update({"workers": data["workers"], "mean policy lag (episodes)": data["mean_policy_lag"]})
    _show(summary, False, f"finetune {skill} ({method}) on {arm}")
    out.print(f"weights: {escape(str(out_dir))} (base.safetensors, residual.safetensors, manifest.json)")
    out.print(f"try them: rmskill eval {skill} --arm {escape(str(arm))} --weights {escape(str(out_dir))}")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A fine-tuning run directory (finetune --out)."),
    out_file: Path | None = typer.Option(None, "--out", help="HTML page to write (default: RUN_DIR/report.html); "
                                         "its PNGs go to <name>_files/ beside it."),
    as_json: bool = JsonOpt,
) -> None:
    """A fine-tuning run as a page of plots: success, error, reward, peak force, role-model groups."""
    from rmskill.report import report

    data = report(run_dir, out_file)
    if as_json:
        _emit_json(data)
        return
    out.print(f"wrote {data['out']} (open it in a browser) and {len(data['figures'])} PNGs beside it",
              markup=False, highlight=False, soft_wrap=True)


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A fine-tuning run directory (finetune --out)."),
    fmt: str = typer.Option("lerobot", "--format", help="Dataset format: lerobot (LeRobot dataset v3.0)."),
    out_dir: Path = typer.Option(..., "--out", help="Dataset folder to create."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    as_json: bool = JsonOpt,
) -> None:
    """Export a fine-tuning run's episodes as a dataset (features named as the skill declares them)."""
    from rmskill.export import export

    data = export(run_dir, fmt, out_dir, overwrite=overwrite)
    if as_json:
        _emit_json(data)
        return
    err_console.print(f"wrote {data['episodes']} episodes ({data['frames']} frames at {data['fps']} Hz) as a "
                      f"{data['format']} dataset to {data['out']}", markup=False, highlight=False, soft_wrap=True)


@app.command("sim-serve")
def sim_serve(
    backend: str = typer.Argument(..., help="Controller to emulate, e.g. ur."),
    arm: Path = ArmOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --allow-remote)."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a non-loopback --host: no authentication, anyone reaching it "
                                      "moves the arm."),
) -> None:
    """Serve a simulated arm over a real controller's network interfaces (Ctrl-C stops)."""
    import signal
    import threading

    from rmskill.config import load_arm_config

    serve = registry.load("server", backend)
    cfg = load_arm_config(arm)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # a clean shutdown: ports closed, arm stopped
        signal.signal(sig, lambda *_: stop.set())
    err_console.print(f"serving a simulated {cfg.model} as a '{backend}' controller on {host} (Ctrl-C stops)")
    serve(cfg, host=host, stop_event=stop, allow_remote=allow_remote)
    err_console.print("stopped")


def main() -> None:
    """Console entry point: one clear line per error, the traceback only with ``--debug``."""
    root_flags = ("--debug", "--verbose", "-v")
    debug = "--debug" in sys.argv[1:]
    # --debug and -v/--verbose are accepted anywhere on the line, not only before the command.
    flags = [a for a in sys.argv[1:] if a in root_flags]
    sys.argv = [sys.argv[0], *flags, *[a for a in sys.argv[1:] if a not in root_flags]]
    try:
        app()  # usage errors and typer.Exit end here as SystemExit with their code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Interrupted as e:
        err_console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        sys.exit(130)
    except RmskillError as e:
        if debug:
            raise
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as e:
        if debug:
            raise
        err_console.print(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", markup=False,
                          highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
