"""Distributed sampling: a family's sampler as a Ray Data `map_batches` over an actor pool.

The input is a dataset of blocks of row ids; each actor loads the generation's model once, draws its
batches (`collapse.sampling.draw`: noise from (seed, generation, id), so the result does not
depend on the pool size or the batch size) and writes each batch as a shard as it goes. What
comes back to the caller is only the shard descriptors (path, rows, sha256) for the manifest.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import ray

from collapse.config import ChainConfig
from collapse.data.space import DataSpace
from collapse.distributed.runtime import storage_settings, use_storage_settings
from collapse.families import get_family
from collapse.run_store import RunStore
from collapse.sampling import GRID_STREAM, captions, draw, grid_size, keeps_noise, write_batch


class _Sampler:
    def __init__(
        self,
        run_uri: str,
        family: str,
        model: dict[str, Any],
        space: DataSpace,
        seed: int,
        generation: int,
        keep_noise: bool,
        settings: dict[str, str],
        bias: float = 1.0,
    ):
        use_storage_settings(settings)
        self.keep_noise, self.bias = keep_noise, bias
        self.store = RunStore(run_uri)
        with np.load(io.BytesIO(self.store.read_artifact(model)), allow_pickle=False) as npz:
            self.params = {k: npz[k] for k in npz.files}
        self.family = get_family(family)
        self.space, self.seed, self.generation = space, seed, generation

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.concatenate(list(batch["id"])).astype(np.int64)
        if bool(batch["grid"][0]):
            stream, folder, kept = GRID_STREAM, "grid", None
        else:
            stream, folder = self.generation, "samples"
        x, noise = draw(self.family, self.params, self.seed, stream, ids, self.bias)
        if folder == "samples":
            kept = noise if self.keep_noise else None
        texts = captions(self.family, self.params, noise)
        shard = write_batch(self.store, self.space, self.generation, x, ids, kept, folder, texts)
        return {k: np.array([v]) for k, v in shard.items()}


def sample_with_ray_data(
    config: ChainConfig, run_uri: str, space: DataSpace, model: dict[str, Any], generation: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sample `config.sample.n` rows (and the fixed-noise grid) on `config.sample.workers`
    actors; the samples' and the grid's shard descriptors, each by id."""
    use_gpu = config.train.use_gpu
    # One block per batch, made in the caller: no read tasks compete with the pool for CPUs,
    # and the pool's actors share the blocks between them.
    n, batch = config.sample.n, config.sample.batch_size
    blocks = [
        {"id": np.arange(a, min(a + batch, n), dtype=np.int64), "grid": False}
        for a in range(0, n, batch)
    ]
    grid = grid_size(config, space)
    if grid:
        blocks.append({"id": np.arange(grid, dtype=np.int64), "grid": True})
    shards = (
        ray.data.from_items(blocks, override_num_blocks=len(blocks))
        .map_batches(
            _Sampler,
            fn_constructor_kwargs={
                "run_uri": run_uri,
                "family": config.model.family,
                "model": model,
                "space": space,
                "seed": config.seed,
                "generation": generation,
                "keep_noise": keeps_noise(config),
                "settings": storage_settings(),
                "bias": config.sample.bias,
            },
            batch_size=None,
            batch_format="numpy",
            concurrency=config.sample.workers,
            num_cpus=0 if use_gpu else 1,
            num_gpus=1 if use_gpu else 0,
        )
        .take_all()
    )
    described = [
        {
            "path": str(s["path"]),
            "sha256": str(s["sha256"]),
            "bytes": int(s["bytes"]),
            "rows": int(s["rows"]),
        }
        for s in shards
    ]
    described.sort(key=lambda s: s["path"])
    in_grid = [s for s in described if "/grid/" in s["path"]]
    return [s for s in described if "/grid/" not in s["path"]], in_grid
