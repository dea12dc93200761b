"""What a chain reads back from its run: the real pool, the held-out rows, earlier generations'
samples and models, each read once and kept while the chain runs.

A resumed chain has nothing in memory; everything here is read from the committed manifest and
its shards on first use, so it trains on exactly what the uninterrupted chain did.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from collapse.config import ChainConfig
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.mix import MixPart
from collapse.data.pile import SamplePile
from collapse.data.shards import from_parquet
from collapse.data.space import DataSpace
from collapse.families.moments import Moments
from collapse.store.records import Artifact, training_samples
from collapse.store.run_store import RunStore


class RunHistory:
    def __init__(
        self,
        config: ChainConfig,
        store: RunStore,
        moments_of: Callable[[np.ndarray], Moments] | None = None,
    ):
        """`moments_of`: the family's, if it fits from moments: accumulated samples are then
        merged into a running total instead of kept."""
        self.config, self.store, self._moments_of = config, store, moments_of
        self.where = real.locate(config, store)
        self.pool = open_dataset(self.where.pool_uri)
        self.space = DataSpace.of_index(self.pool.index)
        self._held_out: np.ndarray | None = None
        self._real: np.ndarray | None = None
        self._samples: dict[int, np.ndarray] = {}  # the last generation's (replace loops)
        self._pile = SamplePile()  # every generation's, in order (accumulate)
        self._merged = Moments(0, np.zeros(0), np.zeros(0))  # accumulated samples' (moments_of)
        self._merged_through = -1  # the last generation merged into it
        self._next: tuple[int, Moments] | None = None  # the in-flight generation's total

    @property
    def pool_rows(self) -> tuple[int, int]:
        """The real pool's rows in its dataset: what generations train on."""
        return self.where.pool_rows

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
        data = self.store.read_artifact(self.store.record(generation)["model"][0])
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def training_set(self, plan: list[MixPart]) -> np.ndarray:
        """A closed-form generation's training rows, in plan order."""
        pieces: list[np.ndarray] = []
        for part in plan:
            if part.source == "real":
                pieces.extend(self.real[a:b] for a, b in part.rows)
            elif part.last is not None and self.config.data.loop == "accumulate":
                # every sample of a span of generations: one slice of the pile
                self._samples_of(part.last)
                pieces.append(self._pile.span(part.samples_of, part.last))
                assert len(pieces[-1]) == part.count, "a span takes all of its samples"
            else:
                for one in part.each():
                    pieces.extend(self._samples_of(one.samples_of)[a:b] for a, b in one.rows)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]

    def training_moments(self, plan: list[MixPart]) -> Moments:
        """The moments of a closed-form generation's training rows, for a family that fits
        from them: an accumulate plan's samples of all earlier generations are a running total
        that merges each generation once, so generation 10,000 merges one generation's samples,
        not 200,000 rows."""
        assert self._moments_of is not None, "the chain's family fits from moments"
        spans = [p for p in plan if p.source == "synthetic"]
        if self.config.data.loop != "accumulate" or not spans:
            return self._moments_of(self.training_set(plan))
        self._catch_up(max(p.samples_of if p.last is None else p.last for p in spans))
        assert spans[0].generation == 0 and self._merged.count == sum(p.count for p in spans)
        real = self.training_set([p for p in plan if p.source == "real"])
        return self._moments_of(real).merge(self._merged)

    @property
    def accumulates_moments(self) -> bool:
        """Whether each generation stores its running total (`accumulated`)."""
        return self._moments_of is not None and self.config.data.loop == "accumulate"

    def accumulated(self, generation: int, samples: np.ndarray) -> dict[str, np.ndarray]:
        """The moments of every sample of generations 0..`generation` (`samples` its own), as
        the generation stores them (its record's `accumulated`): a resumed chain reads the
        latest one's instead of every generation's samples. Kept once it is remembered."""
        assert self._moments_of is not None, "the chain's family fits from moments"
        self._catch_up(generation - 1)
        total = self._merged.merge(self._moments_of(samples))
        self._next = (generation, total)
        return {"count": np.asarray(total.count), "mean": total.mean, "m2": total.m2}

    def _catch_up(self, last: int) -> None:
        """Bring the running total to generation `last`: from the stored total of the latest
        generation that has one (a run made before they were stored has none), then merging
        the samples of each generation after it, in order, as the chain merged them."""
        if self._merged_through >= last:
            return
        assert self._moments_of is not None
        for generation in range(last, self._merged_through, -1):
            record = self.store.record(generation)
            if "accumulated" in record:
                data = self.store.read_artifact(record["accumulated"])
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    self._merged = Moments(int(npz["count"]), npz["mean"], npz["m2"])
                self._merged_through = generation
                break
        for samples in self._samples_from(self._merged_through + 1, last):
            self._merged = self._merged.merge(self._moments_of(samples))
            self._merged_through += 1

    def read_samples(self, shards: list[Artifact]) -> np.ndarray:
        """A generation's samples in id order, as stored (what the next generation trains on)."""
        tables = [from_parquet(self.store.read_artifact(a)) for a in shards]
        return np.concatenate([self.space.to_vectors(t) for t in tables])

    def _samples_from(self, first: int, last: int) -> Iterator[np.ndarray]:
        """The stored samples of generations first..last, in order, read a few at a time in
        parallel: a resumed accumulate chain reads every generation's, a request each on S3."""
        shards = [training_samples(self.store.record(g)) for g in range(first, last + 1)]
        if len(shards) <= 1:
            yield from map(self.read_samples, shards)
            return
        with ThreadPoolExecutor(max_workers=8) as pool:
            for start in range(0, len(shards), 64):  # a window: never every generation at once
                yield from pool.map(self.read_samples, shards[start : start + 64])

    def _samples_of(self, generation: int) -> np.ndarray:
        """What `generation` stored for later generations to train on (read once)."""
        if self.config.data.loop == "accumulate":  # kept in order: fill the pile up to it
            for samples in self._samples_from(len(self._pile), generation):
                self._pile.append(samples)
            return self._pile.span(generation, generation)
        if generation not in self._samples:
            self._samples[generation] = self.read_samples(
                training_samples(self.store.record(generation))
            )
        return self._samples[generation]

    def remember(self, generation: int, samples: np.ndarray) -> None:
        """Keep in memory what the next generation reads: all samples if they accumulate, or
        their moments (`accumulated`); a resumed chain's are read from storage when needed."""
        if self.config.data.loop != "accumulate":
            self._samples = {generation: samples}
        elif self._moments_of is not None:
            if self._next is not None and self._next[0] == generation:
                (self._merged_through, self._merged), self._next = self._next, None
        elif len(self._pile) == generation:
            self._pile.append(samples)
