"""Running a chain from the driver: its run created or resumed under the run's lease, then its
generations driven on the cluster, each logged to the trackers as it commits.

`run_chain` makes the run ready (`collapse.engine.run_opening.create_or_resume`) and hands the
generations to the chain's actor on the Ray cluster (`collapse.distributed.chain_actor`), which
runs the engine (`collapse.engine`) with the Ray backend. Tests and notebooks that want no Ray
run a closed-form chain with `ChainEngine(config, LocalBackend())` after `create_or_resume`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collapse.config import ChainConfig
from collapse.driver import tracking
from collapse.engine.run_opening import create_or_resume
from collapse.store.lease import RunLease
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore


@dataclass
class ChainOutcome:
    uri: str
    start: int
    records: list[GenerationRecord]

    @property
    def already_complete(self) -> bool:
        return not self.records


def run_chain(
    config: ChainConfig,
    on_start: Callable[[RunStore, int], None] = lambda store, start: None,
    on_generation: Callable[[GenerationRecord], None] = lambda record: None,
    every_size: bool | None = None,
) -> ChainOutcome:
    """Run (or resume) a chain to `config.generations` on the Ray cluster."""
    from collapse.distributed.chain_actor import remote_worker

    lease = RunLease(RunStore.for_config(config.storage, config.name).storage)
    try:
        store, start = create_or_resume(config, lease, every_size)
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
