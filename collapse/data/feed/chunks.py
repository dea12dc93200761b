"""The planned ids of one shard (`Chunk`), a mix plan's parts as chunks, and reading them:
storage is read in whole shards, and each chunk keeps exactly its planned ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collapse.data.feed.decode import Decode, Rows, concat_rows
from collapse.data.shards import id_spans
from collapse.store.storage import Storage


@dataclass(frozen=True)
class Chunk:
    """The planned ids [lo, hi) of one shard (`path` under the storage `root`)."""

    root: str
    path: str
    lo: int
    hi: int

    @property
    def rows(self) -> int:
        return self.hi - self.lo


def plan_chunks(
    parts: Sequence[tuple[str, Sequence[Mapping[str, Any]], Sequence[tuple[int, int]]]],
) -> tuple[Chunk, ...]:
    """The chunks of a plan's parts, each given as (storage URI, its shards as an index lists
    them, the planned id ranges), in plan order."""
    found = []
    for root, shards, ranges in parts:
        spans = id_spans(shards)
        for a, b in ranges:
            mine = [
                Chunk(root, s["path"], max(a, lo), min(b, hi))
                for s, (lo, hi) in zip(shards, spans, strict=True)
                if max(a, lo) < min(b, hi)
            ]
            if sum(c.rows for c in mine) != b - a:
                raise ValueError(f"{root}: its shards do not hold every id in [{a}, {b})")
            found.extend(sorted(mine, key=lambda c: c.lo))
    return tuple(found)


def read_chunk(chunk: Chunk, decode: Decode, storage: Storage | None = None) -> Rows:
    """A chunk's rows, decoded, ids ascending."""
    storage = storage or Storage(chunk.root)
    with storage.fs.open_input_file(storage.path(chunk.path)) as f:
        shard = pq.ParquetFile(f)
        table = shard.read(columns=decode.columns(shard.schema_arrow.names))
    ids = table.column("id").to_numpy()
    keep = (ids >= chunk.lo) & (ids < chunk.hi)
    if not keep.all():
        table, ids = table.filter(pa.array(keep)), ids[keep]
    if len(ids) != chunk.rows:
        raise ValueError(
            f"{storage.uri_of(chunk.path)} holds {len(ids)} of the planned ids "
            f"[{chunk.lo}, {chunk.hi})"
        )
    if np.any(ids[1:] < ids[:-1]):
        table = table.take(pa.array(np.argsort(ids, kind="stable")))
    return decode(table)


def read_all(chunks: Sequence[Chunk], decode: Decode) -> Rows:
    """Every chunk's rows, in plan order (shards are read in parallel threads)."""
    storages = {root: Storage(root) for root in {c.root for c in chunks}}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(chunks)))) as pool:
        parts = list(pool.map(lambda c: read_chunk(c, decode, storages[c.root]), chunks))
    return concat_rows(parts)
