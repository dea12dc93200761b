"""The exponential moving average of the trained weights: what a generation samples from."""

from __future__ import annotations

import copy

import torch

from collapse.training.weights import frozen_names, trainable_state


class EMA:
    """Exponential moving average of the trained weights, with the usual warm-up (decay at step
    n is min(decay, (1 + n) / (10 + n)), as in diffusers' EMAModel), so a short generation is
    not sampled from weights that are mostly still their initialisation. One fused foreach lerp
    per step over the trainable parameters, the decay a Python float: no host sync."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.frozen = frozen_names(model)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._mine: list[torch.Tensor] = [
            p for n, p in self.module.named_parameters() if n not in self.frozen
        ]
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        theirs: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
        torch._foreach_lerp_(self._mine, theirs, 1.0 - decay)
        for mine, source in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(source)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return trainable_state(self.module, self.frozen)
