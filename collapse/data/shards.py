"""The shard schema (docs/run-layout.md) and parquet encoding of shards.

One row per example. The data is either a vector, `x` (a fixed-size float32 list, so a reader
recovers the (n, d) array without copying row by row), or an image, `image` (raw uint8 HWC
bytes) with its `shape` (H, W, C). Optional `label`, `caption` and `noise` (the paired noise
of a reflow coupling). Provenance travels with every row, `source` (real|synthetic),
`generation` (null for real rows) and `id` (the row's index in its dataset or generation), so
any mixed training set can be traced back to where each of its rows came from.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE = ("source", "generation", "id")


def _provenance(
    n: int, source: str, generation: int | None, first_id: int, ids: np.ndarray | None
) -> dict[str, pa.Array]:
    gen = (
        pa.nulls(n, pa.int32())
        if generation is None
        else pa.array(np.full(n, generation, dtype=np.int32))
    )
    return {
        "source": pa.repeat(pa.scalar(source, pa.string()), n),
        "generation": gen,
        "id": pa.array(
            np.arange(first_id, first_id + n, dtype=np.int64)
            if ids is None
            else np.asarray(ids, dtype=np.int64)
        ),
    }


def _fixed_list(values: np.ndarray, dtype: pa.DataType) -> pa.FixedSizeListArray:
    n = values.shape[0]
    flat = values.reshape(n, -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), type=dtype), flat.shape[1])


def vectors_to_table(
    x: np.ndarray,
    source: str,
    generation: int | None,
    first_id: int = 0,
    noise: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> pa.Table:
    """Rows of float32 vectors; `ids` (default first_id, first_id + 1, ...) name the rows."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    columns: dict[str, pa.Array] = {"x": _fixed_list(x, pa.float32())}
    if noise is not None:
        columns["noise"] = _fixed_list(np.ascontiguousarray(noise, dtype=np.float32), pa.float32())
    columns.update(_provenance(len(x), source, generation, first_id, ids))
    return pa.table(columns)


def images_to_table(
    images: np.ndarray,
    source: str,
    generation: int | None,
    first_id: int = 0,
    labels: np.ndarray | None = None,
    captions: list[str] | None = None,
    noise: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> pa.Table:
    """Rows of uint8 HWC images (all of one shape) with optional labels/captions/noise."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 4:
        raise ValueError(f"images must be (n, H, W, C) uint8, got shape {images.shape}")
    n, h, w, c = images.shape
    row_bytes = h * w * c
    offsets = pa.array(np.arange(0, (n + 1) * row_bytes, row_bytes, dtype=np.int32))
    columns: dict[str, pa.Array] = {
        "image": pa.BinaryArray.from_buffers(
            pa.binary(), n, [None, offsets.buffers()[1], pa.py_buffer(images.reshape(-1))]
        ),
        "shape": _fixed_list(np.tile(np.array([h, w, c], dtype=np.int32), (n, 1)), pa.int32()),
    }
    if labels is not None:
        columns["label"] = pa.array(np.asarray(labels, dtype=np.int64))
    if captions is not None:
        columns["caption"] = pa.array(captions, type=pa.string())
    if noise is not None:
        columns["noise"] = _fixed_list(np.ascontiguousarray(noise, dtype=np.float32), pa.float32())
    columns.update(_provenance(n, source, generation, first_id, ids))
    return pa.table(columns)


def table_kind(table: pa.Table | pa.Schema) -> str:
    """'vector' or 'image', or ValueError naming what a shard lacks."""
    schema = table if isinstance(table, pa.Schema) else table.schema
    names = set(schema.names)
    missing = [c for c in PROVENANCE if c not in names]
    if "x" in names and not missing:
        return "vector"
    if {"image", "shape"} <= names and not missing:
        return "image"
    need = "x, or image and shape,"
    raise ValueError(f"not a collapse shard: needs {need} and {', '.join(PROVENANCE)}")


def table_to_vectors(table: pa.Table) -> np.ndarray:
    column = table.column("x").combine_chunks()
    d = column.type.list_size
    return (
        column.flatten()
        .to_numpy(zero_copy_only=False)
        .reshape(-1, d)
        .astype(np.float32, copy=False)
    )


def table_to_images(table: pa.Table) -> np.ndarray:
    """The (n, H, W, C) uint8 images of a shard whose rows share one shape."""
    shapes = np.unique(table_column_array(table, "shape"), axis=0)
    if len(shapes) != 1:
        raise ValueError(f"images of several shapes in one shard: {shapes.tolist()}")
    h, w, c = (int(v) for v in shapes[0])
    data = b"".join(table.column("image").to_pylist())
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, h, w, c)


def table_column_array(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size-list column as an (n, k) array."""
    column = table.column(name).combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)


def to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes; dictionary-encode only the provenance strings and keep no statistics,
    which for float vectors cost a third of the write and buy nothing."""
    sink = io.BytesIO()
    dictionary = [c for c in ("source", "caption") if c in table.column_names]
    pq.write_table(
        table, sink, compression="zstd", use_dictionary=dictionary, write_statistics=False
    )
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def id_spans(shards: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Each shard's [lo, hi) of row ids, from an index's shard list: a shard names its range
    (`ids`), or else shards hold ids 0, 1, ... in order."""
    starts = np.cumsum([0] + [s["rows"] for s in shards])
    spans = [
        s.get("ids", (lo, hi)) for s, lo, hi in zip(shards, starts[:-1], starts[1:], strict=True)
    ]
    return [(int(lo), int(hi)) for lo, hi in spans]
