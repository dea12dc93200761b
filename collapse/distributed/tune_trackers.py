"""A sweep's `tracking:` as Ray Tune's own logger callbacks (collapse.driver.tracking logs a chain).

Each trial reports its committed generations to Tune (metrics and `generation`); these
callbacks send those reports to TensorBoard (Tune's TBX logger: event files beside each trial's
results under `<sweep>/tune/`), MLflow (a run per trial in the experiment, tagged with the
sweep's URI) and W&B (a run per trial, grouped by the sweep's name).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from collapse.config import TrackingConfig

_WANDB_ENV = ("WANDB_MODE", "WANDB_ERROR_REPORTING")  # set for an offline sweep, then restored


@contextlib.contextmanager
def tune_callbacks(tracking: TrackingConfig, uri: str) -> Iterator[list[Any]]:
    """Ray Tune's own logger callbacks for a sweep's `tracking:` (its base's): TensorBoard
    (Tune's TBX logger, event files beside each trial's results under `<sweep>/tune/`),
    MLflow (a run per trial in the experiment) and W&B (a run per trial, grouped by the
    sweep). Ray's W&B callback decides offline from `WANDB_MODE`, so an offline sweep sets it
    (and turns W&B's crash reports off) for as long as the sweep runs."""
    callbacks: list[Any] = []
    saved = {key: os.environ.get(key) for key in _WANDB_ENV}
    try:
        if tracking.tensorboard:
            from ray.tune.logger import TBXLoggerCallback

            callbacks.append(TBXLoggerCallback())
        if tracking.mlflow.uri:  # each backend is imported only when asked for
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            for key, value in tracking.mlflow.environment.items():
                os.environ.setdefault(key, value)
            callbacks.append(
                MLflowLoggerCallback(
                    tracking_uri=tracking.mlflow.uri,
                    experiment_name=tracking.mlflow.experiment,
                    tags={"collapse.sweep_uri": uri},
                )
            )
        if tracking.wandb.mode != "off":
            from ray.air.integrations.wandb import WandbLoggerCallback

            os.environ["WANDB_MODE"] = tracking.wandb.mode
            if tracking.wandb.mode == "offline":
                os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
            directory = os.path.expanduser(tracking.wandb.dir) if tracking.wandb.dir else None
            callbacks.append(
                WandbLoggerCallback(
                    project=tracking.wandb.project,
                    group=uri.rstrip("/").rpartition("/")[2],
                    mode=tracking.wandb.mode,
                    dir=directory,
                    settings={"console": "off", "x_disable_stats": True, "silent": True},
                )
            )
        yield callbacks
    finally:
        for key, before in saved.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before
