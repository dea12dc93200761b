"""The linear denoising-autoencoder model of collapse in reflow (Zhu et al., arXiv 2412.08175).

Zhu et al. analyse reflow through a linear DAE, because a rectified-flow velocity is a denoiser
in disguise (E[x1 | x_t] = x_t + (1-t) v) and a linear DAE has a closed form. Their collapse
theorem for linear DAEs (CPAL 2026 version: "the end-to-end linear map contracts") says that a
DAE retrained on its own outputs has an end-to-end map whose operator norm decays geometrically
to zero; their companion theorem says that a fixed share of real data in every round keeps the
norm bounded away from zero. This module computes that recursion exactly, so a test can check
both statements and the chain's empirical trends can be read against them.
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_dae_recursion(
    cov: Tensor, noise_var: float, generations: int, real_fraction: float = 0.0
) -> list[float]:
    """Operator norms of the end-to-end map from real data to each generation's outputs.

    Generation n trains a linear DAE on data of covariance M_n (zero mean): the least-squares
    denoiser of x + e, e ~ N(0, s^2 I), is W_n = M_n (M_n + s^2 I)^-1. Its outputs on its
    training data, of covariance C_{n+1} = W_n M_n W_n^T, are the next generation's synthetic
    data, mixed with real data at share r: M_n = r S + (1 - r) C_n, with M_0 = S (generation 0
    is real). The end-to-end map E_n is the linear map that takes real data to generation n's
    outputs, E_n S E_n^T = C_{n+1}; for r = 0 it is the composition W_n ... W_0.

    All of these matrices are functions of S, so they share its eigenvectors and the recursion
    runs per eigenvalue l: m = r l + (1 - r) c, w = m / (m + s^2), c <- w^2 m, and
    ||E_n|| = max_l sqrt(c / l). Under r = 0 every factor w is at most l_max / (l_max + s^2)
    < 1, so the norm decays at least geometrically; under r > 0, c >= r l (r l / (r l + s^2))^2
    keeps it away from zero. Directions of zero variance carry no data and are left out.
    """
    if noise_var <= 0:
        raise ValueError(f"noise_var must be > 0, got {noise_var}")
    if not 0.0 <= real_fraction <= 1.0:
        raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
    if generations < 0:
        raise ValueError(f"generations must be >= 0, got {generations}")
    eigenvalues = torch.linalg.eigvalsh(torch.as_tensor(cov, dtype=torch.float64))
    real = eigenvalues[eigenvalues > 0]
    if real.numel() == 0:
        raise ValueError("cov must have a positive eigenvalue")
    synthetic = real.clone()
    norms = []
    for _ in range(generations):
        mixed = real_fraction * real + (1 - real_fraction) * synthetic
        gain = mixed / (mixed + noise_var)
        synthetic = gain.square() * mixed
        norms.append(float((synthetic / real).sqrt().max()))
    return norms
