"""`Feed`: the planned rows and their order, as each rank's batches from any step on, gathered
from rows held in memory or streamed from storage a shuffled window at a time, read ahead in a
thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from collapse.data.feed.chunks import Chunk, read_chunk
from collapse.data.feed.decode import Decode, Rows, concat_rows
from collapse.data.feed.order import permutation, pieces, span, windows
from collapse.store.storage import Storage

T = TypeVar("T")

WINDOW_BYTES = 64 * 2**20  # a streamed set's local shuffle window, per rank
PREFETCH = 2  # windows read ahead of the one being trained on


@dataclass(frozen=True)
class Feed:
    """The planned rows and their order; `rows`: all of them decoded, in plan order, when the
    set is held in memory (else each rank streams its chunks from storage, shuffling them in
    windows of `window` rows)."""

    seed: int
    decode: Decode
    chunks: tuple[Chunk, ...]
    rows: Rows | None = None
    window: int = 1

    @property
    def size(self) -> int:
        return sum(c.rows for c in self.chunks)

    def batches(
        self, batch_size: int, rank: int = 0, world: int = 1, step: int = 0
    ) -> Iterator[Rows]:
        """Rank's batches of `batch_size` rows, from its batch at `step` on, for ever."""
        start, end = span(self.size, rank, world)
        if end == start:
            raise ValueError(f"{self.size} planned rows cannot be split over {world} workers")
        epoch, offset = divmod(step * batch_size, end - start)
        if self.rows is not None:
            picks = _cut(({"i": i} for i in self._indices(start, end, epoch, offset)), batch_size)
            rows = self.rows
            return ({k: v[pick["i"]] for k, v in rows.items()} for pick in picks)
        blocks = self._windows(rank, start, end, epoch, offset)
        return _cut(prefetched(blocks, PREFETCH), batch_size)

    def _indices(self, start: int, end: int, epoch: int, offset: int) -> Iterator[np.ndarray]:
        """Positions of the rank's rows in `rows`, an epoch at a time."""
        while True:
            yield permutation(self.size, self.seed, epoch)[start + offset : end]
            epoch, offset = epoch + 1, 0

    def _windows(self, rank: int, start: int, end: int, epoch: int, offset: int) -> Iterator[Rows]:
        """The rank's rows read from storage, a shuffled window at a time."""
        sizes = [c.rows for c in self.chunks]
        storages = {root: Storage(root) for root in {c.root for c in self.chunks}}
        cached: dict[int, Rows] = {}  # the last chunk read: a chunk may outlast a window
        while True:
            order = permutation(len(self.chunks), self.seed, epoch)
            for k, window in enumerate(windows(pieces(sizes, order, start, end), self.window)):
                first = k * self.window
                if first + self.window <= offset:
                    continue
                n = sum(hi - lo for _, lo, hi in window)
                keep = permutation(n, self.seed, epoch, rank, k)[max(offset - first, 0) :]
                where = np.full(n, -1)  # each window row's place in the shuffled block
                where[keep] = np.arange(len(keep))
                block: Rows = {}
                at = 0
                for chunk, lo, hi in window:
                    if chunk not in cached:
                        cached.clear()
                        found = self.chunks[chunk]
                        cached[chunk] = read_chunk(found, self.decode, storages[found.root])
                    to = where[at : at + hi - lo]
                    at += hi - lo
                    kept = to >= 0
                    whole = bool(kept.all())  # all but after a resume inside this window
                    for name, v in cached[chunk].items():
                        if name not in block:
                            block[name] = np.empty((len(keep), *v.shape[1:]), v.dtype)
                        source = v[lo:hi] if whole else v[lo:hi][kept]
                        block[name][to if whole else to[kept]] = source  # one copy, C order
                yield block
            epoch, offset = epoch + 1, 0


def _cut(blocks: Iterator[Rows], size: int) -> Iterator[Rows]:
    """Blocks of any sizes re-cut into batches of exactly `size` rows (views where a batch
    lies within one block)."""
    held: list[Rows] = []
    count = 0
    for block in blocks:
        n, at = len(next(iter(block.values()))), 0
        if held:
            take = min(size - count, n)
            held.append({k: v[:take] for k, v in block.items()})
            count, at = count + take, take
            if count < size:
                continue
            yield concat_rows(held)
            held, count = [], 0
        while n - at >= size:
            yield {k: v[at : at + size] for k, v in block.items()}
            at += size
        if at < n:
            held, count = [{k: v[at:] for k, v in block.items()}], n - at


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items` made ahead in a thread, at most `depth` waiting, so training waits on storage
    only where storage is slower than training (parquet reads and numpy copies release the
    GIL). An error in the thread is raised here; closing this generator stops the thread."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as err:  # handed to the consumer, raised there
            put((None, err))

    thread = threading.Thread(target=work, name="collapse-feed", daemon=True)
    thread.start()
    try:
        while True:
            item, err = ready.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
