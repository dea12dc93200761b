"""Records as text: an aligned table, JSON or CSV, a column per metric; the table across
seeds; any flat rows (a sweep's trials, Ray jobs) in the same three formats."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from collapse.report import seed_stats
from collapse.report.records import metric_names, seed_groups


def format_json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=1)


def _rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """A column per metric the chain measured, then one per metric `collapse evaluate` measured
    again, named `metric@extractor` (numbers of two feature spaces do not compare)."""
    names = metric_names(records)
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


def seed_summary(records: list[dict[str, Any]], final: bool) -> str | None:
    """The table across seeds (`collapse.report.seed_stats`): every generation, or with `final`
    (a sweep) the last one all seeds of a setting reached; None when no setting ran with two
    seeds."""
    groups = seed_groups(records)
    if not groups:
        return None
    rows = seed_stats.across_seeds(records, groups)
    if final:
        rows = seed_stats.last_common(rows, groups)
    title = "across seeds: mean ± sd [min, max]"
    return f"{title}\n{format_rows(seed_stats.table_rows(rows), 'table')}"


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
