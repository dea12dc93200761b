"""A generation's model: a closed-form family fitted in this process, or a trained family
(rectified_flow, ddpm, stable_diffusion) whose inputs, as shards shaped by the chain's
strategy, are trained by the backend's trainer, its loss curve stored beside it.

Trained chains stream their training sets from shards: the real pool's, each planned earlier
generation's samples (a latent family's: their cached VAE latents, encoded on first use), and
whatever the strategy adds (RA/RCA Reflow's real pairs); the strategy may also hand the
training loop per-batch settings (OCAR's frozen previous model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from collapse.config.model_section import StableDiffusionModel
from collapse.data import streams
from collapse.data.feed.decode import LatentRows
from collapse.data.mix import MixPart, expand
from collapse.engine import latent_cache
from collapse.engine.backend import Shards, TrainingJob
from collapse.families.protocol import (
    ClosedFormFamily,
    Family,
    MomentFamily,
    Params,
    TrainedFamily,
)
from collapse.store.layout import generation_dir
from collapse.store.records import Artifact, RealPairsRecord, training_samples
from collapse.store.storage import Storage
from collapse.strategies.protocol import TrainingInputs

if TYPE_CHECKING:
    from collapse.config import ChainConfig
    from collapse.engine.backend import Trainer
    from collapse.engine.history import RunHistory
    from collapse.strategies.protocol import Context, Strategy

LOSS_CURVE = "train_loss.json"  # a trained generation's loss curve: {"step": [], "loss": []}


@dataclass(frozen=True)
class Fitted:
    """A generation's model and what its record says of the training: `report` (a trained
    family's last Ray Train report), `loss_curve` (its stored curve) and `real_pairs` (what
    RA/RCA Reflow paired)."""

    params: Params
    report: dict[str, float] = field(default_factory=dict)
    loss_curve: Artifact | None = None
    real_pairs: RealPairsRecord | None = None


@dataclass(frozen=True)
class FitContext:
    """What fitting a generation reads: the chain's config, family and strategy, what the chain
    read back from its run (`history`, its store among it), the chain as the strategy sees it
    (`lent`) and the backend's trainer (None: closed-form families only)."""

    config: ChainConfig
    family: Family
    strategy: Strategy
    history: RunHistory
    lent: Context
    trainer: Trainer | None


def fit_closed_form(fit: FitContext, plan: list[MixPart], generation: int) -> Fitted:
    """A closed-form generation: the family fitted to its rows, in this process, with an
    independent random stream per (seed, generation) that a resumed chain replays exactly."""
    cfg, family = fit.config, fit.family
    assert isinstance(family, ClosedFormFamily), "a trained family is fitted by fit_trained"
    if isinstance(family, MomentFamily):
        return Fitted(family.fit_moments(fit.history.training_moments(plan), cfg.model))
    x = fit.history.training_set(plan)
    rng = streams.generator(cfg.seed, streams.FIT, generation)
    return Fitted(family.fit(x, cfg.model, rng))


def fit_trained(fit: FitContext, plan: list[MixPart], generation: int) -> Fitted:
    """A trained generation, on the backend's trainer."""
    cfg, history, strategy, family = fit.config, fit.history, fit.strategy, fit.family
    store, trainer = history.store, fit.trainer
    assert isinstance(family, TrainedFamily), "a closed-form family is fitted by fit_closed_form"
    assert trainer is not None, "the engine refuses a trained family without a trainer"
    plan = expand(plan)  # trained chains read shards per generation
    samples = {
        p.samples_of: (store.storage, training_samples(store.record(p.samples_of)))
        for p in plan
        if p.source == "synthetic"
    }
    pool = history.pool
    inputs = TrainingInputs(plan, (Storage(pool.uri), pool.index["shards"]), strategy.keeps_noise)
    seed = streams.training_seed(cfg.seed, generation)
    # the previous generation's model, read once: warm start and the strategy share it
    needed = cfg.model.warm_start or strategy.needs_previous_model
    previous = history.params_of(generation - 1) if generation > 0 and needed else None
    per_batch = None
    if generation > 0:
        per_batch = strategy.per_batch(fit.lent, inputs.plan, previous)
        inputs = strategy.train_inputs(fit.lent, inputs, generation, seed, previous)
    latent_space = None
    if family.latent:
        real, samples, latent_space = _latent_inputs(fit, trainer, inputs.real, samples)
        inputs = inputs.but(real=real)
    init = None
    if cfg.model.warm_start and previous is not None:  # generation > 0
        init = family.weights(previous)
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
    steps, losses = [step for step, _ in curve], [loss for _, loss in curve]
    document = {"log_every": cfg.train.log_every, "step": steps, "loss": losses}
    loss_curve = store.write_artifact(generation, LOSS_CURVE, json.dumps(document).encode())
    captions = (
        latent_cache.pool_captions(store.storage, history.pool_rows) if family.captioned else None
    )
    params = family.to_params(
        weights, cfg.model, history.space, cfg.sample.steps, captions=captions
    )
    return Fitted(params, report, loss_curve, inputs.record)


def _latent_inputs(
    fit: FitContext,
    trainer: Trainer,
    real_shards: tuple[Storage, Shards],
    samples: dict[int, tuple[Storage, Shards]],
) -> tuple[tuple[Storage, Shards], dict[int, tuple[Storage, Shards]], LatentRows]:
    """A latent family's training inputs: the cached latents of the real pool and of each
    planned generation's samples (encoded now where the run has none yet)."""
    from collapse.families.stable_diffusion.pipeline_parts import latent_shape, tokenize

    model = fit.config.model
    assert isinstance(model, StableDiffusionModel), "the latent family is Stable Diffusion"
    run, pretrained = fit.history.store.storage, model.pretrained
    space, encode = fit.history.space, trainer.encode

    def cache(key: str, source: Storage, shards: Shards, rows: tuple[int, int]) -> Shards:
        found: Shards = [
            *latent_cache.cached(run, key, source, shards, rows, pretrained, space, encode)
        ]
        return found

    real_latents = (run, cache("real", *real_shards, fit.history.pool_rows))
    sample_latents = {
        g: (run, cache(generation_dir(g), storage, shards, (0, 2**62)))
        for g, (storage, shards) in samples.items()
    }
    rows = LatentRows(latent_shape(pretrained, space.shape), partial(tokenize, pretrained))
    return real_latents, sample_latents, rows
