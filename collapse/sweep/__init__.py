"""A study as one experiment: a base chain config and a search space over its keys.

A collapse study is a grid (real_fraction x loop x strategy x seed, ...). The sweep file names
the base config, the space, each trial's resources and an optional early stop; this package
checks all of it before Ray starts (`collapse.distributed.tune` runs it) and turns one point of
the space into one chain's config. Layout of a sweep on storage:

    <storage>/<name>/sweep.yaml     the resolved sweep (base inline), written once
    <storage>/<name>/tune/          Ray Tune's experiment state, for a restarted driver
    <storage>/<name>/trials/<run>/  one chain run per trial: config.yaml, manifest.json, gen-*

A trial's chain is an ordinary run, so a trial restarted after the driver died resumes from its
last committed generation, and `collapse report` reads the trials like any runs.

A sweep whose base raises `generations` extends every trial. Tune does not rerun a finished
trial, and a fresh experiment over the space would draw new values for its random keys, so an
extension is an experiment of its own (`tune-g<N>/`) whose trials are the stored ones, by name,
each continuing its chain from its last committed generation.

- `schema`: `SweepConfig` (with `Resources`, `EarlyStop`), the sweep file's keys.
- `space`: the space's entries as distributions; one point as one trial's config and name.
- `definition`: a sweep file read, checked against the base config, and written back.
- `stored`: the sweep on storage: created or checked on a rerun, its trials, its extension.

This package's namespace is the public surface. `collapse.sweep(spec)` is also the Python
API's sweep: the package is callable.
"""

from __future__ import annotations

import sys
from typing import Any

from collapse.sweep.definition import check_sweep, dump_sweep, load_sweep
from collapse.sweep.schema import TRIALS, EarlyStop, Resources, SweepConfig
from collapse.sweep.space import (
    DISTRIBUTIONS,
    distribution,
    first_point,
    generations,
    point_keys,
    set_point,
    trial_config,
    trial_count,
    trial_name,
)
from collapse.sweep.stored import (
    SWEEP_FILE,
    behind,
    extended_trial_config,
    extension_experiment,
    open_sweep,
    stored_trials,
)

__all__ = [
    "DISTRIBUTIONS",
    "SWEEP_FILE",
    "TRIALS",
    "EarlyStop",
    "Resources",
    "SweepConfig",
    "behind",
    "check_sweep",
    "distribution",
    "dump_sweep",
    "extended_trial_config",
    "extension_experiment",
    "first_point",
    "generations",
    "load_sweep",
    "open_sweep",
    "point_keys",
    "set_point",
    "stored_trials",
    "trial_config",
    "trial_count",
    "trial_name",
]


class _CallableModule(type(sys.modules[__name__])):
    """`collapse.sweep(spec)` is the Python API's sweep (`collapse.api.sweep`), and this package
    keeps its name: a package attribute that a subpackage shares is the subpackage."""

    def __call__(self, spec: Any, overrides: Any = ()) -> Any:
        from collapse.api import sweep

        return sweep(spec, overrides)


sys.modules[__name__].__class__ = _CallableModule
