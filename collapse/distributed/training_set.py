"""A generation's training set as it reaches Ray Train workers, built from its mix plan.

Each part of the plan (real rows of a prepared dataset, or rows of an earlier generation's
sample shards) names the shards that hold its rows; the rows' order and each worker's share
of them are `collapse.data.feed`'s, a pure function of (seed, step, rank, world size). A set
that fits comfortably in memory is read once, here, in parallel threads, and put in Ray's
object store: every worker on a node maps the same bytes (zero-copy numpy) and gathers its
batches by index, so a small toy set trained for hundreds of epochs is never read twice. A
larger one is streamed: each worker reads only the shards of its share of each epoch, ahead
of training, in a thread of its own.

Ray Data is not in this path: its blocks reach a shuffle and the workers in whatever order its
tasks finish, and a generation must be the same model however it was scheduled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import ray

from collapse.data.feed.batches import WINDOW_BYTES, Feed
from collapse.data.feed.chunks import plan_chunks, read_all
from collapse.data.feed.decode import Decode, LatentRows
from collapse.data.mix import MixPart, expand
from collapse.data.space import DataSpace
from collapse.distributed.runtime import ensure_ray
from collapse.store.records import Artifact
from collapse.store.storage import Storage

MATERIALIZE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TrainingSet:
    """A feed as it travels to the workers: rows held in memory travel as one object-store
    reference (`rows`), not inside every worker's copy of the training config."""

    feed: Feed
    rows: ray.ObjectRef | None = None

    @property
    def size(self) -> int:
        return self.feed.size

    @property
    def in_memory(self) -> bool:
        return self.rows is not None

    def open(self) -> Feed:
        """The feed, in a worker (the object store's rows mapped, not copied)."""
        return self.feed if self.rows is None else replace(self.feed, rows=ray.get(self.rows))


def training_dataset(
    plan: Sequence[MixPart],
    real: tuple[Storage, Sequence[Artifact]],
    samples: Mapping[int, tuple[Storage, Sequence[Artifact]]],
    space: DataSpace,
    seed: int,
    paired: bool = False,
    latents: LatentRows | None = None,
    materialize_bytes: int = MATERIALIZE_BYTES,
) -> TrainingSet:
    """The planned rows: `real` is the pool's (storage, shards); `samples` maps each generation
    the plan names to its (storage, sample shards), both as their indexes list them. `paired`:
    rows bring their stored noise partner (`noise`, `paired`) for reflow. `latents`: the shards
    are latent caches of a Stable Diffusion run, and batches carry the latents and their
    captions' tokens. Sets of at most `materialize_bytes` of model
    input are held in memory, larger ones streamed."""
    decode = Decode(space, space.dim if paired else 0, latents)
    parts = []
    for part in expand(plan):  # a span of generations, one generation's shards at a time
        if part.source == "real":
            storage, shards = real
        else:
            assert part.generation is not None, "a part of samples names their generation"
            storage, shards = samples[part.generation]
        parts.append((storage.uri, shards, part.rows))
    window = max(1, WINDOW_BYTES // decode.row_bytes)
    feed = Feed(seed, decode, plan_chunks(parts), window=window)
    if feed.size * decode.row_bytes > materialize_bytes:
        return TrainingSet(feed)
    ensure_ray()
    return TrainingSet(feed, ray.put(read_all(feed.chunks, decode)))
