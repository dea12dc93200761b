"""A generation's training rows as batches: a pure function of (seed, step, rank, world size).

A trained generation must be a function of its config and seed, with 0 or N training workers,
killed and resumed or not, and its feed must keep pace with a PyTorch DataLoader whatever the
size of the set. Both follow from one definition of the order in which rows reach training:

- The planned rows (the mix plan's parts in plan order, each part's ids ascending) are cut
  into chunks: the planned ids of one shard within one planned range.
- Epoch e orders them anew from the seed. A set held in memory is permuted row by row; a set
  streamed from storage is permuted chunk by chunk, and each rank mixes its rows in windows of
  `window` rows (a local shuffle: storage is read in whole shards, never row by row).
- Rank r of W takes the r-th of W contiguous spans of every epoch (their sizes differ by at
  most one row). Its stream is its spans of epochs 0, 1, 2, ... end to end, and its batch at
  step s is rows [s*b, (s+1)*b) of that stream.

So every rank has a batch at every step (DDP needs equal steps), each planned row is seen
exactly once per epoch, the order differs between epochs, and a generation resumed at step s
starts at its batch s, not at the start of an epoch. Nothing depends on timing: reads run
ahead in a thread, but what they read is fixed before they start. No Ray here:
`collapse.distributed.datasets` puts a set held in memory in the object store once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collapse.data.shards import id_spans, table_column_array, table_to_images
from collapse.data.space import DataSpace
from collapse.storage import Storage

Rows = dict[str, np.ndarray]
T = TypeVar("T")

SHUFFLE = 0x5EED  # the feed's tag among the chain's random streams
WINDOW_BYTES = 64 * 2**20  # a streamed set's local shuffle window, per rank
PREFETCH = 2  # windows read ahead of the one being trained on


# The order ---------------------------------------------------------------------------------
def permutation(n: int, seed: int, *key: int) -> np.ndarray:
    """A permutation of range(n) drawn from (seed, *key) alone."""
    return np.random.default_rng([seed, SHUFFLE, *key]).permutation(n)


def span(total: int, rank: int, world: int) -> tuple[int, int]:
    """Rank's [start, end) of `total` positions cut into `world` contiguous spans."""
    base, extra = divmod(total, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


Piece = tuple[int, int, int]  # (chunk, lo, hi): rows [lo, hi) of a chunk, counted in the chunk


def pieces(sizes: Sequence[int], order: Sequence[int], start: int, end: int) -> list[Piece]:
    """Positions [start, end) of the sequence of chunks in `order`, as pieces of chunks."""
    found, at = [], 0
    for chunk in order:
        size = sizes[chunk]
        lo, hi = max(start - at, 0), min(end - at, size)
        if lo < hi:
            found.append((int(chunk), lo, hi))
        at += size
        if at >= end:
            break
    return found


def windows(parts: Sequence[Piece], size: int) -> list[list[Piece]]:
    """Consecutive pieces regrouped into windows of `size` rows (the last one may be short)."""
    cut: list[list[Piece]] = [[]]
    room = size
    for chunk, lo, hi in parts:
        while lo < hi:
            if room == 0:
                cut.append([])
                room = size
            take = min(room, hi - lo)
            cut[-1].append((chunk, lo, lo + take))
            lo += take
            room -= take
    return cut if cut[0] else []


# Reading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """The planned ids [lo, hi) of one shard (`path` under the storage `root`)."""

    root: str
    path: str
    lo: int
    hi: int

    @property
    def rows(self) -> int:
        return self.hi - self.lo


def plan_chunks(
    parts: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[tuple[int, int]]]],
) -> tuple[Chunk, ...]:
    """The chunks of a plan's parts, each given as (storage URI, its shards as an index lists
    them, the planned id ranges), in plan order."""
    found = []
    for root, shards, ranges in parts:
        spans = id_spans(shards)
        for a, b in ranges:
            mine = [
                Chunk(root, s["path"], max(a, lo), min(b, hi))
                for s, (lo, hi) in zip(shards, spans, strict=True)
                if max(a, lo) < min(b, hi)
            ]
            if sum(c.rows for c in mine) != b - a:
                raise ValueError(f"{root}: its shards do not hold every id in [{a}, {b})")
            found.extend(sorted(mine, key=lambda c: c.lo))
    return tuple(found)


@dataclass(frozen=True)
class Decode:
    """Shard rows as a model consumes them: `x` (float32 vectors, uint8 CHW images, or a
    Stable Diffusion run's float32 latents with their captions' `input_ids`), `generation` (-1
    for real rows) and `id`; with `noise_dim`, reflow's stored partner (`noise`, CHW float32,
    zero where `paired` is false). Images stay uint8 until the training worker scales them on
    its device: a quarter of the bytes. Arrays may be views of the shard's buffers, images
    strided (HWC bytes seen as CHW): whoever keeps them copies them once, into C order."""

    space: DataSpace
    noise_dim: int = 0
    latents: tuple[str, tuple[int, ...]] | None = None  # (pretrained, latent shape)

    @property
    def row_bytes(self) -> int:
        if self.latents is not None:
            return 4 * int(np.prod(self.latents[1])) + 8 * 77 + 12
        x = self.space.dim * (1 if self.space.kind == "image" else 4)
        return x + (4 * self.noise_dim + 1 if self.noise_dim else 0) + 12

    def columns(self, names: Sequence[str]) -> list[str]:
        """What to read of a shard with these columns."""
        if self.latents is not None:
            data = ["latent", "caption"]
        elif "x" in names:
            data = ["x"]
        else:
            data = ["image", "shape"]
        extra = ["noise"] if self.noise_dim and "noise" in names else []
        return [*data, *extra, "generation", "id"]

    def __call__(self, table: pa.Table) -> Rows:
        if self.latents is not None:
            from collapse.families.stable_diffusion import training_batch

            pretrained, shape = self.latents
            return training_batch(table, pretrained, shape)
        space = self.space
        if space.kind == "image":
            x = _images(table, space.shape).transpose(0, 3, 1, 2)
        else:
            x = space.to_vectors(table)
        generation = table.column("generation").fill_null(-1).to_numpy().astype(np.int32)
        rows = {"x": x, "generation": generation, "id": table.column("id").to_numpy()}
        if self.noise_dim:
            noise = np.zeros((len(x), self.noise_dim), dtype=np.float32)
            paired = np.zeros(len(x), dtype=bool)
            if "noise" in table.column_names:
                column = table.column("noise").combine_chunks()
                paired = column.is_valid().to_numpy(zero_copy_only=False)
                values = column.filter(paired).flatten().to_numpy()
                noise[paired] = values.reshape(-1, self.noise_dim)
            rows.update(noise=noise.reshape(len(x), *space.model_shape), paired=paired)
        return rows


def _images(table: pa.Table, shape: tuple[int, ...]) -> np.ndarray:
    """(n, H, W, C) uint8: the image column's bytes as they lie in its buffer when every row
    is one image of `shape` (a third of a shard's decode time otherwise goes to building a
    Python bytes object per row in `table_to_images`, which handles every other case)."""
    column = table.column("image").combine_chunks()
    n, size = len(column), int(np.prod(shape))
    if column.type != pa.binary() or column.null_count or n == 0:
        return table_to_images(table)
    offsets = np.frombuffer(column.buffers()[1], np.int32, n + 1, 4 * column.offset)
    if (table_column_array(table, "shape") != shape).any() or (np.diff(offsets) != size).any():
        return table_to_images(table)
    data = np.frombuffer(column.buffers()[2], np.uint8, n * size, int(offsets[0]))
    return data.reshape(n, *shape)


def read_chunk(chunk: Chunk, decode: Decode, storage: Storage | None = None) -> Rows:
    """A chunk's rows, decoded, ids ascending."""
    storage = storage or Storage(chunk.root)
    with storage.fs.open_input_file(storage.path(chunk.path)) as f:
        shard = pq.ParquetFile(f)
        table = shard.read(columns=decode.columns(shard.schema_arrow.names))
    ids = table.column("id").to_numpy()
    keep = (ids >= chunk.lo) & (ids < chunk.hi)
    if not keep.all():
        table, ids = table.filter(pa.array(keep)), ids[keep]
    if len(ids) != chunk.rows:
        raise ValueError(
            f"{storage.uri_of(chunk.path)} holds {len(ids)} of the planned ids "
            f"[{chunk.lo}, {chunk.hi})"
        )
    if np.any(ids[1:] < ids[:-1]):
        table = table.take(pa.array(np.argsort(ids, kind="stable")))
    return decode(table)


def read_all(chunks: Sequence[Chunk], decode: Decode) -> Rows:
    """Every chunk's rows, in plan order (shards are read in parallel threads)."""
    storages = {root: Storage(root) for root in {c.root for c in chunks}}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(chunks)))) as pool:
        parts = list(pool.map(lambda c: read_chunk(c, decode, storages[c.root]), chunks))
    return _concat(parts)


# Batches -----------------------------------------------------------------------------------
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


def _concat(parts: Sequence[Rows]) -> Rows:
    """One C-ordered array per key (decoded rows may be strided views of a shard)."""
    if len(parts) == 1:
        return {k: np.ascontiguousarray(v) for k, v in parts[0].items()}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


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
            yield _concat(held)
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
