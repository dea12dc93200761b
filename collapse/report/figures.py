"""Which PNG files `collapse report --plots DIR` writes, and the run artifacts (loss curves,
same-noise grids) they are drawn from; `charts` draws them."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from collapse.data.shards import from_parquet, table_to_images
from collapse.engine import pictures
from collapse.report import charts, seed_stats
from collapse.report.records import seed_groups
from collapse.store.records import Artifact
from collapse.store.run_store import RunStore


def write_plots(records: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Metric curves (one PNG per metric, a line per run); for image runs a sheet of the
    same-noise grid over generations; for trained runs their loss curves; for several runs a
    bar chart of their final generation."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = seed_groups(records)
    if groups:  # chains that differ only in seed: a band per setting, not a line per seed
        written = charts.seed_curves(seed_stats.across_seeds(records, groups), out)
    else:
        written = charts.metric_curves(records, out)
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
            written.append(charts.loss_curves(curves, title, out / f"{_file_name(run)}-loss.png"))
        with_grid = [r for r in recs if r.get("grid")]
        if not with_grid:
            continue
        keep = set(pictures.sheet_generations([r["generation"] for r in with_grid]))
        store = RunStore(with_grid[0]["uri"])
        grids = [
            (r["generation"], _grid_images(store, r["grid"]))
            for r in with_grid
            if r["generation"] in keep
        ]
        path = out / f"{_file_name(run)}-samples.png"
        path.write_bytes(pictures.sample_sheet(grids, f"{run}: same noise, one row per generation"))
        written.append(path)
    if len(by_run) > 1:
        written.append(charts.final_bars(records, out / "final.png"))
    return written


def _grid_images(store: RunStore, shards: list[Artifact]) -> Any:
    import numpy as np

    return np.concatenate([table_to_images(from_parquet(store.read_artifact(a))) for a in shards])


def _file_name(run: str) -> str:
    """A run's name (or URI, when names clash) as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run).strip("_") or "run"
