"""The order in which planned rows reach training: each epoch's permutation from the seed
alone, each rank's contiguous span of it, and a span's chunks regrouped into shuffle windows.
Index arithmetic only, so the order is the same however the rows are read."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from collapse.data import streams


def permutation(n: int, seed: int, *key: int) -> np.ndarray:
    """A permutation of range(n) drawn from (seed, *key) alone."""
    return np.random.default_rng([seed, streams.SHUFFLE, *key]).permutation(n)


def span(total: int, rank: int, world: int) -> tuple[int, int]:
    """Rank's [start, end) of `total` positions cut into `world` contiguous spans."""
    base, extra = divmod(total, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


Piece = tuple[int, int, int]  # (chunk, lo, hi): rows [lo, hi) of a chunk, counted in the chunk


def pieces(
    sizes: Sequence[int], order: Sequence[int] | np.ndarray, start: int, end: int
) -> list[Piece]:
    """Positions [start, end) of the sequence of chunks in `order`, as pieces of chunks."""
    found, at = [], 0
    for chunk in order:
        size = sizes[chunk]
        lo, hi = max(start - at, 0), min(end - at, size)
        if lo < hi:
            found.append((int(chunk), lo, hi))
        at += size
        if at >= end:
            break
    return found


def windows(parts: Sequence[Piece], size: int) -> list[list[Piece]]:
    """Consecutive pieces regrouped into windows of `size` rows (the last one may be short)."""
    cut: list[list[Piece]] = [[]]
    room = size
    for chunk, lo, hi in parts:
        while lo < hi:
            if room == 0:
                cut.append([])
                room = size
            take = min(room, hi - lo)
            cut[-1].append((chunk, lo, lo + take))
            lo += take
            room -= take
    return cut if cut[0] else []
