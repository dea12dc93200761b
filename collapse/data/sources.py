"""Where real datasets come from: each source becomes a stream of shard tables.

Every source yields rows with ids 0..n-1 in a fixed order, in chunks, so `collapse prepare`
streams any size of source into shards and the same command always writes the same dataset.
Image sources decode and resize one chunk at a time; only torchvision, which loads a whole
split itself, holds its source in memory. Here: the dispatch on the source's form and the
built-in sources (toy, sklearn, torchvision); `folder:` is `collapse.data.image_folder`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from collapse.config import BUILTIN_ROWS
from collapse.data.image_folder import folder_tables
from collapse.data.shards import images_to_table, vectors_to_table
from collapse.data.source_tables import CHUNK_ROWS, SourceTables
from collapse.data.toy import toy_sample
from collapse.errors import UserError

TABLE_SOURCES = (
    "sklearn:digits",
    "torchvision:cifar10",
    "torchvision:mnist",
    "folder:PATH",
    "toy:gaussian|mog8|two_moons",
)
# sklearn's digits have no official split: a fixed shuffle cut 80/20 gives both splits every
# class and is the same on every machine.
DIGITS_ROWS = 1797
DIGITS_TRAIN = BUILTIN_ROWS["sklearn:digits"][0]


def real_tables(
    source: str,
    split: str = "train",
    limit: int | None = None,
    size: int | None = None,
    seed: int = 0,
    dim: int = 2,
    root: str | None = None,
    captions: str | None = None,
) -> SourceTables:
    """The rows of `source` (one of TABLE_SOURCES) as shard tables; `limit` keeps the first N.

    Everything that can be checked up front (the source form, arguments, files, captions) is
    checked before the first table, so a bad command fails before anything is written.
    """
    kind, _, arg = source.partition(":")
    if split not in ("train", "test"):
        raise UserError(f"split {split!r}: allowed: train, test")
    if limit is not None and limit < 1:
        raise UserError(f"limit {limit}: must be at least 1")
    if size is not None and size < 1:
        raise UserError(f"size {size}: must be at least 1")
    if captions is not None and kind != "folder":
        raise UserError(f"captions {captions!r}: only a folder: source has captions")
    if root is not None and kind != "torchvision":
        raise UserError(f"root {root!r}: only a torchvision: source reads a root")
    if kind == "toy" and arg:
        if size is not None:
            raise UserError(f"size {size}: {source} is a vector source; size is for images")
        return _toy(arg, split, limit, seed, dim)
    if kind == "sklearn" and arg == "digits":
        return _digits(split, limit, size)
    if kind == "torchvision" and arg in ("cifar10", "mnist"):
        return _torchvision(arg, split, limit, size, root)
    if kind == "folder" and arg:
        return folder_tables(Path(arg).expanduser(), limit, size, captions)
    raise UserError(f"unknown source {source!r}; allowed: {', '.join(TABLE_SOURCES)}")


def _toy(name: str, split: str, limit: int | None, seed: int, dim: int) -> SourceTables:
    if limit is None:
        raise UserError(f"toy:{name} is drawn, not stored: give the number of rows (--limit N)")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    try:
        x = toy_sample(name, limit, dim, rng)
    except ValueError as err:
        raise UserError(f"toy:{name}: {err}") from None
    tables = (
        vectors_to_table(x[i : i + CHUNK_ROWS], source="real", generation=None, first_id=i)
        for i in range(0, limit, CHUNK_ROWS)
    )
    return SourceTables(limit, tables)


def _digits(split: str, limit: int | None, size: int | None) -> SourceTables:
    """sklearn's 8x8 digits (bundled, so always offline), 0..16 scaled to 0..255.

    `size` upsamples with PIL bilinear: the 8x8 grid carries no more detail, but models and
    feature extractors built for 16 or 32 pixels can then run on it.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(DIGITS_ROWS)
    rows = order[:DIGITS_TRAIN] if split == "train" else order[DIGITS_TRAIN:]
    rows = rows[:limit]
    images = np.rint(digits.images[rows] * 255 / 16).astype(np.uint8)[..., None]
    labels = digits.target[rows]
    resize = None if size is None else _resizer(size, Image.Resampling.BILINEAR)
    return SourceTables(len(rows), _array_tables(images, labels, resize))


def _torchvision(
    name: str, split: str, limit: int | None, size: int | None, root: str | None
) -> SourceTables:
    """CIFAR-10 (32x32 RGB) or MNIST (28x28 grey), from a local copy or downloaded into root.

    MNIST at size 32 is padded by 2 zero pixels a side (LeNet's 32x32 MNIST: the digits keep
    their exact pixels); any other size resizes with PIL bilinear.
    """
    import torchvision

    where = Path(root or os.environ.get("COLLAPSE_DATA_DIR") or "~/.cache/collapse/torchvision")
    where = where.expanduser()
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.MNIST
    try:
        data = cls(str(where), train=split == "train", download=False)
    except RuntimeError:
        try:
            data = cls(str(where), train=split == "train", download=True)
        except (OSError, RuntimeError) as err:
            # torchvision lists every mirror it tried; the last line holds the actual failure
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = lines[-1] if lines else type(err).__name__
            raise UserError(
                f"torchvision:{name} could not be downloaded ({reason}); "
                f"to use a local copy, place torchvision's {name} files under {where} "
                "or point at their directory with COLLAPSE_DATA_DIR or --root"
            ) from None
    images = np.asarray(data.data[:limit], dtype=np.uint8)
    labels = np.asarray(data.targets[:limit], dtype=np.int64)
    if images.ndim == 3:
        images = images[..., None]
    resize: Callable[[np.ndarray], np.ndarray] | None = None
    if name == "mnist" and size == 32:
        resize = _pad_to_32
    elif size is not None and size != images.shape[1]:
        resize = _resizer(size, Image.Resampling.BILINEAR)
    return SourceTables(len(images), _array_tables(images, labels, resize))


def _pad_to_32(images: np.ndarray) -> np.ndarray:
    return np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))


def _array_tables(
    images: np.ndarray,
    labels: np.ndarray,
    resize: Callable[[np.ndarray], np.ndarray] | None,
) -> Iterator[pa.Table]:
    for i in range(0, len(images), CHUNK_ROWS):
        chunk = images[i : i + CHUNK_ROWS]
        yield images_to_table(
            chunk if resize is None else resize(chunk),
            source="real",
            generation=None,
            first_id=i,
            labels=labels[i : i + CHUNK_ROWS],
        )


def _resizer(size: int, resample: int) -> Callable[[np.ndarray], np.ndarray]:
    def resize(images: np.ndarray) -> np.ndarray:
        grey = images.shape[-1] == 1
        out = [
            np.asarray(Image.fromarray(im[..., 0] if grey else im).resize((size, size), resample))
            for im in images
        ]
        stacked = np.stack(out)
        return stacked[..., None] if grey else stacked

    return resize
