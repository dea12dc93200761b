"""`collapse report`: tables and plots of one run or many, or of a sweep's trials, read from
their manifests.

- `records`: the per-generation records of runs, and runs grouped by seed.
- `tables`: records (or any flat rows) as a table, JSON or CSV; the table across seeds.
- `sweeps`: a sweep's trials, one row per trial, a metric over two swept keys.
- `figures`: the PNG files a report writes; `charts` draws them with matplotlib (the sample
  sheets are `collapse.pictures`').

This package's namespace is the public surface: what the CLI and `collapse.api` call.
"""

from __future__ import annotations

from collapse.report.figures import write_plots
from collapse.report.records import load_records
from collapse.report.sweeps import SweepTrials, heatmap, pivot_rows, sweep_trials, trial_table
from collapse.report.tables import (
    format_csv,
    format_json,
    format_rows,
    format_table,
    seed_summary,
)

__all__ = [
    "SweepTrials",
    "format_csv",
    "format_json",
    "format_rows",
    "format_table",
    "heatmap",
    "load_records",
    "pivot_rows",
    "seed_summary",
    "sweep_trials",
    "trial_table",
    "write_plots",
]
