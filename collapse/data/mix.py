"""Per-generation mix plans: which rows, from which source and generation, train generation t.

The plan is a pure function of the loop type and sizes, recorded in the manifest, so a
researcher can read exactly what each generation trained on (docs/data.md, "Training sets";
Alemohammad et al. 2023 for the MAD loops, Gerstgrasser et al. 2024 for accumulate).

The real share r of the mixing loops may change over the chain (`data.real_fraction`, a
schedule: `collapse.config.schedule`). Generation 0 always trains on real rows alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from collapse.config.data_section import LOOPS
from collapse.config.schedule import Schedule, fraction_at, real_count, real_counts
from collapse.store.records import MixRecord
from collapse.store.sample_counts import SampleCounts


@dataclass(frozen=True)
class MixPart:
    """`count` rows: half-open `rows` ranges of the real pool or of one generation's samples.

    A part may stand for a span of generations, `generation` through `last`, taking the same
    `rows` of each (`count` is then the total): an accumulate plan at generation 10,000 is
    two parts, not 10,001, so planning and recording it costs the same at any generation."""

    source: str  # "real" | "synthetic"
    generation: int | None  # whose samples (None for real rows); the first of a span
    count: int
    rows: tuple[tuple[int, int], ...]
    last: int | None = None  # the last generation of a span; None: just `generation`

    @property
    def samples_of(self) -> int:
        """The generation whose samples a synthetic part takes (the first, for a span)."""
        assert self.generation is not None, "a synthetic part names its generation"
        return self.generation

    def each(self) -> Iterator[MixPart]:
        """The part one generation at a time (a span expanded)."""
        if self.last is None:
            yield self
            return
        assert self.generation is not None
        per = self.count // (self.last - self.generation + 1)
        for g in range(self.generation, self.last + 1):
            yield MixPart(self.source, g, per, self.rows)

    def as_record(self) -> MixRecord:
        record: MixRecord = {
            "source": self.source,
            "generation": self.generation,
            "count": self.count,
            "rows": [list(r) for r in self.rows],
        }
        if self.last is not None:
            record["last"] = self.last
        return record


def expand(plan: Sequence[MixPart]) -> list[MixPart]:
    """A plan one part per generation, as consumers that read shards per generation need."""
    return [one for part in plan for one in part.each()]


def _real(rows: tuple[tuple[int, int], ...]) -> MixPart:
    return MixPart("real", None, sum(b - a for a, b in rows), rows)


def _synthetic(generation: int, count: int) -> MixPart:
    return MixPart("synthetic", generation, count, ((0, count),))


def _every_sample(sample_counts: Sequence[int], stop: int) -> list[MixPart]:
    """All samples of generations 0..stop-1: one part per run of equal sample counts (one in
    all for a chain whose generations each store `sample.n` rows)."""
    counts = (
        sample_counts if isinstance(sample_counts, SampleCounts) else SampleCounts(sample_counts)
    )
    return [
        MixPart("synthetic", a, n * (b - a + 1), ((0, n),), b if b > a else None)
        for a, b, n in counts.runs(stop)
    ]


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
    real_fraction: Schedule,
    n_real: int,
    sample_counts: Sequence[int],
    generations: int | None = None,
) -> list[MixPart]:
    """The training set of `generation`, given how many samples each earlier generation stored.

    With r = r_t, generation t's value of the `real_fraction` schedule (`generations`, the
    chain's length, is needed by a linear schedule only):

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
        return [base, *_every_sample(sample_counts, generation)]
    if loop not in LOOPS:
        raise ValueError(f"unknown loop {loop!r}; allowed: {', '.join(LOOPS)}")
    k = real_count(loop, n_train, fraction_at(real_fraction, generation, generations))
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
            used = _real_rows_before(loop, n_train, real_fraction, generation, generations)
            parts.append(_real(_window(n_train + used, k, n_real)))
    if synthetic:
        parts.append(_synthetic(previous, synthetic))
    return parts


def _real_rows_before(
    loop: str, n_train: int, schedule: Schedule, generation: int, generations: int | None
) -> int:
    """Real rows generations 1..generation-1 took: where fresh_data's window starts."""
    if not isinstance(schedule, list | dict):
        return (generation - 1) * real_count(loop, n_train, schedule)
    return int(real_counts(loop, n_train, schedule, generation, generations).sum())
