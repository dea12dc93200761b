"""A trained generation (rectified_flow, ddpm, stable_diffusion): its inputs as shards, shaped by
the chain's strategy, trained by the backend's trainer, and its loss curve stored beside it.

Trained chains stream their training sets from shards: the real pool's, each planned earlier
generation's samples (a latent family's: their cached VAE latents, encoded on first use), and
whatever the strategy adds (RA/RCA Reflow's real pairs); the strategy may also hand the
training loop per-batch settings (OCAR's frozen previous model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from collapse import latents
from collapse.data.mix import MixPart, expand
from collapse.engine.backend import Shards, TrainingJob
from collapse.engine.history import training_samples
from collapse.run_layout import generation_dir
from collapse.storage import Storage
from collapse.strategies.protocol import TrainingInputs

if TYPE_CHECKING:
    from collapse.engine.generation import ChainEngine

LOSS_CURVE = "train_loss.json"  # a trained generation's loss curve: {"step": [], "loss": []}
FIT_STREAM = 2  # a closed-form fit's random stream: (seed, FIT_STREAM, generation)


@dataclass(frozen=True)
class Fitted:
    """A generation's model and what its record says of the training: `report` (a trained
    family's last Ray Train report), `loss_curve` (its stored curve) and `real_pairs` (what
    RA/RCA Reflow paired)."""

    params: dict[str, np.ndarray]
    report: dict[str, float] = field(default_factory=dict)
    loss_curve: dict[str, Any] | None = None
    real_pairs: dict[str, Any] = field(default_factory=dict)


def fit_closed_form(engine: ChainEngine, plan: list[MixPart], generation: int) -> Fitted:
    """A closed-form generation: the family fitted to its rows, in this process, with an
    independent random stream per (seed, generation) that a resumed chain replays exactly."""
    cfg, family = engine.config, engine.family
    if family.fits_by_moments:
        return Fitted(family.fit_moments(engine.history.training_moments(plan), cfg.model))
    x = engine.history.training_set(plan)
    rng = np.random.default_rng([cfg.seed, FIT_STREAM, generation])
    return Fitted(family.fit(x, cfg.model, rng))


def train_generation(engine: ChainEngine, plan: list[MixPart], generation: int) -> Fitted:
    """A trained generation, on the backend's trainer."""
    cfg, store, history, strategy = engine.config, engine.store, engine.history, engine.strategy
    trainer = engine.backend.trainer
    assert trainer is not None, "the engine refuses a trained family without a trainer"
    plan = expand(plan)  # trained chains read shards per generation
    samples = {
        p.generation: (store.storage, training_samples(store.record(p.generation)))
        for p in plan
        if p.source == "synthetic"
    }
    pool = history.pool
    inputs = TrainingInputs(plan, (Storage(pool.uri), pool.index["shards"]), strategy.keeps_noise)
    seed = cfg.seed * 100_003 + generation
    # the previous generation's model, read once: warm start and the strategy share it
    needed = cfg.model.init == "previous" or strategy.needs_previous_model
    previous = history.params_of(generation - 1) if generation > 0 and needed else None
    per_batch = None
    if generation > 0:
        per_batch = strategy.per_batch(engine, inputs.plan, previous)
        inputs = strategy.train_inputs(engine, inputs, generation, seed, previous)
    latent_space = None
    if engine.family.latent:
        real, samples, latent_space = _latent_inputs(engine, inputs.real, samples)
        inputs = inputs.but(real=real)
    init = None
    if cfg.model.init == "previous" and generation > 0:
        init = engine.family.weights(previous)
    job = TrainingJob(
        cfg,
        store.storage,
        generation,
        history.space,
        inputs,
        samples,
        latent_space,
        init,
        per_batch,
        seed,
    )
    weights, report = trainer.train(job)
    curve = report.pop("curve")
    document = {"log_every": cfg.train.log_every, "step": [], "loss": []}
    for step, loss in curve:
        document["step"].append(step)
        document["loss"].append(loss)
    loss_curve = store.write_artifact(generation, LOSS_CURVE, json.dumps(document).encode())
    captions = _captions(engine) if engine.family.captioned else None
    params = engine.family.to_params(
        weights, cfg.model, history.space, cfg.sample.steps, captions=captions
    )
    return Fitted(params, report, loss_curve, inputs.record)


def _latent_inputs(
    engine: ChainEngine,
    real_shards: tuple[Storage, Shards],
    samples: dict[int, tuple[Storage, Shards]],
) -> tuple[tuple[Storage, Shards], dict[int, tuple[Storage, Shards]], tuple[str, tuple]]:
    """A latent family's training inputs: the cached latents of the real pool and of each
    planned generation's samples (encoded now where the run has none yet)."""
    from collapse.diffusion.stable_diffusion import latent_shape

    run, pretrained = engine.store.storage, engine.config.model.pretrained
    space, encode = engine.history.space, engine.backend.trainer.encode

    def cache(key: str, source: Storage, shards: Shards, rows: tuple[int, int]) -> Shards:
        return latents.cached(run, key, source, shards, rows, pretrained, space, encode)

    real_latents = (run, cache("real", *real_shards, engine.history.where.pool_rows))
    sample_latents = {
        g: (run, cache(generation_dir(g), storage, shards, (0, 2**62)))
        for g, (storage, shards) in samples.items()
    }
    return real_latents, sample_latents, (pretrained, latent_shape(pretrained, space.shape))


def _captions(engine: ChainEngine) -> list[str]:
    """The real pool's captions, which a latent family's samples are drawn for: read from
    the real latent cache's caption column (never the images)."""
    lo, hi = engine.history.where.pool_rows
    run, found = engine.store.storage, []
    for shard in json.loads(run.read_text(f"latents/real/{latents.INDEX}")):
        table = pq.read_table(run.path(shard["path"]), filesystem=run.fs)
        ids = table.column("id").to_numpy()
        keep = (ids >= lo) & (ids < hi)
        captions = table.column("caption").to_pylist()
        found.extend(c for c, k in zip(captions, keep, strict=True) if k)
    return found
