"""Rectified flow (Liu et al. 2022) as a chain family: a velocity net trained on Ray Train.

Unlike the closed-form families it has no `fit`: the chain trains it with
`collapse.distributed.train` over the generation's Ray Data training set. Its parameters are
the EMA weights plus a `spec` (what net, what data space, how many Euler steps), so a sampler
anywhere, a Ray Data actor on another node included, rebuilds the same model from the stored
`.npz` alone. A sample is the Euler ODE solution from its noise row (DESIGN.md: every sampler
is a function of its noise), so reflow pairs are (noise, sample) as stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from collapse.data.space import DataSpace
from collapse.families import trained
from collapse.flow.nets import build_velocity_net
from collapse.flow.samplers import euler_forward, euler_reverse, reverse_sde

trains_on_ray = True


def build_net(model: Any, space: DataSpace) -> torch.nn.Module:
    return build_velocity_net(space.kind, space.shape, dict(model.net))


def to_params(weights: dict[str, np.ndarray], model: Any, space: DataSpace, steps: int) -> dict:
    spec = {"kind": space.kind, "shape": list(space.shape), "net": dict(model.net), "steps": steps}
    return trained.pack(weights, spec)


weights = trained.weights
_spec = trained.spec
_net = trained.net


def noise_dim(params: dict[str, np.ndarray]) -> int:
    return int(np.prod(_spec(params)["shape"]))


def sample(
    params: dict[str, np.ndarray], noise: np.ndarray, steps: int | None = None
) -> np.ndarray:
    """Euler-integrate each noise row from t=0 to 1 in `steps` steps (default: the generation's
    `sample.steps`); images as HWC-flat vectors in [-1, 1].

    Image noise rows are read as CHW (the layout the net and the stored reflow pairs use)."""
    device = trained.device()
    z = trained.model_noise(params, noise, device)
    with trained.inference(device):
        x = euler_forward(_net(params, device), z, steps or _spec(params)["steps"])
    return trained.data_rows(params, x)


def reverse(
    params: dict[str, np.ndarray], x: np.ndarray, sde_sigma: float | None, steps: int, seed: int
) -> np.ndarray:
    """The noise this model pairs with real rows x (HWC-flat vectors in [-1, 1]): the reverse
    ODE, or with `sde_sigma` the reverse SDE (Zhu et al.'s real-data pairing), as CHW-flat
    noise rows like those `sample` reads. The SDE's noise is seeded, so pairs reproduce."""
    device = trained.device()
    x1 = trained.model_input(params, x, device)
    if sde_sigma is None:
        sampler = euler_reverse
    else:
        sampler = reverse_sde(sde_sigma, torch.Generator(device=device).manual_seed(seed))
    with trained.inference(device):
        z = sampler(_net(params, device), x1, steps)
    return z.reshape(len(z), -1).float().cpu().numpy()


def sdedit(
    params: dict[str, np.ndarray], x: np.ndarray, level: float, noise: np.ndarray
) -> np.ndarray:
    """SDEdit on the flow: x at time 1 - level of the interpolant with `noise`, then Euler to
    1 (HWC-flat rows in and out, noise rows CHW as `sample` reads them)."""
    device = trained.device()
    x1, z = trained.model_input(params, x, device), trained.model_noise(params, noise, device)
    start = 1.0 - level
    steps = max(1, round(level * _spec(params)["steps"]))
    with trained.inference(device):
        out = euler_forward(_net(params, device), (1 - start) * z + start * x1, steps, start=start)
    return trained.data_rows(params, out)


def describe(params: dict[str, np.ndarray]) -> dict[str, float]:
    return {}


def flow_metrics(
    params: dict[str, np.ndarray],
    names: Sequence[str],
    noise: np.ndarray,
    real: np.ndarray,
    headline: str | None,
    score: Callable[[np.ndarray], float],
) -> dict[str, float]:
    """The flow metrics `names` asks for (`collapse.metrics.flow`) of this generation's model:
    straightness on the Euler trajectories from `noise` (the first noise rows of its own
    samples), the `headline` metric (`score`) of samples from the same noise at each NFE, and
    the inversion of held-out `real` rows by the reverse ODE, all at the generation's
    `sample.steps` where a step count is not the point."""
    from collapse.metrics import flow

    found: dict[str, float] = {}
    steps = _spec(params)["steps"]
    if "straightness" in names:
        device = trained.device()
        z = trained.model_noise(params, noise, device)
        with trained.inference(device):
            found["straightness"] = flow.straightness(_net(params, device), z, steps)
    if "nfe" in names:
        assert headline is not None, "config validation (flow_problem) asks for one"
        for name, k in zip(flow.nfe_names(headline), flow.NFE_STEPS, strict=True):
            found[name] = score(sample(params, noise, k))
    if "inversion" in names:
        found.update(flow.inversion_stats(reverse(params, real, None, steps, 0)))
    return found
