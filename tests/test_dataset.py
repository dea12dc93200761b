"""The dataset format: streaming into shards, the index, row reads, and what verify() catches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from collapse.data.dataset import DATASET_INDEX, Dataset, open_dataset, write_dataset
from collapse.data.shards import images_to_table, table_to_images, to_parquet, vectors_to_table
from collapse.errors import UserError
from collapse.store.storage import Storage


def vector_chunks(sizes: list[int], dim: int = 3) -> list[pa.Table]:
    rng = np.random.default_rng(0)
    tables, first = [], 0
    for n in sizes:
        tables.append(vectors_to_table(rng.standard_normal((n, dim)), "real", None, first))
        first += n
    return tables


def image_chunks(sizes: list[int], shape: tuple[int, int, int] = (4, 5, 3)) -> list[pa.Table]:
    rng = np.random.default_rng(1)
    tables, first = [], 0
    for n in sizes:
        images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        labels = np.arange(first, first + n) % 7
        captions = [f"image {first + i}" for i in range(n)]
        tables.append(images_to_table(images, "real", None, first, labels, captions))
        first += n
    return tables


def write(tmp_path: Path, tables: list[pa.Table], rows_per_shard: int | None = 10) -> Dataset:
    storage = Storage(str(tmp_path / "ds"))
    write_dataset(storage, tables, source="test", split="train", rows_per_shard=rows_per_shard)
    return open_dataset(storage.uri)


def test_vectors_round_trip_in_equal_shards(tmp_path):
    tables = vector_chunks([7, 30, 13])
    ds = write(tmp_path, tables)
    assert ds.kind == "vector" and ds.rows == 50
    index = ds.index
    assert (index["format"], index["source"], index["split"], index["dim"]) == (
        1,
        "test",
        "train",
        3,
    )
    assert index["columns"] == tables[0].column_names
    assert [s["path"] for s in index["shards"]] == [f"part-{i:05d}.parquet" for i in range(5)]
    assert [s["rows"] for s in index["shards"]] == [10] * 5
    assert ds.read_all().equals(pa.concat_tables(tables))
    ds.verify()


def test_images_round_trip_with_labels_and_captions(tmp_path):
    tables = image_chunks([12, 9])
    ds = write(tmp_path, tables, rows_per_shard=8)
    assert ds.kind == "image" and ds.index["shape"] == [4, 5, 3]
    assert [s["rows"] for s in ds.index["shards"]] == [8, 8, 5]
    got = ds.read_all()
    want = pa.concat_tables(tables)
    assert np.array_equal(table_to_images(got), table_to_images(want))
    assert got.column("label").to_pylist() == want.column("label").to_pylist()
    assert got.column("caption").to_pylist() == [f"image {i}" for i in range(21)]


def test_default_shard_size_puts_a_small_dataset_in_one_shard(tmp_path):
    ds = write(tmp_path, vector_chunks([100, 100]), rows_per_shard=None)
    assert [s["rows"] for s in ds.index["shards"]] == [200]


def test_mixed_schemas_or_shapes_are_refused(tmp_path):
    storage = Storage(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match="schema"):
        write_dataset(storage, vector_chunks([3]) + image_chunks([3]), source="t", split="train")
    mixed = image_chunks([3]) + image_chunks([3], shape=(5, 4, 3))
    with pytest.raises(ValueError, match="shape"):
        write_dataset(storage, mixed, source="t", split="train")


def test_rewrite_leaves_no_stale_shard(tmp_path):
    write(tmp_path, vector_chunks([50]))
    ds = write(tmp_path, vector_chunks([15]))
    assert Storage(ds.uri).list_dir("") == [
        DATASET_INDEX,
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert ds.rows == 15
    ds.verify()


def test_read_rows_across_shard_boundaries(tmp_path):
    ds = write(tmp_path, vector_chunks([7, 30, 13]))
    ranges = [(5, 23), (0, 3), (40, 50), (12, 12), (9, 11)]
    got = ds.read_rows(ranges)
    want = [i for a, b in ranges for i in range(a, b)]
    assert got.column("id").to_pylist() == want
    everything = ds.read_all()
    assert got.equals(everything.take(pa.array(want)))
    assert ds.read_rows([]).num_rows == 0
    with pytest.raises(ValueError, match="outside"):
        ds.read_rows([(45, 51)])


def test_read_rows_reads_only_the_shards_it_needs(tmp_path):
    ds = write(tmp_path, vector_chunks([50]))
    Path(ds.shard_uris()[0]).unlink()
    assert ds.read_rows([(10, 30)]).column("id").to_pylist() == list(range(10, 30))
    with pytest.raises(UserError, match="missing"):
        ds.read_rows([(5, 12)])


def _delete(path: Path, index: dict) -> None:
    path.unlink()


def _truncate(path: Path, index: dict) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _flip(path: Path, index: dict) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _other_schema(path: Path, index: dict) -> None:
    """A valid shard of another kind whose size and sha256 the index is made to agree with."""
    data = to_parquet(image_chunks([10])[0])
    path.write_bytes(data)
    shard = next(s for s in index["shards"] if s["path"] == path.name)
    shard.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(
    ("damage", "complaint"),
    [
        (_delete, "missing"),
        (_truncate, "truncated"),
        (_flip, "checksum mismatch"),
        (_other_schema, "wrong schema"),
    ],
)
def test_verify_names_the_damaged_shard(
    tmp_path, damage: Callable[[Path, dict], None], complaint: str
):
    ds = write(tmp_path, vector_chunks([30]))
    victim = ds.shard_uris()[1]
    index_path = Path(ds.uri) / DATASET_INDEX
    index = json.loads(index_path.read_text())
    damage(Path(victim), index)
    index_path.write_text(json.dumps(index))
    with pytest.raises(UserError) as err:
        open_dataset(ds.uri).verify()
    message = str(err.value)
    assert victim in message and complaint in message and "\n" not in message


def test_open_refuses_a_missing_or_corrupt_index(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path)):
        open_dataset(str(tmp_path))
    (tmp_path / DATASET_INDEX).write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON") as err:
        open_dataset(str(tmp_path))
    assert str(tmp_path) in str(err.value)
