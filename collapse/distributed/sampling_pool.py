"""Distributed sampling: a family's sampler as a Ray Data `map_batches` over an actor pool.

The input is a dataset of blocks of row ids; each actor loads the generation's model once, draws its
batches (`collapse.engine.sampling.draw`: noise from (seed, generation, id), so the result does not
depend on the pool size or the batch size) and writes each batch as a shard as it goes. What
comes back to the caller is only the shard descriptors (path, rows, sha256) for the manifest.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import ray

from collapse.data import streams
from collapse.distributed.runtime import storage_settings, use_storage_settings
from collapse.engine.sampling import SampleJob, captions, draw, write_batch
from collapse.families import get_family
from collapse.store.records import Artifact
from collapse.store.run_store import RunStore


class _Sampler:
    """One actor of the pool: the generation's model loaded once from its stored artifact."""

    def __init__(self, job: SampleJob, settings: dict[str, str]):
        use_storage_settings(settings)
        self.store = RunStore(job.run_uri)
        with np.load(io.BytesIO(self.store.read_artifact(job.model)), allow_pickle=False) as npz:
            self.job = replace(job, params={k: npz[k] for k in npz.files})
        self.family = get_family(job.family)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        job = self.job
        ids = np.concatenate(list(batch["id"])).astype(np.int64)
        kept = None
        if bool(batch["grid"][0]):
            stream, folder = streams.GRID, "grid"
        else:
            stream, folder = job.generation, "samples"
        x, noise = draw(self.family, job.params, job.seed, stream, ids, job.bias)
        if folder == "samples" and job.keep_noise:
            kept = noise
        texts = captions(self.family, job.params, noise)
        shard = write_batch(self.store, job.space, job.generation, x, ids, kept, folder, texts)
        return {k: np.array([v]) for k, v in shard.items()}


def sample_with_ray_data(job: SampleJob) -> tuple[list[Artifact], list[Artifact]]:
    """Sample `job.n` rows (and the fixed-noise grid) on `job.workers` actors; the samples'
    and the grid's shard descriptors, each by id."""
    # One block per batch, made in the caller: no read tasks compete with the pool for CPUs,
    # and the pool's actors share the blocks between them.
    n, batch = job.n, job.batch_size
    blocks = [
        {"id": np.arange(a, min(a + batch, n), dtype=np.int64), "grid": False}
        for a in range(0, n, batch)
    ]
    if job.grid:
        blocks.append({"id": np.arange(job.grid, dtype=np.int64), "grid": True})
    shards = (
        ray.data.from_items(blocks, override_num_blocks=len(blocks))
        .map_batches(
            _Sampler,
            # the actors load the parameters from the run: the job travels without them
            fn_constructor_kwargs={"job": replace(job, params={}), "settings": storage_settings()},
            batch_size=None,
            batch_format="numpy",
            concurrency=job.workers,
            num_cpus=0 if job.use_gpu else 1,
            num_gpus=1 if job.use_gpu else 0,
        )
        .take_all()
    )
    described = [
        Artifact(
            path=str(s["path"]), sha256=str(s["sha256"]), bytes=int(s["bytes"]), rows=int(s["rows"])
        )
        for s in shards
    ]
    described.sort(key=lambda s: s["path"])
    in_grid = [s for s in described if "/grid/" in s["path"]]
    return [s for s in described if "/grid/" not in s["path"]], in_grid
