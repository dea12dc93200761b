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

from collapse.cli import main
from collapse.config import apply_overrides, load_config, validate
from collapse.driver.launch import run_chain
from collapse.errors import UserError
from collapse.store.integrity import artifacts as integrity_artifacts
from collapse.store.layout import generation_dir
from collapse.store.lease import LEASE, RunLease
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage
from tests.helpers import make_config, own_stderr

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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
@pytest.mark.faults
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
        err = own_stderr(capsys)
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
@pytest.mark.slow
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
    err = own_stderr(capsys)
    assert code == 2 and err.startswith("collapse: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not runs.exists()


# --- corrupted artifacts --------------------------------------------------------------------
def same(records: list[dict], others: list[dict]) -> bool:
    """Equal but for when they ran and how long it took."""
    clock = ("timings", "committed_at")
    strip = [{k: v for k, v in r.items() if k not in clock} for r in records + others]
    return strip[: len(records)] == strip[len(records) :]


def test_a_broken_artifact_is_found_at_resume_and_its_generation_recomputed(tmp_path, capsys):
    from tests.helpers import run_in_process

    config = make_config(str(tmp_path), generations=3, model={"family": "kde"})
    original = run_in_process(config)
    run = tmp_path / "t"
    gen0 = {p: p.read_bytes() for p in (run / "gen-0000").rglob("*") if p.is_file()}

    shard = run / original[1]["samples"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:-20])  # truncated
    assert same(run_in_process(config), original[1:])  # recomputed, the same bytes again
    err = capsys.readouterr().err
    assert f"{shard} is truncated" in err and "generation 1 is recomputed" in err

    model = run / original[2]["model"][0]["path"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    model.write_bytes(bytes(data))
    assert same(run_in_process(config), original[2:])
    assert f"{model} does not match its committed checksum" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (run / "gen-0000").rglob("*") if p.is_file()} == gen0


def one_flow_generation(tmp_path, hidden: int, **train):
    """One rectified-flow generation on Ray Train, checkpointed, with half-CPU workers."""
    return make_config(
        str(tmp_path),
        generations=1,
        model={"family": "rectified_flow", "net": {"hidden": hidden, "depth": 2}},
        train={"cpus_per_worker": 0.5, "batch_size": 32, **train},
        sample={"steps": 2},
    )


@pytest.mark.ray_train
def test_a_deleted_checkpoint_is_found_at_resume_and_training_restarts(
    ray_cluster, tmp_path, capsys
):
    config = one_flow_generation(
        tmp_path, 16, workers=1, steps=10, checkpoint_every=5, keep_checkpoints=1
    )
    first = run_chain(config).records
    store = RunStore(str(tmp_path / "t"))
    store.truncate(0)  # generation 0 is in flight again, with its checkpoints (kept: 1)
    snapshot = tmp_path / "t" / "gen-0000" / "train" / "checkpoint_manager_snapshot.json"
    latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]["checkpoint_dir_name"]
    checkpoint = snapshot.parent / latest
    (checkpoint / "state.pt").unlink()
    (record,) = run_chain(config).records
    err = capsys.readouterr().err
    assert f"checkpoint {checkpoint} is missing" in err
    assert "generation 0 trains again from step 0" in err
    assert record["generation"] == 0 and record["train"]["resumed_from"] == 0
    assert record["train"]["step"] == first[0]["train"]["step"]


# --- a training worker dies ---------------------------------------------------------------
@pytest.mark.ray_train
@pytest.mark.faults
def test_a_killed_train_worker_resumes_from_its_last_checkpoint(ray_cluster, tmp_path):
    import threading

    import psutil

    config = one_flow_generation(
        tmp_path, 32, workers=2, steps=60, checkpoint_every=10, max_failures=2
    )
    snapshot = tmp_path / "t" / "gen-0000" / "train" / "checkpoint_manager_snapshot.json"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.time() + 300
        while not snapshot.exists() and time.time() < deadline:
            time.sleep(0.05)
        # Ray names a worker process after its actor ("ray::RayTrainWorker...")
        workers = [
            p
            for p in psutil.process_iter(["pid", "cmdline"])
            if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])
        ]
        if workers:
            workers[0].kill()  # SIGKILL
            killed.append(workers[0].pid)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    (record,) = run_chain(config).records
    killer.join()
    assert killed, "no Ray Train worker was found to kill"
    assert record["train"]["step"] == 60
    assert 0 < record["train"]["resumed_from"] < 60  # continued from a checkpoint


# --- the driver dies ------------------------------------------------------------------------
PHASES = ("train", "sample", "evaluate", "commit")


def _phase_reached(run: Path, generation: int, phase: str) -> bool:
    """What a run directory shows of a generation's progress."""
    folder = run / generation_dir(generation)
    if phase == "train":
        committed = RunStore(str(run)).committed() if (run / "manifest.json").exists() else []
        return (run / LEASE).exists() and len(committed) >= generation
    marker = {"sample": "model/params.npz", "evaluate": "samples", "commit": "metrics.json"}
    return (folder / marker[phase]).exists()


@pytest.mark.subprocess
@pytest.mark.faults
def test_the_driver_killed_at_ten_seeded_points_loses_and_duplicates_nothing(cli_env, tmp_path):
    rng = np.random.default_rng(11)
    points = sorted(
        rng.choice(5 * len(PHASES), size=10, replace=False).tolist()
    )  # (generation, phase) in the order a chain reaches them
    runs = tmp_path / "runs"
    config = slow_chain(tmp_path, "killed")
    command = [COLLAPSE, "run", str(config), "--storage", str(runs), "--quiet"]
    run = runs / "killed"
    hit = []
    for point in points:
        generation, phase = divmod(point, len(PHASES))
        driver = subprocess.Popen(
            command, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 120
        while driver.poll() is None and time.time() < deadline:
            if _phase_reached(run, generation, PHASES[phase]):
                time.sleep(float(rng.uniform(0, 0.2)))
                driver.send_signal(signal.SIGKILL)
                hit.append((generation, PHASES[phase]))
                break
            time.sleep(0.005)
        driver.wait()
    assert len(hit) >= 8, hit  # a point may be passed before the driver looks (then it finished)
    assert {p for _, p in hit} == set(PHASES)
    finished = subprocess.run(command, env=cli_env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr

    store = RunStore(str(run))
    records = store.committed()
    assert [r["generation"] for r in records] == list(range(5))  # each once, in order
    for record in records:
        for artifact in integrity_artifacts(record):
            store.read_artifact(artifact)  # whole, as committed
    reference = slow_chain(tmp_path, "uninterrupted")
    assert main(["run", str(reference), "--storage", str(runs), "--quiet"]) == 0
    expected = RunStore(str(runs / "uninterrupted")).committed()
    assert [r["metrics"] for r in records] == [r["metrics"] for r in expected]
    assert [r["samples"] for r in records] == [r["samples"] for r in expected]


# --- the storage goes away --------------------------------------------------------------------
@pytest.fixture
def own_s3(monkeypatch):
    """An S3 server of this test's own, which it may stop and start again (same port, same
    buckets: moto keeps its state in the process)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)]
    servers[0].start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "fault-key-id",
        "AWS_SECRET_ACCESS_KEY": "fault-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="faults")

    def stop() -> None:
        servers[-1].stop()

    def start() -> None:
        servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
        servers[-1].start()

    yield stop, start
    servers[-1].stop()


@pytest.mark.faults
def test_an_s3_outage_is_retried_through_or_fails_clearly_and_resumes(own_s3, monkeypatch):
    import threading

    import collapse.store.storage as storage
    from tests.helpers import run_in_process

    stop, start = own_s3
    config = make_config("s3://faults/runs", generations=30)
    store = RunStore("s3://faults/runs/t")

    def outage(seconds: float | None) -> None:
        """From the first commit on, for `seconds` (None: until the test restarts it)."""
        deadline = time.time() + 60
        while not store.storage.exists("manifest.json") and time.time() < deadline:
            time.sleep(0.02)
        stop()
        if seconds is not None:
            time.sleep(seconds)
            start()

    # a short outage: the writes wait it out and the chain completes
    monkeypatch.setattr(storage, "RETRY_DELAYS_S", (0.5, 1.0, 2.0, 4.0))
    blip = threading.Thread(target=outage, args=(1.5,))
    blip.start()
    records = run_in_process(config)
    blip.join()
    assert [r["generation"] for r in records] == list(range(30))

    # an outage longer than the retries: one clear line, nothing half committed, then resume
    config = make_config("s3://faults/runs", generations=30, name="long")
    store = RunStore("s3://faults/runs/long")
    monkeypatch.setattr(storage, "RETRY_DELAYS_S", (0.1, 0.2))
    down = threading.Thread(target=outage, args=(None,))
    down.start()
    with pytest.raises(UserError, match=r"failed after 3 attempts.*rerun to resume"):
        run_in_process(config)
    down.join()
    start()
    kept = RunStore("s3://faults/runs/long").committed()
    assert 1 <= len(kept) < 30
    for record in kept:
        for artifact in integrity_artifacts(record):
            store.read_artifact(artifact)
    resumed = run_in_process(config)
    assert [r["generation"] for r in resumed] == list(range(len(kept), 30))
