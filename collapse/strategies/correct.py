"""Which rows of a generation are corrected, and by which corrector (config -> pure functions).

Rows are chosen by a per-row uniform of (seed, generation, id), and the ideal corrector's
Langevin noise and accept decisions and the exact corrector's true draws are per row too, so
the corrected set does not depend on how it is batched.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from collapse.errors import UserError
from collapse.noise import row_normals, row_uniforms
from collapse.strategies import correction
from collapse.strategies.true_draws import true_draws

_CHOICE_STREAM = 1 << 62  # + generation: which rows are corrected
_LANGEVIN_STREAM = 3 << 61  # + generation: the ideal corrector's noise
_ACCEPT_STREAM = 5 << 60  # + generation: the ideal corrector's Metropolis decisions
_TRUE_DRAW_STREAM = 7 << 60  # + generation: the exact corrector's true draws


def correct_rows(
    x: np.ndarray,
    ids: np.ndarray,
    strategy,
    source: str,
    real: Callable[[], np.ndarray],
    seed: int,
    generation: int,
    reference: Callable[[], tuple[ModuleType, dict[str, np.ndarray]]] | None = None,
    features: Callable[[np.ndarray], np.ndarray] | None = None,
    nearest: Callable[..., np.ndarray] = correction.toward_nearest_real,
) -> tuple[np.ndarray, np.ndarray]:
    """(all rows with the corrected ones changed, the boolean mask of the corrected ones).

    `features` maps rows to the evaluation's feature space (knn_space: features);
    `nearest` computes the knn targets (in process, or as a Ray Data pass)."""
    x = np.asarray(x, dtype=np.float64)
    chosen = row_uniforms(seed, ids, 1, stream=_CHOICE_STREAM + generation)[:, 0]
    out = x.copy()
    if strategy.corrector == "exact":
        # pi_gamma: a chosen row becomes a true draw with probability strength = gamma/(1+gamma);
        # the rows drawn anew are the corrected ones (the rest are the model's, untouched)
        touched = chosen < strategy.correct_fraction * strategy.strength
        out[touched] = true_draws(
            source, ids[touched], x.shape[1], seed, _TRUE_DRAW_STREAM + generation
        )
        return out.astype(np.float32), touched
    touched = chosen < strategy.correct_fraction
    rows = x[touched]
    if strategy.corrector == "ideal":
        # strength is how far along the Langevin dynamics: a share of its steps. Unlike a blend
        # of positions, every partial run moves the distribution toward the true one.
        steps, dim = round(strategy.strength * strategy.langevin_steps), x.shape[1]
        noise = row_normals(seed, ids[touched], steps * dim, stream=_LANGEVIN_STREAM + generation)
        noise = noise.reshape(len(rows), steps, dim)  # -1 cannot stand for rows when steps = 0
        score = correction.TRUE_SCORES[source]
        if strategy.metropolis:
            decisions = row_uniforms(seed, ids[touched], steps, stream=_ACCEPT_STREAM + generation)
            density = correction.TRUE_LOG_DENSITIES[source]
            out[touched] = correction.mala(
                rows, score, density, strategy.step_size, noise, decisions
            )
        else:
            out[touched] = correction.langevin(rows, score, strategy.step_size, noise)
        return out.astype(np.float32), touched
    if strategy.corrector == "reference":
        family, params = reference()
        noise = row_normals(seed, ids[touched], x.shape[1], stream=_LANGEVIN_STREAM + generation)
        target = family.sdedit(params, rows, strategy.level, noise)
    elif strategy.corrector == "knn":
        pool = real()
        if strategy.knn_space == "features":
            target = nearest(rows, pool, strategy.k, features(rows), features(pool))
        else:
            target = nearest(rows, pool, strategy.k)
    else:
        target = _user_targets(strategy.corrector, rows, real(), seed, generation)
    out[touched] = correction.blend(rows, target, strategy.strength)
    return out.astype(np.float32), touched


def _user_targets(
    spec: str, rows: np.ndarray, pool: np.ndarray, seed: int, generation: int
) -> np.ndarray:
    """A user corrector's output, checked: whatever goes wrong in the user's code (it cannot
    be imported, raises, returns another shape or non-finite rows) stops the chain with one
    line naming the corrector and the generation; the committed generations stay."""
    where = f"generation {generation}: corrector {spec}"
    try:
        user = correction.load_user_corrector(spec)
    except ValueError as err:
        raise UserError(f"generation {generation}: {err}") from None
    rng = np.random.default_rng([seed, 5, generation])
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
