"""Self-correcting self-consuming loops (Gillman et al. 2024), `strategy.name: self_correct`.

After a generation samples, a `correct_fraction` of its samples, each row chosen by its own
uniform of (seed, generation, id), is moved toward the true distribution by the corrector
(`collapse.strategies.correctors`); the next generation trains on the corrected set, stored as
`gen-k/corrected/` shards. Which rows are chosen does not depend on how they are batched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from collapse.noise import row_uniforms
from collapse.strategies.correctors import (
    CORRECTORS,
    CorrectionJob,
    corrector_for,
    toward_nearest_real,
)
from collapse.strategies.protocol import Context, Passed, Strategy, StrategySection

if TYPE_CHECKING:
    from collapse.config import ChainConfig

CHOICE_STREAM = 1 << 62  # + generation: which rows are corrected
USER_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SelfCorrectConfig(StrategySection):
    """`self_correct` (any family; Gillman et al. 2024): a `correct_fraction` of each
    generation's samples is moved toward the true distribution by `corrector` before the next
    generation trains on them, with `strength` in [0, 1] (knn and user: the share of the way to
    the corrector's output; ideal: the share of its Langevin steps run; exact: gamma / (1 +
    gamma)): `exact` (Gillman et al.'s pi_gamma: each row replaced by a draw of the toy source
    with probability `strength`), `ideal` (Langevin on the true density of
    toy:gaussian/toy:mog8, `langevin_steps` of `step_size`, Metropolis-adjusted with
    `metropolis`; unadjusted, a step with step x curvature >= 1 is refused), `knn` (toward the
    mean of the `k` nearest real rows, in `knn_space`, over `knn_workers` Ray Data tasks if > 0),
    `reference` (SDEdit at noise `level` by generation 0's model) or `module:function`."""

    name: Literal["self_correct"] = "self_correct"
    corrector: str = "ideal"
    correct_fraction: float = Field(1.0, gt=0, le=1)
    strength: float = Field(1.0, ge=0, le=1)
    k: int = Field(5, ge=1, le=10_000)
    langevin_steps: int = Field(50, ge=1, le=100_000)
    step_size: float = Field(0.05, gt=0, le=10)
    metropolis: bool = False  # ideal: MALA, whose stationary law is the true one at any step
    level: float = Field(0.5, gt=0, le=1)  # reference: SDEdit's noise level
    knn_space: Literal["pixel", "features"] = "pixel"  # features: eval.features' extractor
    knn_workers: int = Field(0, ge=0, le=4096)  # > 0: a Ray Data pass over that many tasks

    @field_validator("corrector")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in CORRECTORS or USER_SPEC.match(value):
            return value
        raise ValueError(f"allowed: {', '.join(CORRECTORS)} or module:function, got {value!r}")


class SelfCorrection(Strategy):
    names = ("self_correct",)
    config = SelfCorrectConfig

    def check(self, config: ChainConfig) -> str | None:
        return corrector_for(config.strategy.corrector).check(config)

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

        def reference() -> tuple[Any, dict[str, np.ndarray]]:
            return context.family, params if generation == 0 else context.params_of(0)

        ids = np.arange(len(samples), dtype=np.int64)
        corrected, touched = correct_rows(
            samples,
            ids,
            cfg.strategy,
            cfg.data.real,
            lambda: context.real,
            cfg.seed,
            generation,
            reference,
            context.features,
            context.backend.nearest,
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
            "corrector": cfg.strategy.corrector,
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
    chosen = row_uniforms(seed, ids, 1, stream=CHOICE_STREAM + generation)[:, 0]
    corrector = corrector_for(strategy.corrector)
    touched = chosen < corrector.share(strategy)
    job = CorrectionJob(strategy, source, real, seed, generation, reference, features, nearest)
    out = x.copy()
    out[touched] = corrector.correct(x[touched], ids[touched], job)
    return out.astype(np.float32), touched


def knn_workers(strategy: StrategySection) -> int:
    """The Ray Data tasks the knn corrector's search asks for (0: in the chain's process)."""
    return strategy.knn_workers if isinstance(strategy, SelfCorrectConfig) else 0
