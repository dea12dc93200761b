"""A generation's image evaluation as a Ray task: on a GPU when the run trains on GPUs.

Feature extraction (Inception over thousands of images) is the expensive part of evaluating an
image generation; it runs where the accelerators are, not in the chain's orchestrating actor,
and gives its GPU back as soon as the metrics are computed. The held-out set's features come
from the run's cache (`collapse.engine.evaluation`), so each task only extracts the samples'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from collapse.config import ChainConfig
from collapse.distributed.runtime import use_storage_settings
from collapse.engine.evaluation import Evaluator
from collapse.errors import UserError


def _evaluate(config: ChainConfig, settings: dict[str, str], samples: np.ndarray) -> dict[str, Any]:
    use_storage_settings(settings)
    import torch

    device = "cuda" if config.train.use_gpu and torch.cuda.is_available() else "cpu"
    return Evaluator.for_run(config, device)(samples)


def evaluate_on_ray(
    config: ChainConfig, settings: dict[str, str], samples: np.ndarray
) -> dict[str, Any]:
    gpus = 1 if config.train.use_gpu else 0
    task = ray.remote(_evaluate).options(num_cpus=1, num_gpus=gpus, max_retries=2)
    try:
        return ray.get(task.remote(config, settings, samples))
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, UserError):
            raise UserError(str(err.cause)) from None
        raise
