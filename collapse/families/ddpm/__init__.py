"""DDPM as a chain family (Ho et al. 2020; MAD's self-consuming diffusion loops): a noise
predictor trained on Ray Train through the same path as rectified flow, sampled with
diffusers' DDIM (deterministic) or ancestral DDPM steps.

Its parameters are the EMA weights plus a `spec` (net, data space, noise schedule, sampler,
steps), so any sampler process rebuilds the model from the stored `.npz`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from collapse.config.model_section import DDPMModel
from collapse.data.space import DataSpace
from collapse.families import trained
from collapse.families.ddpm import denoising
from collapse.families.export import (
    EXPORT_DIR,
    SAMPLING,
    VECTOR_FORMAT,
    as_json,
    image_unet,
    saved,
    under,
    vector_net,
)
from collapse.families.protocol import Params
from collapse.training.loop import Objective


def _schedule(config: DDPMModel, space: DataSpace) -> dict[str, Any]:
    """The scheduler's config without diffusers' bookkeeping (`_use_default_values` lists
    names in set order, which changes with the process's hash seed), so that a generation's
    stored spec, and so its params file, is the same bytes every run."""
    schedule = denoising.schedule(
        config.timesteps, config.beta_schedule, clip=space.kind == "image"
    )
    return {k: v for k, v in schedule.items() if not k.startswith("_")}


class DDPM(trained.NetFamily):
    name = "ddpm"

    def objective(self, config: DDPMModel, space: DataSpace) -> Objective:
        return denoising.epsilon_objective(_schedule(config, space))

    def to_params(
        self,
        weights: dict[str, np.ndarray],
        config: DDPMModel,
        space: DataSpace,
        steps: int,
        captions: Sequence[str] | None = None,
    ) -> Params:
        spec = {
            "kind": space.kind,
            "shape": list(space.shape),
            "net": config.net.as_dict(),
            "schedule": _schedule(config, space),
            "sampler": config.sampler,
            "steps": steps,
        }
        return trained.pack(weights, spec)

    def export(self, params: Params) -> tuple[str, dict[str, bytes]]:
        """The MLP as safetensors, or the UNet as a DDPMPipeline with the DDIM scheduler."""
        spec = trained.spec(params)
        sampling = _ddpm_sampling(spec)
        if spec["kind"] == "vector":
            return VECTOR_FORMAT, vector_net("ddpm", params, sampling)
        from diffusers import DDIMScheduler, DDPMPipeline

        scheduler = DDIMScheduler.from_config(spec["schedule"])
        pipeline = DDPMPipeline(unet=image_unet(params), scheduler=scheduler)
        written = saved(lambda d: pipeline.save_pretrained(d, safe_serialization=True))
        written[SAMPLING] = as_json(sampling)
        return "diffusers:DDPMPipeline", under(EXPORT_DIR, written)

    def biased_columns(self, params: Params) -> slice:
        """MAD's sampling bias scales the initial noise only, not the ancestral steps'."""
        return slice(0, int(np.prod(trained.spec(params)["shape"])))

    def noise_dim(self, params: Params) -> int:
        spec = trained.spec(params)
        return denoising.noise_per_row(int(np.prod(spec["shape"])), spec["steps"], spec["sampler"])

    def sample(self, params: Params, noise: np.ndarray) -> np.ndarray:
        """Images as HWC-flat vectors in [-1, 1]; noise rows read as CHW."""
        spec, device = trained.spec(params), trained.device()
        z = torch.as_tensor(np.asarray(noise, dtype=np.float32), device=device)
        shape = trained.space(params).model_shape
        with trained.inference(device):
            net = trained.net(params, device)
            x = denoising.sample(net, spec["schedule"], z, shape, spec["steps"], spec["sampler"])
        return trained.data_rows(params, x)

    def sdedit(self, params: Params, x: np.ndarray, level: float, noise: np.ndarray) -> np.ndarray:
        """SDEdit: noise HWC-flat rows to `level` of the schedule and DDIM them back."""
        spec, device = trained.spec(params), trained.device()
        x0, z = trained.model_input(params, x, device), trained.model_noise(params, noise, device)
        with trained.inference(device):
            net = trained.net(params, device)
            out = denoising.denoise_from(net, spec["schedule"], x0, z, level, spec["steps"])
        return trained.data_rows(params, out)


def _ddpm_sampling(spec: dict[str, Any]) -> dict[str, Any]:
    """How the chain samples a DDPM: its scheduler and DDIM's eta."""
    return {
        "sampler": spec["sampler"],
        "scheduler": "DDIMScheduler",
        "num_inference_steps": int(spec["steps"]),
        "eta": denoising.SAMPLER_ETA[spec["sampler"]],
        "timestep_input": "the net reads t = k / time_scale for DDPM step k",
        "schedule": spec["schedule"],
    }


FAMILY = DDPM()
