"""A sweep file read (`base:` a path or a mapping, `--set` applied), checked before Ray starts
(every space entry against the base config, each trial's config through the preflight), and
stored: created once and checked on every rerun, where only `generations` may change, and
only upwards (an extension, `collapse.store.sweep_trials`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from collapse.config import (
    deep_copy,
    describe_errors,
    differing_keys,
    parse_yaml,
    read_config_file,
    validate,
)
from collapse.config.sweep_schema import SweepConfig
from collapse.config.sweep_space import (
    distribution,
    first_point,
    generations,
    point_keys,
    set_point,
    trial_config,
    trial_count,
)
from collapse.engine import preflight
from collapse.errors import UserError
from collapse.store.storage import Storage
from collapse.store.sweep_trials import SWEEP_FILE, stored_trials

_MANAGED = ("name", "storage")  # a sweep names and places its trials itself


def load_sweep(path: str | os.PathLike[str], overrides: list[str] | None = None) -> SweepConfig:
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
    # the base itself, with the space applied, as a trial would run it
    preflight.check(trial_config(sweep, first_point(sweep), "check"))
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
        preflight.check(validate(raw))
    except UserError as err:
        return str(err).removeprefix("config error: ")
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def dump_sweep(sweep: SweepConfig) -> str:
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)


def create_or_resume_sweep(sweep: SweepConfig) -> bool:
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
