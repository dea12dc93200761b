"""A strategy: samples clipped to the real pool's central range before the next generation."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from collapse.config import StrategySection
from collapse.data.shards import to_parquet
from collapse.strategies.protocol import Passed, Strategy


class ClipConfig(StrategySection):
    """`clip`: each generation's samples are clipped, per dimension, to the real pool's
    central `quantile` range before the next generation trains on them."""

    name: Literal["clip"] = "clip"
    quantile: float = Field(0.99, gt=0.5, lt=1)


class Clip(Strategy):
    config = ClipConfig

    def after_sampling(self, context, samples, generation, params) -> Passed:
        q = context.config.strategy.quantile
        low, high = np.quantile(context.real, [1 - q, q], axis=0)
        clipped = np.clip(samples, low, high)
        ids = np.arange(len(samples))
        table = context.space.to_table(clipped, "synthetic", generation, ids)
        name = "corrected/part-000000000.parquet"  # what the next generation reads
        shard = context.store.write_artifact(generation, name, to_parquet(table), rows=len(ids))
        moved = int((clipped != samples).any(axis=1).sum())
        return Passed(context.space.to_vectors(table), {"rows": moved}, [shard])


STRATEGY = Clip()
