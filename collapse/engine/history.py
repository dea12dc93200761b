"""What a chain reads back from its run: the real pool, the held-out rows, earlier generations'
samples and models, each read once and kept while the chain runs.

A resumed chain has nothing in memory; everything here is read from the committed manifest and
its shards on first use, so it trains on exactly what the uninterrupted chain did.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from collapse.config import ChainConfig
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.mix import MixPart
from collapse.data.pile import SamplePile
from collapse.data.shards import from_parquet
from collapse.data.space import DataSpace
from collapse.run_store import RunStore


class RunHistory:
    def __init__(self, config: ChainConfig, store: RunStore):
        self.config, self.store = config, store
        self.where = real.locate(config, store)
        self.pool = open_dataset(self.where.pool_uri)
        self.space = DataSpace.of_index(self.pool.index)
        self._held_out: np.ndarray | None = None
        self._real: np.ndarray | None = None
        self._samples: dict[int, np.ndarray] = {}  # the last generation's (replace loops)
        self._pile = SamplePile()  # every generation's, in order (accumulate)

    @property
    def real(self) -> np.ndarray:
        """The real pool in memory, for closed-form fits only (trained families stream it)."""
        if self._real is None:
            self._real = self.space.to_vectors(self.pool.read_rows([self.where.pool_rows]))
        return self._real

    def real_rows(self, start: int, stop: int) -> np.ndarray:
        return self.space.to_vectors(self.pool.read_rows([(start, stop)]))

    @property
    def held_out(self) -> np.ndarray:
        """The held-out real rows: evaluation's reference, and the backdrop of a scatter."""
        if self._held_out is None:
            held_out = open_dataset(self.where.held_out_uri)
            self._held_out = self.space.to_vectors(held_out.read_rows([self.where.held_out_rows]))
        return self._held_out

    def params_of(self, generation: int) -> dict[str, np.ndarray]:
        data = self.store.read_artifact(self.store.committed()[generation]["model"][0])
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def training_set(self, plan: list[MixPart]) -> np.ndarray:
        """A closed-form generation's training rows, in plan order."""
        pieces = []
        for part in plan:
            if part.source == "real":
                pieces.extend(self.real[a:b] for a, b in part.rows)
            elif part.last is not None and self.config.data.loop == "accumulate":
                # every sample of a span of generations: one slice of the pile
                self._samples_of(part.last)
                pieces.append(self._pile.span(part.generation, part.last))
                assert len(pieces[-1]) == part.count, "a span takes all of its samples"
            else:
                for one in part.each():
                    pieces.extend(self._samples_of(one.generation)[a:b] for a, b in one.rows)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]

    def read_samples(self, shards: list[dict[str, Any]]) -> np.ndarray:
        """A generation's samples in id order, as stored (what the next generation trains on)."""
        tables = [from_parquet(self.store.read_artifact(a)) for a in shards]
        return np.concatenate([self.space.to_vectors(t) for t in tables])

    def _samples_of(self, generation: int) -> np.ndarray:
        """What `generation` stored for later generations to train on (read once)."""
        if self.config.data.loop == "accumulate":  # kept in order: fill the pile up to it
            while len(self._pile) <= generation:
                record = self.store.committed()[len(self._pile)]
                self._pile.append(self.read_samples(training_samples(record)))
            return self._pile.span(generation, generation)
        if generation not in self._samples:
            self._samples[generation] = self.read_samples(
                training_samples(self.store.committed()[generation])
            )
        return self._samples[generation]

    def remember(self, generation: int, samples: np.ndarray) -> None:
        """Keep in memory what the next generation reads: all samples if they accumulate (a
        resumed chain's pile is filled from storage when first needed)."""
        if self.config.data.loop != "accumulate":
            self._samples = {generation: samples}
        elif len(self._pile) == generation:
            self._pile.append(samples)


def training_samples(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The shards a later generation trains on: the corrected samples where there are some."""
    return record.get("corrected") or record["samples"]
