"""Draws of a toy source's true distribution, one per row, for the `exact` corrector.

Gillman et al.'s idealised correction (2024) is the mixture
pi_gamma = (p_theta + gamma p*) / (1 + gamma): a sample of the model, kept with probability
1 / (1 + gamma) and otherwise replaced by a draw of the true distribution p*. Its draws must be
the source's own (collapse.data.toy.toy_sample, the code that made the real pool), and a
row's draw must depend only on (seed, generation, row id), like every other per-row choice of
the chain, or the corrected set would change with batching. `RowGenerator` gives both: it
answers the numpy Generator methods the toy samplers call from collapse.data.noise's counter-based
per-row streams, so `toy_sample` runs unchanged and vectorised.
"""

from __future__ import annotations

import numpy as np

from collapse.data.noise import row_normals, row_uniforms
from collapse.data.toy import toy_sample

_CALL_SHIFT = 32  # each sampler call gets its own stream: stream + (call << 32)


class RowGenerator:
    """integers, uniform and standard_normal, as numpy's Generator has them, for arrays whose
    first axis is the rows `ids`: entry (i, ...) depends only on (seed, stream, ids[i]) and on
    how many calls came before (each call reads a stream of its own)."""

    def __init__(self, seed: int, ids: np.ndarray, stream: int) -> None:
        self._seed, self._ids, self._stream, self._calls = seed, np.asarray(ids), stream, 0

    def integers(self, low: int, high: int | None = None, size=None) -> np.ndarray:
        low, high = (0, low) if high is None else (low, high)
        return low + np.floor(self._uniforms(size) * (high - low)).astype(np.int64)

    def uniform(self, low: float = 0.0, high: float = 1.0, size=None) -> np.ndarray:
        return low + (high - low) * self._uniforms(size)

    def standard_normal(self, size=None) -> np.ndarray:
        shape = self._shape(size)
        return row_normals(self._seed, self._ids, _per_row(shape), self._next()).reshape(shape)

    def _uniforms(self, size) -> np.ndarray:
        shape = self._shape(size)
        return row_uniforms(self._seed, self._ids, _per_row(shape), self._next()).reshape(shape)

    def _shape(self, size) -> tuple[int, ...]:
        shape = (size,) if isinstance(size, int | np.integer) else tuple(size or ())
        if not shape or shape[0] != len(self._ids):
            raise ValueError(f"per-row draws need {len(self._ids)} rows first, got size {size}")
        return shape

    def _next(self) -> int:
        stream = self._stream + (self._calls << _CALL_SHIFT)
        self._calls += 1
        return stream


def _per_row(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:], dtype=np.int64))


def true_draws(source: str, ids: np.ndarray, dim: int, seed: int, stream: int) -> np.ndarray:
    """(len(ids), dim) float64 draws of the toy source `source` (`toy:<name>`), row i a function
    of (seed, stream, ids[i]) only."""
    name = source.removeprefix("toy:")
    return toy_sample(name, len(ids), dim, RowGenerator(seed, ids, stream)).astype(np.float64)
