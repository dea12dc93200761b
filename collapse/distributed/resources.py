"""What a chain asks the Ray cluster for, step by step: one place for the placement rules that
`collapse.distributed` follows and `collapse run --dry-run` shows.

The steps of a generation run one after another, so the cluster must hold the largest step at
once (beside the chain's actor), not their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapse.config import ChainConfig, data_kind
from collapse.config.strategy_section import knn_workers
from collapse.families import get_family


@dataclass(frozen=True)
class Ask:
    """`count` Ray workers (actors or tasks) of `cpus` CPUs and `gpus` GPUs each, for `step`."""

    step: str
    what: str
    count: int
    cpus: float
    gpus: float

    @property
    def total(self) -> tuple[float, float]:
        return self.count * self.cpus, self.count * self.gpus


def trains_on_ray(config: ChainConfig) -> bool:
    return get_family(config.model.family).trained


def chain_actor_cpus(config: ChainConfig) -> int:
    """The chain's actor holds a CPU only where it does the work itself: with Ray Train
    workers or a sampling pool it only orchestrates, and its CPU goes to them."""
    pools = config.sample.workers or knn_workers(config.strategy)
    return 0 if pools or trains_on_ray(config) else 1


def asks(config: ChainConfig) -> list[Ask]:
    """Every request a generation makes beyond the chain's actor, in the order of its steps."""
    train, gpu = config.train, 1.0 if config.train.use_gpu else 0.0
    found = [Ask("chain", "the chain's actor (whole run)", 1, chain_actor_cpus(config), 0.0)]
    if trains_on_ray(config):
        cpus = 0.0 if train.use_gpu else train.cpus_per_worker
        if train.workers:  # 0: Ray Train's local mode, in the chain's actor
            found.append(Ask("train", "Ray Train workers", train.workers, cpus, gpu))
        if get_family(config.model.family).latent:
            tasks = max(1, train.workers)
            found.append(Ask("encode", "VAE encoding tasks (up to)", tasks, cpus, gpu))
    if config.sample.workers:
        cpus = 0.0 if train.use_gpu else 1.0
        found.append(Ask("sample", "Ray Data sampling actors", config.sample.workers, cpus, gpu))
    knn = knn_workers(config.strategy)
    if knn:
        found.append(Ask("correct", "Ray Data nearest-neighbour tasks (up to)", knn, 1.0, 0.0))
    kind = data_kind(config.data.real)
    if kind != "vector":  # vector metrics run in the chain's actor
        what = "image evaluation task" + (" (if the dataset holds images)" if kind is None else "")
        found.append(Ask("evaluate", what, 1, 1.0, gpu))
    return found


def peak(found: list[Ask]) -> tuple[float, float]:
    """(CPUs, GPUs) held at once at the busiest step, the chain's actor included."""
    chain = [a.total for a in found if a.step == "chain"]
    steps = [a.total for a in found if a.step != "chain"] or [(0.0, 0.0)]
    return (
        sum(c for c, _ in chain) + max(c for c, _ in steps),
        sum(g for _, g in chain) + max(g for _, g in steps),
    )
