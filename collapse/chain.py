"""Running a chain: open (or resume) its run on storage, then drive its generations.

`open_run` creates the run or checks that the stored one is this config; `run_chain` hands the
generations to the chain's actor on the Ray cluster (`collapse.distributed.chain`), which runs
the engine (`collapse.engine`) with the Ray backend. Tests and notebooks that want no Ray run
a closed-form chain with `ChainEngine(config, LocalBackend())` after `open_run`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collapse import integrity, stored_config, tracking
from collapse.config import ChainConfig, validate
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.real import REAL_DIR
from collapse.data.space import DataSpace
from collapse.errors import UserError
from collapse.lease import RunLease
from collapse.metrics import features
from collapse.metrics.inception import weights_location
from collapse.run_store import RunStore


def open_run(
    config: ChainConfig, lease: RunLease | None = None, every_size: bool | None = None
) -> tuple[RunStore, int]:
    """Create the run, or check that the stored one is this config; return the next generation.

    The real data is prepared here, in the driver, so a source that cannot be had (offline
    torchvision, a missing folder) is reported before any worker starts. `lease` is taken
    after every check that needs no writing and before the first write. `every_size`: check
    every committed artifact's size on resume (`collapse.integrity`; default: local runs).
    """
    store = RunStore.for_config(config.storage, config.name)
    store.storage.check_reachable()
    committed = store.count()  # the manifest's head is checked before anything acts on it
    stored = stored_config.read(store)
    if stored is None and committed:
        raise UserError(f"{store.uri}: manifest.json exists without config.yaml; refusing to guess")
    extended = stored is not None and stored_config.check_same(stored, config, store.uri)
    if config.model.family == "stable_diffusion":
        from collapse.diffusion.stable_diffusion import check_available

        check_available(config.model.pretrained)
    _check_inception_weights(config, config.eval.features)
    real.check(config, store)  # the user's data, whole, before anything is written
    if lease is not None:
        lease.acquire()
    if stored is not None:
        stored_config.vouch(store)
        if extended:  # a raised `generations`: the chain continues from its last commit
            stored_config.extend(store, config.generations)
        for line in integrity.repair(store, every_size):
            print(f"collapse: {line}", file=sys.stderr)
    else:  # real data left by a first attempt that failed before the run was created
        store.storage.delete_dir(REAL_DIR)
    where = real.ensure(config, store)
    if config.eval.features == "auto":  # a parquet dataset: its index says vectors or images
        space = DataSpace.of_index(open_dataset(where.pool_uri).index)
        _check_inception_weights(config, features.resolve("auto", space))
    if stored is None:
        stored_config.write(store, config)
    return store, store.count()


def _check_inception_weights(config: ChainConfig, extractor: str) -> None:
    """Missing FID weights fail in one line before anything is trained."""
    if extractor == "inception":
        weights_location(config.eval.inception_weights)


def config_of_run(run_uri: str) -> ChainConfig:
    """The stored config of an existing run, relocated to where the run is found now."""
    store = RunStore(run_uri)
    store.storage.check_reachable()
    config = stored_config.read(store)
    if config is None:
        raise UserError(f"{store.uri}: no run here (config.yaml not found)")
    parent, _, name = store.uri.rstrip("/").rpartition("/")
    return validate({**config.model_dump(mode="json"), "storage": parent or "/", "name": name})


@dataclass
class ChainOutcome:
    uri: str
    start: int
    records: list[dict[str, Any]]

    @property
    def already_complete(self) -> bool:
        return not self.records


def run_chain(
    config: ChainConfig,
    on_start: Callable[[RunStore, int], None] = lambda store, start: None,
    on_generation: Callable[[dict[str, Any]], None] = lambda record: None,
    every_size: bool | None = None,
) -> ChainOutcome:
    """Run (or resume) a chain to `config.generations` on the Ray cluster."""
    from collapse.distributed.chain import remote_worker

    lease = RunLease(RunStore.for_config(config.storage, config.name).storage)
    try:
        store, start = open_run(config, lease, every_size)
        outcome = ChainOutcome(store.uri, start, [])
        if start >= config.generations:
            return outcome
        on_start(store, start)
        with (
            tracking.trackers(config, store) as trackers,  # `tracking:`: TensorBoard, MLflow, W&B
            remote_worker(config, lease_token=lease.token) as worker,
        ):
            for record in worker.run_generations(start, config.generations):
                outcome.records.append(record)
                trackers.log(record)
                on_generation(record)
        return outcome
    finally:
        lease.release()
