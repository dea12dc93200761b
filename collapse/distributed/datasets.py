"""A generation's training set as a Ray Data dataset, built from its mix plan.

Each part of the plan (real rows of a prepared dataset, or rows of an earlier generation's
sample shards) reads only the shards that hold its rows, keeps exactly the planned ids, and the
parts are unioned and shuffled globally, so every batch mixes real and synthetic rows in the
planned proportion and no process ever holds the whole set. Rows reach the Ray Train workers
through `get_dataset_shard`, as model inputs: `x` (float32 vectors, or uint8 CHW images),
`generation` (-1 for real rows) and `id`, plus `noise` and `paired` for reflow pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from collapse.data.mix import MixPart
from collapse.data.shards import id_spans, table_to_images
from collapse.data.space import DataSpace
from collapse.storage import Storage

MATERIALIZE_BYTES = 256 * 2**20


def _overlapping(shards: Sequence[dict[str, Any]], ranges: Sequence[tuple[int, int]]) -> list[str]:
    """Paths of the shards that hold any id in the ranges."""
    return [
        s["path"]
        for s, (lo, hi) in zip(shards, id_spans(shards), strict=True)
        if any(a < hi and lo < b for a, b in ranges)
    ]


def _keep_ids(table: pa.Table, ranges: Sequence[tuple[int, int]], noise_dim: int) -> pa.Table:
    """The planned rows, in one schema for every part: the data, provenance, and (when any part
    carries reflow pairs) `noise`, null for rows without a stored partner."""
    ids = table.column("id")
    mask = None
    for a, b in ranges:
        inside = pc.and_(pc.greater_equal(ids, a), pc.less(ids, b))
        mask = inside if mask is None else pc.or_(mask, inside)
    table = table.filter(mask)
    if "x" in table.column_names:
        data = ["x"]
    elif "latent" in table.column_names:  # a latent cache (collapse.latents)
        data = ["latent", "caption"]
    else:
        data = ["image", "shape"]
    kept = table.select([*data, "generation", "id"])
    if noise_dim:
        noise_type = pa.list_(pa.float32(), noise_dim)
        noise = (
            table.column("noise").cast(noise_type)
            if "noise" in table.column_names
            else pa.nulls(table.num_rows, noise_type)
        )
        kept = kept.append_column("noise", noise)
    return kept


def _part(
    storage: Storage,
    shards: Sequence[dict[str, Any]],
    ranges: Sequence[tuple[int, int]],
    noise_dim: int,
) -> ray.data.Dataset:
    paths = [storage.path(p) for p in _overlapping(shards, ranges)]
    return ray.data.read_parquet(paths, filesystem=storage.fs).map_batches(
        _keep_ids,
        fn_kwargs={"ranges": [tuple(r) for r in ranges], "noise_dim": noise_dim},
        batch_format="pyarrow",
        batch_size=None,
    )


def _model_input(table: pa.Table, space: DataSpace) -> dict[str, np.ndarray]:
    """Shard rows as a model consumes them. Images stay uint8 (CHW) until the training worker
    scales them, a quarter of the bytes through the object store; noise is CHW as stored."""
    if space.kind == "image":
        x = table_to_images(table).transpose(0, 3, 1, 2).copy()
    else:
        x = space.to_vectors(table)
    generation = table.column("generation").fill_null(-1).to_numpy().astype(np.int32)
    batch = {"x": x, "generation": generation, "id": table.column("id").to_numpy()}
    if "noise" in table.column_names:
        column = table.column("noise").combine_chunks()
        paired = column.is_valid().to_numpy(zero_copy_only=False)
        noise = np.zeros((len(x), space.dim), dtype=np.float32)
        noise[paired] = column.filter(paired).flatten().to_numpy().reshape(-1, space.dim)
        batch.update(noise=noise.reshape(len(x), *space.model_shape), paired=paired)
    return batch


def training_dataset(
    plan: Sequence[MixPart],
    real: tuple[Storage, Sequence[dict[str, Any]]],
    samples: dict[int, tuple[Storage, Sequence[dict[str, Any]]]],
    space: DataSpace,
    seed: int,
    paired: bool = False,
    latents: tuple[str, tuple[int, ...]] | None = None,
) -> ray.data.Dataset:
    """The planned rows: `real` is the pool's (storage, shards); `samples` maps each generation
    the plan names to its (storage, sample shards), both as their indexes list them. `paired`:
    rows bring their stored noise partner (`noise`, `paired`) for reflow. `latents`: the shards
    are latent caches of a Stable Diffusion run, (pretrained, latent shape), and batches carry
    the latents and their captions' tokens."""
    noise_dim = space.dim if paired else 0
    parts = []
    for part in plan:
        storage, shards = real if part.source == "real" else samples[part.generation]
        parts.append(_part(storage, shards, part.rows, noise_dim))
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    ds = ds.random_shuffle(seed=seed)
    if latents is None:
        ds = ds.map_batches(_model_input, fn_kwargs={"space": space}, batch_format="pyarrow")
        row_bytes = space.dim * (1 if space.kind == "image" else 4) * (2 if paired else 1)
    else:
        from collapse.families.stable_diffusion import training_batch

        pretrained, shape = latents
        ds = ds.map_batches(
            training_batch,
            fn_kwargs={"pretrained": pretrained, "latent_shape": shape},
            batch_format="pyarrow",
        )
        row_bytes = 4 * int(np.prod(shape)) + 8 * 77
    # A set that fits comfortably in the object store is executed once, not once per epoch:
    # small toy sets run hundreds of epochs, and re-reading and re-shuffling each is most of it.
    if sum(part.count for part in plan) * row_bytes <= MATERIALIZE_BYTES:
        ds = ds.materialize()
    return ds
