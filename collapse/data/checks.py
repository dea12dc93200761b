"""The data check: every real dataset a run reads is checked before the first generation trains.

A fault met in the middle of a chain costs the generations before it and usually says nothing
useful: a NaN in the real pool ends in a scikit-learn traceback, a NaN in the held-out rows in
metrics that are NaN with no word said, a mistyped index field in a KeyError. The same fault
found before the run starts is one line naming the file, and the row or key, and nothing is
written. So:

- `check_index`: a `_dataset.json` field by field (types, counts, limits, shard paths inside
  the dataset's folder), whenever a dataset is opened;
- `schema_fault`: a shard's column types, whenever a shard is read;
- `row_fault`: every value of a shard, one row group at a time (finite vectors, whole images
  of the index's shape, ids that are the rows' positions, no nulls), which `Dataset.verify`
  streams over every shard: a dataset larger than memory is checked without ever being held.

All are pure functions of an index, a schema or a batch; where they are called from decides
what is read.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collapse.data.shards import PROVENANCE
from collapse.errors import UserError

DATASET_FORMAT = 1
# A shard is read whole to check its sha256 (and Arrow's binary columns hold 2 GiB a chunk).
MAX_SHARD_BYTES = 2 * 2**30
MAX_ROWS = 10**12
MAX_DIM = 65536  # the largest vector dimension a config may give (data.dim)
# PIL's decompression-bomb guard (Image.MAX_IMAGE_PIXELS): what a folder image may have, and so
# what a stored image may have
MAX_IMAGE_PIXELS = 89_478_485
CHANNELS = (1, 3)  # grey or RGB: what every source writes and every extractor reads
DATA_COLUMNS = {"vector": ("x",), "image": ("image", "shape")}


class _Strict(BaseModel):
    # extra keys are kept (an index may carry notes); only what a reader uses is typed
    model_config = ConfigDict(strict=True, extra="allow")


class _Shard(_Strict):
    path: str = Field(min_length=1)
    rows: int = Field(ge=0, le=MAX_ROWS)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # absent reads None (the shards hold ids 0, 1, ... in order); a null given is refused, as
    # list[int] is strict: the default is deliberately outside the declared type
    ids: list[int] = Field(None, min_length=2, max_length=2)  # type: ignore[arg-type]


class _Index(_Strict):
    format: Literal[1]
    kind: Literal["vector", "image"]
    rows: int = Field(ge=1, le=MAX_ROWS)
    columns: list[str]
    shards: list[_Shard] = Field(min_length=1)
    dim: int | None = Field(None, ge=1, le=MAX_DIM)
    shape: list[int] | None = Field(None, min_length=3, max_length=3)


def check_index(index: Any, where: str) -> None:
    """A dataset index as `write_dataset` writes it, or UserError naming `where` and the key."""
    need = ("format", "kind", "rows", "columns", "shards")
    if not isinstance(index, dict) or any(k not in index for k in need):
        raise UserError(f"{where} is not a dataset index: needs {', '.join(need)}")
    if index["format"] != DATASET_FORMAT or isinstance(index["format"], bool):
        raise UserError(f"{where}: unsupported format {index['format']!r}; allowed: 1")
    try:
        parsed = _Index.model_validate(index)
    except ValidationError as err:
        raise UserError(f"{where}: {_describe(err)}") from None
    fault = _layout_fault(parsed) or _shards_fault(parsed)
    if fault:
        raise UserError(f"{where}: {fault}")


def _layout_fault(index: _Index) -> str | None:
    if index.kind == "vector" and index.dim is None:
        return "a vector dataset needs dim (the vectors' length)"
    if index.kind == "image":
        if index.shape is None:
            return "an image dataset needs shape ([height, width, channels])"
        h, w, c = index.shape
        if h < 1 or w < 1 or c not in CHANNELS:
            return f"shape {index.shape}: needs height, width >= 1 and 1 or 3 channels"
        if h * w > MAX_IMAGE_PIXELS:
            return f"shape {index.shape}: {h * w} pixels is over the limit of {MAX_IMAGE_PIXELS}"
    missing = [c for c in (*DATA_COLUMNS[index.kind], *PROVENANCE) if c not in index.columns]
    if missing:
        return f"columns lacks {', '.join(missing)}, which a {index.kind} dataset has"
    if len(set(index.columns)) != len(index.columns):
        return f"columns {index.columns} names a column twice"
    return None


def _shards_fault(index: _Index) -> str | None:
    held = sum(s.rows for s in index.shards)
    if held != index.rows:
        return f"rows is {index.rows} but its shards hold {held}"
    seen: set[str] = set()
    start = 0
    for i, shard in enumerate(index.shards):
        key = f"shards[{i}]"
        if not inside(shard.path):
            return (
                f"{key}.path {shard.path!r} is not a file below the dataset's folder; "
                "shards are named by paths relative to it, without '..'"
            )
        if shard.path in seen:
            return f"{key}.path {shard.path!r} is listed twice"
        seen.add(shard.path)
        if shard.bytes > MAX_SHARD_BYTES:
            return (
                f"{key}.bytes: {shard.bytes} is over the {MAX_SHARD_BYTES} a shard may have "
                "(each is read whole to check it); cut smaller shards "
                "(collapse prepare --rows-per-shard)"
            )
        span = [start, start + shard.rows]
        if shard.ids is not None and shard.ids != span:
            return f"{key}.ids {shard.ids}: this shard holds the rows {span[0]}..{span[1] - 1}"
        start += shard.rows
    return None


def inside(path: str) -> bool:
    """A relative path that stays below the folder it is relative to (no '..', no root, no
    scheme or drive, no backslash)."""
    return (
        "\\" not in path
        and ":" not in path
        and not path.startswith("/")
        and posixpath.normpath(path) == path
        and path != "."
        and not path.startswith("../")
        and path != ".."
        and path != "_dataset.json"
    )


def _describe(err: ValidationError) -> str:
    """Pydantic's errors as `key: problem`, the first three, on one line."""
    parts = []
    for e in err.errors(include_url=False):
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        if e["type"] == "missing":
            parts.append(f"{key}: missing")
        else:
            got = repr(e.get("input"))
            got = got if len(got) <= 40 else got[:37] + "..."
            parts.append(f"{key}: {e['msg']}, got {got}")
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return "; ".join(dict.fromkeys(parts[:3])) + more


# --- shards ---------------------------------------------------------------------------------
def _is_int(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _fixed(size: int, value: str) -> Any:
    def check(t: pa.DataType) -> bool:
        if not pa.types.is_fixed_size_list(t) or t.list_size != size:
            return False
        inner = t.value_type
        return pa.types.is_float32(inner) if value == "float32" else pa.types.is_integer(inner)

    return check


def schema_fault(schema: pa.Schema, index: Mapping[str, Any]) -> str | None:
    """What is wrong with a shard's column types for this (checked) index, or None."""
    dim = index["dim"] if index["kind"] == "vector" else int(np.prod(index["shape"]))
    wants = {
        "x": (_fixed(dim, "float32"), f"fixed-size lists of float32 of length {dim}"),
        "noise": (_fixed(dim, "float32"), f"fixed-size lists of float32 of length {dim}"),
        "image": (_is_bytes, "binary (raw uint8 HWC bytes)"),
        "shape": (_fixed(3, "int"), "fixed-size lists of 3 integers (H, W, C)"),
        "label": (_is_int, "integers"),
        "caption": (_is_text, "strings"),
        "source": (_is_text, "strings"),
        "generation": (_is_int, "integers"),
        "id": (_is_int, "integers"),
    }
    for field in schema:
        if field.name not in wants:
            continue
        accepts, what = wants[field.name]
        if not accepts(field.type):
            kind = " (variable-length lists)" if pa.types.is_list(field.type) else ""
            return f"column {field.name} is {field.type}{kind}; needs {what}"
    return None


def row_fault(
    batch: pa.RecordBatch | pa.Table, first_row: int, index: Mapping[str, Any]
) -> str | None:
    """What is wrong with the values of a batch whose first row is `first_row` of the dataset
    (`schema_fault` already passed), as `row N: ...`, or None."""
    n = batch.num_rows
    for name in batch.schema.names:
        column = batch.column(name)
        if name != "generation" and column.null_count:
            return f"row {first_row + _first(column.is_null())}: {name} is null"
    ids = np.asarray(batch.column("id"), dtype=np.int64)
    wrong = ids != np.arange(first_row, first_row + n)
    if wrong.any():
        at = int(np.argmax(wrong))
        return (
            f"row {first_row + at}: id is {ids[at]}; a dataset's ids are its rows' positions "
            "0, 1, 2, ... in order (the chain selects rows by id)"
        )
    for name in ("x", "noise"):
        if name in batch.schema.names:
            fault = _vector_fault(batch.column(name))
            if fault:
                at, what = fault
                return f"row {first_row + at}: {name} {what}"
    if index["kind"] == "image":
        h, w, c = index["shape"]
        shapes = _flat(batch.column("shape")).reshape(n, 3)
        odd = (shapes != np.array([h, w, c])).any(axis=1)
        if odd.any():
            at = int(np.argmax(odd))
            return f"row {first_row + at}: shape {shapes[at].tolist()}, the index says {[h, w, c]}"
        lengths = np.asarray(pc.binary_length(batch.column("image")), dtype=np.int64)
        short = lengths != h * w * c
        if short.any():
            at = int(np.argmax(short))
            return (
                f"row {first_row + at}: image holds {lengths[at]} bytes; a {h}x{w}x{c} image "
                f"is {h * w * c} (raw uint8 HWC, not an encoded file)"
            )
    return None


def _vector_fault(column: pa.Array | pa.ChunkedArray) -> tuple[int, str] | None:
    """(row, what) of the first vector holding a null or a non-finite value."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    offset = 0
    for chunk in chunks:
        values = chunk.flatten()
        width = chunk.type.list_size
        if values.null_count:
            at = int(np.argmax(np.asarray(values.is_null())) // width)
            return offset + at, "holds a null value"
        x = values.to_numpy(zero_copy_only=False).reshape(len(chunk), width)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            at = int(np.argmin(finite))
            bad = x[at][~np.isfinite(x[at])][0]
            return offset + at, f"is not finite ({bad} at dim {int(np.argmin(np.isfinite(x[at])))})"
        offset += len(chunk)
    return None


def _flat(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False)


def _first(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(np.argmax(np.asarray(mask)))
