"""Every generation's samples in one growing array, for the accumulate loop.

An accumulate generation trains on the samples of all earlier generations. Gathering them
piece by piece costs a Python step per generation, so generation 10,000 would spend more time
collecting its data than fitting it. The pile keeps them end to end, in generation order, in
an array that doubles when full: a generation's samples, or all of a span of generations, are
one slice.
"""

from __future__ import annotations

import numpy as np


class SamplePile:
    def __init__(self) -> None:
        self._rows: np.ndarray | None = None
        self._starts: list[int] = [0]  # generation g is rows _starts[g]:_starts[g + 1]

    def __len__(self) -> int:
        """How many generations it holds (0, 1, ..., len - 1)."""
        return len(self._starts) - 1

    def append(self, samples: np.ndarray) -> None:
        """Add the next generation's samples."""
        end, need = self._starts[-1], self._starts[-1] + len(samples)
        if self._rows is None:
            self._rows = np.empty((max(need, 1), *samples.shape[1:]), dtype=samples.dtype)
        elif need > len(self._rows):
            grown = np.empty(
                (max(need, 2 * len(self._rows)), *self._rows.shape[1:]), self._rows.dtype
            )
            grown[:end] = self._rows[:end]
            self._rows = grown
        self._rows[end:need] = samples
        self._starts.append(need)

    def span(self, first: int, last: int) -> np.ndarray:
        """The samples of generations first..last (inclusive), end to end: a view."""
        if not 0 <= first <= last < len(self):
            raise IndexError(f"generations {first}..{last} of a pile of {len(self)}")
        assert self._rows is not None
        return self._rows[self._starts[first] : self._starts[last + 1]]
