"""`strategy.name: rca_reflow` (alias `ra_reflow`): reflow with real rows paired by the reverse
flow (Zhu et al., arXiv 2412.08175: v1 "RCA Reflow", v2 "RA Reflow").

A real row has no noise partner, so the previous generation's model gives it one: the noise its
reverse ODE (or reverse SDE, noise strength `sigma`) recovers from the row. A generation after
0 trains on its samples' stored (noise, sample) pairs and on its real rows with that noise,
stored as `gen-k/real_pairs/` shards and made anew every `refresh` generations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse.config.schedule import fractions, real_counts
from collapse.config.strategy_section import RealPairingConfig
from collapse.store.records import RealPairsRecord, SpanShard
from collapse.strategies.protocol import Context, Strategy, TrainingInputs
from collapse.strategies.reflow import needs_flow

if TYPE_CHECKING:
    from collapse.config import ChainConfig


def real_rows_problem(config: ChainConfig) -> str | None:
    """A strategy that pairs real rows needs some in every generation after 0; a loop or a
    real_fraction (schedule) that gives one none would run it there as plain reflow."""
    data, name = config.data, config.strategy.name
    if data.loop == "accumulate":  # every generation reads the real rows of generation 0
        return None
    stop = max(config.generations, 2)
    counts = real_counts(data.loop, data.n_train, data.real_fraction, stop, config.generations)
    if counts.all():
        return None
    if not counts.any():
        return (
            f"strategy.name: {name} pairs real rows, but data.loop {data.loop} with "
            f"real_fraction {data.real_fraction} gives the generations after 0 none; use "
            "synthetic_augmentation or fresh_data with real_fraction > 0, or accumulate"
        )
    first = 1 + int(np.argmin(counts > 0))
    share = fractions(data.real_fraction, first + 1, config.generations)[-1]
    return (
        f"strategy.name: {name} pairs real rows, but data.real_fraction "
        f"{data.real_fraction} gives generation {first} none ({data.n_train} x {share:g} "
        "rounds to 0); every generation after 0 needs at least one real row"
    )


class RealPairing(Strategy):
    config = RealPairingConfig
    keeps_noise = True
    needs_previous_model = True

    def check(self, config: ChainConfig) -> str | None:
        return needs_flow(config) or real_rows_problem(config)

    def train_inputs(
        self,
        context: Context,
        inputs: TrainingInputs,
        generation: int,
        seed: int,
        previous: dict[str, np.ndarray] | None,
    ) -> TrainingInputs:
        """The plan's real rows as shards with the noise the previous generation's model pairs
        them with, made anew every `strategy.refresh` generations."""
        assert previous is not None, "real pairs are made by the previous generation's model"
        strategy = context.config.strategy
        assert isinstance(strategy, RealPairingConfig), "this strategy's own arm"
        ranges = [list(r) for part in inputs.plan if part.source == "real" for r in part.rows]
        before = context.store.record(generation - 1).get("real_pairs")
        if (
            before is not None
            and before["rows"] == ranges
            and generation - before["made_at"] < strategy.refresh
        ):
            return inputs.but(real=(context.store.storage, before["shards"]), record=before)
        shards = [_pair(context, generation, seed, previous, a, b, strategy) for a, b in ranges]
        record = RealPairsRecord(made_at=generation, rows=ranges, shards=shards)
        return inputs.but(real=(context.store.storage, shards), record=record)


def _pair(
    context: Context,
    generation: int,
    seed: int,
    params: dict[str, np.ndarray],
    a: int,
    b: int,
    strategy: RealPairingConfig,
) -> SpanShard:
    """One shard: real rows a:b with their reverse-flow noise (seeded by its first row)."""
    from collapse.data.shards import to_parquet

    x = context.real_rows(a, b)
    noise = context.family.reverse(params, x, strategy.sde_sigma, strategy.reverse_steps, seed + a)
    table = context.space.to_table(x, "real", None, np.arange(a, b), noise=noise)
    name = f"real_pairs/part-{a:09d}.parquet"
    artifact = context.store.write_artifact(generation, name, to_parquet(table), rows=b - a)
    return SpanShard(**artifact, ids=[a, b])


STRATEGY = RealPairing()
