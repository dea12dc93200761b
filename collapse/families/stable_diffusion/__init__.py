"""Stable Diffusion fine-tunes as a chain family (MAD's text-to-image loops): generation t
fine-tunes a pretrained pipeline's UNet (fully, or a LoRA adapter) on Ray Train and samples
images for captions of the real set.

It trains on VAE latents, not pixels: the chain caches the latents of the real set once, and those
of a generation's samples when a later generation first trains on them
(`collapse.engine.latent_cache`), so the frozen VAE encodes each image once per run. Its parameters
are only what was fine-tuned (the LoRA weights or the UNet) plus a `spec` and the real set's
`captions`: the frozen parts are read from `model.pretrained` by whichever process samples.

A sample is a function of its noise row, as in every family: column 0 picks the caption
(as Phi(noise) does a KDE's point), the rest is the initial latent; MAD's sampling bias scales
only the latent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch
from scipy.special import ndtr

from collapse.config.model_section import StableDiffusionModel
from collapse.data.space import DataSpace
from collapse.families import trained
from collapse.families.export import EXPORT_DIR, SAMPLING, as_json, saved, tensors, under
from collapse.families.protocol import Params, TrainedFamily
from collapse.families.stable_diffusion import pipeline_parts as sd
from collapse.training.loop import Objective
from collapse.training.weights import load_trainable

_NETS: dict[int, tuple[Params, torch.nn.Module]] = {}


class StableDiffusion(TrainedFamily):
    name = "stable_diffusion"
    latent = True
    captioned = True

    def build_net(self, config: StableDiffusionModel, space: DataSpace) -> torch.nn.Module:
        return sd.unet(
            config.pretrained,
            config.finetune,
            config.lora_rank,
            config.lora_alpha,
            config.gradient_checkpointing,
            config.attention,
        )

    def objective(self, config: StableDiffusionModel, space: DataSpace) -> Objective:
        return sd.epsilon_objective(config.pretrained)

    def weights(self, params: Params) -> dict[str, np.ndarray]:
        return trained.weights(params)

    def to_params(
        self,
        weights: dict[str, np.ndarray],
        config: StableDiffusionModel,
        space: DataSpace,
        steps: int,
        captions: Sequence[str] | None = None,
    ) -> Params:
        """Samples are drawn for `captions` (the real set's; none: the empty caption)."""
        spec = {
            "pretrained": config.pretrained,
            "finetune": config.finetune,
            "lora_rank": config.lora_rank,
            "lora_alpha": config.lora_alpha,
            "image_shape": list(space.shape),
            "latent_shape": list(sd.latent_shape(config.pretrained, space.shape)),
            "guidance_scale": config.guidance_scale,
            "steps": steps,
        }
        params = trained.pack(weights, spec)
        params["captions"] = np.array(list(captions or []) or [""], dtype=str)
        return params

    def export(self, params: Params) -> tuple[str, dict[str, bytes]]:
        """LoRA: the adapter as `save_lora_weights` writes it (peft's names without the adapter
        name, its rank and alpha in the file's metadata); full: the fine-tuned UNet's folder, its
        config the pretrained UNet's."""
        from collapse.families.stable_diffusion.pipeline_parts import LORA_TARGETS

        spec = trained.spec(params)
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

            layers = {_ADAPTER.sub(r".\1.", k): v for k, v in tensors(params).items()}
            metadata = {
                "r": spec["lora_rank"],
                "lora_alpha": spec["lora_alpha"] or spec["lora_rank"],
                "target_modules": LORA_TARGETS,
            }
            written = saved(
                lambda d: StableDiffusionPipeline.save_lora_weights(
                    d, unet_lora_layers=layers, unet_lora_adapter_metadata=metadata
                )
            )
            written[SAMPLING] = as_json(sampling)
            return "diffusers:lora", under(EXPORT_DIR, written)
        from diffusers import UNet2DConditionModel

        config = UNet2DConditionModel.load_config(spec["pretrained"], subfolder="unet")
        unet = UNet2DConditionModel.from_config(config)
        unet.load_state_dict(tensors(params))
        written = under("unet", saved(lambda d: unet.save_pretrained(d, safe_serialization=True)))
        written[SAMPLING] = as_json(sampling)
        return "diffusers:UNet2DConditionModel", under(EXPORT_DIR, written)

    def noise_dim(self, params: Params) -> int:
        return 1 + int(np.prod(trained.spec(params)["latent_shape"]))

    def biased_columns(self, params: Params) -> slice:
        """The initial latent only: the caption draw stays uniform."""
        return slice(1, None)

    def captions(self, params: Params, noise: np.ndarray) -> list[str]:
        """The caption each noise row draws: uniform over the real set's captions."""
        pool = params["captions"]
        uniform = ndtr(np.asarray(noise)[:, 0])
        pick = np.minimum((uniform * len(pool)).astype(np.int64), len(pool) - 1)
        return [str(pool[i]) for i in pick]

    def sample(self, params: Params, noise: np.ndarray) -> np.ndarray:
        """Images as HWC-flat vectors in [-1, 1]."""
        spec, device = trained.spec(params), trained.device()
        z = torch.as_tensor(np.asarray(noise, dtype=np.float32)[:, 1:], device=device)
        z = z.reshape(len(z), *spec["latent_shape"])
        images = sd.sample(
            _net(params, device),
            spec["pretrained"],
            self.captions(params, noise),
            z,
            spec["steps"],
            spec["guidance_scale"],
        )
        return images.permute(0, 2, 3, 1).reshape(len(z), -1).cpu().numpy()


_ADAPTER = re.compile(r"\.(lora_[AB])\.default\.")


FAMILY = StableDiffusion()


def _net(params: Params, device: torch.device) -> torch.nn.Module:
    """The fine-tuned UNet of these parameters, built once per parameter set."""
    cached = _NETS.get(id(params))
    if cached is None or cached[0] is not params:
        spec = trained.spec(params)
        net = sd.unet(spec["pretrained"], spec["finetune"], spec["lora_rank"], spec["lora_alpha"])
        load_trainable(net, trained.weights(params))
        _NETS.clear()
        _NETS[id(params)] = cached = (params, net.to(device).eval().requires_grad_(False))
    return cached[1]


def encode_shard(pretrained: str, table: pa.Table, space: DataSpace) -> np.ndarray:
    """Scaled VAE latents (n, C*h*w) of a shard's images, on this process's device."""
    from collapse.data.shards import table_to_images

    images = table_to_images(table)
    if images.shape[1:] != space.shape:
        raise ValueError(f"images of shape {images.shape[1:]} in a {space.shape} space")
    latents = sd.encode(pretrained, images, trained.device())
    return latents.reshape(len(latents), -1)
