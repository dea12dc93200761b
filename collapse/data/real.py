"""Where a chain's real data lives: its training pool and its held-out evaluation rows.

Built-in sources (toy, sklearn, torchvision, folders) are prepared into the run's own storage
on first use, `<run>/real/{train,test}` (or `<run>/real/all` for a folder, which has no
splits), so a run carries the exact real rows it was measured against, wherever it resumes. A
`parquet:URI` dataset is read where it is. Without a test split, the held-out rows are the
n_eval rows right after the pool, never trained on.

The data a run reads is checked whole before its first generation trains
(`collapse.data.checks`): the user's own data (a parquet dataset, a folder) by
`check_user_data`, before anything is written to the run
(`collapse.engine.preflight.check_real_data` first checks that a parquet dataset's rows suit
the config), and the run's copies of built-in sources by `ensure`, once they are prepared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collapse.config import ChainConfig
from collapse.errors import UserError
from collapse.store.layout import CONFIG
from collapse.store.run_store import RunStore

if TYPE_CHECKING:
    from collapse.data.dataset import Dataset

REAL_DIR = "real"  # built-in sources, prepared into the run


@dataclass(frozen=True)
class RealData:
    pool_uri: str
    pool_rows: tuple[int, int]
    held_out_uri: str
    held_out_rows: tuple[int, int]


def locate(config: ChainConfig, store: RunStore) -> RealData:
    data = config.data
    kind, _, rest = data.real.partition(":")
    pool, held_out = (0, data.n_real), (data.n_real, data.n_real + data.n_eval)
    if kind == "parquet":
        return RealData(rest, pool, rest, held_out)
    if kind == "folder":
        uri = store.storage.uri_of(f"{REAL_DIR}/all")
        return RealData(uri, pool, uri, held_out)
    return RealData(
        store.storage.uri_of(f"{REAL_DIR}/train"),
        pool,
        store.storage.uri_of(f"{REAL_DIR}/test"),
        (0, data.n_eval),
    )


def parquet_dataset(config: ChainConfig) -> Dataset | None:
    """A `parquet:URI` source's dataset, opened and holding the rows the run needs (None for
    every other source). Its index says the kind and shape of its rows, which the config could
    not know (`collapse.engine.preflight.check_data_fit` checks them before `check_user_data`)."""
    from collapse.data.dataset import open_dataset

    data = config.data
    kind, _, rest = data.real.partition(":")
    if kind != "parquet":
        return None
    dataset = open_dataset(rest)
    need = data.n_real + data.n_eval
    if dataset.rows < need:
        raise UserError(
            f"data.n_eval: the run needs {need} rows of {dataset.uri} (data.n_real "
            f"{data.n_real} + data.n_eval {data.n_eval}), which has {dataset.rows}"
        )
    return dataset


def check_user_data(config: ChainConfig, store: RunStore, dataset: Dataset | None = None) -> None:
    """The data check of the user's own real data, before anything is written to the run:
    every value of every shard of a parquet `dataset` (`parquet_dataset`); a folder's image
    count and every image, decoded one at a time (unless a resumed run has its copy, which
    `ensure` checks). Each fault is one UserError naming the file."""
    from collapse.data.dataset import DATASET_INDEX
    from collapse.data.sources import real_tables

    data = config.data
    if dataset is not None:
        dataset.verify()
    elif data.real.startswith("folder:"):
        copy = locate(config, store).pool_uri
        if store.storage.exists(CONFIG) and RunStore(copy).storage.exists(DATASET_INDEX):
            return
        need = data.n_real + data.n_eval
        tables = real_tables(data.real, limit=need)
        if tables.rows < need:
            raise UserError(
                f"data.n_eval: the run needs {need} images of {data.real} (data.n_real "
                f"{data.n_real} + data.n_eval {data.n_eval}), which has {tables.rows}"
            )
        for _ in tables:  # every image decoded, none kept
            pass


def ensure(config: ChainConfig, store: RunStore) -> RealData:
    """Prepare the run's real data if it is not there yet and check the run's copies before
    any training: every shard and value (a parquet dataset was checked by `check_user_data`) and the
    row counts."""
    from collapse.data.dataset import DATASET_INDEX, open_dataset
    from collapse.data.prepare import prepare

    real = locate(config, store)
    data = config.data
    kind, _, rest = data.real.partition(":")
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
            prepare(source, uri, split=split, limit=limit, seed=config.seed, dim=data.dim)
    datasets = {uri: open_dataset(uri) for uri in (real.pool_uri, real.held_out_uri)}
    if kind != "parquet":  # checked by `check_user_data`, before the run began
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
