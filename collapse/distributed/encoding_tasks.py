"""VAE encoding of a Stable Diffusion chain's shards as Ray tasks, on GPUs when the run trains
on them: the chain's actor holds no accelerator, and a real set of tens of thousands of images
is split over as many tasks as the run has training workers."""

from __future__ import annotations

import ray

from collapse.config import ChainConfig
from collapse.data.space import DataSpace
from collapse.distributed.runtime import use_storage_settings
from collapse.engine.latent_cache import encode_shards
from collapse.store.records import Artifact


def _encode(
    settings: dict[str, str],
    pretrained: str,
    space: DataSpace,
    jobs: list[tuple[str, str, str]],
    target: str,
) -> list[Artifact]:
    use_storage_settings(settings)
    return encode_shards(pretrained, space, jobs, target)


def encode_on_ray(
    config: ChainConfig,
    settings: dict[str, str],
    pretrained: str,
    space: DataSpace,
    jobs: list[tuple[str, str, str]],
    target: str,
) -> list[Artifact]:
    """The shards' descriptors, in the order of `jobs`."""
    if not jobs:
        return []
    tasks = max(1, min(len(jobs), config.train.workers))
    gpus = 1 if config.train.use_gpu else 0
    cpus = 0 if gpus else config.train.cpus_per_worker
    task = ray.remote(_encode).options(num_cpus=cpus, num_gpus=gpus, max_retries=2)
    chunks = [jobs[i::tasks] for i in range(tasks)]
    done = ray.get([task.remote(settings, pretrained, space, c, target) for c in chunks])
    by_path = {d["path"]: d for part in done for d in part}
    return [by_path[rel] for _, _, rel in jobs]
