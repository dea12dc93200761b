"""The sweep on storage: created once and checked on every rerun (only `generations` may
change, and only upwards), its started trials read back, and the extension that continues
them when `generations` was raised."""

from __future__ import annotations

from collapse.config import ChainConfig, differing_keys, parse_yaml, validate
from collapse.errors import UserError
from collapse.storage import Storage
from collapse.sweep.definition import check_sweep, dump_sweep
from collapse.sweep.schema import SweepConfig
from collapse.sweep.space import generations, trial_count

SWEEP_FILE = "sweep.yaml"


def open_sweep(sweep: SweepConfig) -> bool:
    """Create the sweep on storage, or check that the stored one is this sweep, or this sweep
    with `generations` raised (stored then); True when it existed (the driver then restores
    the experiment, or extends its trials)."""
    storage = Storage(sweep.uri)
    storage.check_reachable()
    text = storage.read_text(SWEEP_FILE)
    if text is None:
        storage.write_bytes(SWEEP_FILE, dump_sweep(sweep).encode(), atomic=True)
        return False
    stored = check_sweep(parse_yaml(text, storage.uri_of(SWEEP_FILE)))
    before, after = generations(stored), generations(sweep)
    changed = [k for k in differing_keys(stored, sweep) if k != "base.generations"]
    if changed:
        raise UserError(
            f"sweep {storage.uri} exists with a different definition (differs in: "
            f"{', '.join(changed)}); choose another name or rerun it unchanged"
        )
    if after < before:
        raise UserError(
            f"sweep {storage.uri} has generations: {before}; a lower count ({after}) is refused "
            "(generations may only be raised)"
        )
    if after > before:
        started, expected = len(stored_trials(sweep)), trial_count(sweep)
        if started < expected:
            raise UserError(
                f"sweep {storage.uri} has started {started} of its {expected} trials: rerun it "
                f"unchanged (generations: {before}) to start them all, then raise generations"
            )
        storage.write_bytes(SWEEP_FILE, dump_sweep(sweep).encode(), atomic=True)
    return True


def stored_trials(sweep: SweepConfig) -> dict[str, ChainConfig]:
    """The trials started so far: run name -> its stored config."""
    from collapse import stored_config
    from collapse.run_store import RunStore

    trials = Storage(sweep.trials_uri)
    found = {}
    for name in trials.list_dir(""):
        config = stored_config.read(RunStore(trials.uri_of(name)))
        if config is not None:
            found[name] = config
    return found


def _stored_trial(sweep: SweepConfig, name: str) -> ChainConfig:
    from collapse import stored_config
    from collapse.run_store import RunStore

    config = stored_config.read(RunStore(Storage(sweep.trials_uri).uri_of(name)))
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
