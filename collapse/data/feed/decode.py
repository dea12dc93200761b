"""Shard rows as a model consumes them (`Decode`), and decoded rows joined into C-ordered
arrays. Decoding avoids Python objects per row: it is most of a streamed feed's work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from collapse.data.shards import table_column_array, table_to_images
from collapse.data.space import DataSpace

Rows = dict[str, np.ndarray]


@dataclass(frozen=True)
class LatentRows:
    """A latent family's training rows (Stable Diffusion's): cached VAE latents of `shape` and
    each caption's token ids, by `tokenize` (the family's tokenizer; picklable, since the
    decoding travels to the training workers)."""

    shape: tuple[int, ...]
    tokenize: Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Decode:
    """Shard rows as a model consumes them: `x` (float32 vectors, uint8 CHW images, or a
    Stable Diffusion run's float32 latents with their captions' `input_ids`), `generation` (-1
    for real rows) and `id`; with `noise_dim`, reflow's stored partner (`noise`, CHW float32,
    zero where `paired` is false). Images stay uint8 until the training worker scales them on
    its device: a quarter of the bytes. Arrays may be views of the shard's buffers, images
    strided (HWC bytes seen as CHW): whoever keeps them copies them once, into C order."""

    space: DataSpace
    noise_dim: int = 0
    latents: LatentRows | None = None

    @property
    def row_bytes(self) -> int:
        if self.latents is not None:
            return 4 * int(np.prod(self.latents.shape)) + 8 * 77 + 12
        x = self.space.dim * (1 if self.space.kind == "image" else 4)
        return x + (4 * self.noise_dim + 1 if self.noise_dim else 0) + 12

    def columns(self, names: Sequence[str]) -> list[str]:
        """What to read of a shard with these columns."""
        if self.latents is not None:
            data = ["latent", "caption"]
        elif "x" in names:
            data = ["x"]
        else:
            data = ["image", "shape"]
        extra = ["noise"] if self.noise_dim and "noise" in names else []
        return [*data, *extra, "generation", "id"]

    @staticmethod
    def _latent_rows(table: pa.Table, latents: LatentRows) -> Rows:
        """Latent shard rows as the UNet trains on them: the latent, and its caption's token
        ids (tokenized here, where the feed reads the shards, so the training loop never sees
        a string)."""
        flat = table.column("latent").combine_chunks().flatten().to_numpy()
        generation = table.column("generation").fill_null(-1).to_numpy().astype(np.int32)
        return {
            "x": flat.reshape(table.num_rows, *latents.shape).astype(np.float32),
            "input_ids": latents.tokenize(table.column("caption").to_pylist()),
            "generation": generation,
            "id": table.column("id").to_numpy(),
        }

    def __call__(self, table: pa.Table) -> Rows:
        if self.latents is not None:
            return self._latent_rows(table, self.latents)
        space = self.space
        if space.kind == "image":
            x = _images(table, space.shape).transpose(0, 3, 1, 2)
        else:
            x = space.to_vectors(table)
        generation = table.column("generation").fill_null(-1).to_numpy().astype(np.int32)
        rows = {"x": x, "generation": generation, "id": table.column("id").to_numpy()}
        if self.noise_dim:
            noise = np.zeros((len(x), self.noise_dim), dtype=np.float32)
            paired = np.zeros(len(x), dtype=bool)
            if "noise" in table.column_names:
                column = table.column("noise").combine_chunks()
                paired = column.is_valid().to_numpy(zero_copy_only=False)
                values = column.filter(paired).flatten().to_numpy()
                noise[paired] = values.reshape(-1, self.noise_dim)
            rows.update(noise=noise.reshape(len(x), *space.model_shape), paired=paired)
        return rows


def _images(table: pa.Table, shape: tuple[int, ...]) -> np.ndarray:
    """(n, H, W, C) uint8: the image column's bytes as they lie in its buffer when every row
    is one image of `shape` (a third of a shard's decode time otherwise goes to building a
    Python bytes object per row in `table_to_images`, which handles every other case)."""
    column = table.column("image").combine_chunks()
    n, size = len(column), int(np.prod(shape))
    if column.type != pa.binary() or column.null_count or n == 0:
        return table_to_images(table)
    offsets = np.frombuffer(column.buffers()[1], np.int32, n + 1, 4 * column.offset)
    if (table_column_array(table, "shape") != shape).any() or (np.diff(offsets) != size).any():
        return table_to_images(table)
    data = np.frombuffer(column.buffers()[2], np.uint8, n * size, int(offsets[0]))
    return data.reshape(n, *shape)


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """One C-ordered array per key (decoded rows may be strided views of a shard)."""
    if len(parts) == 1:
        return {k: np.ascontiguousarray(v) for k, v in parts[0].items()}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
