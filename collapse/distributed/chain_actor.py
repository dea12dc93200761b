"""Places a chain's generations on the Ray cluster: one actor per running chain.

An actor (not a task per generation) keeps the real pool, the held-out set and the latest
samples in memory between generations, so the per-generation cost is the work itself, not
re-reading the run from storage. Its records stream back (a Ray streaming generator), so the
next generation starts while the driver is still drawing the last one's progress line.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray.actor import ActorHandle

from collapse.config import ChainConfig
from collapse.distributed.failures import user_error
from collapse.distributed.orphans import stop_left_behind
from collapse.distributed.ray_backend import RayBackend
from collapse.distributed.resources import chain_actor_cpus
from collapse.distributed.runtime import ensure_ray, storage_settings, use_storage_settings
from collapse.engine import ChainEngine
from collapse.errors import UserError
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore


class RayChainWorker:
    """The chain's engine as it runs on the cluster, with the Ray backend: in its own actor
    (`remote_worker`) or in a Tune trial's process (`collapse.distributed.tune`)."""

    def __init__(
        self, config: ChainConfig, settings: dict[str, str], lease_token: str | None = None
    ):
        use_storage_settings(settings)
        self._engine = ChainEngine(config, RayBackend(config, settings), lease_token)

    def run_generations(self, start: int, stop: int) -> Iterator[GenerationRecord]:
        yield from self._engine.run_generations(start, stop)


class RemoteWorker:
    def __init__(self, actor: Any):
        self._actor = actor

    def run_generations(self, start: int, stop: int) -> Iterator[GenerationRecord]:
        refs = self._actor.run_generations.options(num_returns="streaming").remote(start, stop)
        for ref in refs:
            try:
                yield ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                cause = user_error(err)
                if cause is not None:
                    raise UserError(str(cause)) from None
                raise


NAMESPACE = "collapse"
REAP_TIMEOUT_S = 60.0


def actor_name(run_uri: str) -> str:
    """The chain actor's name on the cluster: one per run, found again by the next driver."""
    return "chain-" + hashlib.sha256(run_uri.encode()).hexdigest()[:20]


def _reap(name: str) -> None:
    """Kill the chain actor a killed driver left behind (Ray kills a dead driver's actors,
    but seconds later), wait until its name is free, then stop what it started that Ray
    does not stop with it (`collapse.distributed.orphans`). The caller holds the run's lease,
    so that actor's driver is gone."""
    try:
        orphan = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        orphan = None
    if orphan is not None:
        ray.kill(orphan, no_restart=True)
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while _named(name):
            if time.monotonic() > deadline:
                raise UserError(
                    f"the chain actor {name} of a previous driver did not exit; retry later"
                )
            time.sleep(0.2)
    stop_left_behind(name)


def _named(name: str) -> bool:
    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


@contextmanager
def remote_worker(
    config: ChainConfig, lease_token: str | None = None, **actor_options: Any
) -> Iterator[RemoteWorker]:
    """The chain's actor for the duration of the block; `actor_options` override its
    resources and placement; `lease_token`: the driver's lease, checked before each commit."""
    ensure_ray()
    cpus = chain_actor_cpus(config)  # none where it only orchestrates (`resources`)
    name = actor_name(RunStore.for_config(config.storage, config.name).uri)
    _reap(name)
    options: dict[str, Any] = {
        "num_cpus": cpus,
        "max_restarts": 0,
        "name": name,
        "namespace": NAMESPACE,
        **actor_options,
    }
    worker = ray.remote(RayChainWorker).options(**options)
    actor = worker.remote(config, storage_settings(), lease_token)
    assert isinstance(actor, ActorHandle), "an actor class's remote() makes an actor handle"
    try:
        yield RemoteWorker(actor)
    finally:
        ray.kill(actor)
        # killed mid-training (an error, Ctrl-C), its Ray Train run leaves a placement group
        # and a detached cleaner behind that Ray does not end with it
        stop_left_behind(name)
