"""Which rows of a generation are corrected, and by which corrector (config -> pure functions).

Rows are chosen by a per-row uniform of (seed, generation, id), and the ideal corrector's
Langevin noise is per row too, so the corrected set does not depend on how it is batched.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from collapse.noise import row_normals, row_uniforms
from collapse.strategies import correction

_CHOICE_STREAM = 1 << 62  # + generation: which rows are corrected
_LANGEVIN_STREAM = 3 << 61  # + generation: the ideal corrector's noise


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
    """`features` maps rows to the evaluation's feature space (knn_space: features);
    `nearest` computes the knn targets (in process, or as a Ray Data pass)."""
    """(all rows with the chosen ones corrected, the boolean mask of the chosen ones)."""
    x = np.asarray(x, dtype=np.float64)
    chosen = row_uniforms(seed, ids, 1, stream=_CHOICE_STREAM + generation)[:, 0]
    touched = chosen < strategy.correct_fraction
    rows = x[touched]
    out = x.copy()
    if strategy.corrector == "ideal":
        # strength is how far along the Langevin dynamics: a share of its steps. Unlike a blend
        # of positions, every partial run moves the distribution toward the true one.
        steps, dim = round(strategy.strength * strategy.langevin_steps), x.shape[1]
        noise = row_normals(seed, ids[touched], steps * dim, stream=_LANGEVIN_STREAM + generation)
        out[touched] = correction.langevin(
            rows, correction.TRUE_SCORES[source], strategy.step_size, noise.reshape(-1, steps, dim)
        )
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
        user = correction.load_user_corrector(strategy.corrector)
        rng = np.random.default_rng([seed, 5, generation])
        target = user(rows.copy(), real=real(), rng=rng)
        if np.shape(target) != rows.shape:
            raise ValueError(
                f"corrector {strategy.corrector} returned shape {np.shape(target)} "
                f"for rows of shape {rows.shape}"
            )
    out[touched] = correction.blend(rows, target, strategy.strength)
    return out.astype(np.float32), touched
