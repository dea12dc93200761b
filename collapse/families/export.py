"""A trained generation's model in its ecosystem's own format, so it loads without collapse.

The chain keeps each generation's parameters as `model/params.npz` (weights plus a JSON spec),
which only collapse reads. At each commit it also writes the same weights as the ecosystem
stores them, under `gen-k/model/`, listed in the manifest with their checksums (`export` in
the record):

- `ddpm`, images: `diffusers/`, a `DDPMPipeline` folder whose scheduler is the DDIM the chain
  samples with (`DDPMPipeline.from_pretrained`; `DDIMPipeline.from_pretrained` with `eta=1`
  for `sampler: ddpm`).
- `rectified_flow`, images: `diffusers/unet/` (`UNet2DModel`) and `diffusers/scheduler/`
  (`FlowMatchEulerDiscreteScheduler`), sampled with `set_timesteps(sigmas=...)`.
- `stable_diffusion`, LoRA: `diffusers/pytorch_lora_weights.safetensors`, written by
  `save_lora_weights` (`StableDiffusionPipeline.load_lora_weights` takes it); full fine-tunes:
  `diffusers/unet/` (`UNet2DConditionModel`).
- vector data (MLP nets): `net.safetensors` and `net.json` (architecture and sampler).

A trained family's `export` (`collapse.families.protocol.TrainedFamily`) writes its format
with the helpers here; `load` reads any of them back as diffusers (or torch) loads it.

`diffusers/sampling.json` says how the chain drew the generation's samples (steps, scheduler
grid, eta or guidance), so a sample drawn from the export with the same noise is the chain's.

The rectified-flow scheduler: collapse's flow runs t from 0 (noise) to 1 (data) with velocity
x1 - x0, and its net reads t * 999. diffusers' flow-matching Euler scheduler with
`invert_sigmas` walks sigma = t upward from 0 to 1 with timesteps sigma * num_train_timesteps,
and steps x + (sigma_next - sigma) * v: with num_train_timesteps 999 it is collapse's Euler
sampler, given the uniform grid t_i = i / steps (`sigmas` = 1 - t_i: the scheduler inverts
them).

Files are written by diffusers' own `save_pretrained` / `save_lora_weights` into a temporary
folder and read back, so the bytes are theirs; configs are sorted JSON, so a generation's
export is the same bytes in every process.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from collapse.families import trained

EXPORT_DIR = "model/diffusers"
NET_WEIGHTS, NET_CONFIG = "model/net.safetensors", "model/net.json"
SAMPLING = "sampling.json"
VECTOR_FORMAT = "safetensors:VectorField"


def tensors(params: dict[str, np.ndarray], prefix: str = "") -> dict[str, Any]:
    """The weights `w.<prefix><name>` of a trained family's parameters, as torch tensors."""
    import torch

    return {
        k[2 + len(prefix) :]: torch.from_numpy(np.ascontiguousarray(v))
        for k, v in params.items()
        if k.startswith(f"w.{prefix}")
    }


def as_json(value: Any) -> bytes:
    """Sorted JSON: a generation's export is the same bytes in every process."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def saved(save: Any) -> dict[str, bytes]:
    """What `save(folder)` writes, as {relative path: bytes}, read back from a temporary
    folder (diffusers' writers take a directory, and the run may be on S3)."""
    with tempfile.TemporaryDirectory() as folder:
        save(folder)
        found = {}
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, folder).replace(os.sep, "/")] = f.read()
    return dict(sorted(found.items()))


def under(folder: str, written: dict[str, bytes]) -> dict[str, bytes]:
    """Files below `folder` (paths relative to gen-k/)."""
    return {f"{folder}/{rel}": data for rel, data in written.items()}


def vector_net(
    family: str, params: dict[str, np.ndarray], sampling: dict[str, Any]
) -> dict[str, bytes]:
    """An MLP velocity (or noise) net: safetensors, plus the JSON that rebuilds and samples it."""
    from safetensors.torch import save
    from torch import nn

    from collapse.training.nets import TIMESTEP_SCALE, VectorField, build_velocity_net

    spec = trained.spec(params)
    net = build_velocity_net("vector", tuple(spec["shape"]), spec["net"])
    assert isinstance(net, VectorField), "vector data trains the MLP"
    linear = [m for m in net.mlp if isinstance(m, nn.Linear)]
    config = {
        "format": VECTOR_FORMAT,
        "family": family,
        "dim": int(spec["shape"][0]),
        "hidden": linear[0].out_features,
        "depth": len(linear) - 1,
        "time_embed": net.time_embed,
        "architecture": (
            "mlp = Linear(dim + time_embed, hidden), SiLU, [Linear(hidden, hidden), SiLU] x "
            "(depth - 1), Linear(hidden, dim); input [x, sin(s * f), cos(s * f)] with "
            "s = t * time_scale and f_i = 10000^(-i / (time_embed / 2)), i < time_embed / 2"
        ),
        "time_scale": TIMESTEP_SCALE,
        "sampling": sampling,
    }
    weights = tensors(params)
    return {NET_WEIGHTS: save(weights, metadata={"format": "pt"}), NET_CONFIG: as_json(config)}


def image_unet(params: dict[str, np.ndarray]) -> Any:
    """The trained UNet2DModel of an image net family's parameters."""
    from collapse.training.nets import build_velocity_net

    spec = trained.spec(params)
    field = build_velocity_net("image", tuple(spec["shape"]), spec["net"])
    field.load_state_dict(tensors(params))
    return field.unet


def _write(folder: str, rel: str, data: bytes) -> None:
    path = os.path.join(folder, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def load(family: str, params: dict[str, np.ndarray], files: dict[str, bytes]) -> Any:
    """A trained generation's model from its exported `files` ({path below gen-k/: bytes}),
    loaded as diffusers (or, for an MLP, torch) loads them, from a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="collapse-model-") as folder:
        for rel, data in files.items():
            _write(folder, rel, data)
        return _load(family, trained.spec(params), folder)


def _load(family: str, spec: dict[str, Any], folder: str) -> Any:
    exported = os.path.join(folder, *EXPORT_DIR.split("/"))
    if family == "stable_diffusion":
        from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

        if spec["finetune"] == "lora":
            pipeline = StableDiffusionPipeline.from_pretrained(spec["pretrained"])
            pipeline.load_lora_weights(exported)
        else:
            unet = UNet2DConditionModel.from_pretrained(exported, subfolder="unet")
            pipeline = StableDiffusionPipeline.from_pretrained(spec["pretrained"], unet=unet)
        pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        return pipeline
    if spec["kind"] == "vector":
        from safetensors.torch import load_file

        from collapse.training.nets import VectorField

        with open(os.path.join(folder, *NET_CONFIG.split("/")), "rb") as f:
            config = json.load(f)
        net = VectorField(config["dim"], config["hidden"], config["depth"], config["time_embed"])
        net.load_state_dict(load_file(os.path.join(folder, *NET_WEIGHTS.split("/"))))
        return net.eval().requires_grad_(False)
    if family == "ddpm":
        from diffusers import DDPMPipeline

        return DDPMPipeline.from_pretrained(exported)
    from diffusers import UNet2DModel

    return UNet2DModel.from_pretrained(exported, subfolder="unet").eval()
