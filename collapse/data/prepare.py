"""`collapse prepare`: turn a real source into a checksummed dataset of parquet shards.

Preparing once, to local disk or S3, lets every run (and every Ray worker of a cluster run)
read the same verified rows instead of each one downloading and decoding the source again.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from collapse.data.dataset import Dataset, open_dataset, write_dataset
from collapse.data.sources import real_tables
from collapse.store.storage import Storage

# Smaller sources are written in about a second; a bar would only flicker.
PROGRESS_ABOVE_ROWS = 10_000


def prepare(
    source: str,
    out: str,
    split: str = "train",
    limit: int | None = None,
    size: int | None = None,
    seed: int = 0,
    dim: int = 2,
    root: str | None = None,
    captions: str | None = None,
    rows_per_shard: int | None = None,
) -> Dataset:
    storage = Storage(out)
    storage.check_reachable()
    tables = real_tables(
        source, split, limit=limit, size=size, seed=seed, dim=dim, root=root, captions=captions
    )
    with tqdm(
        total=tables.rows,
        desc=f"prepare {source}",
        unit="row",
        unit_scale=True,
        file=sys.stderr,
        disable=tables.rows <= PROGRESS_ABOVE_ROWS,
        dynamic_ncols=True,
    ) as bar:
        write_dataset(
            storage,
            tables,
            source=source,
            split=split,
            rows_per_shard=rows_per_shard,
            progress=bar.update,
        )
    return open_dataset(out)
