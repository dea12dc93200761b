"""The VAE latents a Stable Diffusion chain trains on, cached as shards in the run.

Encoding a 512x512 image through the VAE costs about as much as a training step on it, and a
chain trains every generation on the same real rows (and on a generation's samples for as
long as the loop keeps them), so each image is encoded once per run: the real pool at
`<run>/latents/real/`, generation k's samples at `<run>/latents/gen-k/` when a later
generation first trains on them. A cache is one latent shard per source shard, keeping its
row ids, and counts only once its `_index.json` is written, after all its shards: an
interrupted encoding is redone, never half-used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from collapse.data.shards import from_parquet, id_spans, to_parquet
from collapse.data.space import DataSpace
from collapse.store.records import Artifact, SpanShard
from collapse.store.storage import Storage

INDEX = "_index.json"
# (pretrained, space, [(source root URI, source path, target path)], target root URI)
Encoder = Callable[[str, DataSpace, list[tuple[str, str, str]], str], list[Artifact]]


def captions_of(table: pa.Table) -> list[str]:
    """A shard's captions; a labelled set without captions is captioned by its labels (so
    sklearn digits become "3"), anything else by the empty caption."""
    if "caption" in table.column_names:
        return [c or "" for c in table.column("caption").to_pylist()]
    if "label" in table.column_names:
        return [str(v) for v in table.column("label").to_pylist()]
    return [""] * table.num_rows


def latent_table(source: pa.Table, latents: np.ndarray) -> pa.Table:
    latents = np.ascontiguousarray(latents, dtype=np.float32)
    values = pa.array(latents.reshape(-1))
    return pa.table(
        {
            "latent": pa.FixedSizeListArray.from_arrays(values, latents.shape[1]),
            "caption": pa.array(captions_of(source), type=pa.string()),
            "generation": source.column("generation"),
            "id": source.column("id"),
        }
    )


def encode_shards(
    pretrained: str, space: DataSpace, jobs: list[tuple[str, str, str]], target: str
) -> list[Artifact]:
    """Encode each (source root, source path, target path) shard; their descriptors."""
    from collapse.families.stable_diffusion import encode_shard

    out, described = Storage(target), []
    for root, path, rel in jobs:
        table = from_parquet(Storage(root).read_bytes(path))
        data = to_parquet(latent_table(table, encode_shard(pretrained, table, space)))
        out.write_bytes(rel, data)
        digest = hashlib.sha256(data).hexdigest()
        described.append(Artifact(path=rel, sha256=digest, bytes=len(data), rows=table.num_rows))
    return described


def cached(
    run: Storage,
    key: str,
    source: Storage,
    shards: Sequence[Artifact],
    rows: tuple[int, int],
    pretrained: str,
    space: DataSpace,
    encoder: Encoder = encode_shards,
) -> list[SpanShard]:
    """The latent shards (with their `ids`) of the `shards` of `source` that hold any id in
    `rows`, encoded now unless the run has them."""
    folder = f"latents/{key}"
    index = run.read_text(f"{folder}/{INDEX}")
    if index is not None:
        found: list[SpanShard] = json.loads(index)  # written below, once, whole
        return found
    chosen = [
        (s, [lo, hi])
        for s, (lo, hi) in zip(shards, id_spans(shards), strict=True)
        if lo < rows[1] and rows[0] < hi
    ]
    jobs = [(source.uri, s["path"], f"{folder}/part-{ids[0]:09d}.parquet") for s, ids in chosen]
    described = encoder(pretrained, space, jobs, run.uri)
    result = [SpanShard(**d, ids=ids) for d, (_, ids) in zip(described, chosen, strict=True)]
    run.write_bytes(f"{folder}/{INDEX}", json.dumps(result).encode(), atomic=True)
    return result


def pool_captions(run: Storage, pool_rows: tuple[int, int]) -> list[str]:
    """The real pool's captions, which a latent family's samples are drawn for: read from the
    real latent cache's caption column (never the images)."""
    import pyarrow.parquet as pq

    lo, hi = pool_rows
    index = run.read_text(f"latents/real/{INDEX}")
    assert index is not None, "the real pool's latents are cached before it trains on them"
    found: list[str] = []
    for shard in json.loads(index):
        table = pq.read_table(run.path(shard["path"]), filesystem=run.fs)
        ids = table.column("id").to_numpy()
        keep = (ids >= lo) & (ids < hi)
        texts = table.column("caption").to_pylist()
        found.extend(c for c, k in zip(texts, keep, strict=True) if k)
    return found
