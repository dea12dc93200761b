"""The generation loop: plan -> train -> sample -> (strategy) -> evaluate -> commit.

`ChainEngine` does one generation's work and holds what a chain reuses across generations
(`RunHistory`: the real pool, the held-out set, the latest samples). It decides what is
computed; its `Backend` says where (`collapse.engine.backend`): in this process, or on Ray
(`collapse.distributed`, whose chain actor runs this same engine). The chain's strategy
(`collapse.strategies`) shapes what a generation trains on and passes on.

Every random draw comes from a stream keyed by (seed, purpose, generation), each sample from
the noise of its own row, and each generation trains on its inputs exactly as stored, so a
chain resumed after a crash reproduces the uninterrupted chain bit for bit.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypedDict

import numpy as np

from collapse.config import ChainConfig
from collapse.config.metric_names import FLOW_ROWS, headline, requested
from collapse.config.schedule import used_fraction
from collapse.data.mix import MixPart, plan_mix
from collapse.data.noise import row_normals
from collapse.data.shards import from_parquet, table_to_images
from collapse.engine import pictures
from collapse.engine.backend import Backend
from collapse.engine.evaluation import Evaluator
from collapse.engine.fit import FitContext, Fitted, fit_closed_form, fit_trained
from collapse.engine.history import RunHistory
from collapse.engine.sampling import SampleJob
from collapse.errors import UserError
from collapse.families import get_family
from collapse.families.protocol import FlowFamily, MomentFamily, Params, TrainedFamily
from collapse.metrics import evaluate
from collapse.store import retention
from collapse.store.lease import RunLease
from collapse.store.records import Artifact, ExportRecord, GenerationRecord
from collapse.store.run_store import RunStore
from collapse.strategies import get_strategy
from collapse.strategies.protocol import Nearest


class _Share(TypedDict, total=False):
    real_fraction: float  # a record's, where its plan read a share of real rows


class ChainEngine:
    """Runs generations of one chain against its run storage, on `backend`."""

    def __init__(self, config: ChainConfig, backend: Backend, lease_token: str | None = None):
        self.config, self.backend = config, backend
        self._lease_token = lease_token  # the driver's: commits stop if another took the run
        self.family = get_family(config.model.family)
        self.trained = self.family.trained
        if self.trained and backend.trainer is None:
            raise UserError(
                f"model.family: {config.model.family} is trained on Ray Train, and this backend "
                "runs closed-form families only (gaussian, kde, gmm); run it with `collapse run`"
            )
        self.strategy = get_strategy(config.strategy.name)
        self.store = RunStore.for_config(config.storage, config.name)
        moments_of = None
        if isinstance(self.family, MomentFamily):
            moments_of = partial(self.family.moments, config=config.model)
        self.history = RunHistory(config, self.store, moments_of)
        self.space = self.history.space
        self._evaluator = Evaluator(config, self.store, self.space, lambda: self.held_out)
        self._bounds: np.ndarray | None = None  # scatter axes, fixed by the real data
        self._pool_features: np.ndarray | None = None  # the knn corrector's, in feature space
        self._fit = FitContext(
            config, self.family, self.strategy, self.history, self, backend.trainer
        )

    # --- what a strategy reads (`collapse.strategies.protocol.Context`) -----------------------
    @property
    def real(self) -> np.ndarray:
        return self.history.real

    @property
    def held_out(self) -> np.ndarray:
        return self.history.held_out

    def real_rows(self, start: int, stop: int) -> np.ndarray:
        return self.history.real_rows(start, stop)

    @property
    def nearest(self) -> Nearest:
        return self.backend.nearest

    def params_of(self, generation: int) -> dict[str, np.ndarray]:
        return self.history.params_of(generation)

    def features(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the evaluation's feature space; the real pool's computed once per chain."""
        if rows is not self.real:
            return self._evaluator.extract(rows)
        if self._pool_features is None:
            self._pool_features = self._evaluator.extract(rows)
        return self._pool_features

    # --- the generation ------------------------------------------------------------------------
    def run_generations(self, start: int, stop: int) -> Iterator[GenerationRecord]:
        for generation in range(start, stop):
            yield self.run_generation(generation)

    def run_generation(self, generation: int) -> GenerationRecord:
        cfg, store = self.config, self.store
        committed = store.count()
        if committed != generation:
            raise RuntimeError(f"generation {generation} requested, {committed} committed")
        store.clear_generation(generation)
        plan = plan_mix(
            cfg.data.loop,
            generation,
            cfg.data.n_train,
            cfg.data.real_fraction,
            cfg.data.n_real,
            store.sample_counts(),
            generations=cfg.generations,
        )
        clock = time.perf_counter()
        fitted = (fit_trained if self.trained else fit_closed_form)(self._fit, plan, generation)
        params = fitted.params
        model = store.write_artifact(generation, "model/params.npz", _npz(params))
        timings = {"train_s": time.perf_counter() - clock}
        exported = self._export(generation, params)  # the same weights, in diffusers' formats

        clock = time.perf_counter()
        job = SampleJob.of(cfg, store.uri, self.space, params, model, generation)
        shards, grid = self.backend.sample(job)
        samples = self.history.read_samples(shards)
        timings["sample_s"] = time.perf_counter() - clock

        clock = time.perf_counter()
        passed = self.strategy.after_sampling(self, samples, generation, params)
        if passed.record is not None:
            timings["correct_s"] = time.perf_counter() - clock

        clock = time.perf_counter()
        measured = self.backend.evaluate(self._evaluator, samples)
        metrics = {**self.family.describe(params), **measured["metrics"]}
        timings["eval_s"] = time.perf_counter() - clock
        if requested(cfg.eval.metrics):
            clock = time.perf_counter()
            metrics.update(self._flow_metrics(params, generation))
            timings["flow_s"] = time.perf_counter() - clock
        picture = store.write_artifact(
            generation, "samples.png", self._picture(generation, samples, grid)
        )
        record = self._record(generation, plan, samples, shards, model, metrics, measured)
        record["samples_png"] = picture
        if self.history.accumulates_moments:  # what a resumed chain reads instead of them all
            total = self.history.accumulated(generation, passed.rows)
            record["accumulated"] = store.write_artifact(generation, "accumulated.npz", _npz(total))
        if grid:
            record["grid"] = grid
        _note(record, fitted, passed.record, passed.shards, exported)
        metrics_doc = {
            "generation": generation,
            "metrics": metrics,
            "feature_extractor": measured["feature_extractor"],
            "mix": record["mix"],
        }
        store.write_artifact(generation, "metrics.json", json.dumps(metrics_doc, indent=1).encode())
        record["timings"] = timings
        record["committed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        nonfinite = self._evaluator.nonfinite_or_stop(metrics, samples, generation)
        if nonfinite:
            record["nonfinite"] = nonfinite
        if self._lease_token is not None:
            RunLease.check(store.storage, self._lease_token)
        store.commit(record)
        if self.trained:  # closed forms keep no checkpoints
            retention.prune_checkpoints(store, generation, cfg.train.keep_checkpoints)
        self.history.remember(generation, passed.rows)
        return record

    def _record(
        self,
        generation: int,
        plan: list[MixPart],
        samples: np.ndarray,
        shards: list[Artifact],
        model: Artifact,
        metrics: dict[str, float],
        measured: dict[str, Any],
    ) -> GenerationRecord:
        """The manifest record's head: the plan, the rows, the artifacts and the metrics."""
        cfg = self.config
        used = used_fraction(cfg.data.loop, cfg.data.real_fraction, generation, cfg.generations)
        share: _Share = {} if used is None else {"real_fraction": used}
        record: GenerationRecord = {
            "generation": generation,
            "mix": [part.as_record() for part in plan],
            **share,
            "train_rows": sum(part.count for part in plan),
            "sample_rows": len(samples),
            "samples": shards,
            "sample_bias": cfg.sample.bias,
            "model": [model],
            "metrics": metrics,
            "feature_extractor": measured["feature_extractor"],
        }
        return record

    def _export(self, generation: int, params: Params) -> ExportRecord | None:
        """The model in its ecosystem's format (the trained family's `export`), beside
        params.npz: the format and every file's artifact; None for the closed-form families,
        whose parameters are a few numbers (params.npz is their format)."""
        if not isinstance(self.family, TrainedFamily):
            return None
        fmt, files = self.family.export(params)
        written = [self.store.write_artifact(generation, k, v) for k, v in files.items()]
        return {"format": fmt, "files": written}

    def _flow_metrics(self, params: Params, generation: int) -> dict[str, float]:
        """A rectified flow's straightness, NFE sweep and inversion (its `flow_metrics`),
        on the first noise rows of this generation's own samples and the first held-out rows
        (at most FLOW_ROWS each)."""
        cfg, evaluator = self.config, self._evaluator
        ids = np.arange(min(cfg.samples_per_generation, FLOW_ROWS), dtype=np.int64)
        noise = row_normals(cfg.seed, ids, self.family.noise_dim(params), stream=generation)
        noise *= cfg.sample.bias  # the noise `sampling.draw` gave these rows
        repeated = headline(cfg.eval.metrics)

        def score(samples: np.ndarray) -> float:
            assert repeated is not None, "config validation (flow_problem) asks for one"
            measured = evaluate([repeated], evaluator.extract(samples), evaluator.real_features())
            return measured[repeated]

        names, rows = requested(cfg.eval.metrics), self.held_out[:FLOW_ROWS]
        assert isinstance(self.family, FlowFamily), "config validation (flow_problem) says so"
        return self.family.flow_metrics(params, names, noise, rows, repeated, score)

    def _picture(self, generation: int, samples: np.ndarray, grid: list[Artifact]) -> bytes:
        """samples.png: the fixed-noise grid of an image generation, or a vector generation's
        samples over the held-out real data."""
        if grid:
            images = [table_to_images(from_parquet(self.store.read_artifact(a))) for a in grid]
            return pictures.grid_png(np.concatenate(images))
        if self._bounds is None:
            self._bounds = pictures.scatter_bounds(self.held_out)
        title = f"{self.config.name} generation {generation}: samples (blue), real (grey)"
        return pictures.scatter_png(samples, self.held_out, title, self._bounds)


def _note(
    record: GenerationRecord,
    fitted: Fitted,
    correction: dict[str, Any] | None,
    corrected: list[Artifact] | None,
    exported: ExportRecord | None,
) -> None:
    """What a record adds where a generation had it, in the manifest's order."""
    if correction is not None:  # what the next generation trains on, and how far it moved
        assert corrected is not None, "a strategy that changed the samples stored them"
        record["corrected"] = corrected
        record["correction"] = correction
    if fitted.report:  # trained families: last step, its loss, where training resumed
        record["train"] = fitted.report
    if exported:
        record["export"] = exported
    if fitted.loss_curve is not None:  # the loss every train.log_every steps
        record["loss_curve"] = fitted.loss_curve
    if fitted.real_pairs is not None:  # RCA/RA Reflow: the real pairs it trained on
        record["real_pairs"] = fitted.real_pairs


def _npz(params: Params) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **params)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return buffer.getvalue()
