"""What the benchmarks share: the device, a measured matmul peak, FLOPs per image, a random
image dataset in shards, and the plain PyTorch loops our paths are compared against.

The plain loops are what a PyTorch user would write for the same model on one device: data
already on the device, the same batch, bf16 autocast, channels_last, fused AdamW and optional
torch.compile, nothing else (no EMA, no clipping, no checkpoints, no data pipeline). They are
the ceiling; our path's figure over theirs is the ratio each benchmark prints.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

MIB = 2**20


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(on: torch.device) -> None:
    if on.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(on: torch.device) -> float:
    """FLOP/s of a large square matmul, bf16 on a GPU (fp32 on a CPU), measured here: MFU's
    denominator, so MFU does not rest on a datasheet figure."""
    n, dtype = (8192, torch.bfloat16) if on.type == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=on, dtype=dtype)
    b = torch.randn(n, n, device=on, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(on)
    repeats = 20 if on.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(on)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def train_flops_per_image(net: torch.nn.Module, shape: tuple[int, ...], on: torch.device) -> float:
    """Forward + backward FLOPs of one image (torch's FLOP counter over a batch of 4)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(4, *shape, device=on)
    t = torch.rand(4, device=on)
    counter = FlopCounterMode(display=False)
    with counter:
        net(x, t).float().square().mean().backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 4


def image_net(preset: str, shape: tuple[int, int, int], on: torch.device) -> torch.nn.Module:
    from collapse.training.nets import build_velocity_net

    torch.manual_seed(0)
    net = build_velocity_net("image", shape, {"preset": preset}).to(on)
    if on.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net


def write_images(root: str, rows: int, shape: tuple[int, int, int], rows_per_shard: int) -> dict:
    """A prepared dataset of `rows` random uint8 images in shards; returns its index."""
    from collapse.data.dataset import write_dataset
    from collapse.data.shards import images_to_table
    from collapse.store.storage import Storage

    rng = np.random.default_rng(0)

    def tables():
        for first in range(0, rows, rows_per_shard):
            n = min(rows_per_shard, rows - first)
            images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
            yield images_to_table(images, "real", None, first_id=first)

    return write_dataset(
        Storage(root), tables(), source="bench", split="train", rows_per_shard=rows_per_shard
    )


def plain_train_rate(
    net: torch.nn.Module,
    shape: tuple[int, ...],
    batch: int,
    steps: int,
    on: torch.device,
    bf16: bool,
    compile_: bool,
) -> float:
    """Images/s of the plain rectified-flow training loop."""
    from collapse.families.rectified_flow.interpolant import flow_matching_loss, sample_time

    model = torch.compile(net) if compile_ else net
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=on.type == "cuda")
    memory = torch.channels_last if on.type == "cuda" and len(shape) == 3 else None
    x1 = torch.rand(batch, *shape, device=on) * 2 - 1
    if memory is not None:
        x1 = x1.contiguous(memory_format=memory)

    def step() -> None:
        x0 = torch.randn_like(x1)
        with torch.autocast(on.type, dtype=torch.bfloat16, enabled=bf16):
            loss = flow_matching_loss(model, x0, x1, sample_time(batch, device=on))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(max(3, steps // 10)):  # warm-up (and compilation)
        step()
    sync(on)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(on)
    return steps * batch / (time.perf_counter() - start)


def plain_sample_rate(
    net: torch.nn.Module, shape: tuple[int, ...], n: int, batch: int, steps: int, on: torch.device
) -> float:
    """Images/s of a plain Euler loop over `n` images in batches (bf16 autocast on a GPU)."""
    from collapse.families.rectified_flow.samplers import euler_forward

    net = net.eval()
    with torch.no_grad():
        z = torch.randn(min(batch, n), *shape, device=on)
        with torch.autocast(on.type, dtype=torch.bfloat16, enabled=on.type == "cuda"):
            euler_forward(net, z, steps)  # warm-up
        sync(on)
        start = time.perf_counter()
        for first in range(0, n, batch):
            z = torch.randn(min(batch, n - first), *shape, device=on)
            with torch.autocast(on.type, dtype=torch.bfloat16, enabled=on.type == "cuda"):
                x = euler_forward(net, z, steps)
            x.float().cpu()
        sync(on)
    return n / (time.perf_counter() - start)


def start_ray() -> None:
    """The cluster at RAY_ADDRESS, or a local one, quiet so that the figures stay readable."""
    import os

    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if not ray.is_initialized():
        import logging

        ray.init(
            address=os.environ.get("RAY_ADDRESS") or None,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    ray.data.DataContext.get_current().enable_progress_bars = False


def parser(doc: str) -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    made.add_argument(
        "--tiny", action="store_true", help="a seconds-long run at toy size (what CI runs)"
    )
    return made


def line(label: str, value: Any) -> None:
    print(f"  {label:<44} {value}")
