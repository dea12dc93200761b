"""What a strategy is: the one shape every mitigation of collapse takes.

The engine (`collapse.engine`) asks the chain's strategy, at fixed points of a generation:
- which config it takes (`config`, its arm of the `strategy:` union in
  `collapse.config.strategy_section`, told apart by `name`), and whether a whole config suits
  it (`check`: a model family it needs, real rows a loop must give it) before anything runs
  (`collapse.engine.preflight`);
- what it stores: `keeps_noise`, the noise each sample was drawn from kept beside it (the
  (noise, sample) pairs reflow trains on);
- what a trained generation trains on (`train_inputs`: the planned rows, the real rows' shards,
  whether rows bring a noise partner) and what the training loop needs per batch
  (`per_batch`: settings the Ray Train worker turns into pairs,
  `collapse.strategies.online_pairing`);
- what a generation passes on (`after_sampling`: the samples, or a transform of them such as
  self-correction's).
The defaults are the plain loop's answers; a strategy overrides only what it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from collapse.config import ChainConfig, StrategySection

if TYPE_CHECKING:
    from collapse.data.mix import MixPart
    from collapse.data.space import DataSpace
    from collapse.store.records import Artifact, RealPairsRecord
    from collapse.store.run_store import RunStore
    from collapse.store.storage import Storage


class Nearest(Protocol):
    """The knn corrector's search: the mean of each row's k nearest real rows (neighbours
    found in feature space where features are given), wherever the engine's backend runs it."""

    def __call__(
        self,
        rows: np.ndarray,
        real: np.ndarray,
        k: int,
        rows_features: np.ndarray | None = None,
        real_features: np.ndarray | None = None,
    ) -> np.ndarray: ...


class Context(Protocol):
    """What the engine lends a strategy during a generation."""

    config: ChainConfig
    store: RunStore
    space: DataSpace
    family: Any

    @property
    def nearest(self) -> Nearest:
        """The knn search, wherever the engine's backend runs it."""

    @property
    def real(self) -> np.ndarray:
        """The real pool in memory."""

    def real_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start:stop of the real pool, as vectors."""

    def params_of(self, generation: int) -> dict[str, np.ndarray]:
        """A committed generation's model parameters."""

    def features(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the evaluation's feature space (the real pool's computed once)."""


@dataclass(frozen=True)
class TrainingInputs:
    """What a trained generation reads: its `plan`, the real rows' `real` (storage, shards),
    whether rows bring a stored noise partner (`paired`), and `record`: what the manifest
    notes of the inputs the strategy made (RA/RCA Reflow's real pairs)."""

    plan: list[MixPart]
    real: tuple[Storage, list[Artifact]]
    paired: bool
    record: RealPairsRecord | None = None

    def but(self, **changes: Any) -> TrainingInputs:
        return replace(self, **changes)


@dataclass(frozen=True)
class Passed:
    """What a generation passes on: `rows` (as the next generation reads them) and, where the
    strategy changed them, `record` (the manifest's `correction`) and `shards` (where they are
    stored, the manifest's `corrected`)."""

    rows: np.ndarray
    record: dict[str, Any] | None = None
    shards: list[Artifact] | None = None


class BatchPairs(Protocol):
    """How a batch becomes (x0, x1) pairs in the training loop
    (`collapse.strategies.online_pairing`)."""

    @property
    def make(self) -> Callable[..., Any]:
        """A batch -> its (x0, x1) pairs."""

    @property
    def batch_size(self) -> int:
        """Rows read from the feed per batch."""

    @property
    def batches(self) -> Iterator[dict[str, Any]] | None:
        """What replaces the feed where no real row is read; None: the feed."""


class PerBatch(Protocol):
    """A strategy's per-batch settings as they travel to a training worker (picklable)."""

    def pairs(
        self,
        build_net: Callable[[], Any],
        device: Any,
        batch_size: int,
        row_shape: tuple[int, ...],
    ) -> BatchPairs:
        """The pair maker of a worker whose batches hold `batch_size` rows."""


class Strategy:
    """A mitigation: the plain loop's answers, which each strategy overrides where it differs."""

    config: ClassVar[type[StrategySection]]  # its arm of the `strategy:` union
    keeps_noise: ClassVar[bool] = False
    needs_previous_model: ClassVar[bool] = False  # its training reads generation t-1's model

    def check(self, config: ChainConfig) -> str | None:
        """Why `config` cannot run this strategy (one line naming the key), or None."""
        return None

    def train_inputs(
        self,
        context: Context,
        inputs: TrainingInputs,
        generation: int,
        seed: int,
        previous: dict[str, np.ndarray] | None,
    ) -> TrainingInputs:
        """A trained generation t >= 1's inputs; `previous`: generation t-1's model where
        `needs_previous_model` (or a warm start) read it."""
        return inputs

    def per_batch(
        self, context: Context, plan: list[MixPart], previous: dict[str, np.ndarray] | None
    ) -> PerBatch | None:
        """Settings the training loop makes each batch's pairs from (None: the rows as fed)."""
        return None

    def after_sampling(
        self,
        context: Context,
        samples: np.ndarray,
        generation: int,
        params: dict[str, np.ndarray],
    ) -> Passed:
        """What the next generation trains on from these samples: the samples themselves."""
        return Passed(samples)
