"""The Ray backend of the chain engine (`collapse.engine.backend`): what `collapse run` uses.

Training runs on Ray Train (`collapse.distributed.train`) and VAE encoding in Ray tasks, on
GPUs where the run has them; sampling runs on a Ray Data actor pool where `sample.workers`
asks for one; image evaluation runs in a task of its own (its feature extractor may want a
GPU); the knn corrector's search is a Ray Data pass where `strategy.knn_workers` asks for one.
Vector metrics, and sampling or knn without workers, stay in the chain's process: there a task
would cost more than the work. The results are the in-process ones, wherever they ran.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from collapse.config import ChainConfig
from collapse.config.strategy_section import knn_workers
from collapse.data.space import DataSpace
from collapse.engine.backend import LocalBackend, Shards, TrainingJob
from collapse.engine.evaluation import Evaluator
from collapse.engine.sampling import SampleJob


class RayTrainer:
    def __init__(self, config: ChainConfig, settings: dict[str, str]):
        self.config, self.settings = config, settings

    def train(self, job: TrainingJob) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from collapse.distributed.train import train_generation
        from collapse.distributed.training_set import training_dataset

        clock = time.perf_counter()
        inputs = job.inputs
        dataset = (
            training_dataset(
                inputs.plan,
                inputs.real,
                job.samples,
                job.space,
                seed=job.seed,
                paired=inputs.paired,
                latents=job.latents,
            )
            if inputs.plan
            else None
        )
        built = time.perf_counter() - clock  # the feed: plan, and reading a set held in memory
        weights, report = train_generation(
            job.config, job.run, job.generation, dataset, job.space, job.init, job.per_batch
        )
        return weights, {**report, "feed_s": built}

    def encode(
        self, pretrained: str, space: DataSpace, jobs: list[tuple[str, str, str]], target: str
    ) -> Shards:
        from collapse.distributed.encoding_tasks import encode_on_ray

        return encode_on_ray(self.config, self.settings, pretrained, space, jobs, target)


class RayBackend:
    """`settings`: the driver's storage settings, which Ray tasks and actors start with."""

    def __init__(self, config: ChainConfig, settings: dict[str, str]):
        self.config, self.settings = config, settings
        self.trainer = RayTrainer(config, settings)
        self._here = LocalBackend()

    def sample(self, job: SampleJob) -> tuple[Shards, Shards]:
        if job.workers == 0:
            return self._here.sample(job)
        from collapse.distributed.sampling_pool import sample_with_ray_data

        return sample_with_ray_data(job)

    def evaluate(self, evaluator: Evaluator, samples: np.ndarray) -> dict[str, Any]:
        """Image features run in a task of their own, on a GPU if the run has them; vector
        metrics take milliseconds and stay here, where a task would cost more than they do."""
        if evaluator.space.kind != "image":
            return self._here.evaluate(evaluator, samples)
        from collapse.distributed.evaluation_task import evaluate_on_ray

        return evaluate_on_ray(self.config, self.settings, samples)

    def nearest(
        self,
        rows: np.ndarray,
        real: np.ndarray,
        k: int,
        rows_features: np.ndarray | None = None,
        real_features: np.ndarray | None = None,
    ) -> np.ndarray:
        workers = knn_workers(self.config.strategy)
        if not workers:
            return self._here.nearest(rows, real, k, rows_features, real_features)
        from collapse.distributed.knn_search import nearest_on_ray

        return nearest_on_ray(rows, real, k, rows_features, real_features, workers=workers)
