"""What one example is, and how models see it: a vector, or an image as floats in [-1, 1].

Families work on float vectors; storage keeps what the data really is (images as uint8 HWC, so
a generation's samples are images a person can look at and a metric can read). The space
converts between the two, and the uint8 rounding of image samples is part of every image
chain, as it is for any generative model whose outputs are saved as pictures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
import pyarrow as pa

from collapse.data.shards import (
    images_to_table,
    table_to_images,
    table_to_vectors,
    vectors_to_table,
)


@dataclass(frozen=True)
class DataSpace:
    kind: str  # "vector" | "image"
    shape: tuple[int, ...]  # (d,) or (H, W, C)

    @classmethod
    def of_index(cls, index: Mapping[str, Any]) -> DataSpace:
        """The space of a prepared dataset, from its `_dataset.json`."""
        if index["kind"] == "image":
            return cls("image", tuple(int(v) for v in index["shape"]))
        return cls("vector", (int(index["dim"]),))

    @property
    def dim(self) -> int:
        return prod(self.shape)

    @property
    def model_shape(self) -> tuple[int, ...]:
        """One row as models see it: (d,) for vectors, (C, H, W) for images."""
        if self.kind == "image":
            h, w, c = self.shape
            return (c, h, w)
        return self.shape

    def to_vectors(self, table: pa.Table) -> np.ndarray:
        """(n, dim) float32; images scaled from 0..255 to [-1, 1], flattened HWC."""
        if self.kind == "vector":
            return table_to_vectors(table)
        images = table_to_images(table)
        if images.shape[1:] != self.shape:
            raise ValueError(f"images of shape {images.shape[1:]} in a {self.shape} space")
        return (images.reshape(len(images), -1).astype(np.float32) / 127.5) - 1.0

    def to_table(
        self,
        x: np.ndarray,
        source: str,
        generation: int | None,
        ids: np.ndarray,
        noise: np.ndarray | None = None,
        captions: list[str] | None = None,
    ) -> pa.Table:
        if self.kind == "vector":
            return vectors_to_table(x, source, generation, ids=ids, noise=noise)
        images = self.to_images(x)
        return images_to_table(images, source, generation, ids=ids, noise=noise, captions=captions)

    def to_images(self, x: np.ndarray) -> np.ndarray:
        """(n, H, W, C) uint8 pictures of model-space rows, as they are stored."""
        pixels = np.clip(np.rint((np.asarray(x, dtype=np.float32) + 1.0) * 127.5), 0, 255)
        return pixels.astype(np.uint8).reshape(len(x), *self.shape)
