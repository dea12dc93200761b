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
    return dict(ddpm.schedule(model.timesteps, model.beta_schedule, clip=space.kind == "image"))


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
    spec = _spec(params)
    space = DataSpace(spec["kind"], tuple(spec["shape"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    z = torch.as_tensor(np.asarray(noise, dtype=np.float32), device=device)
    x = ddpm.sample(
        _net(params, device),
        spec["schedule"],
        z,
        space.model_shape,
        spec["steps"],
        spec["sampler"],
    )
    if space.kind == "image":
        x = x.permute(0, 2, 3, 1)
    return x.reshape(len(x), -1).float().cpu().numpy()


def sdedit(
    params: dict[str, np.ndarray], x: np.ndarray, level: float, noise: np.ndarray
) -> np.ndarray:
    """SDEdit: noise HWC-flat rows to `level` of the schedule and DDIM them back."""
    spec = _spec(params)
    space = DataSpace(spec["kind"], tuple(spec["shape"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x0 = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    if space.kind == "image":
        x0 = x0.reshape(len(x0), *space.shape).permute(0, 3, 1, 2)
    x0 = x0.reshape(len(x0), *space.model_shape)
    z = torch.as_tensor(np.asarray(noise, dtype=np.float32), device=device).reshape(x0.shape)
    out = ddpm.denoise_from(_net(params, device), spec["schedule"], x0, z, level, spec["steps"])
    if space.kind == "image":
        out = out.permute(0, 2, 3, 1)
    return out.reshape(len(out), -1).float().cpu().numpy()


def describe(params: dict[str, np.ndarray]) -> dict[str, float]:
    return {}
