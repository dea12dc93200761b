"""`collapse evaluate`: measure a run's stored samples again, with other metrics or features.

A researcher who wants a metric the chain did not compute (`coverage`, or FID in another
feature space) should not have to rerun the chain: every committed generation's samples are on
storage with their checksums. An evaluation is the pair (feature extractor, metrics), named
`<extractor>-<hash of the metric names>`, and is stored beside the original measurements, never
over them:

    gen-k/evaluations/<key>.json   one generation's result, with the checksums of the samples
                                   it measured and when
    evaluations/<key>.json         the evaluation's index: its extractor, its metrics, and each
                                   generation's result with the checksum of its file

The manifest is not touched. The index is replaced (atomically) as results arrive, so a run
stopped half way resumes where it was, and a second run of the same evaluation measures only the
generations committed since. A result counts for a generation while the samples it measured are
the ones committed; a generation recomputed by a repair comes back with the same samples, and so
keeps its result.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np

from collapse.engine.measurement import Measure, Measurement, measure_here
from collapse.errors import UserError
from collapse.store.layout import generation_dir
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore

FOLDER = "evaluations"
INDEX_FORMAT = 1
INDEX_EVERY_S = 5.0  # a stopped evaluation loses at most this long of results


def index_path(key: str) -> str:
    return f"{FOLDER}/{key}.json"


def read_index(store: RunStore, key: str) -> dict[str, Any] | None:
    """An evaluation's index, or None where it has none yet."""
    text = store.storage.read_text(index_path(key))
    if text is None:
        return None
    try:
        index = json.loads(text)
        if not isinstance(index["key"], str) or index["format"] != INDEX_FORMAT:
            raise ValueError("not an evaluation index")
        if not all(map(_is_entry, index["generations"])):
            raise ValueError("not an evaluation index")
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{store.storage.uri_of(index_path(key))} is corrupt ({err}); delete it and run "
            "collapse evaluate again"
        ) from None
    return index


def _is_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and type(entry.get("generation")) is int
        and entry["generation"] >= 0
        and isinstance(entry.get("feature_extractor"), str)
        and isinstance(entry.get("metrics"), dict)
        and isinstance(entry.get("samples"), list)
    )


def indexes(store: RunStore) -> list[dict[str, Any]]:
    """Every evaluation of the run, each with only its results that still count."""
    committed = store.committed()
    found = []
    for name in store.storage.list_dir(FOLDER):
        if name.endswith(".json"):
            index = read_index(store, name.removesuffix(".json"))
            assert index is not None, "its file was listed just now"
            index["generations"] = [e for e in index["generations"] if counts(e, committed)]
            found.append(index)
    return found


def sample_checksums(record: GenerationRecord) -> list[str]:
    return [artifact["sha256"] for artifact in record["samples"]]


def counts(entry: dict[str, Any], committed: list[GenerationRecord]) -> bool:
    """Whether a stored result measured the samples its generation has committed now."""
    generation = entry["generation"]
    return generation < len(committed) and entry["samples"] == sample_checksums(
        committed[generation]
    )


def run_evaluation(
    measurement: Measurement,
    store: RunStore,
    measure: Measure = measure_here,
    on_result: Callable[[dict[str, Any]], None] = lambda entry: None,
) -> tuple[int, list[dict[str, Any]]]:
    """Measure every committed generation that has no result yet: (results there already, new
    results in the order they came). `measure` says where (`measure_here`, or Ray tasks)."""
    key = measurement.key
    committed = store.committed()
    index = read_index(store, key) or {
        "format": INDEX_FORMAT,
        "key": key,
        "feature_extractor": measurement.extractor,
        "metrics": measurement.metrics,
        "generations": [],
    }
    kept = {e["generation"]: e for e in index["generations"] if counts(e, committed)}
    for record in committed:  # results stored after the index was last saved (a stop)
        if record["generation"] not in kept:
            found = _stored_result(store, key, record)
            if found is not None:
                kept[record["generation"]] = found
    todo = [record for record in committed if record["generation"] not in kept]
    new: list[dict[str, Any]] = []
    saved = time.monotonic()
    for record, measured in measure(measurement, todo):
        entry = _store_result(store, key, record, measured)
        kept[entry["generation"]] = entry
        new.append(entry)
        on_result(entry)
        if time.monotonic() - saved > INDEX_EVERY_S:
            _save_index(store, index, kept)
            saved = time.monotonic()
    if [kept[g] for g in sorted(kept)] != index["generations"]:
        _save_index(store, index, kept)
    return len(committed) - len(todo), new


def _store_result(
    store: RunStore, key: str, record: GenerationRecord, measured: dict[str, Any]
) -> dict[str, Any]:
    """Write one generation's result file; its entry in the index."""
    generation = record["generation"]
    metrics = {name: float(value) for name, value in measured["metrics"].items()}
    document = {
        "generation": generation,
        "feature_extractor": measured["feature_extractor"],
        "metrics": metrics,
        "samples": sample_checksums(record),
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = result_path(key, generation)
    data = json.dumps(document, indent=1).encode()
    store.storage.write_bytes(path, data, atomic=True)
    return _entry(document, path, data)


def result_path(key: str, generation: int) -> str:
    return f"{generation_dir(generation)}/{FOLDER}/{key}.json"


def _entry(document: dict[str, Any], path: str, data: bytes) -> dict[str, Any]:
    """A result's line in the index: the result, and its file's checksum."""
    artifact = {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    nonfinite = [name for name, value in document["metrics"].items() if not np.isfinite(value)]
    entry = {**document, "artifact": artifact}
    return {**entry, "nonfinite": nonfinite} if nonfinite else entry


def _stored_result(store: RunStore, key: str, record: GenerationRecord) -> dict[str, Any] | None:
    """The result file of `record`'s generation, where one is stored and measured the samples
    committed now (the file is written whole, atomically: one that parses is complete)."""
    path = result_path(key, record["generation"])
    try:
        data = store.storage.read_bytes(path)
    except FileNotFoundError:
        return None
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not _is_entry(document) or document["generation"] != record["generation"]:
        return None
    if document["samples"] != sample_checksums(record):
        return None
    return _entry(document, path, data)


def _save_index(store: RunStore, index: dict[str, Any], kept: dict[int, dict[str, Any]]) -> None:
    index["generations"] = [kept[g] for g in sorted(kept)]
    data = json.dumps(index, indent=1).encode()
    store.storage.write_bytes(index_path(index["key"]), data, atomic=True)
