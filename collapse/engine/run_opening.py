"""A run made ready for its next generation: created, or checked to be this config's, with its
real data prepared and checked, before any generation is trained.

`create_or_resume` is what every chain does before its first generation, wherever it runs:
`collapse run` and `resume` in the driver (`collapse.driver.launch`), a sweep's trial in its
Tune process (`collapse.distributed.tune`), a test or a notebook before it drives a
`ChainEngine` itself. Everything that can be refused is refused here, in one line each, before
anything is written: a config its strategy or metrics cannot run (`preflight`), a stored run
of another config, a source that cannot be had, missing FID weights, the user's own data.
"""

from __future__ import annotations

import sys

from collapse.config import ChainConfig, StableDiffusionModel, validate
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.real import REAL_DIR
from collapse.data.space import DataSpace
from collapse.engine import preflight
from collapse.errors import UserError
from collapse.metrics import features
from collapse.metrics.inception import weights_location
from collapse.store import integrity, run_config
from collapse.store.lease import RunLease
from collapse.store.run_store import RunStore


def create_or_resume(
    config: ChainConfig, lease: RunLease | None = None, every_size: bool | None = None
) -> tuple[RunStore, int]:
    """Create the run, or check that the stored one is this config; return the next generation.

    The real data is prepared here, in the driver, so a source that cannot be had (offline
    torchvision, a missing folder) is reported before any worker starts. `lease` is taken
    after every check that needs no writing and before the first write. `every_size`: check
    every committed artifact's size on resume (`collapse.store.integrity`; default: local runs).
    """
    preflight.check(config)
    store = RunStore.for_config(config.storage, config.name)
    store.storage.check_reachable()
    committed = store.count()  # the manifest's head is checked before anything acts on it
    stored = run_config.read(store)
    if stored is None and committed:
        raise UserError(f"{store.uri}: manifest.json exists without config.yaml; refusing to guess")
    extended = stored is not None and run_config.check_same(stored, config, store.uri)
    if isinstance(config.model, StableDiffusionModel):
        from collapse.families.stable_diffusion.pipeline_parts import check_available

        check_available(config.model.pretrained)
    _check_inception_weights(config, config.eval.features)
    preflight.check_real_data(config, store)  # the user's data, whole, before anything is written
    if lease is not None:
        lease.acquire()
    if stored is not None:
        run_config.vouch(store)
        if extended:  # a raised `generations`: the chain continues from its last commit
            run_config.extend(store, config.generations)
        for line in integrity.repair(store, every_size):
            print(f"collapse: {line}", file=sys.stderr)
    else:  # real data left by a first attempt that failed before the run was created
        store.storage.delete_dir(REAL_DIR)
    where = real.ensure(config, store)
    if config.eval.features == "auto":  # a parquet dataset: its index says vectors or images
        space = DataSpace.of_index(open_dataset(where.pool_uri).index)
        _check_inception_weights(config, features.resolve("auto", space))
    if stored is None:
        run_config.write(store, config)
    return store, store.count()


def _check_inception_weights(config: ChainConfig, extractor: str) -> None:
    """Missing FID weights fail in one line before anything is trained."""
    if extractor == "inception":
        weights_location(config.eval.inception_weights)


def stored_run_config(run_uri: str) -> ChainConfig:
    """The stored config of an existing run, relocated to where the run is found now."""
    store = RunStore(run_uri)
    store.storage.check_reachable()
    config = run_config.read(store)
    if config is None:
        raise UserError(f"{store.uri}: no run here (config.yaml not found)")
    parent, _, name = store.uri.rstrip("/").rpartition("/")
    return validate({**config.model_dump(mode="json"), "storage": parent or "/", "name": name})
