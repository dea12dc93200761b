"""Self-correcting self-consuming loops (Gillman et al. 2024), `strategy.name: self_correct`.

After a generation samples, a `correct_fraction` of its samples, each row chosen by its own
uniform of (seed, generation, id), is moved toward the true distribution by the corrector
(`collapse.strategies.correctors`); the next generation trains on the corrected set, stored as
`gen-k/corrected/` shards. Which rows are chosen does not depend on how they are batched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from collapse.config.strategy_section import SelfCorrectConfig
from collapse.data import streams
from collapse.data.noise import row_uniforms
from collapse.strategies.correctors import (
    CORRECTORS,
    CorrectionJob,
    corrector_for,
    toward_nearest_real,
)
from collapse.strategies.protocol import Context, Passed, Strategy

if TYPE_CHECKING:
    from collapse.config import ChainConfig


class SelfCorrection(Strategy):
    config = SelfCorrectConfig

    def check(self, config: ChainConfig) -> str | None:
        """The corrector is registered (or the user's `module:function`) and has what it
        needs (its source, its family, its module importable)."""
        assert isinstance(config.strategy, SelfCorrectConfig), "this strategy's own arm"
        spec = config.strategy.corrector
        if spec not in CORRECTORS and ":" not in spec:
            listed = ", ".join(CORRECTORS)
            return f"strategy.corrector: allowed: {listed} or module:function, got {spec!r}"
        return corrector_for(spec).check(config)

    def after_sampling(
        self,
        context: Context,
        samples: np.ndarray,
        generation: int,
        params: dict[str, np.ndarray],
    ) -> Passed:
        """The reference corrector's model trained on real data only is generation 0's: every
        loop trains generation 0 on real rows alone."""
        cfg, space = context.config, context.space
        strategy = cfg.strategy
        assert isinstance(strategy, SelfCorrectConfig), "this strategy's own arm"

        def reference() -> tuple[Any, dict[str, np.ndarray]]:
            return context.family, params if generation == 0 else context.params_of(0)

        ids = np.arange(len(samples), dtype=np.int64)
        corrected, touched = correct_rows(
            samples,
            ids,
            strategy,
            cfg.data.real,
            lambda: context.real,
            cfg.seed,
            generation,
            reference,
            context.features,
            context.nearest,
        )
        moved = np.linalg.norm(corrected[touched] - samples[touched], axis=1)
        from collapse.data.shards import to_parquet

        table = space.to_table(corrected, "synthetic", generation, ids)
        stored = space.to_vectors(table)  # as the next generation reads it (images: uint8)
        shard = context.store.write_artifact(
            generation, "corrected/part-000000000.parquet", to_parquet(table), rows=len(ids)
        )
        record = {
            "rows": int(touched.sum()),
            "mean_distance": float(moved.mean()) if len(moved) else 0.0,
            "corrector": strategy.corrector,
        }
        return Passed(stored, record, [shard])


def correct_rows(
    x: np.ndarray,
    ids: np.ndarray,
    strategy: SelfCorrectConfig,
    source: str,
    real: Callable[[], np.ndarray],
    seed: int,
    generation: int,
    reference: Callable[[], tuple[Any, dict[str, np.ndarray]]] | None = None,
    features: Callable[[np.ndarray], np.ndarray] | None = None,
    nearest: Callable[..., np.ndarray] = toward_nearest_real,
) -> tuple[np.ndarray, np.ndarray]:
    """(all rows with the corrected ones changed, the boolean mask of the corrected ones).

    `features` maps rows to the evaluation's feature space (knn_space: features);
    `nearest` computes the knn targets (in process, or as a Ray Data pass)."""
    x = np.asarray(x, dtype=np.float64)
    chosen = row_uniforms(seed, ids, 1, stream=streams.CHOICE + generation)[:, 0]
    corrector = corrector_for(strategy.corrector)
    touched = chosen < corrector.share(strategy)
    job = CorrectionJob(strategy, source, real, seed, generation, reference, features, nearest)
    out = x.copy()
    out[touched] = corrector.correct(x[touched], ids[touched], job)
    return out.astype(np.float32), touched


STRATEGY = SelfCorrection()
