"""`collapse evaluate` on the cluster: one Ray task per generation, on a GPU if asked.

Each task reads its generation's samples from storage itself (the driver ships only the
generation's record) and returns the metrics. A worker process keeps the evaluator it built,
feature extractor and held-out features included, for the next generation it is given, so
Inception is loaded once per worker, not once per generation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import ray

from collapse.config import validate
from collapse.distributed.runtime import ensure_ray, storage_settings, use_storage_settings
from collapse.engine.evaluation import Evaluator
from collapse.engine.measurement import Measure, Measurement, read_samples
from collapse.errors import UserError
from collapse.store.records import GenerationRecord


@functools.lru_cache(maxsize=2)
def _evaluator(config_json: str, device: str) -> Evaluator:
    import json

    return Evaluator.for_run(validate(json.loads(config_json)), device)


def _measure(
    config_json: str, settings: dict[str, str], record: GenerationRecord, gpu: bool
) -> dict[str, Any]:
    use_storage_settings(settings)
    device = "cpu"
    if gpu:  # torch only where it is needed: it costs a vector run's task seconds to import
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    evaluator = _evaluator(config_json, device)
    return evaluator(read_samples(evaluator.store, evaluator.space, record))


def measure_on_ray(workers: int, gpu: bool) -> Measure:
    """Measure generations as Ray tasks, at most `workers` at once, in the order they finish."""

    def measure(
        measurement: Measurement, records: list[GenerationRecord]
    ) -> Iterator[tuple[GenerationRecord, dict[str, Any]]]:
        if not records:
            return
        ensure_ray()
        config_json = measurement.config.model_dump_json()
        settings = storage_settings()
        task = ray.remote(_measure).options(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=2)
        waiting = list(reversed(records))
        running: dict[ray.ObjectRef[dict[str, Any]], GenerationRecord] = {}
        while waiting or running:
            while waiting and len(running) < workers:
                record = waiting.pop()
                running[task.remote(config_json, settings, record, gpu)] = record
            (done,), _ = ray.wait(list(running), num_returns=1)
            record = running.pop(done)
            try:
                yield record, ray.get(done)
            except ray.exceptions.RayTaskError as err:
                if isinstance(err.cause, UserError):
                    raise UserError(str(err.cause)) from None
                raise

    return measure
