"""A prepared dataset: parquet shards plus `_dataset.json`, on a local path or S3.

The index is the dataset's only commit point, as the manifest is a run's: it is written last,
atomically, and records every shard's row count, size and sha256. A reader therefore trusts a
shard only through the index, so a half-written rewrite, a truncated upload or a shard swapped
for another file is reported by name rather than silently read as data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typing_extensions import NotRequired

from collapse.data.checks import DATASET_FORMAT, check_index, row_fault, schema_fault
from collapse.data.shards import table_column_array, table_kind, to_parquet
from collapse.errors import UserError
from collapse.store.records import Artifact
from collapse.store.storage import Storage

DATASET_INDEX = "_dataset.json"
# Big enough that listing and opening shards costs nothing next to reading them, small enough
# that a writer or a reader holds only one comfortably in memory.
SHARD_BYTES = 96 * 2**20


class _Layout(TypedDict, total=False):
    shape: list[int]  # images: (H, W, C)
    dim: int  # vectors


class DatasetIndex(_Layout):
    """`_dataset.json`: the dataset's format, what it was prepared from, its kind and layout
    (`dim` or `shape`), its rows and columns, and every shard with its rows, size and sha256.
    A user's own index is checked against this shape (`collapse.data.checks`) before use."""

    format: int
    source: NotRequired[str | None]
    split: NotRequired[str | None]
    kind: str
    rows: int
    columns: list[str]
    shards: list[Artifact]


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def write_dataset(
    storage: Storage,
    tables: Iterable[pa.Table],
    *,
    source: str,
    split: str,
    rows_per_shard: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> DatasetIndex:
    """Re-cut a stream of tables into equal shards, then publish their index; returns the index.

    Only about one shard of rows is held at a time, so a source of any size streams through.
    The old index is removed before the first shard is overwritten and stale shards after the
    last one, so no reader ever pairs an index with shards of another write. `progress` is
    called with each written shard's row count.
    """
    stream = iter(tables)
    first = next(stream, None)
    if first is None:
        raise ValueError("write_dataset needs at least one table")
    kind = table_kind(first)
    schema = first.schema
    if kind == "vector" and not pa.types.is_fixed_size_list(schema.field("x").type):
        raise ValueError(
            f"column x is {schema.field('x').type} (variable-length lists); vectors are "
            "stored as fixed-size lists of float32"
        )
    shape = _image_shape(first) if kind == "image" else None
    layout: _Layout = {"shape": list(shape)} if shape else {"dim": schema.field("x").type.list_size}
    fault = schema_fault(schema, {"kind": kind, **layout})
    if fault:
        raise ValueError(fault)
    if rows_per_shard is None:
        bytes_per_row = first.nbytes / max(first.num_rows, 1)
        rows_per_shard = int(SHARD_BYTES // max(bytes_per_row, 1.0))
    rows_per_shard = max(rows_per_shard, 1)

    if storage.exists(DATASET_INDEX):
        storage.fs.delete_file(storage.path(DATASET_INDEX))
    shards: list[Artifact] = []

    def flush(shard: pa.Table) -> None:
        name = shard_name(len(shards))
        data = to_parquet(shard)
        storage.write_bytes(name, data)
        digest = hashlib.sha256(data).hexdigest()
        shards.append({"path": name, "rows": shard.num_rows, "sha256": digest, "bytes": len(data)})
        if progress is not None:
            progress(shard.num_rows)

    pending: list[pa.Table] = []
    pending_rows = 0
    table: pa.Table | None = first
    while table is not None:
        if not table.schema.equals(schema):
            raise ValueError(f"tables differ in schema: {table.schema} vs the first's {schema}")
        if shape is not None and table.num_rows and _image_shape(table) != shape:
            raise ValueError(f"images of shape {_image_shape(table)} after images of {shape}")
        pending.append(table)
        pending_rows += table.num_rows
        while pending_rows >= rows_per_shard:
            buffered = pa.concat_tables(pending)
            flush(buffered.slice(0, rows_per_shard))
            rest = buffered.slice(rows_per_shard)
            pending, pending_rows = [rest], rest.num_rows
        table = next(stream, None)
    if pending_rows:
        flush(pa.concat_tables(pending))
    total = sum(s["rows"] or 0 for s in shards)  # a dataset's shards all count their rows
    if total == 0:
        raise ValueError("write_dataset got no rows")

    kept = {s["path"] for s in shards}
    for name in storage.list_dir(""):
        if name.startswith("part-") and name.endswith(".parquet") and name not in kept:
            storage.fs.delete_file(storage.path(name))

    index: DatasetIndex = {
        "format": DATASET_FORMAT,
        "source": source,
        "split": split,
        "kind": kind,
        **layout,
        "rows": total,
        "columns": schema.names,
        "shards": shards,
    }
    storage.write_bytes(DATASET_INDEX, json.dumps(index, indent=1).encode("utf-8"), atomic=True)
    return index


def _image_shape(table: pa.Table) -> tuple[int, int, int]:
    shapes = np.unique(table_column_array(table, "shape"), axis=0)
    if len(shapes) != 1:
        raise ValueError(f"images of several shapes in one table: {shapes.tolist()}")
    h, w, c = (int(v) for v in shapes[0])
    return h, w, c


class Dataset:
    """A dataset opened through its index; shards are read, and checked, only when asked for."""

    def __init__(self, storage: Storage, index: DatasetIndex):
        self._storage = storage
        self.uri = storage.uri
        self.index = index
        self.kind: str = index["kind"]
        self.rows: int = index["rows"]
        self._shards: list[Artifact] = index["shards"]
        self._starts = np.cumsum([0] + [s["rows"] for s in self._shards])

    def shard_uris(self) -> list[str]:
        return [self._storage.uri_of(s["path"]) for s in self._shards]

    def verify(self) -> None:
        """The data check of every shard (`collapse.data.checks`): present, of the index's
        size, sha256 and column types, then every value, a row group at a time, so the memory
        it needs is about one shard's, whatever the dataset's size. (Row groups, not small
        record batches: Arrow decodes a fixed-size-list column ten times faster whole.)"""
        for i, shard in enumerate(self._shards):
            uri = self._storage.uri_of(shard["path"])
            parquet = pq.ParquetFile(pa.BufferReader(self._checked_bytes(i)))
            first = int(self._starts[i])
            try:
                for group in range(parquet.num_row_groups):
                    rows = parquet.read_row_group(group)
                    fault = row_fault(rows, first, self.index)
                    if fault:
                        raise UserError(f"{uri}: {fault}")
                    first += rows.num_rows
            except (pa.ArrowException, OSError) as err:
                raise UserError(f"{uri}: cannot be decoded: {_first_line(err)}") from None

    def read_rows(self, ranges: Sequence[tuple[int, int]]) -> pa.Table:
        """Rows at the half-open position ranges, in the order asked.

        Each shard is read (and checked) once, and only the rows asked of it are kept, so
        asking for a few rows of many shards never holds those shards all at once.
        """
        pieces: list[tuple[int, int, int]] = []  # (shard, start, stop) within the shard
        for start, stop in ranges:
            if not 0 <= start <= stop <= self.rows:
                raise ValueError(f"row range [{start}, {stop}) outside [0, {self.rows})")
            first = int(np.searchsorted(self._starts, start, side="right")) - 1
            for i in range(first, len(self._shards)):
                if self._starts[i] >= stop:
                    break
                lo, hi = max(start, self._starts[i]), min(stop, self._starts[i + 1])
                if lo < hi:  # an empty shard holds none of them
                    pieces.append((i, int(lo - self._starts[i]), int(hi - self._starts[i])))
        if not pieces:
            return self._read_shard(0).slice(0, 0)
        parts: list[pa.Table] = [pa.table({})] * len(pieces)
        for shard in sorted({p[0] for p in pieces}):
            mine = [k for k, p in enumerate(pieces) if p[0] == shard]
            table = self._read_shard(shard)
            rows = np.concatenate([np.arange(pieces[k][1], pieces[k][2]) for k in mine])
            if not np.array_equal(rows, np.arange(table.num_rows)):
                table = table.take(rows)  # a copy of the asked rows; the shard itself goes
            offset = 0
            for k in mine:
                n = pieces[k][2] - pieces[k][1]
                parts[k] = table.slice(offset, n)
                offset += n
        return pa.concat_tables(parts)

    def read_all(self) -> pa.Table:
        return self.read_rows([(0, self.rows)])

    def _read_shard(self, i: int) -> pa.Table:
        return pq.read_table(pa.BufferReader(self._checked_bytes(i)))

    def _checked_bytes(self, i: int) -> bytes:
        shard = self._shards[i]
        uri = self._storage.uri_of(shard["path"])
        try:
            data = self._storage.read_bytes(shard["path"])
        except FileNotFoundError:
            raise UserError(f"{uri}: missing (listed in {DATASET_INDEX})") from None
        except OSError as err:  # a directory, no permission
            raise UserError(f"{uri}: cannot be read: {_first_line(err)}") from None
        if len(data) != shard["bytes"]:
            what = "truncated" if len(data) < shard["bytes"] else "wrong size"
            raise UserError(f"{uri}: {what}: size {len(data)} bytes, index says {shard['bytes']}")
        if hashlib.sha256(data).hexdigest() != shard["sha256"]:
            raise UserError(f"{uri}: checksum mismatch (sha256 differs from {DATASET_INDEX})")
        try:
            meta = pq.ParquetFile(pa.BufferReader(data))
            schema = meta.schema_arrow
            kind = table_kind(schema)
        except (pa.ArrowException, ValueError) as err:
            raise UserError(f"{uri}: wrong schema: {_first_line(err)}") from None
        if schema.names != self.index["columns"] or kind != self.kind:
            raise UserError(
                f"{uri}: wrong schema: {kind} columns {schema.names}, "
                f"index says {self.kind} columns {self.index['columns']}"
            )
        fault = schema_fault(schema, self.index)
        if fault:
            raise UserError(f"{uri}: wrong schema: {fault}")
        if meta.metadata.num_rows != shard["rows"]:
            raise UserError(f"{uri}: {meta.metadata.num_rows} rows, index says {shard['rows']}")
        return data


def open_dataset(uri: str) -> Dataset:
    storage = Storage(uri)
    index_uri = storage.uri_of(DATASET_INDEX)
    try:
        text = storage.read_text(DATASET_INDEX)
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{index_uri}: cannot be read: {_first_line(err)}") from None
    if text is None:
        raise UserError(
            f"{uri}: no dataset there ({DATASET_INDEX} missing); write one with `collapse prepare`"
        )
    try:
        index = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise UserError(f"{index_uri} is not valid JSON: {_first_line(err)}") from None
    check_index(index, index_uri)
    return Dataset(storage, index)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
