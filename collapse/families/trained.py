"""What the trained families share about their parameters, and `NetFamily`, the base of those
that train collapse's own net (`model.net`) on the data itself (rectified_flow, ddpm).

Their parameters are the EMA weights (`w.<name>` arrays) plus a JSON `spec` of what net on what
data space, so that any process (a Ray Data sampling actor on another node included) rebuilds
the model from the stored `.npz` alone; a process builds it once per parameter set it samples.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from collapse.data.space import DataSpace
from collapse.families.protocol import DenoisingFamily, Params
from collapse.training.nets import build_velocity_net

_NETS: dict[int, tuple[dict[str, np.ndarray], torch.nn.Module]] = {}


def pack(weights: dict[str, np.ndarray], spec: dict[str, Any]) -> dict[str, np.ndarray]:
    return {**{f"w.{k}": v for k, v in weights.items()}, "spec": np.array(json.dumps(spec))}


def weights(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[2:]: v for k, v in params.items() if k.startswith("w.")}


def spec(params: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(str(params["spec"]))


def space(params: dict[str, np.ndarray]) -> DataSpace:
    described = spec(params)
    return DataSpace(described["kind"], tuple(described["shape"]))


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def inference(on: torch.device) -> Iterator[None]:
    """Sampling under the training loop's flags: bf16 autocast on a GPU (the sampler's state
    between steps stays fp32), no autograd."""
    with torch.no_grad(), torch.autocast(on.type, torch.bfloat16, enabled=on.type == "cuda"):
        yield


def model_input(params: dict[str, np.ndarray], rows: np.ndarray, on: torch.device) -> torch.Tensor:
    """HWC-flat data rows (as stored and as the chain holds them) -> (n, *model_shape)."""
    where = space(params)
    x = torch.as_tensor(np.asarray(rows, dtype=np.float32), device=on)
    if where.kind == "image":
        x = x.reshape(len(x), *where.shape).permute(0, 3, 1, 2)
    return x.reshape(len(x), *where.model_shape).contiguous()


def model_noise(params: dict[str, np.ndarray], noise: np.ndarray, on: torch.device) -> torch.Tensor:
    """Noise rows are CHW-flat already (the layout nets and stored reflow pairs use)."""
    z = torch.as_tensor(np.asarray(noise, dtype=np.float32), device=on)
    return z.reshape(len(z), *space(params).model_shape)


def data_rows(params: dict[str, np.ndarray], x: torch.Tensor) -> np.ndarray:
    """(n, *model_shape) model output -> HWC-flat float32 rows."""
    if space(params).kind == "image":
        x = x.permute(0, 2, 3, 1)
    return x.reshape(len(x), -1).float().cpu().numpy()


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
        model = model.to(device).eval()
        if device.type == "cuda" and described["kind"] == "image":
            model = model.to(memory_format=torch.channels_last)
        _NETS[id(params)] = cached = (params, model)
    return cached[1]


class NetFamily(DenoisingFamily):
    """A family whose net is `model.net` (an MLP for vectors, a UNet for images) on the data's
    own space; its spec stores the net's keys as the config gives them."""

    def build_net(self, config: Any, space: DataSpace) -> torch.nn.Module:
        return build_velocity_net(space.kind, space.shape, config.net.as_dict())

    def weights(self, params: Params) -> dict[str, np.ndarray]:
        return weights(params)
