"""Distribution distances for vector data, cheap enough to run after every generation.

The chain evaluates every generation against the same held-out real set, so these are plain
float64 numpy functions with no state: a thousand generations of a thousand 10-d points cost
seconds. Moment metrics (`mean_err`, `mean_variance`) track the drift and variance loss that
model collapse predicts for Gaussian fitting (Shumailov et al. 2024); `w2_gaussian` folds both
into one closed form; `mmd_rbf` also sees beyond the first two moments.
"""

from __future__ import annotations

import numpy as np


def as_matrix(x: np.ndarray) -> np.ndarray:
    """A set of vectors as a float64 (n, d) array: float32 shards would lose the small
    differences that distances between close distributions are made of."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty (n, d) array, got shape {x.shape}")
    return x


def pairwise_sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows, through one matrix product.

    The expansion |a|^2 + |b|^2 - 2ab is what makes large sets affordable; its cancellation
    can dip below zero, which is clipped so that square roots and kernels stay defined.
    """
    d2 = a @ b.T
    d2 *= -2.0
    d2 += np.einsum("ij,ij->i", a, a)[:, None]
    d2 += np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def mean_err(samples: np.ndarray, real: np.ndarray) -> float:
    """Euclidean distance between the means: the drift of a chain's centre."""
    return float(np.linalg.norm(as_matrix(samples).mean(axis=0) - as_matrix(real).mean(axis=0)))


def mean_variance(samples: np.ndarray) -> float:
    """Mean per-dimension variance (ddof=0): the quantity that collapses towards 0."""
    return float(as_matrix(samples).var(axis=0).mean())


def _mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    centred = x - mean
    return mean, centred.T @ centred / x.shape[0]


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def w2_gaussian_params(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """2-Wasserstein distance between N(m1, s1) and N(m2, s2).

    Symmetric eigendecompositions instead of `scipy.linalg.sqrtm`: the matrices are symmetric
    PSD, so `eigh` is faster, real-valued, and stable when a covariance is singular (a fully
    collapsed model). Round-off can make the squared distance slightly negative; it is
    clipped at 0.
    """
    m1, m2 = np.atleast_1d(np.asarray(m1, np.float64)), np.atleast_1d(np.asarray(m2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    root2 = _psd_sqrt(s2)
    cross = root2 @ s1 @ root2
    cross_eig = np.linalg.eigvalsh((cross + cross.T) / 2.0)
    trace_cross_root = np.sqrt(np.clip(cross_eig, 0.0, None)).sum()
    dm = m1 - m2
    w2_sq = dm @ dm + np.trace(s1) + np.trace(s2) - 2.0 * trace_cross_root
    return float(np.sqrt(max(w2_sq, 0.0)))


def w2_gaussian(samples: np.ndarray, real: np.ndarray) -> float:
    """W2 between the Gaussians fitted (mean, full covariance, ddof=0) to the two sets."""
    return w2_gaussian_params(*_mean_cov(as_matrix(samples)), *_mean_cov(as_matrix(real)))


def mmd_rbf(samples: np.ndarray, real: np.ndarray, max_points: int = 2000) -> float:
    """Biased (V-statistic) squared MMD with a Gaussian RBF kernel and median-heuristic bandwidth.

    Only the first `max_points` rows of each set enter, so the cost is bounded and the value
    deterministic. The bandwidth is the median pairwise distance of the pooled sets (diagonal
    excluded); should more than half the pairs coincide, the mean distance stands in, and
    if every point coincides the sets are identical and the distance is 0.
    """
    x = as_matrix(samples)[:max_points]
    y = as_matrix(real)[:max_points]
    n = x.shape[0]
    pooled = np.concatenate([x, y])
    d2 = pairwise_sq_dists(pooled, pooled)
    idx = np.arange(pooled.shape[0])
    pair_d2 = d2[idx[:, None] < idx[None, :]]
    # the median distance, selected among the squared ones: a square root per pair is costly
    middle = [(pair_d2.size - 1) // 2, pair_d2.size // 2]
    pair_d2.partition(middle)
    bandwidth = np.sqrt(pair_d2[middle]).mean()
    if bandwidth == 0.0:
        bandwidth = np.sqrt(pair_d2).mean()
        if bandwidth == 0.0:
            return 0.0
    d2 *= -0.5 / bandwidth**2
    k = np.exp(d2, out=d2)
    mmd_sq = k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()
    return float(max(mmd_sq, 0.0))
