"""Gaussian refitting: the closed-form model of collapse (Shumailov et al. 2024, Nature 631).

Fitting a Gaussian to N samples of the previous fit and repeating is the smallest chain whose
collapse is known exactly (Shumailov et al.; Borji 2024): with the MLE variance
(divide by N), E[sigma2_t] = sigma2_0 ((N-1)/N)^t; with the unbiased one (divide by N-1) the
expectation stays sigma2_0 while sigma2_t -> 0 almost surely, E[ln sigma2_t] drifting by
digamma((N-1)/2) + ln(2/(N-1)) per generation. The estimator is therefore a config choice, and
``describe`` reports both the variance and its log so either law can be checked on a run.
"""

from __future__ import annotations

import numpy as np

from collapse.config.model_section import GaussianModel
from collapse.families.moments import Moments
from collapse.families.protocol import MomentFamily, Params


class Gaussian(MomentFamily):
    name = "gaussian"

    def moments(self, x: np.ndarray, config: GaussianModel) -> Moments:
        return Moments.of(x, full=config.covariance == "full")

    def fit_moments(self, moments: Moments, config: GaussianModel) -> Params:
        """Mean and per-dim variance ("diag") or full covariance, dividing by N or N-1."""
        ddof = 0 if config.estimator == "mle" else 1
        key = "cov" if config.covariance == "full" else "var"
        return {"mean": moments.mean, key: moments.covariance(ddof)}

    def noise_dim(self, params: Params) -> int:
        return int(params["mean"].shape[0])

    def sample(self, params: Params, noise: np.ndarray) -> np.ndarray:
        mean = params["mean"]
        z = np.asarray(noise, dtype=np.float64)
        if "var" in params:
            return (mean + z * np.sqrt(params["var"])).astype(np.float32)
        # eigh rather than Cholesky: a covariance fitted to N <= d rows is singular, and
        # rounding can leave tiny negative eigenvalues, clipped to zero instead of failing.
        eigval, eigvec = np.linalg.eigh(params["cov"])
        factor = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
        return (mean + z @ factor.T).astype(np.float32)

    def describe(self, params: Params) -> dict[str, float]:
        var = params["var"] if "var" in params else np.diag(params["cov"])
        with np.errstate(divide="ignore"):  # a collapsed dim has log variance -inf, honestly
            log_var = np.log(var)
        return {"sigma2": float(var.mean()), "log_sigma2": float(log_var.mean())}


FAMILY = Gaussian()
