"""`data.real_fraction`: the share of real rows in each generation's training set, as a
number or a schedule over the chain's generations.

A schedule is a number (the same r every generation), `{linear: [start, end]}` (start at
generation 1, end at the last), `{exponential: [start, rate]}` (start * rate^(t-1) at
generation t) or a list with one value per generation after 0. Generation 0 always trains on
real rows alone, so no schedule has a value for it. These are pure functions of the config:
validation checks a schedule with them, and mix plans (`collapse.data.mix`) read its shares.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from collapse.config.base import short

Schedule = float | list[float] | dict[str, list[float]]
MIXING_LOOPS = ("synthetic_augmentation", "fresh_data")  # the loops that read real_fraction
SCHEDULE_FORMS = (
    "a number in [0, 1], a list with one per generation after 0, {linear: [start, end]} or "
    "{exponential: [start, rate]}"
)


def real_count(loop: str, n_train: int, real_fraction: float) -> int:
    """Real rows in each training set after generation 0: r*N rounded to the nearest row for
    the loops that mix real data in (synthetic_augmentation, fresh_data), else none."""
    if loop in MIXING_LOOPS:
        return int(math.floor(n_train * real_fraction + 0.5))
    return 0


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
                raise ValueError(f"exponential[1]: the rate must be > 0, got {short(rate)}")
            return {form: [first, float(rate)]}
    raise ValueError(f"give {SCHEDULE_FORMS}; got {short(value)}")


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
        raise ValueError(f"{at}a number in [0, 1], got {short(value)}")
    for broken, problem in (
        (not math.isfinite(value), "a finite number"),
        (value > 1, "less than or equal to 1"),
        (value < 0, "greater than or equal to 0"),
    ):
        if broken:
            raise ValueError(f"{at}Input should be {problem}, got {short(value)}")
    return float(value)
