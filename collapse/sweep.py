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

A sweep whose base raises `generations` extends every trial. Tune does not rerun a finished
trial, and a fresh experiment over the space would draw new values for its random keys, so an
extension is an experiment of its own (`tune-g<N>/`) whose trials are the stored ones, by name,
each continuing its chain from its last committed generation.
"""

from __future__ import annotations

import math
import re
import sys
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
        from collapse.metrics.flow import recorded_names

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
    # A value valid only beside another swept key (rca_reflow beside a loop with real data)
    # is checked again with the other keys at their first values.
    anchor = deep_copy(sweep.base)
    for key, spec in sweep.space.items():
        values = distribution(key, spec)[1]
        if values:
            set_point(anchor, key, values[0])
    for key, spec in sweep.space.items():
        _check_entry(sweep.base, anchor, key, spec)
    trial_config(sweep, first_point(sweep), "check")  # the base itself, with the space applied
    return sweep


def _check_entry(base: dict[str, Any], anchor: dict[str, Any], key: str, spec: Any) -> None:
    where = f"sweep error: space.{key}"
    if any(k.split(".")[0] in _MANAGED for k in point_keys(key)):
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
        problem = _problem_with(base, key, value)
        if problem is not None and _problem_with(anchor, key, value) is not None:
            at = f"space.{key}" + (f"[{i}]" if kind in ("grid", "choice") else "")
            raise UserError(f"sweep error: {at} = {value!r}: {problem}")


def _problem_with(raw: dict[str, Any], key: str, value: Any) -> str | None:
    """What the config says of `raw` with `key` set to `value`, or None if it validates."""
    raw = deep_copy(raw)
    set_point(raw, key, value)
    try:
        validate(raw)
    except UserError as err:
        return str(err).removeprefix("config error: ")
    return None


def point_keys(key: str) -> list[str]:
    """The config keys a space entry sets: one, or several joined by commas
    (`strategy.name,data.loop`), whose values are then lists with one item per key: arms that
    differ in more than one key, without the grid's product of them."""
    return [k.strip() for k in key.split(",")]


def set_point(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a space entry's value in a raw config (every key of a joined entry)."""
    keys = point_keys(key)
    if len(keys) == 1:
        set_key(raw, key, value, f"space.{key}")
        return
    if not isinstance(value, list) or len(value) != len(keys):
        raise UserError(
            f"sweep error: space.{key}: {value!r} is not a list of {len(keys)} values, one per key"
        )
    for k, v in zip(keys, value, strict=True):
        set_key(raw, k, v, f"space.{key}")


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
        set_point(raw, key, value)
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
    """Create the sweep on storage, or check that the stored one is this sweep, or this sweep
    with `generations` raised (stored then); True when it existed (the driver then restores
    the experiment, or extends its trials)."""
    storage = Storage(sweep.uri)
    storage.check_reachable()
    text = storage.read_text(SWEEP_FILE)
    if text is None:
        storage.write_bytes(SWEEP_FILE, dump_sweep(sweep).encode(), atomic=True)
        return False
    stored = check_sweep(parse_yaml(text, storage.uri_of(SWEEP_FILE)))
    before, after = generations(stored), generations(sweep)
    changed = [k for k in differing_keys(stored, sweep) if k != "base.generations"]
    if changed:
        raise UserError(
            f"sweep {storage.uri} exists with a different definition (differs in: "
            f"{', '.join(changed)}); choose another name or rerun it unchanged"
        )
    if after < before:
        raise UserError(
            f"sweep {storage.uri} has generations: {before}; a lower count ({after}) is refused "
            "(generations may only be raised)"
        )
    if after > before:
        started, expected = len(stored_trials(sweep)), trial_count(sweep)
        if started < expected:
            raise UserError(
                f"sweep {storage.uri} has started {started} of its {expected} trials: rerun it "
                f"unchanged (generations: {before}) to start them all, then raise generations"
            )
        storage.write_bytes(SWEEP_FILE, dump_sweep(sweep).encode(), atomic=True)
    return True


def generations(sweep: SweepConfig) -> int:
    """The generations of the sweep's chains (the base's, or the config's default)."""
    return trial_config(sweep, first_point(sweep), "t").generations


def trial_count(sweep: SweepConfig) -> int:
    """The trials Tune makes of the space: the grid's points, `samples` times over (random
    keys are drawn once per trial, they add none)."""
    count = sweep.samples
    for key, spec in sweep.space.items():
        kind, values = distribution(key, spec)
        count *= len(values) if kind == "grid" else 1
    return count


def stored_trials(sweep: SweepConfig) -> dict[str, RunConfig]:
    """The trials started so far: run name -> its stored config."""
    from collapse import stored_config
    from collapse.storage import RunStore

    trials = Storage(sweep.trials_uri)
    found = {}
    for name in trials.list_dir(""):
        config = stored_config.read(RunStore(trials.uri_of(name)))
        if config is not None:
            found[name] = config
    return found


def _stored_trial(sweep: SweepConfig, name: str) -> RunConfig:
    from collapse import stored_config
    from collapse.storage import RunStore

    config = stored_config.read(RunStore(Storage(sweep.trials_uri).uri_of(name)))
    if config is None:
        raise UserError(f"{sweep.trials_uri}/{name}: the trial to extend has no config.yaml")
    return config


def extension_experiment(sweep: SweepConfig) -> str:
    """The Tune experiment that extends the trials to the sweep's `generations`."""
    return f"tune-g{generations(sweep)}"


def behind(sweep: SweepConfig) -> list[str]:
    """The started trials whose stored `generations` is below the sweep's: what an extension
    continues."""
    target = generations(sweep)
    return sorted(name for name, c in stored_trials(sweep).items() if c.generations < target)


def extended_trial_config(sweep: SweepConfig, name: str) -> RunConfig:
    """A stored trial's config with the sweep's `generations`: its own sampled values kept."""
    stored = _stored_trial(sweep, name)
    return validate({**stored.model_dump(mode="json"), "generations": generations(sweep)})


def dump_sweep(sweep: SweepConfig) -> str:
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)


class _CallableModule(type(sys.modules[__name__])):
    """`collapse.sweep(spec)` is the Python API's sweep (`collapse.api.sweep`), and this module
    keeps its name: a package attribute that a submodule shares is the submodule."""

    def __call__(self, spec: Any, overrides: Any = ()) -> Any:
        from collapse.api import sweep

        return sweep(spec, overrides)


sys.modules[__name__].__class__ = _CallableModule
