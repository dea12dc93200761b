"""Where a chain's heavy steps run. The engine (`collapse.engine.generation`) decides what a
generation computes; a `Backend` runs its sampling, evaluation and the knn corrector's search,
and a `Trainer` (where the backend has one) a trained family's training and VAE encoding.

`LocalBackend` runs everything in this process and has no trainer: closed-form chains
(gaussian, kde, gmm) run on it with nothing of Ray imported, and an engine given a trained
family refuses it in one line. The Ray backend (`collapse.distributed.ray_backend`) trains on Ray
Train and moves the rest to Ray tasks where the config asks; `collapse run` uses it. A chain's
results do not depend on its backend: every draw is keyed by (seed, purpose, generation, row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from collapse.config import ChainConfig
from collapse.data.feed.decode import LatentRows
from collapse.data.space import DataSpace
from collapse.engine.evaluation import Evaluator
from collapse.engine.sampling import SampleJob, sample_in_process
from collapse.store.records import Artifact
from collapse.store.storage import Storage
from collapse.strategies.protocol import PerBatch, TrainingInputs

Shards = list[Artifact]


@dataclass(frozen=True)
class TrainingJob:
    """One trained generation's training: what it reads (`inputs`, as the strategy shaped
    them; `samples`: each planned generation's (storage, sample shards); `latents`: a latent
    family's latent rows, whose shards are then latent caches), its warm start
    `init`, the strategy's `per_batch` settings, and the seed its feed is ordered by."""

    config: ChainConfig
    run: Storage
    generation: int
    space: DataSpace
    inputs: TrainingInputs
    samples: dict[int, tuple[Storage, Shards]]
    latents: LatentRows | None
    init: dict[str, np.ndarray] | None
    per_batch: PerBatch | None
    seed: int


class Trainer(Protocol):
    def train(self, job: TrainingJob) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(the trained weights, the last report: `curve` [(step, loss)], `step`, `loss`,
        `feed_s` and the timings of `collapse.distributed.train.train_generation`)."""

    def encode(
        self, pretrained: str, space: DataSpace, jobs: list[tuple[str, str, str]], target: str
    ) -> Shards:
        """VAE encoding of image shards into a latent cache (`collapse.engine.latent_cache`)."""


class Backend(Protocol):
    @property
    def trainer(self) -> Trainer | None:
        """Where a trained family trains (None: trained families cannot run here)."""

    def sample(self, job: SampleJob) -> tuple[Shards, Shards]:
        """Draw and store a generation's samples: (sample shards, grid shards)."""

    def evaluate(self, evaluator: Evaluator, samples: np.ndarray) -> dict[str, Any]:
        """{"metrics", "feature_extractor"} of the samples against the held-out rows."""

    def nearest(
        self,
        rows: np.ndarray,
        real: np.ndarray,
        k: int,
        rows_features: np.ndarray | None = None,
        real_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """The mean of each row's k nearest real rows (neighbours found in feature space
        where features are given): `collapse.strategies.correctors.toward_nearest_real`."""


class LocalBackend:
    """Everything in this process, whatever the config's worker counts say (they say where
    work runs, not what it computes), and a trained family's training on `trainer` if one is
    given (tests give the Ray one: `collapse.distributed.ray_backend.RayTrainer`)."""

    def __init__(self, trainer: Trainer | None = None):
        self.trainer = trainer

    def sample(self, job: SampleJob) -> tuple[Shards, Shards]:
        return sample_in_process(job)

    def evaluate(self, evaluator: Evaluator, samples: np.ndarray) -> dict[str, Any]:
        return evaluator(samples)

    def nearest(
        self,
        rows: np.ndarray,
        real: np.ndarray,
        k: int,
        rows_features: np.ndarray | None = None,
        real_features: np.ndarray | None = None,
    ) -> np.ndarray:
        from collapse.strategies.correctors import toward_nearest_real

        return toward_nearest_real(rows, real, k, rows_features, real_features)
