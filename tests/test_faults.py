"""Failures a long chain meets: a second driver on the same run (the lease), a driver killed
with SIGKILL, a loss that becomes infinite, and bad input of every shape."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse.chain import run_chain
from collapse.cli import main
from collapse.config import apply_overrides, load_config, validate
from collapse.errors import UserError
from collapse.lease import LEASE, RunLease
from collapse.storage import RunStore, Storage
from tests.helpers import make_config

COLLAPSE = str(Path(sys.executable).parent / "collapse")


# --- the lease ------------------------------------------------------------------------------
def test_a_second_driver_is_refused_until_the_first_lets_go(tmp_path):
    run = Storage(str(tmp_path / "run"))
    with RunLease(run), pytest.raises(UserError, match=r"in use by .*:\d+ \(heartbeat"):
        RunLease(run).acquire()
    with RunLease(run):  # released: free again
        pass
    assert not (tmp_path / "run").exists()  # a lease alone leaves no run behind


def test_the_heartbeat_keeps_a_lease_fresh_and_a_stale_one_is_taken_over(tmp_path):
    run = Storage(str(tmp_path / "run"))
    holder = RunLease(run, stale_after=0.4)
    holder.acquire()
    time.sleep(0.8)  # two stale periods: only the heartbeat keeps it
    with pytest.raises(UserError, match="in use"):
        RunLease(run, stale_after=0.4).acquire()
    holder._stop.set()  # the holder hangs: no more heartbeats
    holder._thread.join()
    time.sleep(0.5)
    taker = RunLease(run, stale_after=0.4)
    taker.acquire()
    assert json.loads(run.read_text(LEASE))["token"] == taker.token
    taker.release()
    holder.release()  # no longer its lease: nothing to delete
    assert not run.exists(LEASE)


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    run = Storage(str(tmp_path / "run"))
    record = {
        "owner": f"{socket.gethostname()}:{done.stdout.strip()}",
        "token": "x",
        "heartbeat": time.time(),
    }
    run.write_bytes(LEASE, json.dumps(record).encode())
    with RunLease(run) as lease:
        assert json.loads(run.read_text(LEASE))["token"] == lease.token


def slow_chain(storage: Path, name: str) -> Path:
    config = storage / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "generations": 5,
                "data": {"real": "toy:mog8", "n_real": 12000, "n_train": 12000, "n_eval": 2000},
                "model": {"family": "gmm", "components": 8, "max_iter": 300},
                "eval": {"metrics": ["w2", "precision", "recall"]},
            }
        )
    )
    return config


def test_two_drivers_on_one_run_and_two_runs_in_one_prefix(cli_env, tmp_path, capsys):
    """The second driver on a run exits 2 at once; a run of another name beside it completes;
    the first, killed with SIGKILL, is taken over by a rerun, which completes the chain."""
    runs = tmp_path / "runs"
    config = slow_chain(tmp_path, "shared")
    first = subprocess.Popen(
        [COLLAPSE, "run", str(config), "--storage", str(runs), "--quiet"],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lease = runs / "shared" / LEASE
    deadline = time.time() + 60
    while not lease.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert lease.exists(), first.stderr.read() if first.poll() is not None else "no lease"
    os.environ["RAY_ADDRESS"] = cli_env["RAY_ADDRESS"]
    try:
        code = main(["run", str(config), "--storage", str(runs), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "in use by" in err and err.count("\n") == 1, err
        beside = slow_chain(tmp_path, "beside")
        assert (
            main(["run", str(beside), "--storage", str(runs), "--quiet", "--set", "generations=1"])
            == 0
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert main(["run", str(config), "--storage", str(runs), "--quiet"]) == 0
    finally:
        os.environ.pop("RAY_ADDRESS", None)
        if first.poll() is None:
            first.kill()
    shared = RunStore(str(runs / "shared")).committed()
    assert [r["generation"] for r in shared] == list(range(5))
    assert len(RunStore(str(runs / "beside")).committed()) == 1
    assert not lease.exists() and not (runs / "beside" / LEASE).exists()
    for record in shared:  # every committed artifact is whole
        for artifact in record["samples"] + record["model"]:
            RunStore(str(runs / "shared")).read_artifact(artifact)


# --- divergence -----------------------------------------------------------------------------
def test_an_infinite_loss_stops_the_generation_and_keeps_the_earlier_ones(ray_cluster, tmp_path):
    config = make_config(
        str(tmp_path),
        generations=3,
        data={"real": "toy:gaussian", "dim": 2, "n_real": 256, "n_train": 256, "n_eval": 128},
        model={"family": "rectified_flow", "net": {"hidden": 16, "depth": 2}},
        strategy={
            "name": "self_correct",
            "corrector": "tests.helpers:blow_up",
            "correct_fraction": 1.0,
            "strength": 1.0,
        },
        train={"workers": 0, "steps": 20, "batch_size": 64, "checkpoint_every": 10},
        sample={"steps": 2},
    )
    with pytest.raises(UserError, match=r"generation 1: training diverged: .* (inf|nan)"):
        run_chain(config)
    store = RunStore(str(tmp_path / "t"))
    (kept,) = store.committed()
    assert kept["generation"] == 0 and np.isfinite(kept["train"]["loss"])
    for artifact in kept["samples"] + kept["model"]:
        store.read_artifact(artifact)  # untouched: the checksums still hold


# --- bad input ------------------------------------------------------------------------------
KEYS = [
    "name",
    "seed",
    "storage",
    "generations",
    "data.real",
    "data.n_train",
    "data.n_real",
    "data.real_fraction",
    "data.loop",
    "data.dim",
    "model.family",
    "model.components",
    "model.bandwidth",
    "model.net",
    "train.lr",
    "train.steps",
    "train.batch_size",
    "train.workers",
    "sample.n",
    "sample.bias",
    "sample.steps",
    "eval.metrics",
    "strategy.name",
    "strategy.strength",
    "data",
    "model",
    "nonsense.key",
    "data.unknown",
]
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KEYS), JUNK), min_size=1, max_size=4))
def test_any_override_is_a_config_or_one_clear_line(pairs):
    base = {"name": "q", "data": {"real": "toy:gaussian", "n_real": 100, "n_train": 100}}
    overrides = [f"{key}={json.dumps(value, allow_nan=True)}" for key, value in pairs]
    try:
        validate(apply_overrides(base, overrides))
    except UserError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=200, deadline=None)
@given(JUNK | st.text(max_size=200))
def test_any_yaml_file_is_a_config_or_one_clear_line(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    text = document if isinstance(document, str) else yaml.safe_dump(document)
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except UserError as err:
        assert str(err) and "\n" not in str(err)


@pytest.mark.parametrize(
    "override",
    [
        "data.n_train=-5",
        "data.n_train=1e30",
        "data.real_fraction=.nan",
        "train.lr=.inf",
        "seed=ünïcödé",
        "data={a: {b: [1, {c: 2}]}}",
        "model.family=[gmm]",
        "generations=99999999999999999999",
    ],
)
def test_bad_overrides_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, override):
    runs = tmp_path / "runs"
    code = main(["run", "configs/quickstart.yaml", "--storage", str(runs), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("collapse: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not runs.exists()
