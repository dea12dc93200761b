"""Tables and plots of one run or many, read from their manifests."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from collapse.config import parse_yaml
from collapse.errors import UserError
from collapse.storage import RunStore


def load_records(run_uris: list[str]) -> list[dict[str, Any]]:
    """Per-generation records of every run, in DESIGN.md's `report --format json` shape."""
    records = []
    for uri in run_uris:
        store = RunStore(uri)
        store.storage.check_reachable()
        text = store.read_config()
        if text is None:
            raise UserError(f"{store.uri}: no run here (config.yaml not found)")
        name = parse_yaml(text, store.storage.uri_of("config.yaml")).get("name") or store.uri
        for rec in store.committed():
            records.append(
                {
                    "run": name,
                    "uri": store.uri,
                    "generation": rec["generation"],
                    "metrics": rec["metrics"],
                    "train_rows": rec["train_rows"],
                    "mix": rec["mix"],
                }
            )
    _disambiguate(records)
    return records


def _disambiguate(records: list[dict[str, Any]]) -> None:
    """Runs of the same name from different places are told apart by their URI."""
    uris_by_name: dict[str, set[str]] = defaultdict(set)
    for r in records:
        uris_by_name[r["run"]].add(r["uri"])
    for r in records:
        if len(uris_by_name[r["run"]]) > 1:
            r["run"] = r["uri"]


def metric_names(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r["metrics"]))


def format_json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=1)


def _rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    names = metric_names(records)
    header = ["run", "generation", *names]
    rows = [[r["run"], r["generation"], *(r["metrics"].get(n, "") for n in names)] for r in records]
    return header, rows


def format_csv(records: list[dict[str, Any]]) -> str:
    header, rows = _rows(records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def format_table(records: list[dict[str, Any]]) -> str:
    header, rows = _rows(records)
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
    return str(value) if isinstance(value, int) else f"{value:.5g}"


def plot_metrics(records: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per metric: metric vs generation, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_run[r["run"]].append(r)
    written = []
    for name in metric_names(records):
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        for run, recs in by_run.items():
            points = sorted(
                (r["generation"], r["metrics"][name]) for r in recs if name in r["metrics"]
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=run)
        ax.set_xlabel("generation")
        ax.set_ylabel(name)
        ax.set_title(f"{name} per generation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
