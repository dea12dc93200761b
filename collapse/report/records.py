"""The per-generation records `collapse report` reads from runs' manifests, in the shape of
`report --format json` (docs/cli.md), and the groups of runs that differ only in seed."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collapse.config import parse_yaml
from collapse.errors import UserError
from collapse.report import seed_stats
from collapse.store.run_store import RunStore


def load_records(run_uris: list[str]) -> list[dict[str, Any]]:
    """Per-generation records of every run, in `report --format json`'s shape (docs/cli.md)."""
    records: list[dict[str, Any]] = []
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
    from collapse.driver.reevaluation import indexes

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


def final_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's last committed generation."""
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["run"] not in last or r["generation"] > last[r["run"]]["generation"]:
            last[r["run"]] = r
    return list(last.values())


def metric_names(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r["metrics"]))


def seed_groups(records: list[dict[str, Any]]) -> list[seed_stats.SeedGroup]:
    """The records' runs grouped by setting where some setting ran with several seeds."""
    from collapse.config import flatten

    configs = {}
    for uri in dict.fromkeys(r["uri"] for r in records):
        store = RunStore(uri)
        raw = parse_yaml(store.read_config() or "{}", store.storage.uri_of("config.yaml"))
        configs[uri] = flatten(raw) if isinstance(raw, dict) else {}
    return seed_stats.group_by_seed(configs)
