"""Stable Diffusion's parts, loaded with diffusers/transformers `from_pretrained`, and the three
things a chain does with them: encode images to latents, fine-tune the UNet on (latent, caption)
pairs with the epsilon objective, and sample images for captions with classifier-free guidance.

Everything is loaded from `pretrained`, a local pipeline directory (`save_pretrained` layout:
unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a hub id. A process loads each part once
per location. The VAE and the text encoder are frozen and never leave eval mode; only the UNet
(whole, or its LoRA adapter through peft) trains.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from collapse.errors import UserError

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the attention projections, as diffusers'
# own text-to-image LoRA example adapts them

_PARTS: dict[tuple[str, str, str], Any] = {}


def is_local(pretrained: str) -> bool:
    return os.path.isdir(os.path.expanduser(pretrained))


def check_available(pretrained: str) -> None:
    """Fail in one line, before anything is trained, when `pretrained` cannot be had: a missing
    directory, or a hub id on a machine that cannot reach the hub (and has no cached copy)."""
    if is_local(pretrained):
        if not os.path.isfile(os.path.join(os.path.expanduser(pretrained), "model_index.json")):
            raise UserError(
                f"model.pretrained: {pretrained} has no model_index.json; "
                "give a directory written by a diffusers pipeline's save_pretrained"
            )
        return
    if pretrained.startswith(("/", ".", "~")):
        raise UserError(f"model.pretrained: no such directory: {pretrained}")
    from huggingface_hub import constants, hf_hub_download

    def unavailable(reason: str) -> UserError:
        return UserError(
            f"model.pretrained: cannot get {pretrained!r} from the Hugging Face hub ({reason}); "
            f"on a machine with network run `hf download {pretrained} --local-dir DIR`, copy DIR "
            "where every node can read it, and set model.pretrained: DIR"
        )

    try:  # a copy in the local hub cache is enough
        hf_hub_download(pretrained, "model_index.json", local_files_only=True)
        return
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise unavailable("HF_HUB_OFFLINE is set and it is not in the local cache")
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:  # the hub client retries for half a minute, loudly; a machine without network says so
        socket.create_connection((endpoint.hostname, port), timeout=5).close()
    except OSError as err:
        raise unavailable(f"{endpoint.hostname}:{port} is unreachable: {err}") from None
    try:
        hf_hub_download(pretrained, "model_index.json")
    except Exception as err:  # unknown id, gated repo, no token: all the user's to fix
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise unavailable(reason) from None


def part(pretrained: str, name: str, device: torch.device | str = "cpu") -> Any:
    """One component of the pipeline (`unet`, `vae`, `text_encoder`, `tokenizer`,
    `scheduler`), loaded once per process; the frozen ones are in eval mode without grads."""
    key = (os.path.expanduser(pretrained), name, str(device))
    if key not in _PARTS:
        _PARTS[key] = _load(key[0], name, device)
    return _PARTS[key]


def _load(pretrained: str, name: str, device: torch.device | str) -> Any:
    if name == "tokenizer":
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
    if name == "scheduler":
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_pretrained(pretrained, subfolder="scheduler").config
    if name == "vae":
        from diffusers import AutoencoderKL

        model = AutoencoderKL.from_pretrained(pretrained, subfolder="vae")
    elif name == "text_encoder":
        from transformers import CLIPTextModel

        model = CLIPTextModel.from_pretrained(pretrained, subfolder="text_encoder")
    else:
        raise ValueError(f"unknown pipeline part {name!r}")
    return model.to(device).eval().requires_grad_(False)


def unet(
    pretrained: str,
    finetune: str,
    lora_rank: int,
    lora_alpha: float | None,
    gradient_checkpointing: bool = False,
    attention: str = "sdpa",
) -> torch.nn.Module:
    """A fresh UNet to fine-tune: all of it (`full`) or a peft LoRA adapter on its attention
    projections, the base frozen (`lora`). Built anew each call: it is what gets trained."""
    from diffusers import UNet2DConditionModel

    model = UNet2DConditionModel.from_pretrained(pretrained, subfolder="unet")
    if finetune == "lora":
        from peft import LoraConfig

        model.requires_grad_(False)
        model.add_adapter(
            LoraConfig(
                r=lora_rank,
                lora_alpha=lora_alpha or lora_rank,
                init_lora_weights="gaussian",
                target_modules=LORA_TARGETS,
            )
        )
    if gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if attention == "xformers":
        try:
            model.enable_xformers_memory_efficient_attention()
        except (ModuleNotFoundError, ValueError) as err:
            raise UserError(f"model.attention: xformers is not usable here ({err})") from None
    # "sdpa": diffusers' default processor already calls torch's scaled_dot_product_attention
    return model


def latent_shape(pretrained: str, image_shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, h, w) of the latents of (H, W, 3) images: the VAE downsamples once per block but
    the last."""
    from diffusers import AutoencoderKL

    config = AutoencoderKL.load_config(pretrained, subfolder="vae")
    factor = 2 ** (len(config["block_out_channels"]) - 1)
    h, w, _ = image_shape
    if h % factor or w % factor:
        raise UserError(f"images of {h}x{w} do not divide by the VAE's downsampling ({factor})")
    return (int(config["latent_channels"]), h // factor, w // factor)


@torch.no_grad()
def encode(pretrained: str, images: np.ndarray, device: torch.device) -> np.ndarray:
    """uint8 (n, H, W, 3) images -> scaled latents (n, C, h, w), float32: the mean of the VAE's
    posterior times its scaling factor, the inputs SD's UNet was trained on. The mean (not a
    draw) makes the cache a function of the images."""
    vae = part(pretrained, "vae", device)
    x = torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        mean = vae.encode(x).latent_dist.mean
    return (mean.float() * vae.config.scaling_factor).cpu().numpy()


def tokenize(pretrained: str, captions: Sequence[str]) -> np.ndarray:
    """Token ids (n, max_length) int64, padded to the tokenizer's length as SD's text encoder
    saw them in pre-training."""
    tokenizer = part(pretrained, "tokenizer")
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="np",
    ).input_ids.astype(np.int64)


def _embed(pretrained: str, input_ids: torch.Tensor) -> torch.Tensor:
    encoder = part(pretrained, "text_encoder", input_ids.device)
    with torch.no_grad():
        return encoder(input_ids)[0]


def epsilon_objective(
    pretrained: str,
) -> Callable[..., torch.Tensor]:
    """SD's fine-tuning loss: E ||eps(z_k, k, text) - eps||^2 on latents z with the pipeline's
    own noise schedule, k uniform over its training steps."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(part(pretrained, "scheduler"))
    steps = scheduler.config.num_train_timesteps

    def objective(net, noise, latents, generator, batch):
        k = torch.randint(0, steps, (len(latents),), generator=generator, device=latents.device)
        noisy = scheduler.add_noise(latents, noise, k)
        text = _embed(pretrained, batch["input_ids"])
        prediction = net(noisy, k, encoder_hidden_states=text).sample
        return (prediction.float() - noise.float()).square().mean()

    return objective


@torch.no_grad()
def sample(
    net: torch.nn.Module,
    pretrained: str,
    captions: Sequence[str],
    noise: torch.Tensor,
    steps: int,
    guidance_scale: float,
) -> torch.Tensor:
    """Images (n, 3, H, W) in [-1, 1] from initial latents `noise` (n, C, h, w): DDIM (eta 0,
    deterministic) with classifier-free guidance against the empty caption when
    guidance_scale > 1, then the VAE's decoder."""
    from diffusers import DDIMScheduler

    device = noise.device
    scheduler = DDIMScheduler.from_config(part(pretrained, "scheduler"))
    scheduler.set_timesteps(steps, device=device)
    ids = torch.as_tensor(tokenize(pretrained, captions), device=device)
    text = _embed(pretrained, ids)
    guided = guidance_scale > 1.0
    if guided:
        empty = torch.as_tensor(tokenize(pretrained, [""]), device=device)
        text = torch.cat([_embed(pretrained, empty).expand(len(text), -1, -1), text])
    x = noise * scheduler.init_noise_sigma
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for k in scheduler.timesteps:
            inputs = torch.cat([x, x]) if guided else x
            eps = net(scheduler.scale_model_input(inputs, k), k, encoder_hidden_states=text).sample
            if guided:
                unconditional, conditional = eps.float().chunk(2)
                eps = unconditional + guidance_scale * (conditional - unconditional)
            x = scheduler.step(eps.float(), k, x, eta=0.0).prev_sample
        vae = part(pretrained, "vae", device)
        images = vae.decode(x / vae.config.scaling_factor).sample
    return images.float().clamp(-1.0, 1.0)
