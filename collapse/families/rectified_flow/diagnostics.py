"""Flow diagnostics: what the rectified-flow literature looks at to see a flow collapse.

A chain's sample metrics (w2, FID, ...) say how far a generation's samples are from the data.
Three more quantities say what happened to the flow itself, and are what reflow and its
mitigations act on (Liu et al. 2022, arXiv 2209.03003; Zhu et al., arXiv 2412.08175):

- `straightness`: Liu et al.'s S(Z) = integral over t of E ||(Z1 - Z0) - dZt/dt||^2 along the
  generation's own ODE trajectories, noise Z0 to sample Z1; 0 for a flow whose paths are
  straight lines at constant speed, which one Euler step then solves exactly.
- `nfe`: the headline sample metric (the first of `eval.metrics`) of samples drawn from the
  same noise with 1, 2, 4 and 8 Euler steps, recorded as `<metric>_nfe<k>`. A straight flow
  loses little at few steps; a curved one a lot.
- `inversion`: held-out real rows mapped to noise by the reverse ODE. RA/RCA Reflow and OCAR
  train on (reverse(x), x) pairs, which is sound only while that noise is still N(0, I):
  `inversion_norm` (mean ||z||; for N(0, I_d) it is sqrt(2) Gamma((d+1)/2) / Gamma(d/2), about
  sqrt(d)), `inversion_cov` (||Cov z - I||_F) and `inversion_w2` (W2 between the Gaussian fitted
  to z and N(0, I)).

They run at every generation that asks for them, on at most `FLOW_ROWS` rows
(`collapse.config.metric_names`): the first noise
rows of the generation's samples, and the first held-out rows. The functions here are pure
(tensors and arrays in, floats out); the family's `flow_metrics` runs them on a generation's
model. Their names, and which configs may ask for them, are `collapse.config.metric_names`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse.metrics.vectors import as_matrix, w2_gaussian_params

if TYPE_CHECKING:
    from torch import Tensor

    from collapse.families.rectified_flow.interpolant import VelocityField


def straightness(net: VelocityField, z: Tensor, steps: int) -> float:
    """Liu et al.'s straightness of the flow from noise `z`, on the Euler trajectory of `steps`
    steps that samples it: (1/K) sum_k ||(x_K - x_0) - v_k||^2, averaged over rows, where v_k
    is the velocity of step k. It is the Riemann sum of S(Z) = int_0^1 E||(Z1 - Z0) - v(Zt,
    t)||^2 dt on the sampler's own grid; a one-step flow is straight by construction (0).

    Each step's velocity is (x_{k+1} - x_k) / h, read off the sampler's callback, so the
    metric measures the very trajectories that made the samples. Since x_K - x_0 is the mean
    of the v_k, the sum is each row's spread of velocities around their mean: Welford's
    running update gives it in one pass, without keeping the K velocities."""
    import torch

    from collapse.families.rectified_flow.samplers import euler_forward

    h = 1.0 / steps
    state = {"x": z.double(), "mean": torch.zeros_like(z, dtype=torch.float64)}
    m2 = torch.zeros(len(z), dtype=torch.float64, device=z.device)

    def step(i: int, t: float, x: Tensor) -> None:
        nonlocal m2
        x = x.double()
        v = (x - state["x"]) / h
        delta = v - state["mean"]
        state["mean"] = state["mean"] + delta / (i + 1)
        m2 = m2 + (delta * (v - state["mean"])).reshape(len(x), -1).sum(dim=1)
        state["x"] = x

    euler_forward(net, z, steps, callback=step)
    return float((m2 / steps).mean())


def inversion_stats(z: np.ndarray) -> dict[str, float]:
    """How far noise recovered from real rows is from N(0, I): the mean norm, the Frobenius
    distance of its covariance (ddof 0) from I, and the W2 between the Gaussian fitted to it
    and N(0, I) (the closed form `w2_gaussian_params`, as the w2 metric uses)."""
    z = as_matrix(z)
    mean = z.mean(axis=0)
    centred = z - mean
    cov = centred.T @ centred / len(z)
    eye = np.eye(z.shape[1])
    return {
        "inversion_norm": float(np.linalg.norm(z, axis=1).mean()),
        "inversion_cov": float(np.linalg.norm(cov - eye)),
        "inversion_w2": w2_gaussian_params(mean, cov, np.zeros(z.shape[1]), eye),
    }
