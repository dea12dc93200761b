"""Self-correction's correctors (Gillman et al. 2024): functions that move a generation's chosen
samples toward the true distribution before the next generation trains on them.

A corrector is a `Corrector`: `check` says whether a config suits it (one line, or None),
`share` which share of the rows it touches, `correct` what the touched rows become. Most
correctors name a `target` per row and are blended toward it, x + strength * (target - x);
the base class does that. `CORRECTORS` is the registry: `strategy.corrector` takes its names,
or `module:function` (`collapse.strategies.user_corrector`).

- `exact` (collapse.strategies.true_draws): the paper's idealised corrector itself,
  pi_gamma = (p_theta + gamma p*) / (1 + gamma): a row is replaced by a draw of the true source
  with probability gamma / (1 + gamma). It moves mass between modes, so lost modes come back.
- `ideal` (collapse.strategies.langevin): Langevin steps on the true log density, for sources
  whose density is known (toy:gaussian, toy:mog8); strength is the share of its steps run (a
  blend of a row with an independent sample would shrink the variance it is meant to restore).
- `knn`: each sample moves toward the mean of its k nearest real rows (pixels or features).
- `reference`: SDEdit with generation 0's model, the one trained on real data only.

Randomness comes in per row (collapse.data.noise), so a corrected set does not depend on batching.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from collapse.config import (
    EXACT_SOURCES,
    FAMILIES,
    IDEAL_SOURCES,
    ChainConfig,
    SelfCorrectConfig,
)
from collapse.data import streams
from collapse.data.noise import row_normals, row_uniforms
from collapse.metrics.vectors import pairwise_sq_dists
from collapse.strategies.protocol import Nearest


@dataclass(frozen=True)
class CorrectionJob:
    """What a corrector may read: the strategy's config, the real source's name and pool
    (loaded on first call), the (seed, generation) its draws are keyed by, the reference model
    (family, params), the evaluation's feature map, and the knn search (in process or Ray)."""

    strategy: SelfCorrectConfig
    source: str
    real: Callable[[], np.ndarray]
    seed: int
    generation: int
    reference: Callable[[], tuple[Any, dict[str, np.ndarray]]] | None
    features: Callable[[np.ndarray], np.ndarray] | None
    nearest: Nearest


class Corrector(ABC):
    """A corrector: `correct` moves the touched rows; `check` and `share` say what it needs
    and how many rows it touches."""

    name: str

    def check(self, config: ChainConfig) -> str | None:
        return None

    def share(self, strategy: Any) -> float:
        """The share of rows corrected, each row chosen by its own uniform."""
        return strategy.correct_fraction

    @abstractmethod
    def correct(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        """The touched float64 `rows` (of row `ids`), corrected."""


class TowardTarget(Corrector):
    """A corrector that blends each touched row toward its `target` by `strategy.strength`."""

    def correct(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        return blend(rows, self.target(rows, ids, job), job.strategy.strength)

    @abstractmethod
    def target(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        """Where each touched row moves to at strength 1."""


class Exact(Corrector):
    name = "exact"

    def check(self, config: ChainConfig) -> str | None:
        if config.data.real in EXACT_SOURCES:
            return None
        return (
            f"strategy.corrector: exact draws from the true source, known only for "
            f"{', '.join(EXACT_SOURCES)}, not {config.data.real}; use knn or module:function"
        )

    def share(self, strategy: Any) -> float:
        # pi_gamma: a chosen row becomes a true draw with probability strength = gamma/(1+gamma);
        # the rows drawn anew are the corrected ones (the rest are the model's, untouched)
        return strategy.correct_fraction * strategy.strength

    def correct(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        from collapse.strategies.true_draws import true_draws

        stream = streams.TRUE_DRAW + job.generation
        return true_draws(job.source, ids, rows.shape[1], job.seed, stream)


class Ideal(Corrector):
    name = "ideal"

    def check(self, config: ChainConfig) -> str | None:
        from collapse.strategies.langevin import unadjusted_step_problem

        strategy = config.strategy
        assert isinstance(strategy, SelfCorrectConfig), "a corrector is self_correct's"
        if config.data.real not in IDEAL_SOURCES:
            return (
                f"strategy.corrector: ideal needs a source with a known density "
                f"({', '.join(IDEAL_SOURCES)}), not {config.data.real}; use knn or "
                "module:function"
            )
        if strategy.metropolis:  # MALA's law is exact at any step
            return None
        return unadjusted_step_problem(config.data.real, strategy.step_size)

    def correct(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        # strength is how far along the Langevin dynamics: a share of its steps. Unlike a blend
        # of positions, every partial run moves the distribution toward the true one.
        from collapse.strategies import langevin

        strategy, seed, generation = job.strategy, job.seed, job.generation
        steps, dim = round(strategy.strength * strategy.langevin_steps), rows.shape[1]
        noise = row_normals(seed, ids, steps * dim, stream=streams.LANGEVIN + generation)
        noise = noise.reshape(len(rows), steps, dim)  # -1 cannot stand for rows when steps = 0
        score = langevin.TRUE_SCORES[job.source]
        if not strategy.metropolis:
            return langevin.langevin(rows, score, strategy.step_size, noise)
        decisions = row_uniforms(seed, ids, steps, stream=streams.ACCEPT + generation)
        density = langevin.TRUE_LOG_DENSITIES[job.source]
        return langevin.mala(rows, score, density, strategy.step_size, noise, decisions)


class Knn(TowardTarget):
    name = "knn"

    def target(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        pool, k = job.real(), job.strategy.k
        if job.strategy.knn_space == "features":
            assert job.features is not None, "knn in feature space needs the feature map"
            return job.nearest(rows, pool, k, job.features(rows), job.features(pool))
        return job.nearest(rows, pool, k)


class Reference(TowardTarget):
    name = "reference"

    def check(self, config: ChainConfig) -> str | None:
        if FAMILIES[config.model.family].denoises:
            return None
        denoising = " or ".join(name for name, r in FAMILIES.items() if r.denoises)
        return (
            "strategy.corrector: reference denoises with a trained model: "
            f"model.family {denoising}, not {config.model.family}"
        )

    def target(self, rows: np.ndarray, ids: np.ndarray, job: CorrectionJob) -> np.ndarray:
        assert job.reference is not None, "the reference corrector needs generation 0's model"
        family, params = job.reference()
        noise = row_normals(job.seed, ids, rows.shape[1], stream=streams.LANGEVIN + job.generation)
        return family.sdedit(params, rows, job.strategy.level, noise)


CORRECTORS: dict[str, Corrector] = {c.name: c for c in (Ideal(), Exact(), Knn(), Reference())}


def corrector_for(spec: str) -> Corrector:
    """The registered corrector `spec`, or the user's `module:function`."""
    if spec in CORRECTORS:
        return CORRECTORS[spec]
    from collapse.strategies.user_corrector import UserCorrector

    return UserCorrector(spec)


def toward_nearest_real(
    x: np.ndarray,
    real: np.ndarray,
    k: int,
    x_features: np.ndarray | None = None,
    real_features: np.ndarray | None = None,
) -> np.ndarray:
    """The mean of each row's k nearest real rows, in bounded-memory chunks. With features,
    neighbours are found in feature space (digits-cnn, Inception) and their pixels averaged."""
    x, real = np.asarray(x, dtype=np.float64), np.asarray(real, dtype=np.float64)
    near_x = x if x_features is None else np.asarray(x_features, dtype=np.float64)
    near_real = real if real_features is None else np.asarray(real_features, dtype=np.float64)
    k = min(k, len(real))
    out = np.empty_like(x)
    step = max(1, (1 << 24) // max(len(real), 1))
    for start in range(0, len(x), step):
        d2 = pairwise_sq_dists(near_x[start : start + step], near_real)
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
        out[start : start + step] = real[nearest].mean(axis=1)
    return out


def blend(x: np.ndarray, corrected: np.ndarray, strength: float) -> np.ndarray:
    return x + strength * (np.asarray(corrected, dtype=np.float64) - x)
