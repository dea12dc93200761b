"""Metric registry: the names of DESIGN.md's metric contract mapped to their computations.

The chain asks for metrics by name (config `eval.metrics`) and stores plain floats, so that
metrics.json, the manifest and `collapse report` need no numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from collapse.config import VECTOR_METRICS
from collapse.metrics.manifold import precision_recall
from collapse.metrics.vectors import mean_err, mean_variance, mmd_rbf, w2_gaussian

_PAIRWISE: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "w2": w2_gaussian,
    "mmd": mmd_rbf,
    "mean_err": mean_err,
    "var": lambda samples, real: mean_variance(samples),
}
_MANIFOLD = ("precision", "recall")


def evaluate(names: Sequence[str], samples: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Compute the named vector metrics of `samples` against held-out `real` data.

    Names are checked before any work, so a typo fails fast rather than after the expensive
    ones; precision and recall share one k-NN computation.
    """
    unknown = [name for name in names if name not in VECTOR_METRICS]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown metric(s) {listed}; allowed: {', '.join(VECTOR_METRICS)}")
    manifold: dict[str, float] = {}
    if any(name in _MANIFOLD for name in names):
        manifold = dict(zip(_MANIFOLD, precision_recall(samples, real), strict=True))
    return {
        name: manifold[name] if name in _MANIFOLD else float(_PAIRWISE[name](samples, real))
        for name in names
    }
