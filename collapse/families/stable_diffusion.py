"""Stable Diffusion fine-tunes as a chain family (MAD's text-to-image loops): generation t
fine-tunes a pretrained pipeline's UNet (fully, or a LoRA adapter) on Ray Train and samples
images for captions of the real set.

It trains on VAE latents, not pixels: the chain caches the latents of the real set once, and
those of a generation's samples when a later generation first trains on them
(`collapse.latents`), so the frozen VAE encodes each image once per run. Its parameters are
only what was fine-tuned (the LoRA weights or the UNet) plus a `spec` and the real set's
`captions`: the frozen parts are read from `model.pretrained` by whichever process samples.

A sample is a function of its noise row, as in every family: column 0 picks the caption
(as Phi(noise) does a KDE's point), the rest is the initial latent; MAD's sampling bias scales
only the latent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch
from scipy.special import ndtr

from collapse import export
from collapse.config.models import StableDiffusionModel
from collapse.data.space import DataSpace
from collapse.diffusion import stable_diffusion as sd
from collapse.families import trained
from collapse.families.protocol import Params, TrainedFamily
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
        return export.stable_diffusion(params)

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


def encode(pretrained: str, table: pa.Table, space: DataSpace) -> np.ndarray:
    """Scaled VAE latents (n, C*h*w) of a shard's images, on this process's device."""
    from collapse.data.shards import table_to_images

    images = table_to_images(table)
    if images.shape[1:] != space.shape:
        raise ValueError(f"images of shape {images.shape[1:]} in a {space.shape} space")
    latents = sd.encode(pretrained, images, trained.device())
    return latents.reshape(len(latents), -1)


def training_batch(
    table: pa.Table, pretrained: str, latent_shape: Sequence[int]
) -> dict[str, np.ndarray]:
    """Latent shard rows as the UNet trains on them: the latent, and its caption's token ids
    (tokenized here, where the feed reads the shards, so the training loop never sees a
    string)."""
    latents = table.column("latent").combine_chunks().flatten().to_numpy()
    generation = table.column("generation").fill_null(-1).to_numpy().astype(np.int32)
    return {
        "x": latents.reshape(table.num_rows, *latent_shape).astype(np.float32),
        "input_ids": sd.tokenize(pretrained, table.column("caption").to_pylist()),
        "generation": generation,
        "id": table.column("id").to_numpy(),
    }
