"""The search space: its entries as distributions, and one point of it as one trial (the
chain config, the run name); how many trials Tune makes of it."""

from __future__ import annotations

import re
from typing import Any

from collapse.config.chain import ChainConfig
from collapse.config.loading import validate
from collapse.config.overrides import deep_copy, set_key
from collapse.config.sweep_schema import SweepConfig
from collapse.errors import UserError

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")


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


def first_point(sweep: SweepConfig) -> dict[str, Any]:
    return {key: distribution(key, spec)[1][0] for key, spec in sweep.space.items()}


def trial_config(sweep: SweepConfig, params: dict[str, Any], run_name: str) -> ChainConfig:
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
