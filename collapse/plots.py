"""Pictures of a chain: sample grids, scatters over the real data, and the report's figures.

A generation's samples.png is drawn with PIL and numpy alone (a few milliseconds), because a
toy chain runs thousands of generations and each writes one; the report's figures, drawn once,
use matplotlib for axes and legends.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

_MIN_TILE = 48  # pixels: tiny images (8x8 digits) are scaled up by whole factors to this
_REAL = np.array([190, 190, 190], dtype=np.uint8)
_SAMPLE = np.array([31, 119, 180], dtype=np.uint8)
_INK = (30, 30, 30)


def to_png(picture: np.ndarray | Image.Image) -> bytes:
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def tile(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
    """(n, H, W, C) uint8 images as one RGB picture, `columns` per row, white gaps between."""
    images = _rgb(_enlarge(images))
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        out[top : top + h, left : left + w] = image
    return out


def _enlarge(images: np.ndarray) -> np.ndarray:
    factor = max(1, -(-_MIN_TILE // max(images.shape[1:3])))
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


def _rgb(images: np.ndarray) -> np.ndarray:
    return images.repeat(3, axis=-1) if images.shape[-1] == 1 else images[..., :3]


def grid_png(images: np.ndarray) -> bytes:
    """A square-ish grid of one generation's fixed-noise images."""
    return to_png(tile(images, columns=int(np.ceil(np.sqrt(len(images))))))


def scatter_png(
    samples: np.ndarray, real: np.ndarray, title: str, bounds: np.ndarray | None = None
) -> bytes:
    """Samples (blue) over the real data (grey) in the first two dimensions (a histogram for
    one-dimensional data), on axes fixed by the real data so generations line up."""
    size, margin = 360, 24
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    bounds = scatter_bounds(real) if bounds is None else bounds
    inner = size - 2 * margin
    if real.shape[1] == 1:
        _histograms(canvas, samples[:, 0], real[:, 0], bounds[:, 0], margin, inner)
    else:
        for points, color in ((real, _REAL), (samples, _SAMPLE)):
            _dots(canvas, points[:, :2], bounds, margin, inner, color)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin - 1, margin - 1, size - margin, size - margin], outline=(120, 120, 120))
    draw.text((margin, 6), title, fill=_INK)
    lo, hi = bounds
    draw.text((margin, size - margin + 6), f"x: {lo[0]:.3g} .. {hi[0]:.3g}", fill=_INK)
    if real.shape[1] > 1:
        draw.text((size // 2, size - margin + 6), f"y: {lo[1]:.3g} .. {hi[1]:.3g}", fill=_INK)
    return to_png(image)


def scatter_bounds(real: np.ndarray) -> np.ndarray:
    """(2, k) low/high corners: the real data's range with a quarter of it as margin."""
    cols = real[:, :2]
    lo, hi = cols.min(axis=0), cols.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.stack([lo - span / 4, hi + span / 4])


def _dots(canvas, points, bounds, margin, inner, color) -> None:
    lo, hi = bounds[:, :2]
    xy = (points - lo) / (hi - lo)
    keep = np.all((xy >= 0) & (xy <= 1), axis=1)
    px = margin + np.rint(xy[keep, 0] * (inner - 2)).astype(int)
    py = margin + np.rint((1 - xy[keep, 1]) * (inner - 2)).astype(int)
    for dx in (0, 1):
        for dy in (0, 1):
            canvas[py + dy, px + dx] = color


def _histograms(canvas, samples, real, bounds, margin, inner) -> None:
    edges = np.linspace(bounds[0], bounds[1], 61)
    counts = [np.histogram(v, edges, density=True)[0] for v in (real, samples)]
    top = max(c.max() for c in counts) or 1.0
    width = inner / 60
    for i, (r, s) in enumerate(zip(*counts, strict=True)):
        left, right = margin + int(i * width), margin + int((i + 1) * width)
        base = margin + inner
        canvas[base - int(r / top * inner) : base, left:right] = _REAL
        y = base - int(s / top * inner)
        canvas[max(margin, y - 1) : y + 1, left:right] = _SAMPLE


def sample_sheet(grids: Sequence[tuple[int, np.ndarray]], title: str, columns: int = 16) -> bytes:
    """One row per generation of the same-noise grid images, labelled by generation."""
    label = 64
    rows = [tile(images[:columns], columns) for _, images in grids]
    width = label + max(r.shape[1] for r in rows)
    height = 24 + sum(r.shape[0] for r in rows)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 6), title, fill=_INK)
    top = 24
    for (generation, _), row in zip(grids, rows, strict=True):
        sheet.paste(Image.fromarray(row), (label, top))
        draw.text((4, top + row.shape[0] // 2 - 5), f"gen {generation}", fill=_INK)
        top += row.shape[0]
    return to_png(sheet)


def sheet_generations(generations: Sequence[int], most: int = 16) -> list[int]:
    """At most `most` generations, evenly spread, always the first and the last."""
    if len(generations) <= most:
        return list(generations)
    picks = np.unique(np.rint(np.linspace(0, len(generations) - 1, most)).astype(int))
    return [generations[i] for i in picks]


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


def metric_names(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r["metrics"]))


def seed_curves(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per metric for runs grouped by setting (`collapse.seeds.across_seeds` rows): a
    line per setting at the mean over seeds, a band of +-1 sd around it and a fainter one
    from min to max."""
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
