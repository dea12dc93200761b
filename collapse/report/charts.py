"""The report's charts, drawn with matplotlib for axes and legends (once per report, so its
import cost does not matter): metric curves, bands across seeds, final-generation bars, a
sweep's heatmap and training-loss curves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from collapse.engine.pictures import sheet_generations
from collapse.report.records import metric_names


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_curves(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per metric: metric vs generation, one line per run."""
    plt = _pyplot()
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_run[r["run"]].append(r)
    written = []
    for name in metric_names(records):
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        for run, recs in by_run.items():
            points = sorted(
                (r["generation"], r["metrics"][name]) for r in recs if name in r["metrics"]
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=run)
        written.append(_save_curve(fig, ax, name, f"{name} per generation", out))
    return written


def final_bars(records: list[dict[str, Any]], path: Path) -> Path:
    """Each run's last generation, one panel per metric: how runs end up, side by side."""
    plt = _pyplot()
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["run"] not in last or r["generation"] > last[r["run"]]["generation"]:
            last[r["run"]] = r
    names = metric_names(records)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), dpi=110)
    axes = np.atleast_1d(axes).ravel()
    runs = list(last)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, name in zip(axes, names, strict=False):
        values = [last[run]["metrics"].get(name, np.nan) for run in runs]
        ax.bar(range(len(runs)), values, color=colors)
        ax.set_xticks(range(len(runs)), [_bar_label(last[run]) for run in runs])
        ax.tick_params(axis="x", labelsize="x-small", rotation=30)
        ax.set_title(name)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[len(names) :]:
        ax.axis("off")
    fig.suptitle("final generation of each run")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def heatmap(
    xs: list[Any],
    ys: list[Any],
    matrix: np.ndarray,
    x_key: str,
    y_key: str,
    metric: str,
    path: Path,
) -> Path:
    """A metric over two swept keys, each cell annotated with its value."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.7 * len(ys) + 2.2), dpi=110)
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    finite = matrix[np.isfinite(matrix)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(len(ys)):
        for j in range(len(xs)):
            value = matrix[i, j]
            text = "-" if not np.isfinite(value) else f"{value:.3g}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize="small",
                color="black" if np.isfinite(value) and value > middle else "white",
            )
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric}, final generation")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_curves(curves: Sequence[tuple[int, dict[str, list]]], title: str, path: Path) -> Path:
    """A run's training loss against the step within each generation, a line per generation
    (at most 16, spread over the chain), coloured from the first generation to the last."""
    plt = _pyplot()
    keep = set(sheet_generations([generation for generation, _ in curves]))
    shown = [(g, curve) for g, curve in curves if g in keep]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(shown)))
    for (generation, curve), color in zip(shown, colors, strict=True):
        ax.plot(curve["step"], curve["loss"], color=color, linewidth=1.2, label=f"gen {generation}")
    ax.set_xlabel("training step within the generation")
    ax.set_ylabel("training loss (mean over train.log_every steps)")
    ax.set_yscale("log" if all(v > 0 for _, c in shown for v in c["loss"]) else "linear")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _bar_label(record: dict[str, Any]) -> str:
    """Run, generation and, where it is not the raw data, the feature space measured in."""
    extractor = record.get("feature_extractor", "raw")
    space = "" if extractor == "raw" else f", {extractor}"
    return f"{record['run']}\n(gen {record['generation']}{space})"


def seed_curves(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per metric for runs grouped by setting (`seed_stats.across_seeds` rows): a line
    per setting at the mean over seeds, a band of +-1 sd around it and a fainter one from min
    to max."""
    plt = _pyplot()
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[row["group"]].append(row)
    names = list(dict.fromkeys(n for row in rows for n in row["metrics"]))
    written = []
    for name in names:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        for i, (group, mine) in enumerate(by_group.items()):
            points = sorted(
                (r["generation"], r["metrics"][name]) for r in mine if name in r["metrics"]
            )
            if not points:
                continue
            xs = np.array([g for g, _ in points])
            mean, low, high = (np.array([s[k] for _, s in points]) for k in ("mean", "min", "max"))
            sd = np.array([s["sd"] or 0.0 for _, s in points])
            seeds = max(r["seeds"] for r in mine)
            color = f"C{i % 10}"
            ax.plot(
                xs,
                mean,
                color=color,
                marker="o" if len(xs) <= 30 else None,
                markersize=3,
                label=f"{group} ({seeds} seeds)",
            )
            ax.fill_between(xs, mean - sd, mean + sd, color=color, alpha=0.25, linewidth=0)
            ax.fill_between(xs, low, high, color=color, alpha=0.1, linewidth=0)
        title = f"{name} per generation: mean over seeds, ±1 sd, min-max"
        written.append(_save_curve(fig, ax, name, title, out))
    return written


def _save_curve(fig, ax, name: str, title: str, out: Path) -> Path:
    """Label, save and close a metric-per-generation figure: `<out>/<name>.png`."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("generation")
    ax.set_ylabel(name)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path
