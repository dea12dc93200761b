"""The `ideal` corrector's math: Langevin dynamics on a toy source's true density.

Pure functions on (n, d) rows; randomness comes in as arguments (per-row noise and uniforms),
so a corrected set is reproducible wherever it is computed. Unadjusted (`langevin`), the
stationary law is biased by the step: on a Gaussian of curvature L it has variance
1 / (L (1 - step L / 2)), so steps with step x L >= 1 are refused (`unadjusted_step_problem`);
Metropolis-adjusted (`mala`), the stationary law is the true one at any step. Either way it
is a local corrector: it moves a row within the mode it is near, and reaches a mode no row is
near only by crossing the low-density barrier between modes, which few rows do in tens of
steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from collapse.data.toy import MOG8_RADIUS, MOG8_STD

Score = Callable[[np.ndarray], np.ndarray]
LogDensity = Callable[[np.ndarray], np.ndarray]


def gaussian_score(x: np.ndarray) -> np.ndarray:
    """grad log N(0, I)."""
    return -x


def mog8_score(x: np.ndarray) -> np.ndarray:
    """grad log of toy:mog8: eight equal Gaussians (std MOG8_STD) on a ring of MOG8_RADIUS."""
    offsets = _mog8_centres()[None, :, :] - x[:, None, :]  # (n, 8, 2)
    logits = -np.square(offsets).sum(axis=2) / (2 * MOG8_STD**2)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights[:, :, None] * offsets).sum(axis=1) / MOG8_STD**2


def gaussian_log_density(x: np.ndarray) -> np.ndarray:
    """log N(0, I) up to its constant (MALA needs only differences)."""
    return -0.5 * np.square(x).sum(axis=1)


def mog8_log_density(x: np.ndarray) -> np.ndarray:
    """log of toy:mog8's density up to its constant."""
    logits = -np.square(_mog8_centres()[None, :, :] - x[:, None, :]).sum(axis=2) / (2 * MOG8_STD**2)
    top = logits.max(axis=1)
    return top + np.log(np.exp(logits - top[:, None]).sum(axis=1))


def _mog8_centres() -> np.ndarray:
    angle = 2 * np.pi * np.arange(8) / 8
    return MOG8_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)


TRUE_SCORES: dict[str, Score] = {"toy:gaussian": gaussian_score, "toy:mog8": mog8_score}
TRUE_LOG_DENSITIES: dict[str, LogDensity] = {
    "toy:gaussian": gaussian_log_density,
    "toy:mog8": mog8_log_density,
}
# The largest eigenvalue of -Hessian(log p*) over all x: the score's Lipschitz constant. For a
# mixture of equal isotropic Gaussians the Hessian is -I / std^2 plus a covariance of the
# centres (positive semi-definite), so within a mode the curvature is 1 / std^2 and never more.
MAX_CURVATURE: dict[str, float] = {"toy:gaussian": 1.0, "toy:mog8": 1.0 / MOG8_STD**2}


def unadjusted_step_problem(source: str, step_size: float) -> str | None:
    """Why unadjusted Langevin with this step is unsafe on `source`, or None.

    On a Gaussian of curvature L, x <- x - eps L x + sqrt(2 eps) xi has the stationary variance
    1 / (L (1 - eps L / 2)): twice the truth at eps L = 1, where the drift starts to overshoot
    the mode, and divergent from eps L = 2. Below 1 the variance is still too wide by
    1 / (1 - eps L / 2), small only for eps L << 1."""
    curvature = MAX_CURVATURE[source]
    product = step_size * curvature
    if product < 1:
        return None
    if product < 2:
        widened = 1 / np.sqrt(curvature * (1 - product / 2))
        effect = f"spread each mode to std {widened:.3g} instead of {1 / np.sqrt(curvature):.3g}"
    else:
        effect = "diverge"
    return (
        f"strategy.step_size: {step_size:g} x the largest curvature of {source}'s log density "
        f"({curvature:g}) = {product:g} >= 1: unadjusted Langevin would {effect}; use "
        f"step_size < {1 / curvature:g} (about {0.1 / curvature:g} for a 5% variance bias) "
        f"or metropolis: true"
    )


def langevin(x: np.ndarray, score: Score, step_size: float, noise: np.ndarray) -> np.ndarray:
    """Unadjusted Langevin: x <- x + eps * score(x) + sqrt(2 eps) * xi, one step per noise slice
    (`noise` is (n, steps, d))."""
    x = np.asarray(x, dtype=np.float64)
    for step in range(noise.shape[1]):
        x = x + step_size * score(x) + np.sqrt(2 * step_size) * noise[:, step, :]
    return x


def mala(
    x: np.ndarray,
    score: Score,
    log_density: LogDensity,
    step_size: float,
    noise: np.ndarray,
    uniforms: np.ndarray,
) -> np.ndarray:
    """Metropolis-adjusted Langevin (Roberts & Tweedie 1996): the Langevin proposal
    y = x + eps score(x) + sqrt(2 eps) xi, accepted with probability
    min(1, p(y) q(x | y) / (p(x) q(y | x))), q(b | a) = N(b; a + eps score(a), 2 eps I).
    The true law is stationary at any step; a large step only lowers the acceptance.
    `noise` is (n, steps, d), `uniforms` (n, steps): the proposals' and the decisions' draws."""
    x = np.asarray(x, dtype=np.float64)
    grad, log_p = score(x), log_density(x)
    for step in range(noise.shape[1]):
        xi = noise[:, step, :]
        y = x + step_size * grad + np.sqrt(2 * step_size) * xi
        grad_y, log_p_y = score(y), log_density(y)
        back = x - y - step_size * grad_y  # x's offset from the reverse proposal's mean
        log_ratio = (
            log_p_y
            - log_p
            - np.square(back).sum(axis=1) / (4 * step_size)
            + 0.5 * np.square(xi).sum(axis=1)  # the forward offset is sqrt(2 eps) xi
        )
        accept = uniforms[:, step] < np.exp(np.minimum(log_ratio, 0.0))
        x = np.where(accept[:, None], y, x)
        grad = np.where(accept[:, None], grad_y, grad)
        log_p = np.where(accept, log_p_y, log_p)
    return x
