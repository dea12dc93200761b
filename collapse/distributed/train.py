"""One generation's training on Ray Train: a TorchTrainer per generation, checkpointed into the run.

Each generation is its own Ray Train run, named `train` under `<run>/gen-k/` (docs/run-layout.md:
the checkpoints of an in-flight generation live under it), so a restarted generation finds its
latest checkpoint and continues from that step instead of from step 0; a committed generation never
trains again. Workers take their batches of the generation's planned rows from its `TrainingSet`
(`collapse.distributed.training_set`) and run the plain PyTorch loop of `collapse.training.loop`,
DDP-wrapped by `ray.train.torch.prepare_model`, on CPUs or GPUs alike.

A generation is a function of (config, seed): the net's initialisation is drawn from
(seed, generation), each worker's batch at step s is fixed by (seed, s, rank, world size), the
loop's noise by (seed, s, rank), and a restarted worker group continues at its checkpoint's
step with the batches the uninterrupted run would have had.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ray import train as ray_train
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer, get_device, prepare_model

from collapse.config import ChainConfig, Section
from collapse.data import streams
from collapse.data.space import DataSpace
from collapse.distributed.failures import diverged_message, storage_failure
from collapse.distributed.runtime import storage_settings, use_storage_settings
from collapse.distributed.training_set import TrainingSet
from collapse.errors import UserError
from collapse.store.integrity import STATE_FILE, STATE_SHA
from collapse.store.layout import TRAIN_DIR, generation_dir
from collapse.store.storage import Storage
from collapse.strategies.protocol import PerBatch
from collapse.training.loop import train
from collapse.training.state import TrainSettings, TrainState
from collapse.training.weights import load_trainable

MODEL_INPUTS = ("x", "noise", "paired", "input_ids")  # input_ids: a caption's tokens


def _tensors(batches: Iterator[dict[str, np.ndarray]]) -> Iterator[dict[str, torch.Tensor]]:
    """The feed's numpy batches as the model's input tensors (sharing their memory)."""
    for batch in batches:
        yield {k: torch.from_numpy(v) for k, v in batch.items() if k in MODEL_INPUTS}


def _first_timed(
    batches: Iterator[dict[str, torch.Tensor]], asked: float, fixed: dict[str, float]
) -> Iterator[dict[str, torch.Tensor]]:
    """`batches`, noting in `fixed` how long after `asked` the first one came."""
    for batch in batches:
        fixed.setdefault("first_batch_s", time.time() - asked)
        yield batch


@dataclass(frozen=True)
class WorkerJob:
    """What every Ray Train worker of a generation trains: `family`'s net for its `model:`
    section on `space` rows, warm-started from `init`, under `settings`, `batch_size` rows per
    worker per step, seeded by `seed` (`collapse.data.streams.training_seed`), with the driver's
    storage settings (`storage`), compiled if asked, from `dataset` (None where the strategy's
    `per_batch` makes every batch itself)."""

    family: str
    model: Section
    space: DataSpace
    init: dict[str, np.ndarray] | None
    settings: TrainSettings
    batch_size: int
    seed: int
    storage: dict[str, str]
    compile: bool
    per_batch: PerBatch | None
    dataset: TrainingSet | None


def _loop(config: dict[str, WorkerJob]) -> dict[str, Any]:
    """One worker's training (Ray Train's `train_loop_per_worker`; its config is {"job": ...})."""
    started = time.time()
    job = config["job"]
    use_storage_settings(job.storage)
    from collapse.families import get_family
    from collapse.families.protocol import TrainedFamily

    family = get_family(job.family)
    assert isinstance(family, TrainedFamily), "Ray Train trains only a trained family's net"
    device = get_device()
    with torch.random.fork_rng(devices=[]):  # the initialisation, from (seed, generation)
        torch.default_generator.manual_seed(job.seed)
        net = family.build_net(job.model, job.space)
    if job.init is not None:
        load_trainable(net, {k: np.array(v) for k, v in job.init.items()})
    settings = job.settings
    if device.type == "cuda" and job.space.kind == "image":
        net = net.to(memory_format=torch.channels_last)  # matches the channels_last inputs
    model = prepare_model(net)
    if job.compile:
        compiled = torch.compile(model)
        assert isinstance(compiled, torch.nn.Module), "torch.compile wraps a module in a module"
        model = compiled
    state = TrainState.create(model, settings, device)
    checkpoint = ray_train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state.load_state_dict(
                torch.load(os.path.join(directory, STATE_FILE), map_location=device)
            )

    context = ray_train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    global_batch = job.batch_size * world
    first: dict[str, float] = {}  # the first checkpoint's (step, time): steady rate from there
    fixed = {"checkpoint_s": 0.0}  # where this attempt's fixed cost went, reported with the rate

    def save(state: TrainState, loss: float) -> None:
        now = time.perf_counter()
        metrics = {"step": state.step, "loss": loss, "resumed_from": start, "started_at": started}
        metrics.update(fixed)
        if first and state.step > first["step"]:
            metrics["rows_per_s"] = (state.step - first["step"]) * global_batch / (now - first["t"])
        else:
            first.update(step=state.step, t=now)
        with tempfile.TemporaryDirectory() as directory:
            saved = None
            if rank == 0:
                path = os.path.join(directory, STATE_FILE)
                torch.save(state.state_dict(), path)
                with open(path, "rb") as f:  # checked on resume (collapse.store.integrity)
                    digest = hashlib.sha256(f.read()).hexdigest()
                with open(os.path.join(directory, STATE_SHA), "w") as f:
                    f.write(digest)
                saved = Checkpoint.from_directory(directory)
            ray_train.report(metrics, checkpoint=saved)
        fixed["checkpoint_s"] += time.perf_counter() - now

    start = state.step
    batch_size, make_pairs, batches = job.batch_size, None, None
    per_batch = job.per_batch  # the strategy's (OCAR's frozen model), or None
    if per_batch is not None:
        pairs = per_batch.pairs(
            lambda: family.build_net(job.model, job.space),
            device,
            batch_size,
            job.space.model_shape,
        )
        make_pairs, batch_size, batches = pairs.make, pairs.batch_size, pairs.batches
    fixed["setup_s"] = time.time() - started  # imports, the model, its checkpoint
    if batches is None:
        asked = time.time()
        assert job.dataset is not None, "a generation without per-batch pairs has a feed"
        feed = job.dataset.open()
        batches = _tensors(feed.batches(batch_size, rank, world, step=start))
        batches = _first_timed(batches, asked, fixed)
    objective = family.objective(job.model, job.space)
    train(
        state,
        batches,
        settings,
        device,
        save,
        seed=job.seed,
        make_pairs=make_pairs,
        objective=objective,
        rank=rank,
    )
    if start == settings.steps:  # finished before a restart: report once more so fit() returns it
        save(state, float("nan"))
    # local mode hands this back directly (Ray Train refuses tensors in a return value)
    return {"ema": _numpy(state.ema.state_dict()), "curve": state.curve}


def train_generation(
    config: ChainConfig,
    run: Storage,
    generation: int,
    dataset: TrainingSet | None,
    space: DataSpace,
    init: dict[str, np.ndarray] | None,
    per_batch: PerBatch | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train (or finish training) `generation`: the EMA weights as numpy arrays, and the last
    report (`curve`: the loss curve, [(step, mean loss)] every `train.log_every` steps, with
    the points of earlier attempts from the checkpoints; `step`, `loss`, `resumed_from`: the
    step this attempt started at; `rows_per_s`: the steady training rate from the first
    checkpoint on, where there were two or more; and
    the attempt's fixed cost: `start_s` from `fit()` to the training loop's start (the worker
    group's start), `setup_s` from there to a model ready to train (imports, the net, its
    checkpoint), `first_batch_s` from there to the first batch, `checkpoint_s` spent writing
    checkpoints before the last one)."""
    t = config.train
    if dataset is not None and dataset.size < max(t.workers, 1):
        raise UserError(
            f"generation {generation}: {dataset.size} training rows cannot be shared by "
            f"train.workers={t.workers} workers; use fewer workers"
        )
    settings = TrainSettings(
        steps=t.steps,
        lr=t.lr,
        precision=t.precision,
        ema_decay=t.ema_decay,
        grad_clip=t.grad_clip,
        checkpoint_every=t.checkpoint_every,
        log_every=t.log_every,
    )
    job = WorkerJob(
        family=config.model.family,
        model=config.model,
        space=space,
        init=init,
        settings=settings,
        batch_size=t.batch_size // max(t.workers, 1),
        seed=streams.training_seed(config.seed, generation),
        storage=storage_settings(),
        compile=t.compile,
        per_batch=per_batch,
        dataset=dataset,
    )
    # ray.train.torch binds TorchTrainer (so fit()'s Result) to Ray Train V2 at runtime, its
    # default (RAY_TRAIN_V2_ENABLED), but to the V1 classes for a type checker
    trainer = TorchTrainer(
        _loop,  # type: ignore[arg-type]  # V2's loop may return a value; V1's stub says None
        train_loop_config={"job": job},
        scaling_config=ScalingConfig(
            num_workers=t.workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"GPU": 1} if t.use_gpu else {"CPU": t.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=TRAIN_DIR,
            storage_path=run.path(generation_dir(generation)),
            storage_filesystem=run.fs,
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=t.max_failures),
        ),
    )
    fit_started = time.time()
    try:
        result = trainer.fit()
    except Exception as err:
        diverged = diverged_message(err)
        if diverged is not None:
            raise UserError(f"generation {generation}: {diverged}") from None
        cause = storage_failure(err)
        if cause is None:
            raise
        reason, advice = cause
        raise UserError(
            f"generation {generation}: Ray Train could not write its checkpoints under "
            f"{run.uri_of(f'{generation_dir(generation)}/{TRAIN_DIR}')} ({reason}); committed "
            f"generations are kept: {advice}, then rerun to resume"
        ) from None
    assert result.metrics is not None, "the loop reports when it reaches train.steps"
    if t.workers == 0:  # local mode: no storage, the loop's return value is the result
        returned = result.return_value  # type: ignore[attr-defined]  # V2's Result has it, V1's not
        ema, curve = returned["ema"], returned["curve"]
    else:
        assert result.checkpoint is not None, "rank 0 checkpoints when it reaches train.steps"
        with result.checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu")
        ema, curve = _numpy(state["ema"]), state.get("curve", [])
    kept: tuple[str, ...] = ("step", "loss", "resumed_from", "rows_per_s", "setup_s")
    kept += ("first_batch_s", "checkpoint_s")
    report = {k: float(result.metrics[k]) for k in kept if k in result.metrics}
    if "started_at" in result.metrics:
        report["start_s"] = float(result.metrics["started_at"]) - fit_started
    report["curve"] = curve  # (step, loss) every train.log_every steps: the caller stores it
    return ema, report


def _numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in state.items()}
