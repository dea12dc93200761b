"""Samplers of a rectified flow and the noise-image pairs that reflow trains on.

Every sampler has one signature, `sampler(net, x, steps, callback=None) -> x`, so a reflow
strategy takes "how to find a real image's noise partner" as a value: `euler_reverse` or
`reverse_sde(sigma)`. All integrate on the uniform grid t_i = i/steps, run under no_grad, keep
the dtype and device of x and never read a value back to the host inside the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from collapse.families.rectified_flow.interpolant import VelocityField

Callback = Callable[[int, float, Tensor], None]
"""callback(i, t, x) after step i, with t the time that x has reached."""


class Sampler(Protocol):
    def __call__(
        self, net: VelocityField, x: Tensor, steps: int, callback: Callback | None = None
    ) -> Tensor: ...


def _time(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


@torch.no_grad()
def euler_forward(
    net: VelocityField,
    x: Tensor,
    steps: int,
    callback: Callback | None = None,
    start: float = 0.0,
) -> Tensor:
    """Noise -> data: Euler on dx/dt = v(x, t) from t=`start` (0: pure noise) to 1, Liu et
    al.'s sampler; a later start denoises a partly noised sample (SDEdit).

    Deterministic, so each sample is a function of its noise and (noise, sample) is a reflow
    pair (Liu et al., Algorithm 1)."""
    h = (1.0 - start) / steps
    for i in range(steps):
        x = x + h * net(x, _time(start + i * h, x)).to(x.dtype)
        if callback is not None:
            callback(i, start + (i + 1) * h, x)
    return x


def _reverse(
    net: VelocityField,
    x: Tensor,
    steps: int,
    callback: Callback | None,
    sigma: float,
    generator: torch.Generator | None,
) -> Tensor:
    """One loop for the reverse ODE and SDE, so that sigma=0 is the ODE bit for bit."""
    h = 1.0 / steps
    for i in range(steps):
        t = (steps - i) / steps
        v = net(x, _time(t, x)).to(x.dtype)
        step = x - h * v
        if sigma > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            step = (
                step + (0.5 * sigma**2 * h) * (t * v - x) + sigma * math.sqrt((1 - t) * h) * noise
            )
        x = step
        if callback is not None:
            callback(i, (steps - i - 1) / steps, x)
    return x


@torch.no_grad()
def euler_reverse(
    net: VelocityField, x: Tensor, steps: int, callback: Callback | None = None
) -> Tensor:
    """Data -> noise: Euler on the same ODE from t=1 to 0.

    A real image has no noise partner; the reverse ODE gives the one the current model pairs
    with it, z0, so (z0, x1) is a real reverse pair (Zhu et al., arXiv 2412.08175, RCA / RA
    Reflow)."""
    return _reverse(net, x, steps, callback, 0.0, None)


def reverse_sde(sigma: float, generator: torch.Generator | None = None) -> Sampler:
    """Data -> noise with injected noise of strength sigma: a sampler like `euler_reverse`.

    Zhu et al. (arXiv 2412.08175 v2, ORAS Reflow) replace the reverse ODE by a reverse SDE of
    noise strength sigma so that the recovered noise of real data is more Gaussian and diverse;
    the sources at hand do not give its discretisation, so this implements the marginal-keeping
    one, documented here.

    For the linear interpolant with x0 ~ N(0, I), Tweedie's formula gives the score of x_t from
    the velocity: E[x0 | x_t=x] = x - t v, so s(x, t) = (t v - x) / (1 - t). For any diffusion
    g(t), dx = [v - g^2/2 s] dt + g dW run backwards in time has the same marginals p_t as the
    ODE (the Fokker-Planck terms of the added drift and of the noise cancel; Song et al. 2021,
    eq. 6 and Appendix D.1; Karras et al. 2022, eq. 6). We take g(t)^2 = sigma^2 (1 - t): it
    equals sigma at the noise end and vanishes at the data end, where the score of image data
    is singular, so g^2/2 s = sigma^2/2 (t v - x) needs no division. One Euler-Maruyama step
    from t to t - h is

        x <- x - h v + h sigma^2/2 (t v - x) + sigma sqrt((1 - t) h) xi,   xi ~ N(0, I).

    With the exact field z0 is N(0, I) for every sigma; the added drift is a Langevin
    correction toward the model's p_t, so when the real data are not what the model generates,
    the deviation of the recovered noise from N(0, I) is damped instead of transported, and one
    image gets many noise partners. sigma=0 is `euler_reverse`, bit for bit. `generator` must
    live on the device of x.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")

    @torch.no_grad()
    def sampler(
        net: VelocityField, x: Tensor, steps: int, callback: Callback | None = None
    ) -> Tensor:
        return _reverse(net, x, steps, callback, sigma, generator)

    return sampler


def make_pairs(net: VelocityField, z: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """(z, ODE(z)): the synthetic forward pairs of a reflow round (Liu et al., Algorithm 1)."""
    return z, euler_forward(net, z, steps)


def reverse_pairs(
    sampler: Sampler, net: VelocityField, x1: Tensor, steps: int
) -> tuple[Tensor, Tensor]:
    """(reverse(x1), x1): real data with the noise the model pairs it with (Zhu et al.)."""
    return sampler(net, x1, steps), x1
