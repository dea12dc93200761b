"""A sweep's trials on storage: the runs it started, read back by their stored configs, and
what an extension (a raised `generations`) continues.

Layout of a sweep on storage:

    <storage>/<name>/sweep.yaml     the resolved sweep (base inline), written once
    <storage>/<name>/tune/          Ray Tune's experiment state, for a restarted driver
    <storage>/<name>/tune-g<N>/     the experiment that extended the trials to N generations
    <storage>/<name>/trials/<run>/  one chain run per trial: config.yaml, manifest.json, gen-*
"""

from __future__ import annotations

from collapse.config.chain import ChainConfig
from collapse.config.loading import validate
from collapse.config.sweep_schema import SweepConfig
from collapse.config.sweep_space import generations
from collapse.errors import UserError
from collapse.store import run_config
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage

SWEEP_FILE = "sweep.yaml"


def stored_trials(sweep: SweepConfig) -> dict[str, ChainConfig]:
    """The trials started so far: run name -> its stored config."""
    trials = Storage(sweep.trials_uri)
    found = {}
    for name in trials.list_dir(""):
        config = run_config.read(RunStore(trials.uri_of(name)))
        if config is not None:
            found[name] = config
    return found


def _stored_trial(sweep: SweepConfig, name: str) -> ChainConfig:
    config = run_config.read(RunStore(Storage(sweep.trials_uri).uri_of(name)))
    if config is None:
        raise UserError(f"{sweep.trials_uri}/{name}: the trial to extend has no config.yaml")
    return config


def extension_experiment(sweep: SweepConfig) -> str:
    """The Tune experiment that extends the trials to the sweep's `generations`."""
    return f"tune-g{generations(sweep)}"


def behind(sweep: SweepConfig) -> list[str]:
    """The started trials whose stored `generations` is below the sweep's: what an extension
    continues."""
    target = generations(sweep)
    return sorted(name for name, c in stored_trials(sweep).items() if c.generations < target)


def extended_trial_config(sweep: SweepConfig, name: str) -> ChainConfig:
    """A stored trial's config with the sweep's `generations`: its own sampled values kept."""
    stored = _stored_trial(sweep, name)
    return validate({**stored.model_dump(mode="json"), "generations": generations(sweep)})
