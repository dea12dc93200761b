"""Metric registry: the metric names of docs/metrics.md mapped to their computations.

The chain asks for metrics by name (config `eval.metrics`) and stores plain floats, so that
metrics.json, the manifest and `collapse report` need no numpy. Every metric compares two sets
of features (`collapse.metrics.features` turns images into them; vectors are their own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from collapse.config import FLOW_METRICS, METRICS
from collapse.metrics.manifold import DENSITY_K, PRECISION_K, density_coverage, precision_recall
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


# Rows each metric needs in (the held-out set, the samples): a k-NN ball needs k other points
# (precision and recall put balls on both sets, density and coverage on the real one), FID a
# covariance and KID an unbiased kernel mean, 2 rows each.
ROWS_NEEDED: dict[str, tuple[int, int]] = {
    "precision": (PRECISION_K + 1, PRECISION_K + 1),
    "recall": (PRECISION_K + 1, PRECISION_K + 1),
    "density": (DENSITY_K + 1, 1),
    "coverage": (DENSITY_K + 1, 1),
    "fid": (2, 2),
    "kid": (2, 2),
}


def rows_problem(names: Sequence[str], n_eval: int, n_samples: int) -> str | None:
    """Which key holds too few rows for the named metrics (a one-line message), or None."""
    for key, have, side in (("data.n_eval", n_eval, 0), ("sample.n", n_samples, 1)):
        short = [n for n in names if ROWS_NEEDED.get(n, (1, 1))[side] > have]
        if short:
            need = max(ROWS_NEEDED[n][side] for n in short)
            what = "held-out rows" if side == 0 else "samples"
            return (
                f"{key}: {have} {what}, but {', '.join(short)} need at least {need} "
                "(k-NN metrics: k + 1; fid and kid: 2)"
            )
    return None


def evaluate(names: Sequence[str], samples: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Compute the named metrics of `samples` against held-out `real` features.

    Names are checked before any work, so a typo fails fast rather than after the expensive
    ones. The flow metrics are measured on a rectified flow's model, not on its samples
    (`collapse.config.metric_names`): they are left out here.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown metric(s) {listed}; allowed: {', '.join(METRICS)}")
    names = [name for name in names if name not in FLOW_METRICS]
    joint: dict[str, float] = {}
    for pair, compute in _JOINT.items():
        if any(name in pair for name in names):
            joint.update(zip(pair, compute(samples, real), strict=True))
    return {
        name: joint[name] if name in joint else float(_PAIRWISE[name](samples, real))
        for name in names
    }
