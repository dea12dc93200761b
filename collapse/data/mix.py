"""Per-generation mix plans: which rows, from which source and generation, train generation t.

The plan is a pure function of the loop type and sizes, recorded in the manifest, so a
researcher can read exactly what each generation trained on (ALGORITHMS.md "Loop types";
Alemohammad et al. 2023 for the MAD loops, Gerstgrasser et al. 2024 for accumulate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collapse.config import LOOPS, real_count


@dataclass(frozen=True)
class MixPart:
    """`count` rows: half-open `rows` ranges of the real pool or of one generation's samples."""

    source: str  # "real" | "synthetic"
    generation: int | None  # whose samples (None for real rows)
    count: int
    rows: tuple[tuple[int, int], ...]

    def as_record(self) -> dict:
        return {
            "source": self.source,
            "generation": self.generation,
            "count": self.count,
            "rows": [list(r) for r in self.rows],
        }


def _real(rows: tuple[tuple[int, int], ...]) -> MixPart:
    return MixPart("real", None, sum(b - a for a, b in rows), rows)


def _synthetic(generation: int, count: int) -> MixPart:
    return MixPart("synthetic", generation, count, ((0, count),))


def _window(start: int, count: int, pool: int) -> tuple[tuple[int, int], ...]:
    """`count` consecutive rows of a pool of `pool` rows from `start`, wrapping at the end."""
    start %= pool
    if start + count <= pool:
        return ((start, start + count),)
    return ((start, pool), (0, start + count - pool))


def plan_mix(
    loop: str,
    generation: int,
    n_train: int,
    real_fraction: float,
    n_real: int,
    sample_counts: Sequence[int],
) -> list[MixPart]:
    """The training set of `generation`, given how many samples each earlier generation stored.

    - generation 0: the first n_train real rows.
    - fully_synthetic: n_train samples of G_{t-1}.
    - synthetic_augmentation: the same first r*N real rows every generation + (1-r)*N samples.
    - fresh_data: r*N real rows not used before (a window moving through the pool, reusing rows
      from the start only once the pool is exhausted) + (1-r)*N samples of G_{t-1}.
    - accumulate: the n_train real rows of generation 0 + every sample of G_0..G_{t-1}
      (real_fraction is ignored: the data grows, Gerstgrasser et al. 2024).
    """
    if generation < 0 or len(sample_counts) < generation:
        raise ValueError(f"generation {generation} needs the sample counts of all earlier ones")
    base = _real(((0, n_train),))
    if generation == 0:
        return [base]
    if loop == "accumulate":
        return [base] + [_synthetic(g, sample_counts[g]) for g in range(generation)]
    if loop not in LOOPS:
        raise ValueError(f"unknown loop {loop!r}; allowed: {', '.join(LOOPS)}")
    k = real_count(loop, n_train, real_fraction)
    synthetic = n_train - k
    previous = generation - 1
    if sample_counts[previous] < synthetic:
        raise ValueError(
            f"generation {previous} stored {sample_counts[previous]} samples, {synthetic} needed"
        )
    parts = []
    if k:
        if loop == "synthetic_augmentation":
            parts.append(_real(((0, k),)))
        else:
            parts.append(_real(_window(n_train + (generation - 1) * k, k, n_real)))
    if synthetic:
        parts.append(_synthetic(previous, synthetic))
    return parts
