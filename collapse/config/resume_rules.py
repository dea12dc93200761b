"""What may change when a stored run continues, and how two configs differ."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from collapse.config.strategy_section import SelfCorrectConfig

if TYPE_CHECKING:
    from collapse.config.chain import ChainConfig

# Keys that say where a chain runs, how it keeps its files, or how its generations yet to come
# are measured, but not what a committed generation computed: a rerun of `collapse run` or
# `collapse resume --set` may change them, for that invocation (the stored config keeps its own).
RESUME_SAFE = (
    "sample.workers",
    "sample.batch_size",
    "train.workers",
    "train.cpus_per_worker",
    "train.use_gpu",
    "train.max_failures",
    "train.keep_checkpoints",
    "strategy.knn_workers",
    "eval.*",
    "tracking.*",
)


def resume_safe(key: str, config: ChainConfig) -> bool:
    """Whether `key` may change when `config`'s run continues. `eval.features` may not where
    the knn corrector finds neighbours in that feature space: it shapes what later
    generations train on."""
    strategy = config.strategy
    knn_features = (
        isinstance(strategy, SelfCorrectConfig)
        and strategy.corrector == "knn"
        and strategy.knn_space == "features"
    )
    if key == "eval.features" and knn_features:
        return False
    return key in RESUME_SAFE or f"{key.partition('.')[0]}.*" in RESUME_SAFE


def differing_keys(
    a: BaseModel, b: BaseModel, ignore: tuple[str, ...] = ("storage", "name")
) -> list[str]:
    """Dotted keys whose values differ between two configs (what makes a resume unsafe)."""
    flat_a, flat_b = flatten(a.model_dump(mode="json")), flatten(b.model_dump(mode="json"))
    keys = sorted(set(flat_a) | set(flat_b))
    return [k for k in keys if k.split(".")[0] not in ignore and flat_a.get(k) != flat_b.get(k)]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
