"""`collapse bench data`: the feed of a generation's training set into Ray Train, against a
plain PyTorch DataLoader over the same shards, for a set held in memory and a streamed one.

    collapse bench data [--rows 20000] [--stream-rows 90000] [--epochs 8] [--stream-epochs 2]
                        [--batch-size 256] [--repeats 1]
    collapse bench data --tiny         # seconds: what CI runs

Prints figures; it is a measurement, not a test. Users pay for GPU hours, so the data plane
must never be what a training step waits on: the feed has to deliver model inputs at least as
fast as the loader a PyTorch user would otherwise write. Goal (issue #22): our rows/s over
the DataLoader's >= 1.0 in both regimes, on the same data, the same decoded output, the same
batch size and the same number of epochs, and a later epoch's first batch in under 0.5 s.

What is measured. A prepared dataset of random 32x32x3 uint8 images (incompressible, so
parquet bytes on disk are about the raw pixels) is written in 8 shards. Generation 0's plan
(the n real rows) becomes a `TrainingSet` through `training_dataset`, exactly as a chain does:
held in memory when its model input fits `MATERIALIZE_BYTES` (`--rows`, default 20,000
images), streamed from the shards when it does not (`--stream-rows`, default the smallest
count over the bound; `--tiny` forces streaming of a small set by setting the bound to 0).
Two CPU Ray Train workers (half a CPU each) take their batches of the global batch size for
the epochs' steps; each batch is touched (the sum of `x`), no model runs. Our time is the
feed's build (`training_dataset`: planning, and reading a set held in memory) plus the
workers' loops, earliest start to latest end. Ray Train's worker start-up is left out (it is
`collapse bench chain`'s business). The baseline, in this process, is a
`torch.utils.data.DataLoader` with 2 persistent worker processes over the same parquet files:
each worker reads whole shards with pyarrow, shuffles rows within a shard and decodes them to
uint8 CHW with our decoder (`collapse.data.feed.decode.Decode`, so that only the pipelines
differ), in batches of the same size. "A later epoch's first batch" is the longest wait for
the first batch of epochs 2, 3, ... (ours: at the step where a worker's epoch begins).

The comparison leans towards the baseline: our path shuffles each epoch anew (a permutation of
all rows in memory; of the shards, then within windows of 64 MiB per worker, when streamed),
keeps only the planned ids of each shard, and splits every epoch exactly between the workers,
where the loader only shuffles within a shard.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

import numpy as np
from common import MIB, parser, start_ray, write_images

GOAL = 1.0  # our rows/s over DataLoader rows/s
LATER_FIRST_BATCH_S = 0.5
SHAPE = (32, 32, 3)
SHARDS = 8


# Our path -------------------------------------------------------------------------------------
def _feed_loop(config: dict[str, Any]) -> None:
    """Ray Train loop: for each set, the worker's batches for its epochs' steps, each touched;
    rank 0 reports every worker's figures, set by set."""
    import tempfile
    import time

    import torch
    import torch.distributed as dist
    from ray import train

    from collapse.data.feed.order import span

    rank, world = dist.get_rank(), dist.get_world_size()
    batch = config["batch_size"] // world
    reports = []
    for run in config["runs"]:
        start_wall, start = time.time(), time.perf_counter()
        feed = run["set"].open()
        lo, hi = span(feed.size, rank, world)
        epoch_starts = {(e * (hi - lo)) // batch for e in range(1, run["epochs"])}
        rows = nbytes = 0
        touched = 0.0
        first_batch, later = None, 0.0
        batches = feed.batches(batch, rank, world)
        for step in range(run["steps"]):
            asked = time.perf_counter()
            x = torch.from_numpy(next(batches)["x"])
            waited = time.perf_counter() - asked
            touched += float(x.sum())
            if first_batch is None:
                first_batch = time.perf_counter() - start
            if step in epoch_starts:
                later = max(later, waited)
            rows += len(x)
            nbytes += x.nbytes
        batches.close()  # a streamed set's read-ahead thread stops
        mine = {
            "rows": rows,
            "bytes": nbytes,
            "first_batch_s": first_batch,
            "later_first_batch_s": later,
            "start": start_wall,
            "end": time.time(),
            "touched": touched,
        }
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, mine)
        reports.append(gathered)
    # Train V2 keeps reported metrics only together with a checkpoint.
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = train.Checkpoint.from_directory(tmp) if rank == 0 else None
        train.report({"runs": reports}, checkpoint=checkpoint)


def our_feeds(regimes: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each regime's set through `training_dataset` and 2 Ray Train workers (one `fit()`)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from collapse.data.mix import plan_mix
    from collapse.data.space import DataSpace
    from collapse.distributed.training_set import training_dataset
    from collapse.store.storage import Storage

    start_ray()
    runs, built = [], []
    for regime in regimes:
        n, index = regime["rows"], regime["index"]
        plan = plan_mix("fully_synthetic", 0, n, 0.0, n, [])
        real = (Storage(regime["root"]), index["shards"])
        bound = {} if regime["bound"] is None else {"materialize_bytes": regime["bound"]}
        clock = time.perf_counter()
        dataset = training_dataset(plan, real, {}, DataSpace.of_index(index), 0, **bound)
        built.append(time.perf_counter() - clock)
        steps = -(-regime["epochs"] * n // args.batch_size)
        runs.append({"set": dataset, "epochs": regime["epochs"], "steps": steps})
    with tempfile.TemporaryDirectory() as train_dir:
        trainer = TorchTrainer(
            _feed_loop,
            train_loop_config={"runs": runs, "batch_size": args.batch_size},
            scaling_config=ScalingConfig(
                num_workers=2, use_gpu=False, resources_per_worker={"CPU": 0.5}
            ),
            run_config=RunConfig(storage_path=train_dir, name="data-feed"),
        )
        reports = trainer.fit().metrics["runs"]
    return [
        {
            "rows": sum(w["rows"] for w in workers),
            "bytes": sum(w["bytes"] for w in workers),
            "seconds": seconds + max(w["end"] for w in workers) - min(w["start"] for w in workers),
            "built_s": seconds,
            "in_memory": run["set"].in_memory,
            "first_batch_s": max(w["first_batch_s"] for w in workers),
            "later_first_batch_s": max(w["later_first_batch_s"] for w in workers),
        }
        for workers, seconds, run in zip(reports, built, runs, strict=True)
    ]


# DataLoader baseline --------------------------------------------------------------------------
def _shard_batches_factory():
    """The baseline's IterableDataset (a class made here so torch is imported only when used)."""
    import pyarrow.parquet as pq
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    from collapse.data.feed.decode import Decode
    from collapse.data.space import DataSpace

    class ShardBatches(IterableDataset):
        """Whole shards split among the loader's workers, rows shuffled within each shard,
        decoded as our feed decodes them, cut into batches of `batch_size` (the last one of
        each worker and epoch may be short)."""

        def __init__(self, paths: list[str], space: DataSpace, batch_size: int, seed: int):
            self.paths, self.batch_size, self.seed = paths, batch_size, seed
            self.decode = Decode(space)  # our decoding: only the pipelines differ
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
                carry.append(self.decode(table))
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

        @staticmethod
        def _tensors(batch: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, Any]:
            return {k: torch.from_numpy(np.ascontiguousarray(v[lo:hi])) for k, v in batch.items()}

    return ShardBatches


def dataloader_feed(root: str, index: dict[str, Any], args: argparse.Namespace, epochs: int):
    from torch.utils.data import DataLoader

    from collapse.data.space import DataSpace

    paths = [os.path.join(root, s["path"]) for s in index["shards"]]
    dataset = _shard_batches_factory()(paths, DataSpace.of_index(index), args.batch_size, seed=0)
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    first_batch, later = None, 0.0
    rows = nbytes = 0
    touched = 0.0
    for epoch in range(epochs):
        asked = time.perf_counter()
        for i, batch in enumerate(loader):
            if i == 0 and epoch > 0:
                later = max(later, time.perf_counter() - asked)
            x = batch["x"]
            touched += float(x.sum())
            if first_batch is None:
                first_batch = time.perf_counter() - start
            rows += len(x)
            nbytes += x.nbytes
    seconds = time.perf_counter() - start
    del loader  # stops the persistent workers
    return {
        "rows": rows,
        "bytes": nbytes,
        "seconds": seconds,
        "first_batch_s": first_batch,
        "later_first_batch_s": later,
    }


# Report ---------------------------------------------------------------------------------------
def show(name: str, result: dict[str, Any], parquet_bytes: float) -> float:
    seconds = result["seconds"]
    rate = result["rows"] / seconds
    built = f" (feed built in {result['built_s']:.2f} s)" if "built_s" in result else ""
    print(
        f"    {name}: {result['rows']} rows in {seconds:.2f} s{built}: {rate:,.0f} rows/s, "
        f"{result['bytes'] / MIB / seconds:.1f} MiB/s of uint8 CHW input, "
        f"{parquet_bytes / MIB / seconds:.1f} MiB/s of parquet; first batch after "
        f"{result['first_batch_s']:.2f} s, of a later epoch after "
        f"{result['later_first_batch_s']:.2f} s"
    )
    return rate


def measure(args: argparse.Namespace, regimes: list[dict[str, Any]]) -> None:
    """`--repeats` runs of both feeds over each regime's dataset; each regime's ratios."""
    for repeat in range(args.repeats):
        # The loaders first: their workers fork, which is best done before Ray starts threads.
        loaders = [dataloader_feed(r["root"], r["index"], args, r["epochs"]) for r in regimes]
        print(f"run {repeat + 1}:")
        for regime, loader, ours in zip(regimes, loaders, our_feeds(regimes, args), strict=True):
            expected = regime["rows"] * regime["epochs"]
            if loader["rows"] != expected or ours["rows"] < expected:
                raise SystemExit(f"delivered {loader['rows']} and {ours['rows']} of {expected}")
            parquet = regime["parquet"] * regime["epochs"]
            print(f"  {regime['name']}:")
            base = show("DataLoader, 2 worker processes", loader, parquet)
            mode = "held in memory" if ours["in_memory"] else "streamed"
            rate = show(f"ours ({mode}), 2 Ray Train workers", ours, parquet)
            regime["runs"].append({"ratio": rate / base, "later": ours["later_first_batch_s"]})


def summary(name: str, runs: list[dict]) -> bool:
    ratios = [r["ratio"] for r in runs]
    later = max(r["later"] for r in runs)
    print(
        f"ratio ours / DataLoader rows/s, {name}: min {min(ratios):.2f}, median "
        f"{statistics.median(ratios):.2f} of {len(runs)} run(s); a later epoch's first batch "
        f"after at most {later:.2f} s"
    )
    return min(ratios) >= GOAL and later < LATER_FIRST_BATCH_S


def main() -> None:
    from collapse.distributed.training_set import MATERIALIZE_BYTES

    cli = parser(__doc__)
    cli.add_argument("--rows", type=int, default=None, help="images of the set held in memory")
    cli.add_argument("--stream-rows", type=int, default=None, help="images of the streamed set")
    cli.add_argument("--epochs", type=int, default=None)
    cli.add_argument("--stream-epochs", type=int, default=None)
    cli.add_argument("--batch-size", type=int, default=256)
    cli.add_argument("--repeats", type=int, default=1)
    args = cli.parse_args()
    row_bytes = int(np.prod(SHAPE)) + 12  # as `Decode.row_bytes` counts an image row
    over = MATERIALIZE_BYTES // row_bytes + 1
    args.rows = args.rows or (2_000 if args.tiny else 20_000)
    args.stream_rows = args.stream_rows or (2_000 if args.tiny else -(-over // 1000) * 1000)
    args.epochs = args.epochs or (2 if args.tiny else 8)
    args.stream_epochs = args.stream_epochs or 2
    if args.rows * row_bytes > MATERIALIZE_BYTES:
        raise SystemExit(f"--rows {args.rows} is over the in-memory bound ({over} rows)")
    forced = args.stream_rows < over
    if forced and not args.tiny:
        raise SystemExit(f"--stream-rows {args.stream_rows} is under the in-memory bound: {over}+")

    with tempfile.TemporaryDirectory() as tmp:
        regimes = []
        for name, rows, epochs, bound in (
            ("held in memory", args.rows, args.epochs, None),
            ("streamed", args.stream_rows, args.stream_epochs, 0 if forced else None),
        ):
            root = os.path.join(tmp, name.split()[0])
            index = write_images(root, rows, SHAPE, -(-rows // SHARDS))
            parquet = sum(s["bytes"] for s in index["shards"])
            print(
                f"{name}{' (forced: bound 0)' if bound == 0 else ''}: {rows} random "
                f"{'x'.join(map(str, SHAPE))} uint8 images in {len(index['shards'])} shards "
                f"({parquet / MIB:.1f} MiB of parquet), batch size {args.batch_size}, {epochs} "
                "epochs, 2 CPUs"
            )
            regimes.append(
                {
                    "name": name,
                    "rows": rows,
                    "epochs": epochs,
                    "bound": bound,
                    "root": root,
                    "index": index,
                    "parquet": parquet,
                    "runs": [],
                }
            )
        measure(args, regimes)
    met = summary("held in memory", regimes[0]["runs"]) & summary("streamed", regimes[1]["runs"])
    print(
        f"goal: both ratios >= {GOAL:.1f} and a later epoch's first batch under "
        f"{LATER_FIRST_BATCH_S} s: {'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
