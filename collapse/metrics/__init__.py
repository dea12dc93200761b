"""Metric registry: the names of DESIGN.md's metric contract mapped to their computations.

The chain asks for metrics by name (config `eval.metrics`) and stores plain floats, so that
metrics.json, the manifest and `collapse report` need no numpy. Every metric compares two sets
of features (`collapse.metrics.features` turns images into them; vectors are their own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from collapse.config import METRICS
from collapse.metrics.manifold import density_coverage, precision_recall
from collapse.metrics.vectors import mean_err, mean_variance, mmd_rbf, w2_gaussian


def _fid(samples: np.ndarray, real: np.ndarray) -> float:
    from collapse.metrics.frechet import fid  # clean-fid pulls in torch: only when asked for

    return fid(samples, real)


def _kid(samples: np.ndarray, real: np.ndarray) -> float:
    from collapse.metrics.frechet import kid

    return kid(samples, real)


_PAIRWISE: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "w2": w2_gaussian,
    "mmd": mmd_rbf,
    "mean_err": mean_err,
    "var": lambda samples, real: mean_variance(samples),
    "fid": _fid,
    "kid": _kid,
}
# metrics computed in pairs from one k-NN pass
_JOINT: dict[tuple[str, str], Callable[[np.ndarray, np.ndarray], tuple[float, float]]] = {
    ("precision", "recall"): precision_recall,
    ("density", "coverage"): density_coverage,
}


def evaluate(names: Sequence[str], samples: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Compute the named metrics of `samples` against held-out `real` features.

    Names are checked before any work, so a typo fails fast rather than after the expensive
    ones.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown metric(s) {listed}; allowed: {', '.join(METRICS)}")
    joint: dict[str, float] = {}
    for pair, compute in _JOINT.items():
        if any(name in pair for name in names):
            joint.update(zip(pair, compute(samples, real), strict=True))
    return {
        name: joint[name] if name in joint else float(_PAIRWISE[name](samples, real))
        for name in names
    }
