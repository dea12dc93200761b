"""A study as one experiment: a base chain config and a search space over its keys.

A collapse study is a grid (real_fraction x loop x strategy x seed, ...). The sweep file names
the base config, the space, each trial's resources and an optional early stop; this module
checks all of it before Ray starts (`collapse.distributed.tune` runs it) and turns one point of
the space into one chain's config. Layout of a sweep on storage:

    <storage>/<name>/sweep.yaml     the resolved sweep (base inline), written once
    <storage>/<name>/tune/          Ray Tune's experiment state, for a restarted driver
    <storage>/<name>/trials/<run>/  one chain run per trial: config.yaml, manifest.json, gen-*

A trial's chain is an ordinary run, so a trial restarted after the driver died resumes from its
last committed generation, and `collapse report` reads the trials like any runs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from collapse.config import (
    METRICS,
    RunConfig,
    Section,
    deep_copy,
    describe_errors,
    differing_keys,
    parse_yaml,
    read_config_file,
    set_key,
    validate,
)
from collapse.errors import UserError
from collapse.storage import Storage

SWEEP_FILE = "sweep.yaml"
TRIALS = "trials"
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
_MANAGED = ("name", "storage")  # a sweep names and places its trials itself


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
        allowed = (*METRICS, "sigma2", "log_sigma2")
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


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read and check a sweep file; `base:` is a path (relative to the file) or a mapping."""
    from collapse.config import apply_overrides

    path = Path(path)
    raw = apply_overrides(read_config_file(path), overrides or [])
    base = raw.get("base")
    if isinstance(base, str):
        raw["base"] = read_config_file((path.parent / base).expanduser())
    if isinstance(raw.get("storage"), str):  # trials run in other working directories
        raw["storage"] = Storage(raw["storage"]).uri
    return check_sweep(raw)


def check_sweep(raw: dict[str, Any]) -> SweepConfig:
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_errors(err).replace("config error", "sweep error", 1)) from None
    if not sweep.space:
        raise UserError("sweep error: space: empty; give at least one config key to sweep")
    for key, spec in sweep.space.items():
        _check_entry(sweep.base, key, spec)
    trial_config(sweep, first_point(sweep), "check")  # the base itself, with the space applied
    return sweep


def _check_entry(base: dict[str, Any], key: str, spec: Any) -> None:
    where = f"sweep error: space.{key}"
    if key.split(".")[0] in _MANAGED:
        raise UserError(f"{where}: the sweep sets {key} of each trial itself")
    kind, values = distribution(key, spec)
    if kind in ("grid", "choice"):
        if not values:
            raise UserError(f"{where}: empty {kind}; give at least one value")
    else:
        if len(values) != 2 or not all(_is_number(v) for v in values):
            raise UserError(f"{where}: {kind} takes [low, high], got {values!r}")
        low, high = values
        if not low < high or (kind == "loguniform" and low <= 0):
            raise UserError(f"{where}: {kind} needs 0 < low < high (low > 0 for log), got {values}")
    for i, value in enumerate(values):
        raw = deep_copy(base)
        set_key(raw, key, value, f"space.{key}")
        try:
            validate(raw)
        except UserError as err:
            at = f"space.{key}" + (f"[{i}]" if kind in ("grid", "choice") else "")
            detail = str(err).removeprefix("config error: ")
            raise UserError(f"sweep error: {at} = {value!r}: {detail}") from None


def distribution(key: str, spec: Any) -> tuple[str, list[Any]]:
    """A space entry as (kind, values): a plain list is a grid."""
    if isinstance(spec, list):
        return "grid", spec
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, values),) = spec.items()
        if kind in DISTRIBUTIONS and isinstance(values, list):
            return kind, values
    raise UserError(
        f"sweep error: space.{key}: give a list (a grid) or one of "
        f"{{grid|choice: [values]}}, {{uniform|loguniform|randint: [low, high]}}; got {spec!r}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def first_point(sweep: SweepConfig) -> dict[str, Any]:
    return {key: distribution(key, spec)[1][0] for key, spec in sweep.space.items()}


def trial_config(sweep: SweepConfig, params: dict[str, Any], run_name: str) -> RunConfig:
    """The chain config of one point of the space."""
    raw = deep_copy(sweep.base)
    for key, value in params.items():
        set_key(raw, key, value, f"space.{key}")
    raw["name"], raw["storage"] = run_name, sweep.trials_uri
    if sweep.resources.train_workers is not None:
        set_key(raw, "train.workers", sweep.resources.train_workers, "resources.train_workers")
    return validate(raw)


def trial_name(index: int, params: dict[str, Any]) -> str:
    """`t003-data.loop-fresh_data_data.real_fraction-0.5`: the index keeps it unique (samples
    > 1), the keys and values make it readable; a valid run name whatever the values."""
    parts = [f"{key}-{_short(value)}" for key, value in params.items()]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-._")
    return f"t{index:03d}-{slug}"[:128].rstrip("-._")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def open_sweep(sweep: SweepConfig) -> bool:
    """Create the sweep on storage, or check that the stored one is this sweep; True when it
    existed (the driver then restores the experiment)."""
    storage = Storage(sweep.uri)
    storage.check_reachable()
    text = storage.read_text(SWEEP_FILE)
    if text is None:
        storage.write_bytes(SWEEP_FILE, dump_sweep(sweep).encode(), atomic=True)
        return False
    stored = check_sweep(parse_yaml(text, storage.uri_of(SWEEP_FILE)))
    changed = differing_keys(stored, sweep)
    if changed:
        raise UserError(
            f"sweep {storage.uri} exists with a different definition (differs in: "
            f"{', '.join(changed)}); choose another name or rerun it unchanged"
        )
    return True


def dump_sweep(sweep: SweepConfig) -> str:
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)
