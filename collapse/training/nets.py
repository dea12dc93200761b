"""The nets trained from scratch, f(x, t) with t in [0, 1]: an MLP for vectors, a UNet for images.

Rectified flow reads the output as a velocity, DDPM as the noise it predicts (Stable Diffusion
brings its own pretrained UNet, `collapse.families.stable_diffusion.pipeline_parts`).

Both are built from plain config (no download), so a sampler anywhere rebuilds the same module
from the stored spec. Both take `(x, t)` with t of shape (B,) and return a tensor shaped like x;
both run under bf16 autocast, and the UNet takes channels_last inputs and attends through
PyTorch SDPA (diffusers' default attention processor), so the GPU path needs no special casing.

Neither net zero-initialises its output layer. With a zeroed head the first backward pass
carries no gradient into the body (only the head moves), and the two nets would start
differently (diffusers' UNet2DModel does not zero its `conv_out`), so the same training settings
would behave differently across data kinds; the default PyTorch init already gives small
initial velocities, and AdamW gets past the random initial field within a few steps.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from diffusers import UNet2DModel
from torch import nn

# DDPM-style timesteps: t in [0, 1] -> t * 999. The sinusoidal embeddings (the UNet's and ours)
# have frequencies designed for integer steps in [0, 1000); fed raw t in [0, 1], nearly every
# channel would be ~constant. Nets are trained from scratch, so which end of [0, 999] is
# noise does not matter, only the scale does.
TIMESTEP_SCALE = 999.0

UNET_PRESETS: dict[str, dict[str, Any]] = {
    # CPU tests and 8x8 toy images: one downsample, attention only in the mid block (4x4).
    "tiny": {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D"),
        "norm_num_groups": 8,
        "attention_head_dim": 32,
    },
    # A laptop / single-GPU size for digits, MNIST and quick CIFAR runs: attention at 1/2 scale.
    "small": {
        "block_out_channels": (64, 128, 128),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "norm_num_groups": 32,
        "attention_head_dim": 32,
    },
    # google/ddpm-cifar10-32 (Ho et al. 2020, CIFAR-10): 35.7M parameters.
    "ddpm_cifar10": {
        "block_out_channels": (128, 256, 256, 256),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "center_input_sample": False,
        "time_embedding_type": "positional",
        "flip_sin_to_cos": False,
        "freq_shift": 1,
        "mid_block_scale_factor": 1,
        "downsample_padding": 0,
        "act_fn": "silu",
        "attention_head_dim": None,
        "norm_num_groups": 32,
        "norm_eps": 1e-6,
    },
}

_SHAPE_KEYS = ("in_channels", "out_channels", "sample_size")
_UNET_KEYS = frozenset(inspect.signature(UNet2DModel.__init__).parameters) - {"self", *_SHAPE_KEYS}
_VECTOR_KEYS = frozenset({"hidden", "depth", "time_embed"})


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The Transformer/DDPM embedding of t * 999 (max period 10^4), the same time features
    the UNet sees, so vector and image nets read time alike."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = (t.float() * TIMESTEP_SCALE)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class VectorField(nn.Module):
    """MLP on [x, embed(t)]: enough for toy 2-D mixtures and Gaussians up to a few hundred dims."""

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, time_embed: int = 64) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1 or time_embed < 2 or time_embed % 2:
            raise ValueError(
                f"VectorField needs dim, hidden, depth >= 1 and an even time_embed >= 2; "
                f"got dim={dim}, hidden={hidden}, depth={depth}, time_embed={time_embed}"
            )
        self.time_embed = time_embed
        layers: list[nn.Module] = [nn.Linear(dim + time_embed, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # A scalar t (one time for the whole batch, as an Euler step has) broadcasts.
        t = t.reshape(-1).expand(x.shape[0])
        emb = sinusoidal_embedding(t, self.time_embed).to(x.dtype)
        return self.mlp(torch.cat([x, emb], dim=-1))


class ImageField(nn.Module):
    """diffusers' UNet2DModel read as a velocity field: t in [0, 1] becomes t * 999 timesteps."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.unet = UNet2DModel(**config)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t * TIMESTEP_SCALE).sample


def _reject_unknown(keys: set[str], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(keys - allowed)
    if unknown:
        raise ValueError(
            f"unknown {what} key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def build_unet_config(
    preset: str, channels: int, size: int | tuple[int, int], **overrides: Any
) -> dict[str, Any]:
    """UNet2DModel kwargs: a preset, then the data's channels and size, then the overrides.

    Fails here, with the sizes named, when the image is not divisible by the UNet's total
    downsampling, rather than as a shape mismatch deep inside its skip connections."""
    if preset not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {preset!r}; allowed: {', '.join(UNET_PRESETS)}")
    _reject_unknown(set(overrides), _UNET_KEYS, "UNet")
    config = {
        **UNET_PRESETS[preset],
        "in_channels": channels,
        "out_channels": channels,
        "sample_size": size,
        **overrides,
    }
    factor = 2 ** (len(config["block_out_channels"]) - 1)
    sides = (size, size) if isinstance(size, int) else size
    if any(side % factor for side in sides):
        raise ValueError(
            f"image size {sides[0]}x{sides[1]} is not divisible by {factor}, the downsampling "
            f"of UNet preset {preset!r} with {len(config['block_out_channels'])} blocks"
        )
    return config


def build_velocity_net(kind: str, shape: tuple[int, ...], net: dict[str, Any]) -> nn.Module:
    """The family's one entry point: data kind and stored shape (vectors (d,), images (H, W, C)
    as stored) plus the config's `model.net` dict -> an untrained velocity net."""
    if kind == "vector":
        if len(shape) != 1:
            raise ValueError(f"vector data needs a shape (d,), got {tuple(shape)}")
        _reject_unknown(set(net), _VECTOR_KEYS, "model.net")
        return VectorField(int(shape[0]), **net)
    if kind == "image":
        if len(shape) != 3:
            raise ValueError(f"image data needs a shape (H, W, C), got {tuple(shape)}")
        _reject_unknown(set(net), _UNET_KEYS | {"preset"}, "model.net")
        h, w, c = (int(v) for v in shape)
        overrides = dict(net)
        preset = overrides.pop("preset", "tiny")
        return ImageField(build_unet_config(preset, c, h if h == w else (h, w), **overrides))
    raise ValueError(f"unknown data kind {kind!r}; allowed: vector, image")
