"""The shard schema (DESIGN.md "Shards") for vector data, and parquet encoding of shards.

Vectors are a fixed-size float32 list column `x`, so a reader recovers the (n, d) array without
copying row by row; provenance (`source`, `generation`, `id`) travels with every row so that a
mixed training set can always be traced back to where each row came from.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def vectors_to_table(x: np.ndarray, source: str, generation: int, first_id: int = 0) -> pa.Table:
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    values = pa.array(x.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "x": pa.FixedSizeListArray.from_arrays(values, d),
            "source": pa.repeat(pa.scalar(source, pa.string()), n),
            "generation": pa.array(np.full(n, generation, dtype=np.int32)),
            "id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        }
    )


def table_to_vectors(table: pa.Table) -> np.ndarray:
    column = table.column("x").combine_chunks()
    d = column.type.list_size
    return (
        column.flatten()
        .to_numpy(zero_copy_only=False)
        .reshape(-1, d)
        .astype(np.float32, copy=False)
    )


def to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes; dictionary-encode only the provenance strings and keep no statistics,
    which for float vectors cost a third of the write and buy nothing."""
    sink = io.BytesIO()
    pq.write_table(
        table, sink, compression="zstd", use_dictionary=["source"], write_statistics=False
    )
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))
