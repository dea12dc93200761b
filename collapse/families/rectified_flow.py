"""Rectified flow (Liu et al. 2022) as a chain family: a velocity net trained on Ray Train.

Unlike the closed-form families it has no `fit`: the chain trains it with
`collapse.distributed.train` over the generation's Ray Data training set. Its parameters are
the EMA weights plus a `spec` (what net, what data space, how many Euler steps), so a sampler
anywhere, a Ray Data actor on another node included, rebuilds the same model from the stored
`.npz` alone. A sample is the Euler ODE solution from its noise row (DESIGN.md: every sampler
is a function of its noise), so reflow pairs are (noise, sample) as stored.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from collapse.data.space import DataSpace
from collapse.flow.nets import build_velocity_net
from collapse.flow.samplers import euler_forward, euler_reverse, reverse_sde

trains_on_ray = True
_NETS: dict[int, tuple[dict[str, np.ndarray], torch.nn.Module]] = {}


def build_net(model: Any, space: DataSpace) -> torch.nn.Module:
    return build_velocity_net(space.kind, space.shape, dict(model.net))


def to_params(weights: dict[str, np.ndarray], model: Any, space: DataSpace, steps: int) -> dict:
    spec = {"kind": space.kind, "shape": list(space.shape), "net": dict(model.net), "steps": steps}
    return {**{f"w.{k}": v for k, v in weights.items()}, "spec": np.array(json.dumps(spec))}


def weights(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[2:]: v for k, v in params.items() if k.startswith("w.")}


def _spec(params: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(str(params["spec"]))


def noise_dim(params: dict[str, np.ndarray]) -> int:
    return int(np.prod(_spec(params)["shape"]))


def _net(params: dict[str, np.ndarray], device: torch.device) -> torch.nn.Module:
    """The model of these parameters, built once per parameter set a process samples from."""
    cached = _NETS.get(id(params))
    if cached is None or cached[0] is not params:
        spec = _spec(params)
        net = build_velocity_net(spec["kind"], tuple(spec["shape"]), spec["net"])
        net.load_state_dict(
            {k: torch.from_numpy(np.asarray(v)) for k, v in weights(params).items()}
        )
        _NETS.clear()
        _NETS[id(params)] = cached = (params, net.to(device).eval())
    return cached[1]


def sample(params: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
    """Euler-integrate each noise row from t=0 to 1; images as HWC-flat vectors in [-1, 1].

    Image noise rows are read as CHW (the layout the net and the stored reflow pairs use)."""
    spec = _spec(params)
    space = DataSpace(spec["kind"], tuple(spec["shape"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    z = torch.as_tensor(np.asarray(noise, dtype=np.float32), device=device)
    x = euler_forward(_net(params, device), z.reshape(len(z), *space.model_shape), spec["steps"])
    if space.kind == "image":
        x = x.permute(0, 2, 3, 1)
    return x.reshape(len(x), -1).float().cpu().numpy()


def reverse(
    params: dict[str, np.ndarray], x: np.ndarray, sde_sigma: float | None, steps: int, seed: int
) -> np.ndarray:
    """The noise this model pairs with real rows x (HWC-flat vectors in [-1, 1]): the reverse
    ODE, or with `sde_sigma` the reverse SDE (Zhu et al.'s real-data pairing), as CHW-flat
    noise rows like those `sample` reads. The SDE's noise is seeded, so pairs reproduce."""
    spec = _spec(params)
    space = DataSpace(spec["kind"], tuple(spec["shape"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x1 = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    if space.kind == "image":  # HWC-flat rows -> CHW
        x1 = x1.reshape(len(x1), *space.shape).permute(0, 3, 1, 2).contiguous()
    if sde_sigma is None:
        sampler = euler_reverse
    else:
        sampler = reverse_sde(sde_sigma, torch.Generator(device=device).manual_seed(seed))
    z = sampler(_net(params, device), x1, steps)
    return z.reshape(len(z), -1).float().cpu().numpy()


def describe(params: dict[str, np.ndarray]) -> dict[str, float]:
    return {}
