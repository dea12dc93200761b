"""A user's corrector, `strategy.corrector: package.module:function`.

It is called as `function(x, real=real, rng=rng)` with x the (m, d) float64 rows to correct
(vectors, or images as HWC-flat rows in [-1, 1]), real the (n, d) real pool in the same form and
rng a numpy Generator seeded by (seed, generation); it returns the corrected (m, d) rows, which
are blended like every target (`collapse.strategies.correctors`). Whatever goes wrong in the
user's code (it cannot be imported, raises, returns another shape or non-finite rows) stops the
chain with one line naming the corrector and the generation; the committed generations stay.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from collapse.data import streams
from collapse.errors import UserError
from collapse.strategies.correctors import CorrectionJob, TowardTarget

if TYPE_CHECKING:
    from collapse.config import ChainConfig

UserFunction = Callable[..., np.ndarray]


def load_user_corrector(spec: str) -> UserFunction:
    """`package.module:function`, imported on the worker that corrects."""
    module, _, name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"corrector {spec!r}: cannot import it ({err})") from None
    if not callable(function):
        raise ValueError(f"corrector {spec!r} is not callable")
    return function


class UserCorrector(TowardTarget):
    def __init__(self, spec: str) -> None:
        self.name = spec

    def check(self, config: ChainConfig) -> str | None:
        """It imports, here, before any generation runs."""
        try:
            load_user_corrector(self.name)
        except ValueError as err:
            return f"strategy.{err}"
        except Exception as err:  # noqa: BLE001 - the user's module: whatever it raises is theirs
            first = (str(err).strip().splitlines() or [""])[0]
            return (
                f"strategy.corrector {self.name!r}: cannot import it "
                f"({type(err).__name__}: {first})"
            )
        return None

    def target(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        return user_targets(self.name, rows, job.real(), job.seed, job.generation)


def user_targets(
    spec: str, rows: np.ndarray, pool: np.ndarray, seed: int, generation: int
) -> np.ndarray:
    """The user corrector's output for `rows`, checked."""
    where = f"generation {generation}: corrector {spec}"
    try:
        user = load_user_corrector(spec)
    except ValueError as err:
        raise UserError(f"generation {generation}: {err}") from None
    rng = streams.generator(seed, streams.USER_CORRECTOR, generation)
    try:
        target = user(rows.copy(), real=pool, rng=rng)
    except Exception as err:  # noqa: BLE001 - the user's code: any failure is theirs to fix
        lines = str(err).strip().splitlines()
        raise UserError(
            f"{where} raised {type(err).__name__}: {lines[0] if lines else ''}"
        ) from None
    try:
        target = np.asarray(target, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(
            f"{where} returned {type(target).__name__}, not an array of numbers"
        ) from None
    if target.shape != rows.shape:
        raise UserError(f"{where} returned shape {target.shape} for rows of shape {rows.shape}")
    # beyond float32's range is infinite once stored, as the next generation reads it
    broken = ~(np.abs(target) <= np.finfo(np.float32).max).all(axis=1)
    if broken.any():
        raise UserError(
            f"{where} returned NaN, infinite or beyond-float32 values in {int(broken.sum())} "
            f"of {len(rows)} rows (the first: row {int(np.argmax(broken))})"
        )
    return target
