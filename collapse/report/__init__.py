"""`collapse report`: tables and plots of one run or many, or of a sweep's trials, read from
their manifests.

- `records`: the per-generation records of runs, and runs grouped by seed; `seed_stats`: each
  metric's mean and spread over runs that differ only in their seed.
- `tables`: records (or any flat rows) as a table, JSON or CSV; the table across seeds.
- `trials`: a sweep's trials, one row per trial, a metric over two swept keys.
- `figures`: the PNG files a report writes; `charts` draws them with matplotlib (the sample
  sheets are `collapse.engine.pictures`').

This package's namespace is the public surface: what the CLI and `collapse.api` call.
"""

from __future__ import annotations

from collapse.report.figures import write_plots
from collapse.report.records import load_records
from collapse.report.tables import (
    format_csv,
    format_json,
    format_rows,
    format_table,
    seed_summary,
)
from collapse.report.trials import (
    SweepTrials,
    heatmap_matrix,
    pivot_rows,
    sweep_trials,
    trial_table,
)

__all__ = [
    "SweepTrials",
    "format_csv",
    "format_json",
    "format_rows",
    "format_table",
    "heatmap_matrix",
    "load_records",
    "pivot_rows",
    "seed_summary",
    "sweep_trials",
    "trial_table",
    "write_plots",
]
