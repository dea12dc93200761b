"""`prepare`: every real source into a verified dataset, locally and on S3."""

from __future__ import annotations

import json
import math
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collapse.data.prepare import prepare
from collapse.data.shards import table_to_images, table_to_vectors
from collapse.data.sources import real_tables
from collapse.errors import UserError


def test_digits_in_shards_of_the_asked_rows(tmp_path):
    ds = prepare("sklearn:digits", str(tmp_path / "digits"), rows_per_shard=100)
    assert ds.rows == 1437 and ds.kind == "image" and ds.index["shape"] == [8, 8, 1]
    shards = ds.index["shards"]
    assert len(shards) == math.ceil(1437 / 100)
    assert [s["rows"] for s in shards] == [100] * 14 + [37]
    ds.verify()
    rows = ds.read_rows([(95, 105), (1400, 1437)])
    assert rows.column("id").to_pylist() == [*range(95, 105), *range(1400, 1437)]
    images = table_to_images(ds.read_all())
    assert images.dtype == np.uint8 and images.max() == 255 and images.min() == 0
    assert set(ds.read_all().column("label").to_pylist()) == set(range(10))


def test_digits_splits_partition_the_1797_rows(tmp_path):
    from sklearn.datasets import load_digits

    def rows(split: str) -> list[tuple[bytes, int]]:
        table = prepare("sklearn:digits", str(tmp_path / split), split=split).read_all()
        images = table_to_images(table)
        labels = table.column("label").to_pylist()
        return list(zip((im.tobytes() for im in images), labels, strict=True))

    train, test = rows("train"), rows("test")
    assert (len(train), len(test)) == (1437, 360)
    digits = load_digits()
    scaled = np.rint(digits.images * 255 / 16).astype(np.uint8)
    everything = list(zip((im.tobytes() for im in scaled), digits.target.tolist(), strict=True))
    assert sorted(train + test) == sorted(everything)


@pytest.mark.parametrize("size", [16, 32])
def test_digits_resized(tmp_path, size):
    ds = prepare("sklearn:digits", str(tmp_path / "d"), split="test", limit=20, size=size)
    assert ds.index["shape"] == [size, size, 1]
    assert table_to_images(ds.read_all()).shape == (20, size, size, 1)


def _png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_with_class_subfolders_and_captions(tmp_path):
    folder = tmp_path / "pics"
    files = ["cats/a.png", "cats/b.jpg", "dogs/c.png", "dogs/deep/d.bmp"]
    for i, rel in enumerate(files):
        _png(folder / rel, (12 + i, 10), (40 * i, 0, 0))
    with (folder / "captions.jsonl").open("w") as f:
        for rel in files:
            f.write(json.dumps({"file": rel, "text": f"a photo of {rel}"}) + "\n")
    ds = prepare(f"folder:{folder}", str(tmp_path / "ds"), size=8)
    table = ds.read_all()
    assert ds.index["shape"] == [8, 8, 3]
    assert table.column("label").to_pylist() == [0, 0, 1, 1]
    assert table.column("caption").to_pylist() == [f"a photo of {rel}" for rel in files]
    assert table_to_images(table)[2, 4, 4].tolist() == [80, 0, 0]

    with pytest.raises(UserError, match="cats/b.jpg.*13x10.*12x10"):
        list(real_tables(f"folder:{folder}"))
    _png(folder / "cats/e.png", (8, 8), (0, 0, 0))
    with pytest.raises(UserError, match="e.png: no caption"):
        real_tables(f"folder:{folder}", size=8)


def test_toy_source(tmp_path):
    ds = prepare("toy:mog8", str(tmp_path / "toy"), limit=500, seed=3)
    assert (ds.kind, ds.rows, ds.index["dim"]) == ("vector", 500, 2)
    x = table_to_vectors(ds.read_all())
    again = table_to_vectors(
        prepare("toy:mog8", str(tmp_path / "again"), limit=500, seed=3).read_all()
    )
    test = table_to_vectors(next(real_tables("toy:mog8", "test", limit=500, seed=3)))
    assert np.array_equal(x, again) and not np.array_equal(x, test)
    assert np.allclose(np.linalg.norm(x, axis=1).mean(), 2.0, atol=0.1)
    with pytest.raises(UserError, match="--limit"):
        real_tables("toy:mog8")


def test_large_source_shows_progress(tmp_path, capsys):
    prepare("toy:gaussian", str(tmp_path / "big"), limit=20_000, dim=4)
    assert "prepare toy:gaussian" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["imagenet", "sklearn:iris", "torchvision:svhn", "toy:"])
def test_unknown_source_lists_the_allowed_forms(source):
    with pytest.raises(UserError) as err:
        real_tables(source)
    message = str(err.value)
    assert "\n" not in message and "sklearn:digits" in message and "folder:PATH" in message


def test_torchvision_offline_says_how_to_use_a_local_copy(tmp_path):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        with pytest.raises(UserError) as err:
            real_tables("torchvision:cifar10", root=str(tmp_path))
    finally:
        socket.setdefaulttimeout(previous)
    message = str(err.value)
    assert "could not be downloaded" in message and str(tmp_path) in message
    assert "COLLAPSE_DATA_DIR" in message and "\n" not in message


def _idx(path: Path, array: np.ndarray) -> None:
    """The MNIST idx format: magic (uint8 type, ndim), big-endian dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_a_local_copy(tmp_path, monkeypatch):
    """A fake MNIST in torchvision's raw layout: torchvision checks only that the raw files
    exist (CIFAR-10's batches are md5-checked, so a fake CIFAR-10 cannot stand in)."""
    raw = tmp_path / "MNIST" / "raw"
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    monkeypatch.setenv("COLLAPSE_DATA_DIR", str(tmp_path))
    ds = prepare("torchvision:mnist", str(tmp_path / "ds"), split="test", size=32)
    table = ds.read_all()
    got = table_to_images(table)
    assert got.shape == (5, 32, 32, 1) and ds.index["shape"] == [32, 32, 1]
    assert np.array_equal(got[:, 2:30, 2:30, 0], images) and got[:, :2].max() == 0
    assert table.column("label").to_pylist() == [3, 1, 4, 1, 5]


def test_prepare_verify_read_on_s3(s3_bucket):
    import boto3

    uri = f"s3://{s3_bucket}/data/digits"
    ds = prepare("sklearn:digits", uri, split="test", rows_per_shard=100)
    assert ds.uri == uri and ds.rows == 360
    assert ds.shard_uris()[0] == f"{uri}/part-00000.parquet"
    ds.verify()
    assert ds.read_rows([(90, 110)]).column("id").to_pylist() == list(range(90, 110))

    boto3.client("s3").delete_object(Bucket=s3_bucket, Key="data/digits/part-00001.parquet")
    with pytest.raises(UserError, match=f"{uri}/part-00001.parquet: missing"):
        ds.verify()
