"""`collapse report`: the records of runs, or one row per trial of a sweep (with its heatmap
over two swept keys), printed as a table, JSON or CSV, and drawn as plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collapse.errors import UserError


def print_report(args: argparse.Namespace) -> None:
    from collapse import report
    from collapse.report import charts

    if args.heatmap and not args.metric:
        raise UserError("--heatmap needs --metric, e.g. --metric w2")
    trials = report.sweep_trials(args.run_uris[0]) if len(args.run_uris) == 1 else None
    if args.heatmap and trials is None:
        raise UserError("--heatmap is for a sweep: give one sweep URI")
    records = report.load_records(trials.run_uris if trials else args.run_uris)
    written = report.write_plots(records, args.plots) if args.plots else []
    if trials is None:
        formatter = {
            "table": report.format_table,
            "json": report.format_json,
            "csv": report.format_csv,
        }
        print(formatter[args.format](records))
    else:
        rows = report.trial_table(records, trials)
        print(report.format_rows(rows, args.format))
        if args.heatmap:
            x_key, _, y_key = args.heatmap.partition(",")
            xs, ys, matrix = report.heatmap_matrix(rows, x_key.strip(), y_key.strip(), args.metric)
            print(f"\n{args.metric} (final generation; rows {y_key}, columns {x_key})")
            print(report.format_rows(report.pivot_rows(xs, ys, matrix, y_key), "table"))
            if args.plots:
                path = Path(args.plots) / f"heatmap-{args.metric}.png"
                charts.heatmap(xs, ys, matrix, x_key, y_key, args.metric, path)
                written.append(path)
    if args.format == "table":  # json and csv keep one record per run
        summary = report.seed_summary(records, final=trials is not None)
        if summary:
            print(f"\n{summary}")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
