"""A generation's samples, written as shards: one function for the chain's own worker and for
each actor of a distributed sampling pool.

Row `id` of generation g is `family.sample(params, noise)` with the noise of (seed, g, id)
(`collapse.noise`), so the samples are the same however the rows are split into batches or
over actors, and a shard is named by its first id, so a retried batch overwrites itself
instead of adding a duplicate.

An image generation also draws a small `grid` from noise that is the same in every generation
(its own stream, never a generation's): the rows of samples.png and of the report's sheet show
what one and the same noise becomes as the chain goes on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collapse.config import ChainConfig
from collapse.data.shards import to_parquet
from collapse.data.space import DataSpace
from collapse.families.protocol import Family
from collapse.noise import row_normals
from collapse.run_store import RunStore

GRID_STREAM = (1 << 63) + 1  # the grid's noise stream: above every generation number


def keeps_noise(config: ChainConfig) -> bool:
    """Whether the chain's strategy stores each sample's noise beside it (reflow trains the
    next generation on those (noise, sample) pairs)."""
    from collapse.strategies import get_strategy

    return get_strategy(config.strategy.name).keeps_noise


def draw(
    family: Family,
    params: dict[str, np.ndarray],
    seed: int,
    stream: int,
    ids: np.ndarray,
    bias: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(samples, the noise each was drawn from); `stream` is the generation, or GRID_STREAM.

    `bias` is MAD's sampling bias lambda (Alemohammad et al. 2023): the noise is scaled by it
    (the family's `biased_columns` say which part), so lambda < 1 draws samples
    nearer the modes, trading diversity for quality."""
    noise = row_normals(seed, ids, family.noise_dim(params), stream=stream)
    if bias != 1.0:
        noise[:, family.biased_columns(params)] *= bias
    return np.ascontiguousarray(family.sample(params, noise), dtype=np.float32), noise


def captions(family: Family, params: dict[str, np.ndarray], noise: np.ndarray) -> list | None:
    """The caption each sample was drawn for, by a text-conditioned family; else None."""
    return family.captions(params, noise)


def write_batch(
    store: RunStore,
    space: DataSpace,
    generation: int,
    x: np.ndarray,
    ids: np.ndarray,
    noise: np.ndarray | None = None,
    folder: str = "samples",
    texts: list[str] | None = None,
) -> dict[str, Any]:
    """One shard of samples; with `noise`, the (noise, sample) pairs that reflow trains on;
    with `texts`, each image's caption (what the next generation fine-tunes on)."""
    table = space.to_table(x, "synthetic", generation, ids, noise=noise, captions=texts)
    name = f"{folder}/part-{int(ids[0]):09d}.parquet"
    return store.write_artifact(generation, name, to_parquet(table), rows=len(ids))


def sample_locally(
    store: RunStore,
    space: DataSpace,
    family: Family,
    params: dict[str, np.ndarray],
    seed: int,
    generation: int,
    n: int,
    batch_size: int,
    keep_noise: bool = False,
    bias: float = 1.0,
) -> list[dict[str, Any]]:
    shards = []
    for start in range(0, n, batch_size):
        ids = np.arange(start, min(start + batch_size, n), dtype=np.int64)
        x, noise = draw(family, params, seed, generation, ids, bias)
        kept = noise if keep_noise else None
        texts = captions(family, params, noise)
        shards.append(write_batch(store, space, generation, x, ids, kept, texts=texts))
    return shards


def grid_size(config: ChainConfig, space: DataSpace) -> int:
    """Rows of the fixed-noise grid: image runs only (a vector run's picture is a scatter)."""
    return config.eval.grid if space.kind == "image" else 0


def sample_grid(
    store: RunStore,
    space: DataSpace,
    family: Family,
    params: dict[str, np.ndarray],
    seed: int,
    generation: int,
    n: int,
    bias: float = 1.0,
) -> dict[str, Any]:
    ids = np.arange(n, dtype=np.int64)
    x, noise = draw(family, params, seed, GRID_STREAM, ids, bias)
    texts = captions(family, params, noise)
    return write_batch(store, space, generation, x, ids, folder="grid", texts=texts)


def sample_in_process(
    config: ChainConfig,
    store: RunStore,
    space: DataSpace,
    family: Family,
    params: dict[str, np.ndarray],
    generation: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A generation's sample shards and its grid's shards (none for vectors), drawn here."""
    seed, bias = config.seed, config.sample.bias
    shards = sample_locally(
        store,
        space,
        family,
        params,
        seed,
        generation,
        config.sample.n,
        config.sample.batch_size,
        keeps_noise(config),
        bias,
    )
    grid = grid_size(config, space)
    if not grid:
        return shards, []
    return shards, [sample_grid(store, space, family, params, seed, generation, grid, bias)]
