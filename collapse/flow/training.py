"""The per-generation training loop of a velocity field: plain PyTorch over an iterator of batches.

The same function runs in a unit test, under torchrun or inside a Ray Train worker (DESIGN.md):
the caller brings the model (DDP-wrapped or not), the batches and a `checkpoint` callback. On a
GPU it uses what makes a step cheap: bf16 autocast, channels_last images, a fused AdamW, no host
syncs in the loop (the loss is accumulated on the device and read only at checkpoints), and an
EMA of the weights, which is what gets sampled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from collapse.flow.interpolant import flow_matching_loss, sample_time


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    precision: str = "fp32"  # "fp32" | "bf16"
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 500


class EMA:
    """Exponential moving average of the weights, with the usual warm-up (decay at step n is
    min(decay, (1 + n) / (10 + n)), as in diffusers' EMAModel), so a short generation is not
    sampled from weights that are mostly still their initialisation. One fused foreach lerp per
    step, the decay a Python float: no host sync."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(list(self.module.parameters()), list(model.parameters()), 1.0 - decay)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)


@dataclass
class TrainState:
    """Everything a resumed generation needs to continue exactly where it stopped."""

    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    step: int = 0

    @classmethod
    def create(
        cls, model: torch.nn.Module, settings: TrainSettings, device: torch.device
    ) -> TrainState:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=0.0, fused=device.type == "cuda"
        )
        return cls(model, EMA(unwrap(model), settings.ema_decay), optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(),
            "ema": self.ema.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or compile) wrapper: what gets saved, averaged and sampled."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def pairs(
    batch: dict[str, torch.Tensor], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, x1): rows with a stored noise partner (`paired`) keep it, the others get fresh noise
    (an independent 1-RF coupling), so one batch can mix reflow pairs and real data."""
    x1 = batch["x"]
    if x1.dtype == torch.uint8:  # images travel as bytes; scale on the device, to [-1, 1]
        x1 = x1.float() / 127.5 - 1.0
    fresh = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    if "noise" not in batch:
        return fresh, x1
    paired = batch["paired"].view(-1, *([1] * (x1.dim() - 1))).to(torch.bool)
    return torch.where(paired, batch["noise"].to(x1.dtype), fresh), x1


Objective = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def flow_matching_objective(
    model: torch.nn.Module, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Rectified flow's loss at times drawn uniformly from (0, 1)."""
    t = sample_time(len(x1), generator=generator, device=x1.device)
    return flow_matching_loss(model, x0, x1, t)


def train(
    state: TrainState,
    batches: Iterator[dict[str, torch.Tensor]],
    settings: TrainSettings,
    device: torch.device,
    checkpoint: Callable[[TrainState, float], None] = lambda state, loss: None,
    seed: int = 0,
    make_pairs: Callable[
        [dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, torch.Tensor]
    ]
    | None = None,
    objective: Objective | None = None,
) -> TrainState:
    """Run steps state.step .. settings.steps; `checkpoint(state, mean_loss)` every
    `checkpoint_every` steps and at the end. Noise and times are seeded by (seed, step), so a
    resumed run draws what the uninterrupted one would have. `make_pairs` builds (x0, x1) from
    a batch (default `pairs`; OCAR's comes from `collapse.flow.online`); `objective(model, x0,
    x1, generator)` is the loss (default flow matching; DDPM's is `collapse.diffusion.ddpm`)."""
    make_pairs = make_pairs or pairs
    objective = objective or flow_matching_objective
    model = state.model
    model.train()
    channels_last = device.type == "cuda"
    generator = torch.Generator(device=device)
    running = torch.zeros((), device=device)
    count = 0
    while state.step < settings.steps:
        generator.manual_seed(seed * 1_000_003 + state.step)
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        x0, x1 = make_pairs(batch, generator)
        if channels_last and x1.dim() == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
            x1 = x1.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"
        ):
            loss = objective(model, x0, x1, generator)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        state.optimizer.step()
        state.ema.update(unwrap(model), state.step)
        running += loss.detach()
        count += 1
        state.step += 1
        if state.step % settings.checkpoint_every == 0 or state.step == settings.steps:
            checkpoint(state, float(running / count))  # the loop's one host sync
            running.zero_()
            count = 0
    return state
