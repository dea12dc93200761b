"""The knn corrector's neighbour search as a Ray Data pass, for sample and real sets too large
for one process: an actor pool, each actor holding the real rows (and their features) once,
answers batches of sample ids with the mean of each sample's k nearest real rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from collapse.strategies.correctors import toward_nearest_real


class _Nearest:
    def __init__(self, rows: Any, real: Any, k: int):
        self.rows, self.rows_features = ray.get(rows)
        self.real, self.real_features = ray.get(real)
        self.k = k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = batch["id"]
        features = None if self.rows_features is None else self.rows_features[ids]
        target = toward_nearest_real(
            self.rows[ids], self.real, self.k, features, self.real_features
        )
        return {"id": ids, "target": target}


def nearest_on_ray(
    rows: np.ndarray,
    real: np.ndarray,
    k: int,
    rows_features: np.ndarray | None = None,
    real_features: np.ndarray | None = None,
    *,
    workers: int,
    batch_size: int = 4096,
) -> np.ndarray:
    """`toward_nearest_real` over `workers` Ray Data actors; the same result, in row order."""
    out = (
        ray.data.range(len(rows), override_num_blocks=max(1, -(-len(rows) // batch_size)))
        .map_batches(
            _Nearest,
            fn_constructor_kwargs={
                "rows": ray.put((rows, rows_features)),
                "real": ray.put((real, real_features)),
                "k": k,
            },
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=(1, workers),  # starts with what is free, grows to `workers`
            num_cpus=1,
        )
        .take_all()
    )
    target = np.empty_like(np.asarray(rows, dtype=np.float64))
    for row in out:
        target[int(row["id"])] = row["target"]
    return target
