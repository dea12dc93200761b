"""A sweep as one Ray Tune experiment: a trial per point of the space, each trial one chain.

A trial runs its chain in its own process (`RayChainWorker`, the worker a chain's actor runs)
and reports each committed generation to Tune, with `generation` as the time attribute that
ASHA stops trials on. Tune's experiment state lives beside the trials on the sweep's storage,
so re-running the same `collapse sweep` after the driver died restores the experiment: finished
trials stay finished, and an unfinished trial's chain resumes from its last committed
generation (its run directory is named by its trial index and parameters, which Tune keeps).
"""

from __future__ import annotations

from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from collapse.config.sweep_schema import SweepConfig
from collapse.config.sweep_space import distribution, first_point, trial_config, trial_name
from collapse.distributed.chain_actor import remote_worker
from collapse.distributed.runtime import ensure_ray, storage_settings, use_storage_settings
from collapse.distributed.tune_trackers import tune_callbacks
from collapse.engine.run_opening import create_or_resume
from collapse.families import get_family
from collapse.store.records import GenerationRecord
from collapse.store.storage import Storage
from collapse.store.sweep_trials import (
    behind,
    extended_trial_config,
    extension_experiment,
    stored_trials,
)

EXPERIMENT = "tune"
TRIAL = "trial"  # an extension's only parameter: the stored trial's run name
_SAMPLERS = {
    "grid": tune.grid_search,
    "choice": tune.choice,
    "uniform": lambda v: tune.uniform(*v),
    "loguniform": lambda v: tune.loguniform(*v),
    "randint": lambda v: tune.randint(*v),
}


def run_sweep(sweep: SweepConfig) -> tune.ResultGrid:
    """Run (or restore) the sweep's experiment, its trials logged to the trackers its base's
    `tracking:` names, through Tune's own callbacks."""
    tracking = trial_config(sweep, first_point(sweep), "t").tracking
    with tune_callbacks(tracking, sweep.uri) as callbacks:
        return _run_sweep(sweep, callbacks)


def _run_sweep(sweep: SweepConfig, callbacks: list[Any]) -> tune.ResultGrid:
    ensure_ray()
    storage = Storage(sweep.uri)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, sweep=sweep, settings=storage_settings()),
        {"cpu": sweep.resources.cpus, "gpu": sweep.resources.gpus},
    )
    # an extension (a raised `generations`) is its own experiment over the stored trials
    extension = extension_experiment(sweep)
    extending = bool(
        tune.Tuner.can_restore(storage.path(extension), storage_filesystem=storage.fs)
        or behind(sweep)
    )
    name = extension if extending else EXPERIMENT
    experiment = storage.path(name)
    if tune.Tuner.can_restore(experiment, storage_filesystem=storage.fs):
        tuner = tune.Tuner.restore(
            experiment,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=storage.fs,
        )
    else:
        space = (
            {TRIAL: tune.grid_search(sorted(stored_trials(sweep)))}
            if extending
            else {k: _SAMPLERS[kind](v) for k, (kind, v) in _space(sweep).items()}
        )
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=_tune_config(sweep, extending),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage.path(""),
                storage_filesystem=storage.fs,
                failure_config=tune.FailureConfig(max_failures=2),
                verbose=1,  # the status table, not every trial's every result
                callbacks=callbacks,
            ),
        )
    return tuner.fit()


def _space(sweep: SweepConfig) -> dict[str, tuple[str, list[Any]]]:
    return {key: distribution(key, spec) for key, spec in sweep.space.items()}


def _tune_config(sweep: SweepConfig, extending: bool = False) -> tune.TuneConfig:
    stop = sweep.early_stop
    scheduler = None
    if stop is not None:
        scheduler = ASHAScheduler(
            time_attr="generation",
            max_t=max(1, trial_config(sweep, first_point(sweep), "t").generations - 1),
            grace_period=stop.grace_period,
            reduction_factor=stop.reduction_factor,
        )
    return tune.TuneConfig(
        metric=stop.metric if stop else None,
        mode=stop.mode if stop else None,
        scheduler=scheduler,
        num_samples=1 if extending else sweep.samples,  # an extension's grid has every trial
        max_concurrent_trials=_concurrency(sweep),
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )


def _concurrency(sweep: SweepConfig) -> int | None:
    """`max_concurrent_trials`, or for chains that stream data through Ray Data (trained
    families, sampling pools) as many trials as leave a CPU free beside them.

    Ray Data's tasks are scheduled outside a trial's reservation; if the trials held every CPU
    they would wait forever for their own data. On an autoscaling cluster set the limit
    yourself: this one is computed from the CPUs present when the sweep starts.
    """
    if sweep.max_concurrent_trials is not None:
        return sweep.max_concurrent_trials
    config = trial_config(sweep, first_point(sweep), "t")
    streams = get_family(config.model.family).trained
    if not streams and not config.sample.workers:
        return None
    spare_cpus = ray.cluster_resources().get("CPU", 1.0) - 1.0
    return max(1, int(spare_cpus // max(sweep.resources.cpus, 0.01)))


def _trial_name(trial: Any) -> str:
    return trial.config.get(TRIAL) or trial_name(_index(trial.trial_id), trial.config)


def _index(trial_id: str) -> int:
    """Tune's trial ids end in the trial's index (`3f2a1_00007`), kept across a restore."""
    return int(trial_id.rsplit("_", 1)[-1])


def _trial(params: dict[str, Any], sweep: SweepConfig, settings: dict[str, str]) -> None:
    """One chain, run by the same actor as `collapse run`, placed beside the trial.

    The trial's reservation (resources.cpus) stands for the chain's CPU, so the actor itself
    holds none, only the trial's GPU share. It is placed outside the trial's placement group
    (which Tune captures child tasks into) so that its Ray Data tasks, sampling pool,
    evaluation tasks and Ray Train runs are scheduled on the cluster as in a plain run, and
    Ray Train runs its own session rather than inside Tune's.
    """
    use_storage_settings(settings)
    if TRIAL in params:  # an extension: a stored trial, by name
        config = extended_trial_config(sweep, params[TRIAL])
    else:
        index = _index(tune.get_context().get_trial_id())
        config = trial_config(sweep, params, trial_name(index, params))
    store, start = create_or_resume(config)
    if start >= config.generations:  # finished before the driver died: say so once more
        tune.report(_result(store.record(store.count() - 1)))
        return
    placement = {"num_cpus": 0, "num_gpus": sweep.resources.gpus, "scheduling_strategy": "DEFAULT"}
    with remote_worker(config, lease_token=None, **placement) as worker:
        for record in worker.run_generations(start, config.generations):
            tune.report(_result(record))


def _result(record: GenerationRecord) -> dict[str, Any]:
    return {**record["metrics"], "generation": record["generation"]}
