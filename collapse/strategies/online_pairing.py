"""`strategy.name: ocar` (alias `ora_reflow`; with `reverse: sde` the paper's ORAS Reflow):
online reflow (Zhu et al., arXiv 2412.08175), the memory-light mitigation.

Nothing is stored: a generation after 0 trains on its planned real rows only, and the training loop
makes each mini-batch's pairs on the fly with the frozen previous model
(`collapse.families.rectified_flow.online_pairs`): its real rows with their reverse-flow noise,
topped up with forward pairs (z, ODE(z)) from fresh noise at the planned synthetic share.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from collapse.config.strategy_section import OnlinePairingConfig
from collapse.strategies.protocol import Context, Strategy, TrainingInputs
from collapse.strategies.real_pairing import real_rows_problem
from collapse.strategies.reflow import needs_flow

if TYPE_CHECKING:
    from collapse.config import ChainConfig
    from collapse.data.mix import MixPart


class OnlinePairing(Strategy):
    config = OnlinePairingConfig
    needs_previous_model = True

    def check(self, config: ChainConfig) -> str | None:
        return needs_flow(config) or real_rows_problem(config)

    def per_batch(
        self, context: Context, plan: list[MixPart], previous: dict[str, np.ndarray] | None
    ) -> OnlineBatches:
        """The frozen previous model and the planned share of real rows."""
        assert previous is not None, "online pairs are made by the previous generation's model"
        strategy = context.config.strategy
        assert isinstance(strategy, OnlinePairingConfig), "this strategy's own arm"
        real = sum(part.count for part in plan if part.source == "real")
        return OnlineBatches(
            context.family.weights(previous),
            real / sum(part.count for part in plan),
            context.config.sample.steps,
            strategy.reverse_steps,
            strategy.sde_sigma,
        )

    def train_inputs(
        self,
        context: Context,
        inputs: TrainingInputs,
        generation: int,
        seed: int,
        previous: dict[str, np.ndarray] | None,
    ) -> TrainingInputs:
        """The real rows only: the synthetic share is made per batch."""
        return inputs.but(plan=[part for part in inputs.plan if part.source == "real"])


@dataclass(frozen=True)
class OnlineBatchPairs:
    """What the training loop runs with: `make` turns a batch into (x0, x1) pairs, `batch_size`
    rows are read per batch, and `batches` replaces the feed where no real row is read."""

    make: Callable[..., Any]
    batch_size: int
    batches: Iterator[dict[str, Any]] | None


@dataclass(frozen=True)
class OnlineBatches:
    """OCAR's per-batch settings, as they travel to each Ray Train worker: the frozen previous
    model's weights, the planned share of real rows, and the flows' step counts."""

    frozen: dict[str, np.ndarray]
    real_share: float
    forward_steps: int
    reverse_steps: int
    sigma: float | None

    def pairs(
        self,
        build_net: Callable[[], Any],
        device: Any,
        batch_size: int,
        row_shape: tuple[int, ...],
    ) -> OnlineBatchPairs:
        """The worker's pairs: the frozen model built by `build_net` and loaded on `device`;
        `batch_size` real rows per batch at most, topped up with forward pairs."""
        import torch

        from collapse.families.rectified_flow.online_pairs import online_pairs

        frozen = build_net()
        frozen.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.frozen.items()})
        frozen = frozen.to(device).eval().requires_grad_(False)
        make = online_pairs(
            frozen, batch_size, row_shape, self.forward_steps, self.reverse_steps, self.sigma
        )
        reads = max(1, round(batch_size * self.real_share))
        return OnlineBatchPairs(make, reads, itertools.repeat({}) if self.real_share == 0 else None)


STRATEGY = OnlinePairing()
