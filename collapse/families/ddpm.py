"""DDPM as a chain family (Ho et al. 2020; MAD's self-consuming diffusion loops): a noise
predictor trained on Ray Train through the same path as rectified flow, sampled with
diffusers' DDIM (deterministic) or ancestral DDPM steps.

Its parameters are the EMA weights plus a `spec` (net, data space, noise schedule, sampler,
steps), so any sampler process rebuilds the model from the stored `.npz`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from collapse.data.space import DataSpace
from collapse.diffusion import ddpm
from collapse.families import trained
from collapse.flow.nets import build_velocity_net

trains_on_ray = True


def build_net(model: Any, space: DataSpace) -> torch.nn.Module:
    return build_velocity_net(space.kind, space.shape, dict(model.net))


def objective(model: Any, space: DataSpace):
    return ddpm.epsilon_objective(_schedule(model, space))


def _schedule(model: Any, space: DataSpace) -> dict[str, Any]:
    """The scheduler's config without diffusers' bookkeeping (`_use_default_values` lists
    names in set order, which changes with the process's hash seed), so that a generation's
    stored spec, and so its params file, is the same bytes every run."""
    config = ddpm.schedule(model.timesteps, model.beta_schedule, clip=space.kind == "image")
    return {k: v for k, v in config.items() if not k.startswith("_")}


def to_params(weights: dict[str, np.ndarray], model: Any, space: DataSpace, steps: int) -> dict:
    spec = {
        "kind": space.kind,
        "shape": list(space.shape),
        "net": dict(model.net),
        "schedule": _schedule(model, space),
        "sampler": model.sampler,
        "steps": steps,
    }
    return trained.pack(weights, spec)


weights = trained.weights
_spec = trained.spec
_net = trained.net


def biased_columns(params: dict[str, np.ndarray]) -> slice:
    """MAD's sampling bias scales the initial noise only, not the ancestral steps'."""
    return slice(0, int(np.prod(_spec(params)["shape"])))


def noise_dim(params: dict[str, np.ndarray]) -> int:
    spec = _spec(params)
    return ddpm.noise_per_row(int(np.prod(spec["shape"])), spec["steps"], spec["sampler"])


def sample(params: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
    """Images as HWC-flat vectors in [-1, 1]; noise rows read as CHW."""
    spec, device = _spec(params), trained.device()
    z = torch.as_tensor(np.asarray(noise, dtype=np.float32), device=device)
    shape = trained.space(params).model_shape
    with trained.inference(device):
        x = ddpm.sample(
            _net(params, device), spec["schedule"], z, shape, spec["steps"], spec["sampler"]
        )
    return trained.data_rows(params, x)


def sdedit(
    params: dict[str, np.ndarray], x: np.ndarray, level: float, noise: np.ndarray
) -> np.ndarray:
    """SDEdit: noise HWC-flat rows to `level` of the schedule and DDIM them back."""
    spec, device = _spec(params), trained.device()
    x0, z = trained.model_input(params, x, device), trained.model_noise(params, noise, device)
    with trained.inference(device):
        net = _net(params, device)
        out = ddpm.denoise_from(net, spec["schedule"], x0, z, level, spec["steps"])
    return trained.data_rows(params, out)


def describe(params: dict[str, np.ndarray]) -> dict[str, float]:
    return {}
