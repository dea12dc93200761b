"""The per-generation training loop of every trained family: plain PyTorch over batches.

The same function runs in a unit test, under torchrun or inside a Ray Train worker
the caller brings the model (DDP-wrapped or not), the batches, the family's objective and a
`checkpoint` callback. On a GPU it uses what makes a step cheap: bf16 autocast, channels_last
images, a fused AdamW, no host syncs in the loop (the loss is accumulated on the device and read
only at checkpoints), and an EMA of the weights, which is what gets sampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from collapse.training.state import TrainSettings, TrainState
from collapse.training.weights import unwrap

# Rank r's noise seeds are rank 0's shifted by r * 2^40 (more steps than any generation
# takes); rank 0 keeps the seeds it had before each rank drew its own.
RANK_STRIDE = 2**40

Objective = Callable[
    [torch.nn.Module, torch.Tensor, torch.Tensor, torch.Generator, dict[str, torch.Tensor]],
    torch.Tensor,
]
"""objective(model, x0, x1, generator, batch) -> the mini-batch loss: noise x0, data x1."""

Pairing = Callable[[dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""make_pairs(batch, generator) -> (x0, x1): the noise and data a step trains on."""


class Diverged(ArithmeticError):
    """The loss became NaN or infinite: retrying the same steps would diverge again."""


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


def train(
    state: TrainState,
    batches: Iterator[dict[str, torch.Tensor]],
    settings: TrainSettings,
    device: torch.device,
    checkpoint: Callable[[TrainState, float], None] = lambda state, loss: None,
    *,
    objective: Objective,
    seed: int = 0,
    make_pairs: Pairing | None = None,
    rank: int = 0,
) -> TrainState:
    """Run steps state.step .. settings.steps; `checkpoint(state, mean_loss)` every
    `checkpoint_every` steps and at the end. Noise and times are seeded by (seed, step, rank), so a
    resumed run draws what the uninterrupted one would have, and data-parallel workers (`rank`) draw
    different noise for their different rows. `make_pairs` builds (x0, x1) from a batch (default
    `pairs`; OCAR's comes from `collapse.families.rectified_flow.online_pairs`); `objective` is the
    family's loss (rectified flow's
    `collapse.families.rectified_flow.interpolant.flow_matching_objective`, DDPM's and Stable
    Diffusion's, which reads the batch's caption tokens, in `collapse.families.ddpm.denoising` and
    `collapse.families.stable_diffusion.pipeline_parts`). The loss curve `state.curve` gets a point
    every `log_every` steps and at the end, the mean loss of the steps since the last point, kept on
    the device and read at checkpoints only."""
    make_pairs = make_pairs or pairs
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
