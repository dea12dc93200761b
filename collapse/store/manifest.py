"""What a manifest must look like before a run trusts it.

The manifest is the run's only record of what was committed, and people and tools do edit it
(a record deleted to "redo" a generation, a backup restored over it, a script that wrote
`"generation": "5"`). Acting on a manifest that lies deletes or recomputes the wrong files, so
each part is checked in full when read (the head at once, a sealed chunk when a record in it
is first needed): its shape, each record's required fields and their types, every artifact
it names, and that the records are generations 0, 1, 2, ... in order, each once. A manifest
that fails is refused with one line naming the file, the record and what to do; nothing is
deleted.
"""

from __future__ import annotations

import re
from typing import Any

from collapse.errors import UserError

FORMAT = 2
CHUNK = 64  # records per sealed chunk file: what one commit rewrites at most
_SHA256 = re.compile(r"[0-9a-f]{64}")
# what resume, later generations and `report` read from every record
_REQUIRED: dict[str, type] = {
    "generation": int,
    "mix": list,
    "train_rows": int,
    "sample_rows": int,
    "samples": list,
    "model": list,
    "metrics": dict,
}
_ARTIFACT_LISTS = ("samples", "model", "grid", "corrected")


def _fix(uri: str) -> str:
    return (
        f"restore {uri} from a backup, or remove the records from the first bad one on "
        "(those generations are then recomputed)"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_artifact(artifact: Any, where: str) -> None:
    """An artifact entry: a relative path inside the run, its sha256, its size (and rows)."""
    if not isinstance(artifact, dict):
        raise ValueError(f"{where} is not an artifact (path, sha256, bytes)")
    path = artifact.get("path")
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"{where}.path must be a path inside the run, got {path!r}")
    if not isinstance(artifact.get("sha256"), str) or not _SHA256.fullmatch(artifact["sha256"]):
        raise ValueError(f"{where}.sha256 must be 64 hex digits")
    if not _is_int(artifact.get("bytes")) or artifact["bytes"] < 0:
        raise ValueError(f"{where}.bytes must be a non-negative integer")
    rows = artifact.get("rows")
    if rows is not None and (not _is_int(rows) or rows < 0):
        raise ValueError(f"{where}.rows must be a non-negative integer or null")


def check_record(record: Any, index: int) -> None:
    """One generation's record, the `index`-th of its manifest; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"record {index} is {type(record).__name__}, not an object")
    for key, kind in _REQUIRED.items():
        if key not in record:
            raise ValueError(f"record {index} has no {key!r}")
        value = record[key]
        if kind is int and not _is_int(value) or not isinstance(value, kind):
            raise ValueError(
                f"record {index}: {key!r} must be {kind.__name__}, got {type(value).__name__}"
            )
    if record["generation"] != index:
        raise ValueError(
            f"record {index} is generation {record['generation']}: records must be "
            f"generations 0, 1, 2, ... in order, each once"
        )
    if record["sample_rows"] < 0 or record["train_rows"] < 0:
        raise ValueError(f"record {index}: row counts must not be negative")
    for name in _ARTIFACT_LISTS:
        if name in record:
            if not isinstance(record[name], list) or not record[name]:
                raise ValueError(f"record {index}: {name!r} must be a non-empty list")
            for i, artifact in enumerate(record[name]):
                check_artifact(artifact, f"record {index}.{name}[{i}]")
    for name, value in record["metrics"].items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"record {index}: metric {name!r} is {value!r}, not a number")


def check_records(records: Any, first: int) -> list[dict[str, Any]]:
    """A list of records that must be generations first, first + 1, ...; ValueError if not."""
    if not isinstance(records, list):
        raise ValueError("'generations' must be a list of records")
    for offset, record in enumerate(records):
        check_record(record, first + offset)
    return records


def _check_chunk_ref(ref: Any, index: int, first: int) -> None:
    where = f"sealed[{index}]"
    check_artifact(ref, where)
    if ref.get("first") != first or ref.get("count") != CHUNK:
        raise ValueError(
            f"{where} must hold generations {first}..{first + CHUNK - 1} "
            f"(first {first}, count {CHUNK}), got first {ref.get('first')!r}, "
            f"count {ref.get('count')!r}"
        )


def _check_count_runs(runs: Any, generations: int) -> None:
    """The sealed generations' sample counts: [first, last, count] runs covering them in order."""
    expected = 0
    for run in runs if isinstance(runs, list) else [None]:
        if (
            not isinstance(run, list)
            or len(run) != 3
            or not all(_is_int(v) for v in run)
            or run[0] != expected
            or run[1] < run[0]
            or run[2] < 0
        ):
            raise ValueError(
                f"'sample_counts' must be [first, last, count] runs of generations 0.."
                f"{generations - 1} in order, got {run!r} where generation {expected} starts"
            )
        expected = run[1] + 1
    if expected != generations:
        raise ValueError(
            f"'sample_counts' covers generations 0..{expected - 1}, the sealed chunks "
            f"0..{generations - 1}"
        )


def check_manifest(document: Any, uri: str) -> dict[str, Any]:
    """The manifest head `document` (parsed JSON) if it is sound; else one line for the user.

    Format 1 holds every record inline. Format 2 (a chain of any length commits in constant
    time) holds `sealed`, the checksummed files of full chunks of CHUNK records, and inline
    only the records after them; `sample_counts` (heads written since) has the sealed
    generations' sample counts as runs, so planning needs no chunk. The sealed files are
    checked when they are read."""
    try:
        if not isinstance(document, dict):
            raise ValueError(f"it is a JSON {type(document).__name__}, not an object")
        if document.get("format") not in (1, FORMAT):
            raise ValueError(f"'format' must be 1 or {FORMAT}, got {document.get('format')!r}")
        sealed = document.get("sealed", []) if document["format"] == FORMAT else []
        if not isinstance(sealed, list):
            raise ValueError("'sealed' must be a list of chunk files")
        for index, ref in enumerate(sealed):
            _check_chunk_ref(ref, index, index * CHUNK)
        if "sample_counts" in document:
            _check_count_runs(document["sample_counts"], len(sealed) * CHUNK)
        check_records(document.get("generations"), len(sealed) * CHUNK)
    except ValueError as err:
        raise UserError(f"{uri} is not a valid manifest: {err}; {_fix(uri)}") from None
    return document


def chunk_records(document: Any, ref: dict[str, Any], uri: str, manifest_uri: str) -> list:
    """The records of a sealed chunk file (parsed JSON), checked like the manifest's own."""
    try:
        if not isinstance(document, dict):
            raise ValueError(f"it is a JSON {type(document).__name__}, not an object")
        records = check_records(document.get("generations"), ref["first"])
        if len(records) != ref["count"]:
            raise ValueError(f"it holds {len(records)} records, the manifest says {ref['count']}")
    except ValueError as err:
        raise UserError(
            f"{uri} is not a valid manifest chunk: {err}; {_fix(manifest_uri)}"
        ) from None
    return records
