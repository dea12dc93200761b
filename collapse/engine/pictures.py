"""Pictures of a chain's samples: a generation's grid of same-noise images, its scatter over
the real data, and the report's sheet of grids over generations.

They are drawn with PIL and numpy alone (a few milliseconds), because a toy chain runs
thousands of generations and each writes one; the report's charts (`collapse.report.charts`)
use matplotlib.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

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
