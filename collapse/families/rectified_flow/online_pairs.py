"""OCAR / ORA Reflow (Zhu et al., arXiv 2412.08175): the online, memory-light mitigation.

Nothing is stored between generations. Each mini-batch is built on the fly with the frozen
previous model: its real rows are paired with the noise that model's reverse ODE (or reverse
SDE, the paper's ORAS variant) recovers from them, and the rest of the batch is synthetic
forward pairs (z, ODE(z)) from fresh noise, at a fixed real share. For high-dimensional data
this avoids writing and reading a generation of pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from collapse.families.rectified_flow.samplers import euler_forward, euler_reverse, reverse_sde

Pairs = tuple[torch.Tensor, torch.Tensor]


def online_pairs(
    frozen: torch.nn.Module,
    batch_size: int,
    row_shape: tuple[int, ...],
    forward_steps: int,
    reverse_steps: int,
    sde_sigma: float | None = None,
) -> Callable[[dict[str, torch.Tensor], torch.Generator], Pairs]:
    """A `make_pairs(batch, generator)` for `collapse.training.loop.train`: the batch's real
    rows (`x`, possibly none) with their reverse-flow noise, topped up to `batch_size` rows with
    forward pairs of the frozen model."""

    def make(batch: dict[str, torch.Tensor], generator: torch.Generator) -> Pairs:
        x0s, x1s = [], []
        device = generator.device
        if "x" in batch:
            real = batch["x"]
            if real.dtype == torch.uint8:
                real = real.float() / 127.5 - 1.0
            if sde_sigma is None:
                noise = euler_reverse(frozen, real, reverse_steps)
            else:
                noise = reverse_sde(sde_sigma, generator)(frozen, real, reverse_steps)
            x0s.append(noise)
            x1s.append(real)
        synthetic = batch_size - sum(len(x) for x in x1s)
        if synthetic > 0:
            z = torch.randn((synthetic, *row_shape), generator=generator, device=device)
            x0s.append(z)
            x1s.append(euler_forward(frozen, z, forward_steps))
        return torch.cat(x0s), torch.cat(x1s)

    return make
