"""Real parts for the whole suite: one local Ray cluster and one S3-compatible server (moto)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray with 2 CPUs, shared by every test that needs one; yields its address."""
    import logging

    import ray

    # Workers import test modules by name (training loops defined in tests), as pytest does.
    paths = os.pathsep.join([str(REPO / "tests"), str(REPO)])
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")  # bars flood captured logs
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": paths}},
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """moto in server mode on a free loopback port: a real HTTP S3 endpoint for boto3/pyarrow."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    yield env
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A fresh bucket on the test S3 server, with the AWS environment pointing at it."""
    import uuid

    import boto3

    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name


@pytest.fixture
def cli_env(ray_cluster, tmp_path):
    """Environment for `collapse` subprocesses: joins the test cluster instead of starting one."""
    env = dict(os.environ)
    env["RAY_ADDRESS"] = ray_cluster
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
