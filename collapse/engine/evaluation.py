"""A generation's evaluation: its samples against the held-out real set, in one feature space.

The held-out set's features are computed once per run and cached in the run's storage
(`<run>/eval/real-<extractor>.npy`), so a resumed chain, or an evaluation placed on another
machine (`collapse.distributed.evaluation_task`), reuses them instead of re-running the extractor
over thousands of real images each generation.

A generation whose metrics are not finite is not committed silently: `nonfinite_or_stop` stops the
chain with one line saying which metric and why, unless `eval.allow_nonfinite` is set.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from collapse.config import IMAGE_METRICS, VECTOR_METRICS, ChainConfig
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.space import DataSpace
from collapse.errors import UserError
from collapse.metrics import evaluate, features
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage

# Beyond this magnitude a squared distance overflows float64 (1e154 squared is 1e308).
_OVERFLOW = 1e150


class Evaluator:
    def __init__(
        self,
        config: ChainConfig,
        store: RunStore,
        space: DataSpace,
        held_out: Callable[[], np.ndarray],
        device: str = "cpu",
    ):
        self.config, self.store, self.space, self.device = config, store, space, device
        self.extractor_name = features.resolve(config.eval.features, space)
        default = VECTOR_METRICS if space.kind == "vector" else IMAGE_METRICS
        self.metrics = list(config.eval.metrics or default)
        self._held_out = held_out
        self._extract: features.Extractor | None = None
        self._real: np.ndarray | None = None

    @classmethod
    def for_run(cls, config: ChainConfig, device: str = "cpu") -> Evaluator:
        """An evaluator that finds the held-out set from the config alone (in a Ray task)."""
        store = RunStore.for_config(config.storage, config.name)
        where = real.locate(config, store)
        dataset = open_dataset(where.held_out_uri)
        space = DataSpace.of_index(dataset.index)

        def held_out() -> np.ndarray:
            return space.to_vectors(dataset.read_rows([where.held_out_rows]))

        return cls(config, store, space, held_out, device)

    def __call__(self, samples: np.ndarray) -> dict[str, Any]:
        """{"metrics": {name: float}, "feature_extractor": name}."""
        measured = evaluate(self.metrics, self.extract(samples), self.real_features())
        return {"metrics": measured, "feature_extractor": self.extractor_name}

    def nonfinite_or_stop(
        self, metrics: dict[str, float], samples: np.ndarray, generation: int
    ) -> list[str]:
        """The metrics a generation's record notes as non-finite (`nonfinite`): none when all
        are finite; their names with `eval.allow_nonfinite`; else one UserError saying which
        metrics and why, and the generation is not committed.

        A family's own descriptions of its fit (the Gaussian's `log_sigma2`) may be infinite
        in earnest, as the log of a variance that is exactly 0 (a constant pixel); only NaN
        is a fault there."""
        bad = [
            name
            for name, value in metrics.items()
            if math.isnan(value) or (name in self.metrics and not math.isfinite(value))
        ]
        if not bad or self.config.eval.allow_nonfinite:
            return bad
        values = ", ".join(f"{name} is {metrics[name]}" for name in bad)
        raise UserError(
            f"generation {generation}: {values}: {self.why_nonfinite(samples, bad)}; it is not "
            "committed (eval.allow_nonfinite: true commits such generations)"
        )

    def why_nonfinite(self, samples: np.ndarray, names: list[str]) -> str:
        """The likeliest cause, from the samples and the feature space (the held-out rows are
        finite: the data check saw to that)."""
        x = np.asarray(samples, dtype=np.float64)
        broken = ~np.isfinite(x).all(axis=1) if x.ndim == 2 else np.zeros(0, bool)
        if broken.any():
            return (
                f"the samples hold NaN or infinite values in {int(broken.sum())} of {len(x)} "
                "rows (the model diverged)"
            )
        if x.size and np.abs(x).max() > _OVERFLOW:
            return (
                f"the samples reach {np.abs(x).max():.3g}, whose squares overflow "
                "(the model diverged)"
            )
        measured = [n for n in names if n in self.metrics]
        if not measured:
            return "the fitted model's parameters are NaN"
        width = features.feature_dim(self.extractor_name, self.space)
        return (
            f"the samples are finite, so a degenerate case: {len(x)} samples and "
            f"{self.config.data.n_eval} held-out rows of {width}-d {self.extractor_name} "
            f"features (a covariance of full rank needs more rows than dimensions; identical "
            "rows have none)"
        )

    def extract(self, x: np.ndarray) -> np.ndarray:
        if self._extract is None:
            cfg = self.config.eval
            self._extract = features.build(
                self.extractor_name,
                self.space,
                Storage(self.config.storage),
                device=self.device,
                inception_weights=cfg.inception_weights,
                batch_size=cfg.batch_size,
            )
        return self._extract(x)

    def real_features(self) -> np.ndarray:
        if self._real is None:
            if self.extractor_name == "raw":
                self._real = np.asarray(self._held_out(), dtype=np.float64)
                return self._real
            key = f"eval/real-{self.extractor_name}.npy"
            storage = self.store.storage
            if storage.exists(key):
                self._real = np.load(io.BytesIO(storage.read_bytes(key)), allow_pickle=False)
            else:
                self._real = self.extract(self._held_out())
                buffer = io.BytesIO()
                np.save(buffer, self._real)
                storage.write_bytes(key, buffer.getvalue(), atomic=True)
        return self._real
