"""Fine-tuning benchmark: base alone, ResFiT-style residual, role-model (RM-RL), and the hybrid, on
the same perturbed simulated arms and seeds. Each method fine-tunes for ``--episodes`` episodes with
the arm-measured reward, then is evaluated on ``--eval-episodes`` fresh episodes (simulator truth).

    python benchmarks/bench_finetune.py [--episodes 200] [--eval-episodes 50] [--arms ur5e fr3]
        [--methods base residual role-model hybrid] [--seeds 0 1 2 3 4] [--workers 2] [--address A]
        [--out runs/bench_finetune] [--plot curve.png] [--reuse] [--touch-centre] [--json]

``--seeds`` runs every (arm, method) once per seed (seed ``s`` in ``OUT/sS``, evaluated with seed
``s + 1000``) and adds a table of the mean and spread over the seeds. ``--workers N`` runs the
(arm, method, seed) jobs side by side as Ray tasks (``rmskill[ray]``; a local Ray, or ``--address``),
one CPU each, torch at one thread in each; a job's numbers do not depend on where it ran.

``--touch-centre`` adds a row per method: the same weights evaluated with the skill's touch check
letting the plate go at the centre the arm measured (``touch_centre``), the integrator's option.

Prints a markdown table and writes a learning-curve PNG (training-episode error, moving average).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from rmskill.evaluate import evaluate
from rmskill.finetune import finetune
from rmskill.learning.episodes import EpisodeStore
from rmskill.skill import load_skill

ARMS = Path(__file__).resolve().parents[1] / "examples" / "arms"
METHODS = ("base", "residual", "role-model", "hybrid")


def run(arm: str, method: str, episodes: int, eval_episodes: int, out: Path, seed: int, reuse: bool) -> dict:
    arm_file = ARMS / f"sim-{arm}-perturbed.yaml"
    row: dict = {"arm": arm, "method": method, "episodes": 0 if method == "base" else episodes, "train_wall_s": 0.0,
                 "seed": seed}
    weights = None
    if method != "base":
        run_dir = out / f"{arm}-{method}"
        if reuse and len(EpisodeStore(run_dir).records()) >= episodes and (run_dir / "manifest.json").exists():
            # A finished run: its wall time is from its run.json to its last checkpoint.
            row["train_wall_s"] = (run_dir / "manifest.json").stat().st_mtime - (run_dir / "run.json").stat().st_mtime
        elif reuse and (run_dir / "run.json").exists() and (run_dir / "episodes.jsonl").exists():
            # An interrupted run: resumed (it replays its episodes and goes on); the wall time is this part's.
            t0 = time.perf_counter()
            finetune("plate_placement", arm_file, method, episodes, run_dir, seed=seed, resume=True)
            row["train_wall_s"] = time.perf_counter() - t0
            row["resumed"] = True
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            t0 = time.perf_counter()
            finetune("plate_placement", arm_file, method, episodes, run_dir, seed=seed)
            row["train_wall_s"] = time.perf_counter() - t0
        row["curve"] = [r["truth"]["translation_error_mm"] for r in EpisodeStore(run_dir).records()]
        row["train_success"] = [bool(r["truth"]["success"]) for r in EpisodeStore(run_dir).records()]
        weights = run_dir
    result = evaluate("plate_placement", arm_file, eval_episodes, seed=seed + 1000, weights=weights)
    row.update({k: result[k] for k in ("success_rate", "translation_error_mm", "rotation_error_deg", "peak_force_n")})
    (out / f"row-{arm}-{method}.json").write_text(json.dumps(row, default=float))
    return row


def _job(arm: str, method: str, episodes: int, eval_episodes: int, out: str, seed: int, reuse: bool,
         touch_centre: bool) -> list[dict]:
    """One (arm, method, seed): its row, and its touch-centre row when asked (a Ray task's body)."""
    rows = [run(arm, method, episodes, eval_episodes, Path(out), seed, reuse)]
    if touch_centre:
        rows.append(run_touch_centre(rows[0], eval_episodes, Path(out), seed))
    return rows


def run_jobs(jobs: list[tuple[str, str, int]], args: argparse.Namespace) -> list[dict]:
    """Every (arm, method, seed) job, here one after another or on ``--workers`` Ray tasks; rows in job order."""
    def out_of(seed: int) -> Path:
        path = args.out / f"s{seed}" if len(args.seeds) > 1 else args.out
        path.mkdir(parents=True, exist_ok=True)
        return path

    def report(rows: list[dict]) -> None:
        for r in rows:
            print(f"# {r['arm']} {r['method']} seed {r['seed']}: success {r['success_rate']:.0%}, "
                  f"error {r['translation_error_mm']['mean']:.3f} mm, fine-tune {r['train_wall_s']:.0f} s", flush=True)

    if args.workers <= 1:
        done = []
        for arm, method, seed in jobs:
            done.append(_job(arm, method, args.episodes, args.eval_episodes, str(out_of(seed)), seed, args.reuse,
                             args.touch_centre))
            report(done[-1])
        return [r for rows in done for r in rows]
    from rmskill.workers import join_ray, start_local_ray

    ray = join_ray(args.address, args.workers) if args.address else start_local_ray(args.workers)

    def task(*job_args):
        import torch

        torch.set_num_threads(1)
        return _job(*job_args)

    remote = ray.remote(num_cpus=1, max_retries=0)(task)
    # Seed by seed (whole seeds finish first); within one, the longest first (the FR3's episodes are the
    # slower, base rows only evaluate), so the tasks end together.
    order = sorted(range(len(jobs)), key=lambda k: (jobs[k][2], jobs[k][1] == "base", jobs[k][0] != "fr3"))
    refs = {remote.remote(jobs[k][0], jobs[k][1], args.episodes, args.eval_episodes, str(out_of(jobs[k][2])),
                          jobs[k][2], args.reuse, args.touch_centre): k for k in order}
    results: dict[int, list[dict]] = {}
    pending = list(refs)
    try:
        while pending:
            (ref,), pending = ray.wait(pending, num_returns=1)
            results[refs[ref]] = ray.get(ref)
            report(results[refs[ref]])
    finally:
        ray.shutdown()
    return [r for k in range(len(jobs)) for r in results[k]]


def spread_table(rows: list[dict]) -> list[str]:
    """Per (arm, method): the mean, standard deviation and range over the seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["method"]), []).append(r)
    lines = ["| arm | method | episodes | seeds | success mean (sd; min-max) | transl. mean mm, mean (sd) "
             "| transl. p95 mm, mean (sd) | peak force N, max | fine-tune wall s, median |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (arm, method), group in groups.items():
        succ = 100 * np.array([r["success_rate"] for r in group])
        mean = np.array([r["translation_error_mm"]["mean"] for r in group])
        p95 = np.array([r["translation_error_mm"]["p95"] for r in group])
        lines.append(f"| {arm} | {method} | {group[0]['episodes']} | {len(group)} | {succ.mean():.0f} % "
                     f"({succ.std(ddof=1) if len(group) > 1 else 0:.0f}; {succ.min():.0f}-{succ.max():.0f}) | "
                     f"{mean.mean():.3f} ({mean.std(ddof=1) if len(group) > 1 else 0:.3f}) | "
                     f"{p95.mean():.3f} ({p95.std(ddof=1) if len(group) > 1 else 0:.3f}) | "
                     f"{max(r['peak_force_n']['max'] for r in group):.1f} | "
                     f"{np.median([r['train_wall_s'] for r in group]):.0f} |")
    return lines


def run_touch_centre(row: dict, eval_episodes: int, out: Path, seed: int) -> dict:
    """``row``'s weights again, the plate let go at the touch check's centre."""
    arm, method = row["arm"], row["method"]
    weights = None if method == "base" else out / f"{arm}-{method}"
    skill = load_skill("plate_placement", weights=weights).configure(touch_check=True, touch_centre=True)
    result = evaluate(skill, ARMS / f"sim-{arm}-perturbed.yaml", eval_episodes, seed=seed + 1000)
    new = {k: v for k, v in row.items() if k not in ("curve", "train_success")}
    new["method"] = f"{method}+touch-centre"
    new.update({k: result[k] for k in ("success_rate", "translation_error_mm", "rotation_error_deg", "peak_force_n")})
    (out / f"row-{arm}-{new['method']}.json").write_text(json.dumps(new, default=float))
    return new


def _moving(values: np.ndarray, k: int = 20, stat=np.nanmean) -> np.ndarray:
    return np.array([stat(values[max(0, i - k + 1): i + 1]) for i in range(len(values))])


def plot(rows: list[dict], path: Path) -> None:
    """Per arm: success rate (moving mean) and translation error of all episodes (moving median: a
    dropped plate is a huge outlier) over the last 20 fine-tuning episodes; base evaluation dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = sorted({r["arm"] for r in rows})
    fig, axes = plt.subplots(2, len(arms), figsize=(6 * len(arms), 7), squeeze=False)
    for col, arm in enumerate(arms):
        top, bottom = axes[0][col], axes[1][col]
        for r in rows:
            if r["arm"] != arm or "curve" not in r:
                continue
            x = np.arange(1, len(r["curve"]) + 1)
            top.plot(x, 100 * _moving(np.array(r["train_success"], dtype=float)), label=r["method"])
            bottom.plot(x, _moving(np.array(r["curve"], dtype=float), stat=np.nanmedian), label=r["method"])
        base = next((r for r in rows if r["arm"] == arm and r["method"] == "base"), None)
        if base:
            top.axhline(100 * base["success_rate"], color="k", ls="--", label="base (evaluation)")
            bottom.axhline(base["translation_error_mm"]["mean"], color="k", ls="--", label="base (evaluation)")
        top.set(title=f"perturbed {arm}", ylabel="success [%], last 20 episodes", ylim=(0, 105))
        bottom.set(xlabel="fine-tuning episode", ylabel="translation error [mm], median of last 20", yscale="log")
        top.legend(fontsize=8)
        bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--arms", nargs="+", default=["ur5e", "fr3"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="several seeds (overrides --seed)")
    parser.add_argument("--workers", type=int, default=1, help="run the jobs on this many Ray tasks at once")
    parser.add_argument("--address", default=None, help="a Ray cluster to join (with --workers)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_finetune"))
    parser.add_argument("--plot", type=Path, default=None, help="learning-curve PNG (default: OUT/learning_curve.png)")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate finished runs in --out again, no retraining; resume interrupted ones")
    parser.add_argument("--report", nargs="*", type=Path, default=None,
                        help="only tabulate and plot the rows saved in these run directories")
    parser.add_argument("--touch-centre", action="store_true",
                        help="also evaluate each method with the touch check centring the plate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.report is not None:
        order = {m: i for i, m in enumerate(METHODS)}
        rows = sorted((json.loads(f.read_text()) for d in args.report or [args.out] for f in d.glob("row-*.json")),
                      key=lambda r: (r["arm"], order.get(r["method"].split("+")[0].split(" ")[0], 9), r["method"]))
        args.arms = []
    args.seeds = args.seeds or [args.seed]
    if args.arms:
        jobs = [(arm, method, seed) for seed in args.seeds for arm in args.arms for method in args.methods]
        rows = run_jobs(jobs, args)
    args.plot = args.plot or args.out / "learning_curve.png"
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, args.plot)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k not in ("curve", "train_success")} for r in rows],
                         indent=2, default=float))
        return
    seeds = sorted({r.get("seed", args.seed) for r in rows})
    if len(seeds) > 1:
        print("\n".join(spread_table(rows)))
        print(f"(evaluation: {args.eval_episodes} episodes, seed S + 1000 for seed S; seeds {seeds})\n")
    print("| arm | method | seed | episodes | success | transl. mean mm | transl. p95 mm | rot. mean deg "
          "| rot. p95 deg | peak force N | fine-tune wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t, q = r["translation_error_mm"], r["rotation_error_deg"]
        print(f"| {r['arm']} | {r['method']} | {r.get('seed', args.seed)} | {r['episodes']} | "
              f"{r['success_rate']:.0%} | {t['mean']:.3f} | "
              f"{t['p95']:.3f} | {q['mean']:.4f} | {q['p95']:.4f} | {r['peak_force_n']['max']:.1f} | "
              f"{r['train_wall_s']:.0f} |")
    print(f"(evaluation: {args.eval_episodes} episodes, seed {args.seed + 1000}; learning curve: {args.plot})")


if __name__ == "__main__":
    main()
