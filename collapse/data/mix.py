"""Per-generation mix plans: which rows, from which source and generation, train generation t.

The plan is a pure function of the loop type and sizes, recorded in the manifest, so a
researcher can read exactly what each generation trained on (ALGORITHMS.md "Loop types";
Alemohammad et al. 2023 for the MAD loops, Gerstgrasser et al. 2024 for accumulate).

The real share r of the mixing loops may change over the chain (`data.real_fraction`): a
number (the same r every generation), `{linear: [start, end]}` (start at generation 1, end at
the last), `{exponential: [start, rate]}` (start * rate^(t-1) at generation t) or a list with
one value per generation after 0. Generation 0 always trains on real rows alone, so no
schedule has a value for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from collapse.config import LOOPS, real_count
from collapse.data.sample_counts import SampleCounts

Schedule = float | list[float] | dict[str, list[float]]
MIXING_LOOPS = ("synthetic_augmentation", "fresh_data")  # the loops that read real_fraction
SCHEDULE_FORMS = (
    "a number in [0, 1], a list with one per generation after 0, {linear: [start, end]} or "
    "{exponential: [start, rate]}"
)


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

    def each(self) -> Iterator[MixPart]:
        """The part one generation at a time (a span expanded)."""
        if self.last is None:
            yield self
            return
        assert self.generation is not None
        per = self.count // (self.last - self.generation + 1)
        for g in range(self.generation, self.last + 1):
            yield MixPart(self.source, g, per, self.rows)

    def as_record(self) -> dict:
        record = {
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


# --- real-fraction schedules --------------------------------------------------------------------


def fractions(schedule: Schedule, stop: int, generations: int | None = None) -> np.ndarray:
    """r_t for t = 1..stop-1 (empty for stop <= 1), all from one expression per form so that a
    generation's share is the same number wherever it is computed."""
    t = np.arange(1, max(stop, 1), dtype=np.float64)
    if isinstance(schedule, list):
        if len(schedule) < len(t):
            raise ValueError(f"the list gives {len(schedule)} generations, {len(t)} needed")
        return np.asarray(schedule[: len(t)], dtype=np.float64)
    if isinstance(schedule, dict):
        ((form, (a, b)),) = schedule.items()
        if form == "exponential":
            with np.errstate(over="ignore"):  # a share past 1 is refused, however far past
                return a * np.power(b, t - 1)
        if generations is None:
            raise ValueError("a linear schedule needs the chain's length (generations)")
        w = (t - 1) / max(generations - 2, 1)  # generation 1 is `start`, G-1 is `end`
        return a * (1 - w) + b * w  # exact at both ends
    return np.full(len(t), float(schedule))


def fraction_at(schedule: Schedule, generation: int, generations: int | None = None) -> float:
    """r_t of generation t >= 1."""
    return float(fractions(schedule, generation + 1, generations)[-1])


def real_counts(
    loop: str, n_train: int, schedule: Schedule, stop: int, generations: int | None = None
) -> np.ndarray:
    """Real rows of generations 1..stop-1: r_t * N to the nearest row (`real_count`'s rule)
    for the mixing loops, none for the others."""
    r = fractions(schedule, stop, generations)
    if loop not in MIXING_LOOPS:
        return np.zeros(len(r), dtype=np.int64)
    return np.floor(n_train * r + 0.5).astype(np.int64)


def used_fraction(
    loop: str, schedule: Schedule, generation: int, generations: int | None = None
) -> float | None:
    """The share of real rows a generation's plan was made with, as recorded beside it; None
    where the plan does not read one (generation 0, fully_synthetic, accumulate)."""
    if generation == 0 or loop not in MIXING_LOOPS:
        return None
    return fraction_at(schedule, generation, generations)


def check_real_fraction(value: Any) -> Schedule:
    """`data.real_fraction` in one of its forms, with floats for numbers; ValueError (one
    line) otherwise. What depends on the chain's length is `schedule_problem`'s."""
    if _is_number(value):
        return _share(value, "")
    if isinstance(value, list) and value:
        return [_share(v, f"[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and len(value) == 1:
        ((form, args),) = value.items()
        if form in ("linear", "exponential") and isinstance(args, list) and len(args) == 2:
            first = _share(args[0], f"{form}[0]")
            if form == "linear":
                return {form: [first, _share(args[1], f"{form}[1]")]}
            rate = args[1]
            if not (_is_number(rate) and math.isfinite(rate) and rate > 0):
                raise ValueError(f"exponential[1]: the rate must be > 0, got {_short(rate)}")
            return {form: [first, float(rate)]}
    raise ValueError(f"give {SCHEDULE_FORMS}; got {_short(value)}")


def schedule_problem(schedule: Schedule, generations: int) -> str | None:
    """What a schedule lacks for a chain of `generations` (a list too short or too long, an
    exponential share above 1 before the end), or None."""
    if isinstance(schedule, list) and len(schedule) != generations - 1:
        return (
            f"a list gives one value per generation after 0: {generations - 1} for "
            f"generations {generations}, got {len(schedule)}"
        )
    if isinstance(schedule, dict) and "exponential" in schedule:
        r = fractions(schedule, generations)
        above = np.flatnonzero(r > 1)
        if above.size:
            t = int(above[0]) + 1
            return f"exponential: the share passes 1 at generation {t} ({r[t - 1]:.4g})"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _share(value: Any, where: str) -> float:
    """A share in [0, 1]; `where` names the item within a schedule ("" for a plain number)."""
    at = f"{where}: " if where else ""
    if not _is_number(value):
        raise ValueError(f"{at}a number in [0, 1], got {_short(value)}")
    for broken, problem in (
        (not math.isfinite(value), "a finite number"),
        (value > 1, "less than or equal to 1"),
        (value < 0, "greater than or equal to 0"),
    ):
        if broken:
            raise ValueError(f"{at}Input should be {problem}, got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
