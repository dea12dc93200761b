"""A generation's samples, written as shards: one function for the chain's own worker and for
each actor of a distributed sampling pool.

Row `id` of generation g is `family.sample(params, noise)` with the noise of (seed, g, id)
(`collapse.data.noise`), so the samples are the same however the rows are split into batches or
over actors, and a shard is named by its first id, so a retried batch overwrites itself
instead of adding a duplicate.

An image generation also draws a small `grid` from noise that is the same in every generation
(its own stream, never a generation's): the rows of samples.png and of the report's sheet show
what one and the same noise becomes as the chain goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse.config import ChainConfig
from collapse.data import streams
from collapse.data.noise import row_normals
from collapse.data.shards import to_parquet
from collapse.data.space import DataSpace
from collapse.families import get_family
from collapse.families.protocol import Family, Params
from collapse.store.records import Artifact
from collapse.store.run_store import RunStore


@dataclass(frozen=True)
class SampleJob:
    """One generation's sampling: `n` rows of `family` (a registered name) with `params`
    (stored as the artifact `model`, which a remote sampler loads instead), in `batch_size`
    batches, and an image run's `grid` of fixed-noise rows; drawn with the chain's `seed` and
    MAD's sampling `bias`, each sample's noise kept beside it where the strategy trains on
    (noise, sample) pairs (`keep_noise`), written as shards of `space` rows into the run at
    `run_uri`. `workers` and `use_gpu` say where (the Ray backend's pool), not what."""

    run_uri: str
    family: str
    params: Params
    model: Artifact
    space: DataSpace
    generation: int
    n: int
    batch_size: int
    grid: int
    seed: int
    bias: float
    keep_noise: bool
    workers: int = 0
    use_gpu: bool = False

    @classmethod
    def of(
        cls,
        config: ChainConfig,
        run_uri: str,
        space: DataSpace,
        params: Params,
        model: Artifact,
        generation: int,
    ) -> SampleJob:
        """A chain's sampling of `generation` as its config asks for it."""
        from collapse.strategies import get_strategy

        return cls(
            run_uri=run_uri,
            family=config.model.family,
            params=params,
            model=model,
            space=space,
            generation=generation,
            n=config.samples_per_generation,
            batch_size=config.sample.batch_size,
            grid=config.eval.grid if space.kind == "image" else 0,  # vectors: a scatter
            seed=config.seed,
            bias=config.sample.bias,
            keep_noise=get_strategy(config.strategy.name).keeps_noise,
            workers=config.sample.workers,
            use_gpu=config.train.use_gpu,
        )


def draw(
    family: Family,
    params: Params,
    seed: int,
    stream: int,
    ids: np.ndarray,
    bias: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(samples, the noise each was drawn from); `stream` is the generation, or streams.GRID.

    `bias` is MAD's sampling bias lambda (Alemohammad et al. 2023): the noise is scaled by it
    (the family's `biased_columns` say which part), so lambda < 1 draws samples
    nearer the modes, trading diversity for quality."""
    noise = row_normals(seed, ids, family.noise_dim(params), stream=stream)
    if bias != 1.0:
        noise[:, family.biased_columns(params)] *= bias
    return np.ascontiguousarray(family.sample(params, noise), dtype=np.float32), noise


def captions(family: Family, params: Params, noise: np.ndarray) -> list[str] | None:
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
) -> Artifact:
    """One shard of samples; with `noise`, the (noise, sample) pairs that reflow trains on;
    with `texts`, each image's caption (what the next generation fine-tunes on)."""
    table = space.to_table(x, "synthetic", generation, ids, noise=noise, captions=texts)
    name = f"{folder}/part-{int(ids[0]):09d}.parquet"
    return store.write_artifact(generation, name, to_parquet(table), rows=len(ids))


def sample_in_process(job: SampleJob) -> tuple[list[Artifact], list[Artifact]]:
    """A generation's sample shards and its grid's shards (none for vectors), drawn here."""
    store, family = RunStore(job.run_uri), get_family(job.family)
    shards = []
    for start in range(0, job.n, job.batch_size):
        ids = np.arange(start, min(start + job.batch_size, job.n), dtype=np.int64)
        x, noise = draw(family, job.params, job.seed, job.generation, ids, job.bias)
        kept = noise if job.keep_noise else None
        texts = captions(family, job.params, noise)
        shards.append(write_batch(store, job.space, job.generation, x, ids, kept, texts=texts))
    if not job.grid:
        return shards, []
    return shards, [sample_grid(store, job, family)]


def sample_grid(store: RunStore, job: SampleJob, family: Family) -> Artifact:
    """The fixed-noise grid: the same noise (`streams.GRID`) in every generation."""
    ids = np.arange(job.grid, dtype=np.int64)
    x, noise = draw(family, job.params, job.seed, streams.GRID, ids, job.bias)
    texts = captions(family, job.params, noise)
    return write_batch(store, job.space, job.generation, x, ids, folder="grid", texts=texts)
