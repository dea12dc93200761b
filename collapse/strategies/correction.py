"""Self-correcting self-consuming loops (Gillman et al. 2024): correction functions that move a
generation's samples toward the true distribution before the next generation trains on them.

Pure functions on (n, d) rows (vectors, or images flattened to [-1, 1]); randomness comes in
as arguments (per-row noise), so a corrected set is reproducible wherever it is computed.

- `ideal`: Langevin steps on the true log density, for sources whose density is known
  (toy:gaussian, toy:mog8): an idealised corrector, as in the paper's Gaussian experiments.
- `knn`: each sample moves a fraction `strength` toward the mean of its k nearest real rows.
- a user corrector `module:function`, called as `function(x, real=real, rng=rng)` with x the
  (m, d) float64 rows to correct (vectors, or images as HWC-flat rows in [-1, 1]), real the
  (n, d) real pool in the same form and rng a numpy Generator seeded by (seed, generation); it
  returns the corrected (m, d) rows.
`knn` and user corrections are blended as x + strength * (corrected - x); for `ideal`, strength
is the share of the Langevin steps run (a blend of a row with an independent sample would
shrink the variance it is meant to restore).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from collapse.data.sources import MOG8_RADIUS, MOG8_STD
from collapse.metrics.vectors import pairwise_sq_dists

Score = Callable[[np.ndarray], np.ndarray]
UserCorrector = Callable[..., np.ndarray]


def gaussian_score(x: np.ndarray) -> np.ndarray:
    """grad log N(0, I)."""
    return -x


def mog8_score(x: np.ndarray) -> np.ndarray:
    """grad log of toy:mog8: eight equal Gaussians (std MOG8_STD) on a ring of MOG8_RADIUS."""
    angle = 2 * np.pi * np.arange(8) / 8
    centres = MOG8_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    offsets = centres[None, :, :] - x[:, None, :]  # (n, 8, 2)
    logits = -np.square(offsets).sum(axis=2) / (2 * MOG8_STD**2)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights[:, :, None] * offsets).sum(axis=1) / MOG8_STD**2


TRUE_SCORES: dict[str, Score] = {"toy:gaussian": gaussian_score, "toy:mog8": mog8_score}


def langevin(x: np.ndarray, score: Score, step_size: float, noise: np.ndarray) -> np.ndarray:
    """Unadjusted Langevin: x <- x + eps * score(x) + sqrt(2 eps) * xi, one step per noise slice
    (`noise` is (n, steps, d))."""
    x = np.asarray(x, dtype=np.float64)
    for step in range(noise.shape[1]):
        x = x + step_size * score(x) + np.sqrt(2 * step_size) * noise[:, step, :]
    return x


def toward_nearest_real(
    x: np.ndarray,
    real: np.ndarray,
    k: int,
    x_features: np.ndarray | None = None,
    real_features: np.ndarray | None = None,
) -> np.ndarray:
    """The mean of each row's k nearest real rows, in bounded-memory chunks. With features,
    neighbours are found in feature space (digits-cnn, Inception) and their pixels averaged."""
    x, real = np.asarray(x, dtype=np.float64), np.asarray(real, dtype=np.float64)
    near_x = x if x_features is None else np.asarray(x_features, dtype=np.float64)
    near_real = real if real_features is None else np.asarray(real_features, dtype=np.float64)
    k = min(k, len(real))
    out = np.empty_like(x)
    step = max(1, (1 << 24) // max(len(real), 1))
    for start in range(0, len(x), step):
        d2 = pairwise_sq_dists(near_x[start : start + step], near_real)
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
        out[start : start + step] = real[nearest].mean(axis=1)
    return out


def blend(x: np.ndarray, corrected: np.ndarray, strength: float) -> np.ndarray:
    return x + strength * (np.asarray(corrected, dtype=np.float64) - x)


def load_user_corrector(spec: str) -> UserCorrector:
    """`package.module:function`, imported on the worker that corrects."""
    module, _, name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"corrector {spec!r}: cannot import it ({err})") from None
    if not callable(function):
        raise ValueError(f"corrector {spec!r} is not callable")
    return function
