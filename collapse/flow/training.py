"""The per-generation training loop of a velocity field: plain PyTorch over an iterator of batches.

The same function runs in a unit test, under torchrun or inside a Ray Train worker (DESIGN.md):
the caller brings the model (DDP-wrapped or not), the batches and a `checkpoint` callback. On a
GPU it uses what makes a step cheap: bf16 autocast, channels_last images, a fused AdamW, no host
syncs in the loop (the loss is accumulated on the device and read only at checkpoints), and an
EMA of the weights, which is what gets sampled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from collapse.flow.interpolant import flow_matching_loss, sample_time

# Rank r's noise seeds are rank 0's shifted by r * 2^40 (more steps than any generation
# takes); rank 0 keeps the seeds it had before each rank drew its own.
RANK_STRIDE = 2**40


class Diverged(ArithmeticError):
    """The loss became NaN or infinite: retrying the same steps would diverge again."""


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    precision: str = "fp32"  # "fp32" | "bf16"
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    log_every: int = 10  # a point of the loss curve: the mean over this many steps


def frozen_names(model: torch.nn.Module) -> set[str]:
    """Parameters that do not train (a LoRA fine-tune's base model)."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def trainable_state(model: torch.nn.Module, frozen: set[str]) -> dict[str, torch.Tensor]:
    """What a generation changed: the state without the frozen parameters, so a LoRA
    fine-tune's checkpoints and weights hold the adapter, not a copy of the pretrained UNet."""
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def load_trainable(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load a `trainable_state`; anything else missing or unexpected is an error."""
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = set(missing) - frozen_names(model)
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit the model: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )


class EMA:
    """Exponential moving average of the trained weights, with the usual warm-up (decay at step
    n is min(decay, (1 + n) / (10 + n)), as in diffusers' EMAModel), so a short generation is
    not sampled from weights that are mostly still their initialisation. One fused foreach lerp
    per step over the trainable parameters, the decay a Python float: no host sync."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.frozen = frozen_names(model)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._mine = [p for n, p in self.module.named_parameters() if n not in self.frozen]
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        theirs = [p for p in model.parameters() if p.requires_grad]
        torch._foreach_lerp_(self._mine, theirs, 1.0 - decay)
        for mine, source in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(source)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return trainable_state(self.module, self.frozen)


@dataclass
class TrainState:
    """Everything a resumed generation needs to continue exactly where it stopped."""

    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    step: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss) points
    window: tuple[float, int] = (0.0, 0)  # loss sum and steps since the curve's last point

    @classmethod
    def create(
        cls, model: torch.nn.Module, settings: TrainSettings, device: torch.device
    ) -> TrainState:
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=settings.lr,
            weight_decay=0.0,
            fused=device.type == "cuda",
        )
        return cls(model, EMA(unwrap(model), settings.ema_decay), optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": trainable_state(unwrap(self.model), self.ema.frozen),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "curve": list(self.curve),
            "window": self.window,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_trainable(unwrap(self.model), state["model"])
        load_trainable(self.ema.module, state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.curve = [(int(s), float(v)) for s, v in state.get("curve", [])]  # older: none
        pending, steps = state.get("window", (0.0, 0))
        self.window = (float(pending), int(steps))


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


Objective = Callable[
    [torch.nn.Module, torch.Tensor, torch.Tensor, torch.Generator, dict[str, torch.Tensor]],
    torch.Tensor,
]


def flow_matching_objective(
    model: torch.nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    generator: torch.Generator,
    batch: dict[str, torch.Tensor] | None = None,
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
    rank: int = 0,
) -> TrainState:
    """Run steps state.step .. settings.steps; `checkpoint(state, mean_loss)` every
    `checkpoint_every` steps and at the end. Noise and times are seeded by (seed, step, rank),
    so a resumed run draws what the uninterrupted one would have, and data-parallel workers
    (`rank`) draw different noise for their different rows. `make_pairs` builds (x0, x1) from
    a batch (default `pairs`; OCAR's comes from `collapse.flow.online`); `objective(model, x0,
    x1, generator, batch)` is the loss (default flow matching; DDPM's and Stable Diffusion's,
    which reads the batch's caption tokens, are in `collapse.diffusion`). The loss curve
    `state.curve` gets a point every `log_every` steps and at the end, the mean loss of the
    steps since the last point, kept on the device and read at checkpoints only."""
    make_pairs = make_pairs or pairs
    objective = objective or flow_matching_objective
    model = state.model
    model.train()
    channels_last = device.type == "cuda"
    generator = torch.Generator(device=device)
    running = torch.zeros((), device=device)
    count = 0
    window = torch.tensor(state.window[0], device=device)  # loss since the curve's last point
    in_window = state.window[1]  # (a resumed attempt continues the checkpoint's window)
    points: list[tuple[int, torch.Tensor]] = []  # the curve's points, on the device
    trained = [p for p in model.parameters() if p.requires_grad]
    while state.step < settings.steps:
        generator.manual_seed(seed * 1_000_003 + state.step + rank * RANK_STRIDE)
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        x0, x1 = make_pairs(batch, generator)
        if channels_last and x1.dim() == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
            x1 = x1.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"
        ):
            loss = objective(model, x0, x1, generator, batch)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, settings.grad_clip)
        state.optimizer.step()
        state.ema.update(unwrap(model), state.step)
        running += loss.detach()
        window += loss.detach()
        in_window += 1
        count += 1
        state.step += 1
        if state.step % settings.log_every == 0 or state.step == settings.steps:
            points.append((state.step, window / in_window))  # a device op: no host sync
            window, in_window = torch.zeros((), device=device), 0
        if state.step % settings.checkpoint_every == 0 or state.step == settings.steps:
            loss_value = float(running / count)  # the loop's host sync, with the curve's
            *values, pending = torch.stack([*(v for _, v in points), window]).tolist()
            state.curve.extend(zip([s for s, _ in points], values, strict=True))
            state.window = (pending, in_window)
            points.clear()
            if not math.isfinite(loss_value):
                raise Diverged(
                    f"training diverged: the mean loss of steps {state.step - count + 1}-"
                    f"{state.step} is {loss_value}; lower train.lr or check the data "
                    "(earlier generations are kept)"
                )
            checkpoint(state, loss_value)
            running.zero_()
            count = 0
    return state
