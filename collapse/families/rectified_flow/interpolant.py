"""The rectified-flow interpolant and its flow-matching loss (Liu et al. 2022, arXiv 2209.03003).

1-RF and every reflow round train the same regression: along the straight line
x_t = t*x1 + (1-t)*x0 between a noise point x0 and a data point x1, a velocity field v(x, t)
regresses the constant velocity x1 - x0 (Liu et al., eq. 1). The minimiser is the conditional
mean E[x1 - x0 | x_t = x], whose ODE keeps the marginals of x_t; only the coupling of (x0, x1)
differs between 1-RF (independent) and reflow (pairs from the previous model's ODE).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VelocityField = Callable[[Tensor, Tensor], Tensor]
"""net(x, t): x of shape (B, ...), t of shape (B,), the velocity with the shape of x."""


def _per_row(t: Tensor, like: Tensor) -> Tensor:
    """t of shape (B,) viewed as (B, 1, ..., 1), so one time applies to one whole example."""
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def interpolate(x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """x_t = t*x1 + (1-t)*x0: noise at t=0, data at t=1, the convention of Liu et al."""
    t = _per_row(t, x1)
    return t * x1 + (1 - t) * x0


def target_velocity(x0: Tensor, x1: Tensor) -> Tensor:
    """x1 - x0, the time derivative of the straight interpolant, i.e. the regression target."""
    return x1 - x0


def sample_time(
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    schedule: str = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
) -> Tensor:
    """Training times in the open interval (0, 1), shape (batch,).

    "uniform" is Liu et al.'s t ~ U(0, 1); "logit_normal" is sigmoid(N(mean, std^2)) (Esser et
    al. 2024, SD3, Sec. 3.1), which spends more of the budget at intermediate times where the
    regression is hardest. Both are clamped one machine epsilon inside (0, 1): float rounding
    can otherwise produce the endpoints exactly, where x_t is pure noise or pure data.
    `generator` must live on `device`.
    """
    if schedule == "uniform":
        t = torch.rand(batch, generator=generator, device=device)
    elif schedule == "logit_normal":
        z = torch.randn(batch, generator=generator, device=device)
        t = torch.sigmoid(mean + std * z)
    else:
        raise ValueError(f"schedule must be 'uniform' or 'logit_normal', got {schedule!r}")
    eps = torch.finfo(t.dtype).eps
    return t.clamp_(eps, 1 - eps)


def flow_matching_loss(net: VelocityField, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """E ||v(x_t, t) - (x1 - x0)||^2 as a mean over all elements (Liu et al., eq. 1).

    The difference is taken in the wider of the two dtypes, so a bf16 prediction under autocast
    is compared with the fp32 target in fp32.
    """
    prediction = net(interpolate(x0, x1, t), t)
    return (prediction - target_velocity(x0, x1)).square().mean()


def flow_matching_objective(
    model: VelocityField,
    x0: Tensor,
    x1: Tensor,
    generator: torch.Generator,
    batch: dict[str, Tensor] | None = None,
) -> Tensor:
    """Rectified flow's training objective (`collapse.training.loop.Objective`): the
    flow-matching loss at times drawn uniformly from (0, 1) by the step's generator."""
    t = sample_time(len(x1), generator=generator, device=x1.device)
    return flow_matching_loss(model, x0, x1, t)
