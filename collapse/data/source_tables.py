"""A source's rows as a stream of shard tables, `CHUNK_ROWS` at a time, so `collapse prepare`
writes a source of any size without holding it in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

CHUNK_ROWS = 4096


class SourceTables(Iterator[pa.Table]):
    """A source's tables, with its row count known before the first is read (for progress)."""

    def __init__(self, rows: int, tables: Iterator[pa.Table]):
        self.rows = rows
        self._tables = tables

    def __next__(self) -> pa.Table:
        return next(self._tables)
