"""What the families trained on Ray Train (rectified_flow, ddpm) share about their parameters.

Their parameters are the EMA weights (`w.<name>` arrays) plus a JSON `spec` of what net on what
data space, so that any process (a Ray Data sampling actor on another node included) rebuilds
the model from the stored `.npz` alone; a process builds it once per parameter set it samples.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from collapse.flow.nets import build_velocity_net

_NETS: dict[int, tuple[dict[str, np.ndarray], torch.nn.Module]] = {}


def pack(weights: dict[str, np.ndarray], spec: dict[str, Any]) -> dict[str, np.ndarray]:
    return {**{f"w.{k}": v for k, v in weights.items()}, "spec": np.array(json.dumps(spec))}


def weights(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[2:]: v for k, v in params.items() if k.startswith("w.")}


def spec(params: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(str(params["spec"]))


def net(params: dict[str, np.ndarray], device: torch.device) -> torch.nn.Module:
    """The model of these parameters, built once per parameter set a process samples from."""
    cached = _NETS.get(id(params))
    if cached is None or cached[0] is not params:
        described = spec(params)
        model = build_velocity_net(described["kind"], tuple(described["shape"]), described["net"])
        model.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in weights(params).items()}
        )
        _NETS.clear()
        _NETS[id(params)] = cached = (params, model.to(device).eval())
    return cached[1]
