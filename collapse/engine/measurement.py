"""What `collapse evaluate` measures of a committed generation, and measuring it in this process.

A measurement is the pair (feature extractor, metrics) over a run's stored samples, named
`<extractor>-<hash of the metric names>` (`Measurement.key`). `measurement` checks one before
anything is measured; `measure_here` measures generations in this process, and
`collapse.distributed.measure_tasks` does the same as Ray tasks. Where the results are stored,
and which generations still need one, is the driver's (`collapse.driver.reevaluation`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from collapse.config import FEATURES, FLOW_METRICS, METRICS, ChainConfig, validate
from collapse.data.shards import from_parquet
from collapse.data.space import DataSpace
from collapse.engine import preflight
from collapse.engine.evaluation import Evaluator
from collapse.errors import UserError
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore


@dataclass(frozen=True)
class Measurement:
    """What one evaluation measures: the run's config with `eval.features` and `eval.metrics`
    replaced (the rest, held-out set included, is the run's), and the extractor it resolves to."""

    config: ChainConfig
    extractor: str

    @property
    def metrics(self) -> list[str]:
        return list(self.config.eval.metrics or [])

    @property
    def key(self) -> str:
        names = ",".join(sorted(self.metrics))
        return f"{self.extractor}-{hashlib.sha256(names.encode()).hexdigest()[:12]}"


def measurement(run: ChainConfig, metrics: list[str] | None, features: str | None) -> Measurement:
    """The evaluation asked for, checked before anything is measured: unknown names, a feature
    space that does not fit the data, or too few rows for a metric are one UserError each."""
    unknown = [m for m in metrics or [] if m not in METRICS]
    if unknown:
        raise UserError(f"--metrics: unknown {', '.join(unknown)}; allowed: {', '.join(METRICS)}")
    on_model = [m for m in metrics or [] if m in FLOW_METRICS]
    if on_model:  # collapse.config.metric_names: they need the generation's model, not its samples
        raise UserError(f"--metrics: {', '.join(on_model)} are measured by the chain, on the model")
    if features is not None and features not in FEATURES:
        raise UserError(f"--features: unknown {features}; allowed: {', '.join(FEATURES)}")
    raw = run.model_dump(mode="json")
    raw["eval"]["metrics"] = list(dict.fromkeys(metrics)) if metrics else raw["eval"]["metrics"]
    raw["eval"]["features"] = features or raw["eval"]["features"]
    config = preflight.check(validate(raw))
    evaluator = Evaluator.for_run(config)
    from collapse.metrics.features import check_fits

    check_fits(evaluator.extractor_name, evaluator.space)
    if evaluator.extractor_name == "inception":
        from collapse.metrics.inception import weights_location

        weights_location(config.eval.inception_weights)
    if config.eval.metrics is None:  # a parquet dataset: the kind is known from its index now
        default = evaluator.metrics
        config = preflight.check(validate({**raw, "eval": {**raw["eval"], "metrics": default}}))
    return Measurement(config, evaluator.extractor_name)


def read_samples(store: RunStore, space: DataSpace, record: GenerationRecord) -> np.ndarray:
    """A generation's samples as the chain measured them (checked against their checksums)."""
    tables = [from_parquet(store.read_artifact(a)) for a in record["samples"]]
    return np.concatenate([space.to_vectors(t) for t in tables])


def measure_here(
    measurement: Measurement, records: list[GenerationRecord]
) -> Iterator[tuple[GenerationRecord, dict[str, Any]]]:
    """(record, {"metrics", "feature_extractor"}) per generation, in this process."""
    evaluator = Evaluator.for_run(measurement.config)
    for record in records:
        yield record, evaluator(read_samples(evaluator.store, evaluator.space, record))


Measure = Callable[
    [Measurement, list[GenerationRecord]], Iterator[tuple[GenerationRecord, dict[str, Any]]]
]
