"""Mergeable sufficient statistics of a Gaussian fit: count, mean and centred sum of squares.

An accumulate chain fits every sample so far, 200,000 rows at generation 10,000 of N=20. A
family whose fit reads its rows only through these moments lets the chain keep a running
total and merge one generation into it, so a generation costs the same at any length.

Two parts a and b merge as in Chan, Golub & LeVeque (1979):
    n = n_a + n_b,  delta = mean_b - mean_a,  mean = mean_a + delta n_b / n,
    M2 = M2_a + M2_b + delta delta^T n_a n_b / n
(per dimension, or the full matrix of centred cross products). Nothing large is subtracted,
so the merged moments equal those of the concatenated rows to rounding, not bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    count: int
    mean: np.ndarray  # (d,)
    m2: np.ndarray  # (d,): per-dimension sums of squared deviations; (d, d): the full matrix

    @classmethod
    def of(cls, x: np.ndarray, full: bool) -> Moments:
        """The moments of rows `x` (n, d), in float64, computed as numpy's var and a centred
        product compute them, so a fit from them has the bits of a fit from the rows."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        m2 = centred.T @ centred if full else np.multiply(centred, centred).sum(axis=0)
        return cls(len(x), mean, m2)

    def merge(self, other: Moments) -> Moments:
        """The moments of both parts' rows together."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        spread = np.outer(delta, delta) if self.m2.ndim == 2 else delta * delta
        weight = self.count * other.count / count
        return Moments(
            count, self.mean + delta * (other.count / count), self.m2 + other.m2 + spread * weight
        )

    def covariance(self, ddof: int) -> np.ndarray:
        """The variance per dimension, or the covariance matrix, dividing by count - ddof."""
        return self.m2 / (self.count - ddof)
