"""`collapse submit` and `collapse jobs` against a real Ray head started on loopback with
token authentication: a chain submitted and waited for, its logs, a long one stopped, and the
token never shown or stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collapse.store.run_store import RunStore
from tests.ray_head import start_head

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.subprocess  # a Ray head of its own and `collapse` processes


@pytest.fixture(scope="module")
def head():
    head = start_head()
    yield head
    head.stop()


def collapse(env, *args, timeout=300):
    return subprocess.run(
        [str(Path(sys.executable).parent / "collapse"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(head):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(RAY_AUTH_TOKEN=head.token, RAY_API_SERVER_ADDRESS=head.address)
    env["RAY_AUTH_TOKEN_PATH"] = "/nonexistent"  # only the variable above holds the token
    return env


def test_submit_wait_runs_the_chain_on_the_cluster(head, env, tmp_path):
    storage = tmp_path / "runs"
    done = collapse(
        env,
        "submit",
        "--wait",
        "run",
        "configs/quickstart.yaml",
        "--storage",
        str(storage),
        "--set",
        "generations=2",
        "--name",
        "remote",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "SUCCEEDED" in done.stdout
    job_id = done.stdout.split(" as job ")[1].split()[0]
    assert [r["generation"] for r in RunStore(str(storage / "remote")).committed()] == [0, 1]

    logs = collapse(env, "jobs", "logs", job_id)
    assert logs.returncode == 0 and "done: generations 0-1 committed" in logs.stdout
    status = collapse(env, "jobs", "status", job_id)
    assert "status: SUCCEEDED" in status.stdout
    listed = collapse(env, "jobs", "list")
    assert job_id in listed.stdout and "remote" in listed.stdout

    # the token is in no output and in no file of the run
    for result in (done, logs, status, listed):
        assert head.token not in result.stdout + result.stderr
    for path in storage.rglob("*"):
        if path.is_file():
            assert head.token.encode() not in path.read_bytes(), path
    # nor in any log of the cluster: the job's driver, its workers, Ray's own components
    logs_dir = Path(head.temp_dir) / "session_latest" / "logs"
    assert any(logs_dir.rglob("job-driver-*.log"))
    for path in logs_dir.rglob("*"):
        if path.is_file():
            assert head.token.encode() not in path.read_bytes(), path


def test_a_long_job_is_stopped(head, env, tmp_path):
    storage = tmp_path / "runs"
    submitted = collapse(
        env,
        "submit",
        "run",
        "configs/gaussian_collapse.yaml",
        "--storage",
        str(storage),
        "--name",
        "long",
        "--set",
        "generations=100000",
        "--set",
        "data.n_real=1000",
        "--set",
        "data.n_train=1000",
        "--set",
        "data.n_eval=1000",
    )
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-2000:]
    job_id = submitted.stdout.split(" as job ")[1].split()[0]
    manifest = storage / "long" / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not manifest.exists():
        time.sleep(0.5)
    assert manifest.exists(), collapse(env, "jobs", "logs", job_id).stdout[-3000:]
    stopped = collapse(env, "jobs", "stop", job_id)
    assert stopped.returncode == 0 and "stop requested" in stopped.stdout
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline and "STOPPED" not in status:
        status = collapse(env, "jobs", "status", job_id).stdout
        time.sleep(0.5)
    assert "status: STOPPED" in status


def test_without_the_token_the_cluster_refuses_in_one_line(head, env):
    del env["RAY_AUTH_TOKEN"]
    refused = collapse(env, "jobs", "list")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "RAY_AUTH_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_bad_submissions_fail_before_reaching_the_cluster(head, env, tmp_path):
    relative = collapse(env, "submit", "run", "configs/quickstart.yaml", "--storage", "runs")
    assert relative.returncode == 2 and "s3://" in relative.stderr
    typo = collapse(env, "submit", "run", "configs/quickstart.yaml", "--set", "data.n_trian=5")
    assert typo.returncode == 2 and "data.n_trian" in typo.stderr
    unreachable = collapse(env, "jobs", "list", "--address", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "127.0.0.1:9" in unreachable.stderr


def test_a_sweep_is_submitted_with_its_base_inline(head, env, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    (tmp_path / "base.yaml").write_text(
        "generations: 2\n"
        "data: {real: 'toy:gaussian', dim: 2, n_real: 300, n_train: 100, n_eval: 200}\n"
        "model: {family: gaussian}\neval: {metrics: [w2]}\n"
    )
    storage = tmp_path / "sweeps"
    sweep.write_text(f"name: js\nstorage: {storage}\nbase: base.yaml\nspace:\n  seed: [0, 1]\n")
    done = collapse(env, "submit", "--wait", "sweep", str(sweep))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 trials, 0 failed" in done.stdout and "SUCCEEDED" in done.stdout
    for trial in ("t000-seed-0", "t001-seed-1"):
        assert len(RunStore(str(storage / "js" / "trials" / trial)).committed()) == 2
