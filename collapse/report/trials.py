"""A sweep's trials as runs: the value each took of each swept key, one row per trial at its
last generation, and a metric over two swept keys (the heatmap's numbers)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collapse.config import parse_yaml
from collapse.errors import UserError
from collapse.report.records import final_records
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage


@dataclass
class SweepTrials:
    """A sweep's trials as runs: their URIs and the value each took of each swept key."""

    uri: str
    keys: list[str]
    params: dict[str, dict[str, Any]]  # run URI -> {key: value}

    @property
    def run_uris(self) -> list[str]:
        return list(self.params)


def sweep_trials(uri: str) -> SweepTrials | None:
    """The trials of the sweep at `uri`, or None if `uri` is not a sweep."""
    from collapse.config.sweep_schema import TRIALS
    from collapse.config.sweep_space import point_keys
    from collapse.store.sweep_trials import SWEEP_FILE

    storage = Storage(uri)
    storage.check_reachable()
    text = storage.read_text(SWEEP_FILE)
    if text is None:
        return None
    space = parse_yaml(text, storage.uri_of(SWEEP_FILE)).get("space") or {}
    keys = [k for entry in space for k in point_keys(entry)]  # a joined entry: each key
    params = {}
    for name in sorted(storage.list_dir(TRIALS)):
        run = RunStore(storage.uri_of(f"{TRIALS}/{name}"))
        config = run.read_config()
        if config is None:
            continue
        raw = parse_yaml(config, run.storage.uri_of("config.yaml"))
        params[run.uri] = {key: _value_at(raw, key) for key in keys}
    if not params:
        raise UserError(f"{storage.uri}: a sweep without trials yet (nothing under {TRIALS}/)")
    return SweepTrials(storage.uri, keys, params)


def _value_at(raw: Any, key: str) -> Any:
    """A dotted key's value in a raw config, a section (a real-fraction schedule) included."""
    for part in key.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def trial_table(records: list[dict[str, Any]], trials: SweepTrials) -> list[dict[str, Any]]:
    """One row per trial: its name, parameters, last generation and that generation's metrics."""
    return [
        {
            "trial": r["run"],
            **trials.params[r["uri"]],
            "generation": r["generation"],
            **r["metrics"],
        }
        for r in final_records(records)
    ]


def heatmap_matrix(
    rows: list[dict[str, Any]], x_key: str, y_key: str, metric: str
) -> tuple[list[Any], list[Any], Any]:
    """(x values, y values, matrix) of `metric`'s mean over trials that share (x, y), e.g. over
    seeds; NaN where no trial has that pair."""
    import numpy as np

    for key in (x_key, y_key):
        if rows and key not in rows[0]:
            swept = [k for k in rows[0] if k not in ("trial", "generation")]
            raise UserError(f"--heatmap: {key} is not a swept key; swept: {', '.join(swept)}")
    if not any(metric in row for row in rows):
        raise UserError(f"--metric: no trial reports {metric!r}")
    xs = _ordered(row[x_key] for row in rows)
    ys = _ordered(row[y_key] for row in rows)
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        if metric in row:
            cells[ys.index(row[y_key]), xs.index(row[x_key])].append(row[metric])
    matrix = np.full((len(ys), len(xs)), np.nan)
    for (i, j), values in cells.items():
        matrix[i, j] = float(np.mean(values))
    return xs, ys, matrix


def _ordered(values: Any) -> list[Any]:
    unique = list(dict.fromkeys(values))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in unique):
        return sorted(unique)
    return unique


def pivot_rows(xs: list[Any], ys: list[Any], matrix: Any, y_key: str) -> list[dict[str, Any]]:
    """The heatmap as table rows: one per y value, a column per x value."""
    return [
        {y_key: str(y), **{str(x): float(v) for x, v in zip(xs, row, strict=True)}}
        for y, row in zip(ys, matrix, strict=True)
    ]
