"""A generation's evaluation: its samples against the held-out real set, in one feature space.

The held-out set's features are computed once per run and cached in the run's storage
(`<run>/eval/real-<extractor>.npy`), so a resumed chain, or an evaluation placed on another
machine (`collapse.distributed.evaluation`), reuses them instead of re-running the extractor
over thousands of real images each generation.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from collapse.config import IMAGE_METRICS, VECTOR_METRICS, RunConfig
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.space import DataSpace
from collapse.metrics import evaluate, features
from collapse.storage import RunStore, Storage


class Evaluator:
    def __init__(
        self,
        config: RunConfig,
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
    def for_run(cls, config: RunConfig, device: str = "cpu") -> Evaluator:
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
