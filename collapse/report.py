"""Tables and plots of one run or many, read from their manifests."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapse import plots, seeds
from collapse.config import parse_yaml
from collapse.data.shards import from_parquet, table_to_images
from collapse.errors import UserError
from collapse.storage import RunStore, Storage


def load_records(run_uris: list[str]) -> list[dict[str, Any]]:
    """Per-generation records of every run, in DESIGN.md's `report --format json` shape."""
    records = []
    for uri in run_uris:
        store = RunStore(uri)
        store.storage.check_reachable()
        text = store.read_config()
        if text is None:
            raise UserError(f"{store.uri}: no run here (config.yaml not found)")
        raw = parse_yaml(text, store.storage.uri_of("config.yaml"))
        name = (raw.get("name") if isinstance(raw, dict) else None) or store.uri
        measured = _evaluations(store)
        for rec in store.committed():
            records.append(
                {
                    "run": name,
                    "uri": store.uri,
                    "generation": rec["generation"],
                    "metrics": rec["metrics"],
                    **{
                        k: rec[k]
                        for k in (
                            "feature_extractor",
                            "samples_png",
                            "grid",
                            "real_fraction",
                            "loss_curve",
                        )
                        if k in rec
                    },
                    "train_rows": rec["train_rows"],
                    "mix": rec["mix"],
                    **({"evaluations": measured[rec["generation"]]} if measured else {}),
                }
            )
    _disambiguate(records)
    return records


def _evaluations(store: RunStore) -> dict[int, list[dict[str, Any]]]:
    """The results of `collapse evaluate` by generation: each with its key, its extractor and
    its metrics (a generation without a result of some evaluation lists it not)."""
    from collapse.evaluate import indexes

    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for index in indexes(store):
        for entry in index["generations"]:
            found[entry["generation"]].append(
                {
                    "evaluation": index["key"],
                    "feature_extractor": entry["feature_extractor"],
                    "metrics": entry["metrics"],
                }
            )
    return found


def _disambiguate(records: list[dict[str, Any]]) -> None:
    """Runs of the same name from different places are told apart by their URI."""
    uris_by_name: dict[str, set[str]] = defaultdict(set)
    for r in records:
        uris_by_name[r["run"]].add(r["uri"])
    for r in records:
        if len(uris_by_name[r["run"]]) > 1:
            r["run"] = r["uri"]


def format_json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=1)


def _rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """A column per metric the chain measured, then one per metric `collapse evaluate` measured
    again, named `metric@extractor` (numbers of two feature spaces do not compare)."""
    names = plots.metric_names(records)
    measured = [_measured_again(r) for r in records]
    again = list(dict.fromkeys(k for m in measured for k in m))
    header = ["run", "generation", *names, *again]
    rows = [
        [
            r["run"],
            r["generation"],
            *(r["metrics"].get(n, "") for n in names),
            *(m.get(n, "") for n in again),
        ]
        for r, m in zip(records, measured, strict=True)
    ]
    return header, rows


def _measured_again(record: dict[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for evaluation in record.get("evaluations", []):
        for name, value in evaluation["metrics"].items():
            found.setdefault(f"{name}@{evaluation['feature_extractor']}", value)
    return found


def format_csv(records: list[dict[str, Any]]) -> str:
    header, rows = _rows(records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def format_table(records: list[dict[str, Any]]) -> str:
    return _align(*_rows(records))


def _align(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[v if isinstance(v, str) else _number(v) for v in row] for row in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]

    def line(row: list[Any]) -> str:
        padded = (
            str(v).rjust(w) if j else str(v).ljust(w)
            for j, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(padded)

    lines = [line(row) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def write_plots(records: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Metric curves (one PNG per metric, a line per run); for image runs a sheet of the
    same-noise grid over generations; for trained runs their loss curves; for several runs a
    bar chart of their final generation."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = seed_groups(records)
    if groups:  # chains that differ only in seed: a band per setting, not a line per seed
        written = plots.seed_curves(seeds.across_seeds(records, groups), out)
    else:
        written = plots.metric_curves(records, out)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_run[r["run"]].append(r)
    for run, recs in by_run.items():
        with_curve = [r for r in recs if r.get("loss_curve")]
        if with_curve:
            store = RunStore(with_curve[0]["uri"])
            curves = [
                (r["generation"], json.loads(store.read_artifact(r["loss_curve"])))
                for r in with_curve
            ]
            title = f"{run}: training loss, a line per generation"
            written.append(plots.loss_curves(curves, title, out / f"{_file_name(run)}-loss.png"))
        with_grid = [r for r in recs if r.get("grid")]
        if not with_grid:
            continue
        keep = set(plots.sheet_generations([r["generation"] for r in with_grid]))
        store = RunStore(with_grid[0]["uri"])
        grids = [
            (r["generation"], _grid_images(store, r["grid"]))
            for r in with_grid
            if r["generation"] in keep
        ]
        path = out / f"{_file_name(run)}-samples.png"
        path.write_bytes(plots.sample_sheet(grids, f"{run}: same noise, one row per generation"))
        written.append(path)
    if len(by_run) > 1:
        written.append(plots.final_bars(records, out / "final.png"))
    return written


def seed_groups(records: list[dict[str, Any]]) -> list[seeds.SeedGroup]:
    """The records' runs grouped by setting where some setting ran with several seeds."""
    from collapse.config import flatten

    configs = {}
    for uri in dict.fromkeys(r["uri"] for r in records):
        store = RunStore(uri)
        raw = parse_yaml(store.read_config() or "{}", store.storage.uri_of("config.yaml"))
        configs[uri] = flatten(raw) if isinstance(raw, dict) else {}
    return seeds.group_by_seed(configs)


def seed_summary(records: list[dict[str, Any]], final: bool) -> str | None:
    """The table across seeds (`collapse.seeds`): every generation, or with `final` (a sweep)
    the last one all seeds of a setting reached; None when no setting ran with two seeds."""
    groups = seed_groups(records)
    if not groups:
        return None
    rows = seeds.across_seeds(records, groups)
    if final:
        rows = seeds.last_common(rows, groups)
    title = "across seeds: mean ± sd [min, max]"
    return f"{title}\n{format_rows(seeds.table_rows(rows), 'table')}"


def _grid_images(store: RunStore, shards: list[dict[str, Any]]) -> Any:
    import numpy as np

    return np.concatenate([table_to_images(from_parquet(store.read_artifact(a))) for a in shards])


def _file_name(run: str) -> str:
    """A run's name (or URI, when names clash) as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run).strip("_") or "run"


# --- sweeps -----------------------------------------------------------------------------------


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
    from collapse.sweep import SWEEP_FILE, TRIALS, point_keys

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


def final_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's last committed generation."""
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["run"] not in last or r["generation"] > last[r["run"]]["generation"]:
            last[r["run"]] = r
    return list(last.values())


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


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """A list of flat rows as table, json or csv."""
    if fmt == "json":
        return json.dumps(rows, indent=1)
    header = list(dict.fromkeys(k for row in rows for k in row))
    body = [[row.get(k, "") for k in header] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
        return out.getvalue()
    return _align(header, body)


def heatmap(
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
