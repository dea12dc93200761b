"""Cost of a rectified-flow generation on Ray Train, against a plain PyTorch loop.

    python benchmarks/train_overhead.py [--steps 300] [--batch-size 256]

Prints (a measurement, not a test):
1. the fixed cost of one generation on Ray Train: wall time of `train_generation` with a single
   step, with 2 CPU workers (DDP, checkpoint to storage) and in local mode (`train.workers: 0`);
2. the step loop itself: `collapse.flow.training.train` against a plain PyTorch loop of the same
   MLP, batch and optimizer, in this process, rows/s of each and the ratio.
On a GPU (not on this CPU machine) the same script measures the device's img/s; the UNet
comparison with MFU belongs to `collapse bench train` (issue #10).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch


def fixed_cost(root: str) -> None:
    import ray

    from collapse.config import validate
    from collapse.data.mix import plan_mix
    from collapse.data.space import DataSpace
    from collapse.distributed.datasets import training_dataset
    from collapse.distributed.train import train_generation
    from collapse.prepare import prepare
    from collapse.storage import Storage

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    pool = prepare("toy:mog8", f"{root}/pool", limit=4096)
    space = DataSpace.of_index(pool.index)
    plan = plan_mix("fully_synthetic", 0, 4096, 0.0, 4096, [])
    real = (Storage(pool.uri), pool.index["shards"])
    for workers in (2, 0):
        config = validate(
            {
                "data": {"real": "toy:mog8", "n_real": 4096, "n_train": 4096},
                "model": {"family": "rectified_flow", "net": {"hidden": 128, "depth": 3}},
                "train": {
                    "workers": workers,
                    "cpus_per_worker": 0.5,
                    "steps": 1,
                    "batch_size": 256,
                },
            }
        )
        run = Storage(f"{root}/run-{workers}")
        start = time.perf_counter()
        train_generation(config, run, 0, training_dataset(plan, real, {}, space, 0), space, None)
        label = f"{workers} CPU workers (DDP, checkpoints)" if workers else "local mode"
        print(f"one-step generation on Ray Train, {label}: {time.perf_counter() - start:.1f} s")
    ray.shutdown()


def step_loops(steps: int, batch_size: int) -> None:
    from collapse.flow.interpolant import flow_matching_loss, sample_time
    from collapse.flow.nets import VectorField
    from collapse.flow.training import TrainSettings, TrainState, train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = torch.randn(batch_size, 2, device=device)

    def batches():
        while True:
            yield {"x": data}

    torch.manual_seed(0)
    settings = TrainSettings(steps=steps, lr=1e-3, checkpoint_every=steps)
    state = TrainState.create(VectorField(2, 128, 3).to(device), settings, device)
    train(state, batches(), TrainSettings(steps=10, lr=1e-3), device)  # warm-up
    state.step = 0
    start = time.perf_counter()
    train(state, batches(), settings, device)
    ours = steps * batch_size / (time.perf_counter() - start)

    torch.manual_seed(0)
    net = VectorField(2, 128, 3).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    start = None
    for step in range(steps + 10):
        if step == 10:
            start = time.perf_counter()
        x0 = torch.randn_like(data)
        loss = flow_matching_loss(net, x0, data, sample_time(batch_size, device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    plain = steps * batch_size / (time.perf_counter() - start)
    print(
        f"step loop on {device.type}, MLP 128x3, batch {batch_size}: ours {ours:,.0f} rows/s "
        f"(with EMA and grad clipping), plain PyTorch {plain:,.0f} rows/s, ratio {ours / plain:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    step_loops(args.steps, args.batch_size)
    with tempfile.TemporaryDirectory() as root:
        fixed_cost(root)


if __name__ == "__main__":
    main()
