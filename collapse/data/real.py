"""Where a chain's real data lives: its training pool and its held-out evaluation rows.

Built-in sources (toy, sklearn, torchvision, folders) are prepared into the run's own storage
on first use, `<run>/real/{train,test}` (or `<run>/real/all` for a folder, which has no
splits), so a run carries the exact real rows it was measured against, wherever it resumes. A
`parquet:URI` dataset is read where it is. Without a test split, the held-out rows are the
n_eval rows right after the pool, never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapse.config import RunConfig
from collapse.errors import UserError
from collapse.storage import RunStore


@dataclass(frozen=True)
class RealData:
    pool_uri: str
    pool_rows: tuple[int, int]
    held_out_uri: str
    held_out_rows: tuple[int, int]


def locate(config: RunConfig, store: RunStore) -> RealData:
    data = config.data
    kind, _, rest = data.real.partition(":")
    pool, held_out = (0, data.n_real), (data.n_real, data.n_real + data.n_eval)
    if kind == "parquet":
        return RealData(rest, pool, rest, held_out)
    if kind == "folder":
        uri = store.storage.uri_of("real/all")
        return RealData(uri, pool, uri, held_out)
    return RealData(
        store.storage.uri_of("real/train"),
        pool,
        store.storage.uri_of("real/test"),
        (0, data.n_eval),
    )


def ensure(config: RunConfig, store: RunStore) -> RealData:
    """Prepare the run's real data if it is not there yet, and check it before any training:
    every shard against its index (missing, truncated, checksum, schema) and the row counts."""
    from collapse.data.dataset import DATASET_INDEX, open_dataset
    from collapse.prepare import prepare

    real = locate(config, store)
    data = config.data
    kind, _, rest = data.real.partition(":")
    common = {"seed": config.seed, "dim": data.dim}
    if kind == "folder":
        jobs = [(real.pool_uri, "train", data.n_real + data.n_eval, f"folder:{rest}")]
    elif kind != "parquet":
        jobs = [
            (real.pool_uri, "train", data.n_real, data.real),
            (real.held_out_uri, "test", data.n_eval, data.real),
        ]
    else:
        jobs = []
    for uri, split, limit, source in jobs:
        if not RunStore(uri).storage.exists(DATASET_INDEX):
            prepare(source, uri, split=split, limit=limit, **common)
    datasets = {uri: open_dataset(uri) for uri in (real.pool_uri, real.held_out_uri)}
    for dataset in datasets.values():
        dataset.verify()
    for uri, (_, stop), what in (
        (real.pool_uri, real.pool_rows, "data.n_real"),
        (real.held_out_uri, real.held_out_rows, "data.n_eval"),
    ):
        rows = datasets[uri].rows
        if rows < stop:
            raise UserError(f"{what}: the run needs {stop} rows of {uri}, which has {rows}")
    return real
