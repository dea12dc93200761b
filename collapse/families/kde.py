"""Gaussian kernel density estimate: a non-parametric family whose refitting spreads, not shrinks.

Sampling a KDE picks a training point and adds kernel noise, so each generation adds h^2 of
variance per dim (with a fixed h the variance tends to about (N-1) h^2), the
opposite failure to the Gaussian family's shrinkage.

The bandwidth rules are computed here, scaled by the data's spread, because scikit-learn's
KernelDensity(bandwidth="scott") is the bare factor N^(-1/5) and would be wrong for data that
is not standardised:

- Scott (1992), Multivariate Density Estimation, eq. 6.42: h = sigma N^(-1/(d+4));
- Silverman (1986), Density Estimation, eq. 4.14: h = sigma (4/(d+2))^(1/(d+4)) N^(-1/(d+4)),

with sigma the mean over dims of the per-dim standard deviation (ddof=1), since the kernel is
isotropic and so has one scale.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from collapse.config.model_section import KDEModel
from collapse.families.protocol import ClosedFormFamily, Params


def bandwidth(x: np.ndarray, rule: float | str) -> float:
    if not isinstance(rule, str):
        return float(rule)
    n, d = x.shape
    sigma = float(np.asarray(x, dtype=np.float64).std(axis=0, ddof=1).mean())
    factor = n ** (-1.0 / (d + 4))
    if rule == "scott":
        return sigma * factor
    if rule == "silverman":
        return sigma * (4.0 / (d + 2)) ** (1.0 / (d + 4)) * factor
    raise ValueError(f"unknown bandwidth rule {rule!r}; allowed: a number > 0, scott, silverman")


class KDE(ClosedFormFamily):
    name = "kde"

    def fit(self, x: np.ndarray, config: KDEModel, rng: np.random.Generator) -> Params:
        """The training points themselves and the kernel's per-dim standard deviation h."""
        del rng  # the fit is deterministic given its data
        x = np.asarray(x, dtype=np.float32)
        return {"points": x, "bandwidth": np.array(bandwidth(x, config.bandwidth))}

    def biased_columns(self, params: Params) -> slice:
        """MAD's sampling bias narrows the kernel's noise, not the uniform that picks which
        point a sample comes from."""
        return slice(1, None)

    def noise_dim(self, params: Params) -> int:
        return int(params["points"].shape[1]) + 1  # which point, then the kernel's noise

    def sample(self, params: Params, noise: np.ndarray) -> np.ndarray:
        points = params["points"]
        h = float(params["bandwidth"])
        pick = np.minimum((ndtr(noise[:, 0]) * len(points)).astype(np.int64), len(points) - 1)
        rows = points[pick].astype(np.float64)
        return (rows + h * noise[:, 1:]).astype(np.float32)


FAMILY = KDE()
