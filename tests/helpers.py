"""Small builders shared by tests."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from collapse.config import ChainConfig, validate
from collapse.engine import preflight


def make_config(storage: str, **sections: Any) -> ChainConfig:
    """A validated and preflight-checked config from keyword sections, e.g.
    make_config(dir, data={...}, model={...})."""
    raw: dict[str, Any] = {
        "name": "t",
        "storage": storage,
        "generations": 3,
        "data": {"real": "toy:gaussian", "dim": 2, "n_real": 200, "n_train": 100, "n_eval": 200},
        "model": {"family": "gaussian"},
        "eval": {"metrics": ["w2", "mean_err", "var"]},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return preflight.check(validate(raw))


def run_in_process(config: ChainConfig) -> list[dict[str, Any]]:
    """The chain's generations in this process: the engine the Ray actor runs, on the local
    backend (a trained family's training still on Ray Train, in local mode for workers: 0)."""
    from collapse.engine.run_opening import create_or_resume

    _, start = create_or_resume(config)
    engine = in_process_engine(config)
    return [engine.run_generation(g) for g in range(start, config.generations)]


def in_process_engine(config: ChainConfig, lease_token: str | None = None):
    """The chain's engine with the local backend (and the Ray trainer for trained families)."""
    from collapse.engine import ChainEngine, LocalBackend
    from collapse.families import get_family

    trainer = None
    if get_family(config.model.family).trained:
        from collapse.distributed.ray_backend import RayTrainer
        from collapse.distributed.runtime import storage_settings

        trainer = RayTrainer(config, storage_settings())
    return ChainEngine(config, LocalBackend(trainer), lease_token)


def to_real_mean(x, *, real, rng):
    """A user corrector for the tests: every row to the real pool's mean."""
    return np.broadcast_to(real.mean(axis=0), x.shape).copy()


def blow_up(x, *, real, rng):
    """A user corrector for the tests: rows beyond float32's square, so training diverges."""
    return np.asarray(x, dtype=np.float32) * np.float32(1e30)


_RAY_WORKER_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?\(([\w.:-]+ )?pid=\d+[^)]*\)")


def own_stderr(capsys) -> str:
    """What the test's own code wrote to stderr: without the lines Ray forwards from worker
    processes. The whole suite is one Ray job, so a log line of an earlier test's worker (Ray
    Train's PlacementGroupCleaner warns every second it cannot reach the State API on a
    cluster without the dashboard) can arrive during a later test; a `collapse` command is a
    job of its own and gets only its own workers' lines."""
    err = capsys.readouterr().err
    return "".join(line for line in err.splitlines(True) if not _RAY_WORKER_LINE.match(line))
