"""`collapse bench data`: the feed of a generation's training set into Ray Train, against a
plain PyTorch DataLoader over the same shards.

    collapse bench data [--rows 20000] [--batch-size 256] [--epochs 8]
    collapse bench data --tiny         # seconds: what CI runs

Prints figures; it is a measurement, not a test. Users pay for GPU hours, so the data plane
must never be what a training step waits on: the feed has to deliver model inputs at least as
fast as the loader a PyTorch user would otherwise write. Goal: Ray Data rows/s divided by
DataLoader rows/s >= 1.0 on the same data, the same decoded output, the same batch size and
the same number of epochs.

What is measured. A prepared dataset of random 32x32x3 uint8 images (incompressible, so
parquet bytes on disk are about the raw pixels) is written in several shards. Generation 0's
plan (`plan_mix("fully_synthetic", 0, n, 0.0, n, [])`, i.e. the n real rows) is turned into
a Ray Data dataset by `training_dataset`, exactly as a chain does, and consumed by a 2-worker
CPU TorchTrainer through `get_dataset_shard("train").iter_torch_batches`. Each batch is
touched (the sum of `x`) but no model runs, so only the feed is timed: from the loop start,
across both workers (earliest start to latest end), with rows, bytes of `x` and the time to
the first batch per worker. The baseline, in this process, is a `torch.utils.data.DataLoader`
with 2 worker processes over the same parquet files: each worker reads whole shards with
pyarrow, shuffles rows within a shard, and decodes them to uint8 CHW (what the Ray path hands to
training workers, which scale to [-1, 1] on the device), into batches of the same size. Rates
are given as rows/s, MiB/s of decoded uint8 model input, and MiB/s of parquet read, and
also from the first batch on, which leaves out start-up (the goal is judged on the whole run).

The comparison leans towards the baseline. The Ray path does more per row than the loader:
it keeps only the planned ids of each shard and shuffles globally (a full all-to-all, so its
first batch waits for the whole epoch to be read), where the loader only shuffles within a
shard. And on a 2-CPU machine it pays actor start-up, task scheduling and object-store
copies that a cluster amortises over many nodes and that a DataLoader, living inside the
training process, never pays; the Train workers get half a CPU each so that Ray Data's reads
keep the rest. The figure here is therefore a floor for the Ray path, not its cluster rate.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
from common import MIB, parser, start_ray, write_images

GOAL = 1.0  # Ray Data rows/s over DataLoader rows/s
SHAPE = (32, 32, 3)


# Ray Data path --------------------------------------------------------------------------------
def _ray_loop(config: dict[str, Any]) -> None:
    """Ray Train loop: read the shard for the epochs, touch every batch; rank 0 reports all."""
    import tempfile
    import time

    import torch.distributed as dist
    from ray import train

    shard = train.get_dataset_shard("train")
    start_wall, start = time.time(), time.perf_counter()
    first_batch = None
    rows = nbytes = 0
    touched = 0.0
    for _epoch in range(config["epochs"]):
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"]):
            x = batch["x"]
            touched += float(x.sum())
            if first_batch is None:
                first_batch = time.perf_counter() - start
                first_rows, first_wall = len(x), time.time()
            rows += len(x)
            nbytes += x.nbytes
    mine = {
        "rows": rows,
        "bytes": nbytes,
        "first_batch_s": first_batch,
        "first_rows": first_rows,
        "first_wall": first_wall,
        "start": start_wall,
        "end": time.time(),
        "touched": touched,
    }
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    # Train V2 keeps reported metrics only together with a checkpoint.
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = train.Checkpoint.from_directory(tmp) if dist.get_rank() == 0 else None
        train.report({"workers": gathered}, checkpoint=checkpoint)


def ray_feed(root: str, index: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from collapse.data.mix import plan_mix
    from collapse.data.space import DataSpace
    from collapse.distributed.datasets import training_dataset
    from collapse.storage import Storage

    # Worker logs (Ray Data plans, Train reports) would bury the figures; errors still reach
    # the driver through trainer.fit().
    start_ray()
    n = index["rows"]
    plan = plan_mix("fully_synthetic", 0, n, 0.0, n, [])
    space = DataSpace.of_index(index)
    ds = training_dataset(plan, (Storage(root), index["shards"]), {}, space, seed=0)
    with tempfile.TemporaryDirectory() as train_dir:
        trainer = TorchTrainer(
            _ray_loop,
            train_loop_config={"batch_size": args.batch_size, "epochs": args.epochs},
            # Half a CPU each leaves one of the two CPUs to Ray Data's reads.
            scaling_config=ScalingConfig(
                num_workers=2, use_gpu=False, resources_per_worker={"CPU": 0.5}
            ),
            datasets={"train": ds},
            run_config=RunConfig(storage_path=train_dir, name="data-feed"),
        )
        started = time.perf_counter()
        workers = trainer.fit().metrics["workers"]
        fit = time.perf_counter() - started
    end = max(w["end"] for w in workers)
    return {
        "rows": sum(w["rows"] for w in workers),
        "bytes": sum(w["bytes"] for w in workers),
        "seconds": end - min(w["start"] for w in workers),
        "first_batch_s": max(w["first_batch_s"] for w in workers),
        "steady_rows": sum(w["rows"] - w["first_rows"] for w in workers),
        "steady_s": end - min(w["first_wall"] for w in workers),
        "per_worker_rows": [w["rows"] for w in workers],
        "fit_s": fit,
    }


# DataLoader baseline --------------------------------------------------------------------------
def _shard_batches_factory():
    """The baseline's IterableDataset (a class made here so torch is imported only when used)."""
    import pyarrow.parquet as pq
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    from collapse.data.shards import table_to_images
    from collapse.data.space import DataSpace

    class ShardBatches(IterableDataset):
        """Whole shards split among the loader's workers, rows shuffled within each shard,
        decoded as `training_dataset` decodes them, cut into batches of `batch_size` (the
        last one of each worker and epoch may be short, as with `iter_torch_batches`)."""

        def __init__(self, paths: list[str], space: DataSpace, batch_size: int, seed: int):
            self.paths, self.space, self.batch_size, self.seed = paths, space, batch_size, seed
            self.rng: np.random.Generator | None = None

        def __iter__(self):
            info = get_worker_info()
            worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
            if self.rng is None:  # once per (persistent) worker, so epochs differ
                self.rng = np.random.default_rng([self.seed, worker])
            mine = self.paths[worker::workers]
            carry: list[dict[str, np.ndarray]] = []
            carried = 0
            for i in self.rng.permutation(len(mine)):
                table = pq.read_table(mine[i])
                table = table.take(self.rng.permutation(table.num_rows))
                carry.append(self._decode(table))
                carried += table.num_rows
                if carried < self.batch_size:
                    continue
                joined = {k: np.concatenate([c[k] for c in carry]) for k in carry[0]}
                full = carried - carried % self.batch_size
                for lo in range(0, full, self.batch_size):
                    yield self._tensors(joined, lo, lo + self.batch_size)
                carry = [{k: v[full:] for k, v in joined.items()}]
                carried -= full
            if carried:
                joined = {k: np.concatenate([c[k] for c in carry]) for k in carry[0]}
                yield self._tensors(joined, 0, carried)

        def _decode(self, table) -> dict[str, np.ndarray]:
            x = table_to_images(table).transpose(0, 3, 1, 2).copy()  # uint8 CHW, as Ray's path
            generation = table.column("generation").fill_null(-1).to_numpy().astype(np.int32)
            return {"x": x, "generation": generation, "id": table.column("id").to_numpy()}

        @staticmethod
        def _tensors(batch: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, Any]:
            return {k: torch.from_numpy(np.ascontiguousarray(v[lo:hi])) for k, v in batch.items()}

    return ShardBatches


def dataloader_feed(root: str, index: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    from torch.utils.data import DataLoader

    from collapse.data.space import DataSpace

    paths = [os.path.join(root, s["path"]) for s in index["shards"]]
    dataset = _shard_batches_factory()(paths, DataSpace.of_index(index), args.batch_size, seed=0)
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    first_batch = None
    rows = nbytes = 0
    touched = 0.0
    for _epoch in range(args.epochs):
        for batch in loader:
            x = batch["x"]
            touched += float(x.sum())
            if first_batch is None:
                first_batch = time.perf_counter() - start
                first_rows = len(x)
            rows += len(x)
            nbytes += x.nbytes
    seconds = time.perf_counter() - start
    del loader  # stops the persistent workers
    return {
        "rows": rows,
        "bytes": nbytes,
        "seconds": seconds,
        "first_batch_s": first_batch,
        "steady_rows": rows - first_rows,
        "steady_s": seconds - first_batch,
    }


# Report ---------------------------------------------------------------------------------------
def show(name: str, result: dict[str, float], parquet_bytes: float) -> float:
    seconds = result["seconds"]
    rate = result["rows"] / seconds
    print(f"{name}:")
    print(
        f"  {result['rows']} rows in {seconds:.2f} s: {rate:,.0f} rows/s, "
        f"{result['bytes'] / MIB / seconds:.1f} MiB/s of uint8 CHW input, "
        f"{parquet_bytes / MIB / seconds:.1f} MiB/s of parquet"
    )
    steady = result["steady_rows"] / result["steady_s"]
    print(
        f"  first batch after {result['first_batch_s']:.2f} s; "
        f"{steady:,.0f} rows/s from the first batch on"
    )
    return rate


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--rows", type=int, default=None)
    cli.add_argument("--batch-size", type=int, default=256)
    cli.add_argument("--epochs", type=int, default=None)
    cli.add_argument("--rows-per-shard", type=int, default=None)
    args = cli.parse_args()
    args.rows = args.rows or (2_000 if args.tiny else 20_000)
    args.epochs = args.epochs or (2 if args.tiny else 8)
    args.rows_per_shard = args.rows_per_shard or args.rows // 8

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "images")
        index = write_images(root, args.rows, SHAPE, args.rows_per_shard)
        on_disk = sum(s["bytes"] for s in index["shards"])
        expected = args.rows * args.epochs
        print(
            f"{args.rows} random {'x'.join(map(str, SHAPE))} uint8 images in "
            f"{len(index['shards'])} shards ({on_disk / MIB:.1f} MiB of parquet), "
            f"batch size {args.batch_size}, {args.epochs} epochs, 2 CPUs"
        )
        # The loader first: its workers fork, which is best done before Ray starts threads.
        loader = dataloader_feed(root, index, args)
        ray_data = ray_feed(root, index, args)
    for name, result in (("DataLoader", loader), ("Ray Data", ray_data)):
        if result["rows"] != expected:
            raise SystemExit(f"{name} delivered {result['rows']} rows, expected {expected}")

    parquet = on_disk * args.epochs
    base = show("PyTorch DataLoader (2 worker processes, in this process)", loader, parquet)
    ray_rate = show(
        "Ray Data -> TorchTrainer (2 workers x 0.5 CPU, iter_torch_batches)", ray_data, parquet
    )
    print(
        f"  rows per worker {ray_data['per_worker_rows']}; trainer.fit end to end "
        f"{ray_data['fit_s']:.2f} s (includes worker start-up)"
    )
    ratio = ray_rate / base
    steady = (ray_data["steady_rows"] / ray_data["steady_s"]) / (
        loader["steady_rows"] / loader["steady_s"]
    )
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(
        f"ratio Ray Data / DataLoader rows/s: {ratio:.2f} ({steady:.2f} from the first batch on); "
        f"goal >= {GOAL:.1f}: {verdict}"
    )


if __name__ == "__main__":
    main()
