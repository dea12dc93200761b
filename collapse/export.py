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

A trained family's `export` (`collapse.families.protocol.TrainedFamily`) calls its writer
here: `rectified_flow`, `ddpm` or `stable_diffusion`.

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
import re
import tempfile
from typing import Any

import numpy as np

EXPORT_DIR = "model/diffusers"
NET_WEIGHTS, NET_CONFIG = "model/net.safetensors", "model/net.json"
SAMPLING = "sampling.json"
VECTOR_FORMAT = "safetensors:VectorField"


def files(family: str, params: dict[str, np.ndarray]) -> tuple[str, dict[str, bytes]]:
    """(format, {path under gen-k/: bytes}) of a generation's parameters: the trained family's
    `export`; ("", {}) for the closed-form families, whose parameters are a few numbers
    (params.npz is their format)."""
    from collapse.families import get_family

    found = get_family(family)
    return found.export(params) if found.trained else ("", {})


def rectified_flow(params: dict[str, np.ndarray]) -> tuple[str, dict[str, bytes]]:
    """The MLP as safetensors, or the UNet with diffusers' flow-matching Euler scheduler."""
    spec = _spec(params)
    sampling = _flow_sampling(spec)
    if spec["kind"] == "vector":
        return VECTOR_FORMAT, _vector_net("rectified_flow", params, sampling)
    from diffusers import FlowMatchEulerDiscreteScheduler

    unet = _image_unet(params)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=999, invert_sigmas=True)
    written = {
        **_under("unet", _saved(lambda d: unet.save_pretrained(d, safe_serialization=True))),
        **_under("scheduler", _saved(scheduler.save_pretrained)),
        SAMPLING: _json(sampling),
    }
    return "diffusers:UNet2DModel+FlowMatchEulerDiscreteScheduler", _under(EXPORT_DIR, written)


def ddpm(params: dict[str, np.ndarray]) -> tuple[str, dict[str, bytes]]:
    """The MLP as safetensors, or the UNet as a DDPMPipeline with the DDIM scheduler."""
    spec = _spec(params)
    sampling = _ddpm_sampling(spec)
    if spec["kind"] == "vector":
        return VECTOR_FORMAT, _vector_net("ddpm", params, sampling)
    from diffusers import DDIMScheduler, DDPMPipeline

    scheduler = DDIMScheduler.from_config(spec["schedule"])
    pipeline = DDPMPipeline(unet=_image_unet(params), scheduler=scheduler)
    written = _saved(lambda d: pipeline.save_pretrained(d, safe_serialization=True))
    written[SAMPLING] = _json(sampling)
    return "diffusers:DDPMPipeline", _under(EXPORT_DIR, written)


def _spec(params: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(str(params["spec"]))


def _weights(params: dict[str, np.ndarray], prefix: str = "") -> dict[str, Any]:
    import torch

    return {
        k[2 + len(prefix) :]: torch.from_numpy(np.ascontiguousarray(v))
        for k, v in params.items()
        if k.startswith(f"w.{prefix}")
    }


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def _saved(save: Any) -> dict[str, bytes]:
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


def _under(folder: str, written: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{folder}/{rel}": data for rel, data in written.items()}


def _vector_net(
    family: str, params: dict[str, np.ndarray], sampling: dict[str, Any]
) -> dict[str, bytes]:
    """An MLP velocity (or noise) net: safetensors, plus the JSON that rebuilds and samples it."""
    from safetensors.torch import save
    from torch import nn

    from collapse.training.nets import TIMESTEP_SCALE, build_velocity_net

    spec = _spec(params)
    net = build_velocity_net("vector", tuple(spec["shape"]), spec["net"])
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
    weights = _weights(params)
    return {NET_WEIGHTS: save(weights, metadata={"format": "pt"}), NET_CONFIG: _json(config)}


def _flow_sampling(spec: dict[str, Any]) -> dict[str, Any]:
    """How the chain samples a rectified flow: Euler on a uniform grid."""
    steps = int(spec["steps"])
    return {
        "sampler": "euler",
        "num_inference_steps": steps,
        "t": [i / steps for i in range(steps)],  # each step x += v(x, t) / steps
        "sigmas": [1.0 - i / steps for i in range(steps)],  # the scheduler's, inverted
    }


def _ddpm_sampling(spec: dict[str, Any]) -> dict[str, Any]:
    """How the chain samples a DDPM: its scheduler and DDIM's eta."""
    from collapse.diffusion.ddpm import SAMPLER_ETA

    return {
        "sampler": spec["sampler"],
        "scheduler": "DDIMScheduler",
        "num_inference_steps": int(spec["steps"]),
        "eta": SAMPLER_ETA[spec["sampler"]],
        "timestep_input": "the net reads t = k / time_scale for DDPM step k",
        "schedule": spec["schedule"],
    }


def _image_unet(params: dict[str, np.ndarray]) -> Any:
    """The trained UNet2DModel of an image net family's parameters."""
    from collapse.training.nets import build_velocity_net

    spec = _spec(params)
    field = build_velocity_net("image", tuple(spec["shape"]), spec["net"])
    field.load_state_dict(_weights(params))
    return field.unet


_ADAPTER = re.compile(r"\.(lora_[AB])\.default\.")


def stable_diffusion(params: dict[str, np.ndarray]) -> tuple[str, dict[str, bytes]]:
    """LoRA: the adapter as `save_lora_weights` writes it (peft's names without the adapter
    name, its rank and alpha in the file's metadata); full: the fine-tuned UNet's folder, its
    config the pretrained UNet's."""
    from collapse.diffusion.stable_diffusion import LORA_TARGETS

    spec = _spec(params)
    sampling = {
        "pretrained": spec["pretrained"],
        "scheduler": "DDIMScheduler",
        "num_inference_steps": spec["steps"],
        "eta": 0.0,
        "guidance_scale": spec["guidance_scale"],
        "negative_prompt": "",
    }
    if spec["finetune"] == "lora":
        from diffusers import StableDiffusionPipeline

        layers = {_ADAPTER.sub(r".\1.", k): v for k, v in _weights(params).items()}
        metadata = {
            "r": spec["lora_rank"],
            "lora_alpha": spec["lora_alpha"] or spec["lora_rank"],
            "target_modules": LORA_TARGETS,
        }
        written = _saved(
            lambda d: StableDiffusionPipeline.save_lora_weights(
                d, unet_lora_layers=layers, unet_lora_adapter_metadata=metadata
            )
        )
        written[SAMPLING] = _json(sampling)
        return "diffusers:lora", _under(EXPORT_DIR, written)
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(spec["pretrained"], subfolder="unet")
    unet = UNet2DConditionModel.from_config(config)
    unet.load_state_dict(_weights(params))
    written = _under("unet", _saved(lambda d: unet.save_pretrained(d, safe_serialization=True)))
    written[SAMPLING] = _json(sampling)
    return "diffusers:UNet2DConditionModel", _under(EXPORT_DIR, written)
