"""Gaussian mixture fitted by EM: the family in which refitting loses low-weight modes first.

scikit-learn fits it; sampling is ours, from the stored arrays and the caller's rng, so a
generation's samples depend only on its seed and the saved parameters, never on a pickled
estimator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr
from sklearn.mixture import GaussianMixture

from collapse.config.model_section import GMMModel
from collapse.families.protocol import ClosedFormFamily, Params


class GMM(ClosedFormFamily):
    name = "gmm"

    def fit(self, x: np.ndarray, config: GMMModel, rng: np.random.Generator) -> Params:
        """Weights, means and covariances in scikit-learn's layout for the covariance type.

        The component count is clamped to N, the most that EM can place on N rows.
        """
        gm = GaussianMixture(
            n_components=min(config.components, len(x)),
            covariance_type=config.covariance,
            max_iter=config.max_iter,
            random_state=int(rng.integers(2**31)),
        )
        gm.fit(x)
        return {
            "weights": gm.weights_,
            "means": gm.means_,
            "covariances": gm.covariances_,
            "covariance_type": np.array(config.covariance),
        }

    def biased_columns(self, params: Params) -> slice:
        """MAD's sampling bias narrows the continuous noise, not the uniform that picks which
        component a sample comes from."""
        return slice(1, None)

    def noise_dim(self, params: Params) -> int:
        return int(params["means"].shape[1]) + 1  # which component, then its Gaussian noise

    def sample(self, params: Params, noise: np.ndarray) -> np.ndarray:
        weights = np.asarray(params["weights"], dtype=np.float64)
        means = params["means"]
        kind = str(params["covariance_type"])
        cov = params["covariances"]
        cumulative = np.cumsum(weights / weights.sum())
        component = np.minimum(
            np.searchsorted(cumulative, ndtr(noise[:, 0]), side="right"), len(weights) - 1
        )
        z = np.asarray(noise[:, 1:], dtype=np.float64)
        if kind == "spherical":
            return (means[component] + z * np.sqrt(cov[component])[:, None]).astype(np.float32)
        if kind == "diag":
            return (means[component] + z * np.sqrt(cov[component])).astype(np.float32)
        if kind == "tied":
            return (means[component] + z @ np.linalg.cholesky(cov).T).astype(np.float32)
        factors = np.linalg.cholesky(cov)
        out = means[component].astype(np.float64)
        for k in np.unique(component):
            rows = component == k
            out[rows] += z[rows] @ factors[k].T
        return out.astype(np.float32)


FAMILY = GMM()
