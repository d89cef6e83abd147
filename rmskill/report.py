"""A fine-tuning run as a page of plots (``rmskill report RUN_DIR [--out report.html]``).

Reads only the run directory (``run.json``, ``episodes.jsonl``, ``episodes/*.npz``): success (each
episode and over the last 20), final error (simulator truth where the run had it), reward, peak
force, and the role-model groups: trials grouped by the skill's ``initial_features`` within its
``similarity_radius`` (or the run's ``group_radius``), the best-rewarded trial of each marked. The
HTML embeds its PNGs, so it opens anywhere as one file; the PNGs are also written beside it
(``<out stem>_files/``). Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from rmskill.errors import ConfigError
from rmskill.learning.episodes import EpisodeStore

WINDOW = 20  # episodes in the moving success rate


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("rmskill report needs matplotlib; pip install 'rmskill[plot]'") from None
    return plt


def _moving(values: np.ndarray, window: int = WINDOW) -> np.ndarray:
    out = np.empty(len(values))
    for i in range(len(values)):
        out[i] = np.mean(values[max(0, i + 1 - window): i + 1])
    return out


def role_model_groups(run_dir: Path, records: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's trials grouped as the role model groups them: initial features, group, best of each."""
    from rmskill.learning.role_model import group_trials
    from rmskill.skill import skill_class

    try:
        spec = skill_class(run["skill"]).spec
    except Exception:  # a skill no longer installed: the other plots still tell the story
        return None
    if not spec.initial_features:
        return None
    store = EpisodeStore(run_dir)
    initials = np.array([store.load(r).initial(spec.initial_columns) for r in records], dtype=float)
    started = np.all(np.isfinite(initials), axis=1)
    radius = (run.get("settings") or {}).get("group_radius") or spec.similarity_radius
    index = np.flatnonzero(started)
    groups = [[int(index[k]) for k in g] for g in group_trials(initials[started], float(radius))]
    rewards = np.array([r["reward"] for r in records], dtype=float)
    best = [max(g, key=lambda i: rewards[i]) for g in groups]
    return {"features": list(spec.initial_features), "units": [spec.observation.unit(n) for n in spec.initial_features],
            "radius": float(radius), "initials": initials, "groups": groups, "best": best}


def _figures(plt, records: list[dict[str, Any]], groups: dict[str, Any] | None) -> dict[str, Any]:
    n = np.arange(1, len(records) + 1)
    success = np.array([bool(r["success"]) for r in records], dtype=float)
    reward = np.array([r["reward"] for r in records], dtype=float)
    force = np.array([r.get("peak_force_n", np.nan) for r in records], dtype=float)
    truth = [r.get("truth") or {} for r in records]
    figs: dict[str, Any] = {}

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.scatter(n, success, s=10, color="0.6", label="episode (reward source's verdict)")
    if any(truth):
        ax.plot(n, _moving(np.array([bool(t.get("success")) for t in truth], dtype=float)), color="C2",
                label=f"truth, last {WINDOW}")
    ax.plot(n, _moving(success), color="C0", label=f"last {WINDOW}")
    ax.set(xlabel="episode", ylabel="success", ylim=(-0.05, 1.05), title="Success")
    ax.legend(loc="lower right", fontsize=8)
    figs["success"] = fig

    if any(truth):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        trans = np.array([t.get("translation_error_mm", np.nan) for t in truth], dtype=float)
        rot = np.array([t.get("rotation_error_deg", np.nan) for t in truth], dtype=float)
        ax.plot(n, trans, ".", color="C0", label="translation [mm]")
        ax.plot(n, rot, ".", color="C1", label="rotation [deg]")
        ax.set_yscale("log")
        ax.set(xlabel="episode", ylabel="final error (simulator truth)", title="Final error")
        ax.legend(fontsize=8)
        figs["error"] = fig

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(n, reward, ".", color="C0")
    ax.plot(n, _moving(reward), color="C3", label=f"mean of last {WINDOW}")
    ax.set(xlabel="episode", ylabel="reward", title="Reward")
    ax.legend(fontsize=8)
    figs["reward"] = fig

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(n, force, ".", color="C4")
    ax.set(xlabel="episode", ylabel="peak force [N]", title="Peak contact force")
    figs["force"] = fig

    if groups is not None and groups["groups"]:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
        x, y = groups["initials"][:, 0], groups["initials"][:, 1] if groups["initials"].shape[1] > 1 else None
        cmap = plt.get_cmap("tab20")
        for g, members in enumerate(groups["groups"]):
            colour = cmap(g % 20)
            ys = y[members] if y is not None else np.zeros(len(members))
            ax.scatter(x[members], ys, s=14, color=colour)
            best = groups["best"][g]
            ax.scatter(x[best], y[best] if y is not None else 0.0, s=120, marker="*", color=colour, edgecolor="k")
            bx.scatter(np.full(len(members), g + 1), reward[members], s=10, color=colour)
            bx.scatter(g + 1, reward[best], s=120, marker="*", color=colour, edgecolor="k")
        f, u = groups["features"], groups["units"]
        ax.set(xlabel=f"{f[0]} [{u[0]}]", ylabel=f"{f[1]} [{u[1]}]" if len(f) > 1 else "",
               title=f"Initial states ({len(groups['groups'])} groups, radius {groups['radius']:g})")
        bx.set(xlabel="group", ylabel="reward", title="Rewards per group (star: role model)")
        fig.tight_layout()
        figs["groups"] = fig
    return figs


def _summary(run: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    last = records[-WINDOW:]
    truth = [r["truth"] for r in last if r.get("truth")]
    out = {"skill": run.get("skill"), "arm": run.get("arm"), "method": run.get("method"),
           "reward source": run.get("reward"), "seed": run.get("seed"), "episodes": len(records),
           "success (all)": f"{np.mean([r['success'] for r in records]):.0%}",
           f"success (last {len(last)})": f"{np.mean([r['success'] for r in last]):.0%}",
           f"mean reward (last {len(last)})": f"{np.mean([r['reward'] for r in last]):.3f}"}
    if truth:
        out[f"truth success (last {len(truth)})"] = f"{np.mean([t['success'] for t in truth]):.0%}"
        out[f"mean error (last {len(truth)})"] = (f"{np.nanmean([t['translation_error_mm'] for t in truth]):.3f} mm, "
                                                  f"{np.nanmean([t['rotation_error_deg'] for t in truth]):.3f} deg")
    return out


def report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write the run's report page (default ``RUN_DIR/report.html``) and its PNGs; a summary."""
    plt = _pyplot()
    run_dir = Path(run_dir)
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except OSError:
        raise ConfigError(f"{run_dir} is not a fine-tuning run directory (no run.json)") from None
    except ValueError as err:
        raise ConfigError(f"{run_dir / 'run.json'} cannot be read ({err})") from None
    records = EpisodeStore(run_dir).records()
    if not records:
        raise ConfigError(f"{run_dir} holds no finished episode to report")
    out = Path(out) if out is not None else run_dir / "report.html"
    files = out.parent / f"{out.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    groups = role_model_groups(run_dir, records, run)
    figures = _figures(plt, records, groups)
    summary = _summary(run, records)
    parts = []
    pngs = []
    for name, fig in figures.items():
        path = files / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        pngs.append(str(path))
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>')
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in summary.items())
    title = html.escape(f"{run.get('skill')} on {run.get('arm')}: {run.get('method')} fine-tuning")
    failures = [r for r in records[-WINDOW:] if not r["success"]]
    fail_rows = "".join(f"<tr><td>{r['episode']}</td><td>{html.escape(str(r.get('target', '')))}</td>"
                        f"<td>{html.escape(str(r.get('message', '')))}</td></tr>" for r in failures)
    fail_html = (f"<h2>Failures in the last {WINDOW}</h2><table><tr><th>episode</th><th>target</th><th>message</th>"
                 f"</tr>{fail_rows}</table>") if failures else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1060px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin-bottom:1em}}th,td{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
figure{{margin:1em 0}}img{{max-width:100%}}</style></head>
<body><h1>{title}</h1><p>Run directory: <code>{html.escape(str(run_dir))}</code></p>
<table>{rows}</table>{fail_html}
{"".join(parts)}
</body></html>
"""
    out.write_text(page)
    return {"out": str(out), "figures": pngs, **summary}
