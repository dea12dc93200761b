"""How many samples each generation of a chain stored, with its runs of equal counts.

An accumulate plan is one part per run of generations with equal sample counts, and the
manifest's head stores the sealed generations' counts as those runs. Finding the runs anew
would scan every generation at every generation, so they are kept as counts are appended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import overload


class SampleCounts(Sequence[int]):
    """The counts, generation by generation, and their runs [(first, last, count)]."""

    def __init__(self, counts: Iterable[int] = ()):
        self._counts: list[int] = []
        self._runs: list[tuple[int, int, int]] = []  # (first, last, count), in order
        for count in counts:
            self.append(count)

    def append(self, count: int) -> None:
        generation = len(self._counts)
        if self._runs and self._runs[-1][2] == count:
            self._runs[-1] = (self._runs[-1][0], generation, count)
        else:
            self._runs.append((generation, generation, count))
        self._counts.append(count)

    def pop(self) -> int:
        """Take the last count off (a commit that failed)."""
        first, last, count = self._runs.pop()
        if first < last:
            self._runs.append((first, last - 1, count))
        return self._counts.pop()

    def runs(self, stop: int) -> list[tuple[int, int, int]]:
        """The runs of generations 0..stop-1."""
        return [(a, min(b, stop - 1), n) for a, b, n in self._runs if a < stop]

    def __len__(self) -> int:
        return len(self._counts)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        return self._counts[index]
