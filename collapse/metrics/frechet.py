"""FID and KID on features, through clean-fid's own functions (Parmar et al. 2022).

FID is the Frechet distance of Gaussians fitted to the two feature sets; KID the unbiased MMD^2
of a cubic polynomial kernel averaged over random subsets (Binkowski et al. 2018). Both take
features, not images, so any extractor (Inception, digits-cnn, the raw vectors) feeds them and
no image folder is ever written.
"""

from __future__ import annotations

import math

import numpy as np
from cleanfid.fid import fid_from_feats, kernel_distance

from collapse.metrics.vectors import as_matrix

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def fid(samples: np.ndarray, real: np.ndarray) -> float:
    """clean-fid's FID, or NaN where its covariances are too degenerate for it (fewer rows than
    feature dimensions can make the square root of their product complex or fail): the chain
    then stops and says so, rather than ending in scipy's traceback."""
    try:
        return float(fid_from_feats(as_matrix(samples), as_matrix(real)))
    except np.linalg.LinAlgError:
        return math.nan
    except ValueError as err:
        if str(err).startswith("Imaginary component"):  # clean-fid's refusal
            return math.nan
        raise


def kid(samples: np.ndarray, real: np.ndarray, seed: int = 0) -> float:
    """clean-fid's KID, with its subsets drawn from a fixed seed.

    clean-fid draws the subsets from numpy's global generator; seeding it here (and putting its
    state back) makes the metric a function of the features, so a resumed chain reports what
    the uninterrupted one did.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return float(
            kernel_distance(
                as_matrix(samples),
                as_matrix(real),
                num_subsets=KID_SUBSETS,
                max_subset_size=KID_SUBSET_SIZE,
            )
        )
    finally:
        np.random.set_state(state)
