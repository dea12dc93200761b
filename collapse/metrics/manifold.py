"""Fidelity and diversity of samples, measured on the real data's k-NN manifold.

Precision and recall after Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models" (NeurIPS): each point's ball reaches to its k-th nearest neighbour
within its own set, and the union of a set's balls estimates its support. A collapsing chain
keeps precision (samples stay on the real manifold) while recall falls (modes and tails vanish),
which one-number distances such as FID or W2 blur together.

Density and coverage after Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
Generative Models" (ICML), use only the real balls (k=5), which real outliers inflate less:
density counts how many real balls hold each sample (about 1 when the sets match, above 1 when
samples crowd the real modes), coverage is the share of real balls holding some sample.

Everything is computed in row chunks of the distance matrix, so 50k x 50k feature sets fit in
bounded memory. A point on a ball's boundary counts as inside, so that duplicate points (a
collapsed set has many) are inside each other's balls of radius 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from collapse.metrics.vectors import as_matrix, pairwise_sq_dists

PRECISION_K = 3  # Kynkaanniemi et al.'s k for precision and recall
DENSITY_K = 5  # Naeem et al.'s k for density and coverage
_MAX_CHUNK_ROWS = 4096
_CHUNK_ELEMENTS = 1 << 24  # 128 MiB of float64 distances per chunk, whatever the set sizes


def _row_chunks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, min(_MAX_CHUNK_ROWS, _CHUNK_ELEMENTS // n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour among the other points.

    The point itself is excluded explicitly rather than by skipping the smallest distance, so
    that duplicate points (common in a collapsed set) count as neighbours at distance 0.
    """
    x = as_matrix(features)
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    radii_sq = np.empty(n)
    for rows in _row_chunks(n, n):
        d2 = pairwise_sq_dists(x[rows], x)
        local = np.arange(rows.stop - rows.start)
        d2[local, rows.start + local] = np.inf
        d2.partition(k - 1, axis=1)
        radii_sq[rows] = d2[:, k - 1]
    return np.sqrt(radii_sq)


def precision_recall(
    samples: np.ndarray, real: np.ndarray, k: int = PRECISION_K
) -> tuple[float, float]:
    """(precision, recall): shares of samples inside some real ball, and of real points inside
    some sample ball (boundary included).

    Both come from one pass over the sample-to-real distances: each chunk answers precision
    for its sample rows and adds its sample balls to the recall of every real point.
    """
    fake, real = as_matrix(samples), as_matrix(real)
    real_r2 = knn_radii(real, k) ** 2
    fake_r2 = knn_radii(fake, k) ** 2
    fake_in_real = np.empty(fake.shape[0], dtype=bool)
    real_in_fake = np.zeros(real.shape[0], dtype=bool)
    for rows in _row_chunks(fake.shape[0], real.shape[0]):
        d2 = pairwise_sq_dists(fake[rows], real)
        fake_in_real[rows] = (d2 <= real_r2[None, :]).any(axis=1)
        real_in_fake |= (d2 <= fake_r2[rows, None]).any(axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


def density_coverage(
    samples: np.ndarray, real: np.ndarray, k: int = DENSITY_K
) -> tuple[float, float]:
    """(density, coverage) of `samples` against the k-NN balls of `real`."""
    fake, real = as_matrix(samples), as_matrix(real)
    real_r2 = knn_radii(real, k) ** 2
    inside = 0
    covered = np.zeros(real.shape[0], dtype=bool)
    for rows in _row_chunks(fake.shape[0], real.shape[0]):
        in_ball = pairwise_sq_dists(fake[rows], real) <= real_r2[None, :]
        inside += int(in_ball.sum())
        covered |= in_ball.any(axis=0)
    return inside / (k * fake.shape[0]), float(covered.mean())
