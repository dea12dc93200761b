"""The sweep file's schema: the base config, the space, each trial's resources and an optional
early stop, as pydantic models checked as strictly as a chain config."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from collapse.config.base import Section
from collapse.config.metric_names import METRICS, recorded_names

TRIALS = "trials"


class Resources(Section):
    """What Tune reserves per trial. `gpus` may be a fraction, so small chains share a GPU;
    `train_workers` sets train.workers of every trial (its Ray Train workers are scheduled
    beside the trial, not inside its reservation)."""

    cpus: float = Field(1.0, ge=0, le=1024)
    gpus: float = Field(0.0, ge=0, le=64)
    train_workers: int | None = Field(None, ge=0, le=4096)


class EarlyStop(Section):
    """ASHA over generations: trials whose `metric` is behind at a rung stop early."""

    metric: str
    mode: Literal["min", "max"]
    grace_period: int = Field(1, ge=1, le=1_000_000)
    reduction_factor: float = Field(2.0, gt=1, le=100)

    @model_validator(mode="after")
    def _known_metric(self) -> EarlyStop:
        allowed = (*recorded_names(METRICS), "sigma2", "log_sigma2")
        if self.metric not in allowed:
            raise ValueError(f"metric {self.metric!r} unknown; allowed: {', '.join(allowed)}")
        return self


class SweepConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    storage: str = Field("./runs", min_length=1)
    base: dict[str, Any]
    space: dict[str, Any]
    samples: int = Field(1, ge=1, le=100_000)  # Tune's num_samples: the grid, repeated
    resources: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int | None = Field(None, ge=1, le=100_000)
    early_stop: EarlyStop | None = None

    @property
    def uri(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def trials_uri(self) -> str:
        return f"{self.uri}/{TRIALS}"
