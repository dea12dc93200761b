"""DDPM (Ho et al. 2020) with diffusers' schedulers: the epsilon objective and the samplers.

The noise schedule is diffusers' `DDPMScheduler` (its `add_noise` makes x_k from data and noise),
sampling is diffusers' `DDIMScheduler`: eta = 0 is DDIM's deterministic sampler, eta = 1 the
ancestral DDPM sampler. As everywhere in collapse, a sample is a function of its noise row: the
row holds the initial noise and, for the ancestral sampler, each step's noise after it, so a
sample does not depend on batching or on which worker draws it.

Nets see time as t in [0, 1] scaled by 999 (`collapse.training.nets`); DDPM's integer step k is
passed as t = k / 999, so the net's embedding sees k itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from collapse.training.nets import TIMESTEP_SCALE

SAMPLER_ETA = {"ddim": 0.0, "ddpm": 1.0}


def schedule(timesteps: int, beta_schedule: str, clip: bool) -> dict[str, Any]:
    """The scheduler config both training and sampling are built from; `clip` keeps predicted
    images in [-1, 1] (never for vectors, whose range is the data's)."""
    return DDPMScheduler(
        num_train_timesteps=timesteps,
        beta_schedule=beta_schedule,
        clip_sample=clip,
        prediction_type="epsilon",
    ).config


def epsilon_objective(
    config: dict[str, Any],
) -> Callable[..., torch.Tensor]:
    """E ||eps(x_k, k) - eps||^2 with k uniform over the training steps (Ho et al., eq. 14)."""
    scheduler = DDPMScheduler.from_config(config)
    steps = scheduler.config.num_train_timesteps

    def objective(net, noise, x, generator, batch=None):
        k = torch.randint(0, steps, (len(x),), generator=generator, device=x.device)
        noisy = scheduler.add_noise(x, noise, k)
        prediction = net(noisy, k.to(x.dtype) / TIMESTEP_SCALE)
        return (prediction.float() - noise.float()).square().mean()

    return objective


def noise_per_row(dim: int, steps: int, sampler: str) -> int:
    """Initial noise, plus each step's for the ancestral sampler."""
    return dim * (1 + (steps if SAMPLER_ETA[sampler] > 0 else 0))


@torch.no_grad()
def denoise_from(
    net: torch.nn.Module,
    config: dict[str, Any],
    x: torch.Tensor,
    noise: torch.Tensor,
    level: float,
    steps: int,
) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): noise `x` to step level * T with diffusers' `add_noise`, then
    DDIM down to 0 over the sampling steps that remain below it."""
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(steps, device=x.device)
    last = scheduler.config.num_train_timesteps - 1
    k = int(round(level * last))
    timesteps = [t for t in scheduler.timesteps if int(t) <= k] or [scheduler.timesteps[-1]]
    x = scheduler.add_noise(x, noise, torch.full((len(x),), int(timesteps[0]), device=x.device))
    for t in timesteps:
        time = torch.full((len(x),), float(t) / TIMESTEP_SCALE, device=x.device, dtype=x.dtype)
        x = scheduler.step(net(x, time).float(), t, x, eta=0.0).prev_sample
    return x


@torch.no_grad()
def sample(
    net: torch.nn.Module,
    config: dict[str, Any],
    noise: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    sampler: str,
) -> torch.Tensor:
    """Denoise from each noise row over `steps` steps."""
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(steps, device=noise.device)
    eta = SAMPLER_ETA[sampler]
    n, dim = len(noise), int(torch.tensor(shape).prod())
    x = noise[:, :dim].reshape(n, *shape)
    for i, k in enumerate(scheduler.timesteps):
        t = torch.full((n,), float(k) / TIMESTEP_SCALE, device=noise.device, dtype=x.dtype)
        eps = net(x, t).float()
        step_noise = None
        if eta > 0:
            step_noise = noise[:, dim * (i + 1) : dim * (i + 2)].reshape(n, *shape)
        x = scheduler.step(eps, k, x, eta=eta, variance_noise=step_noise).prev_sample
    return x
