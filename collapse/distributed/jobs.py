"""Chains and sweeps as Ray Jobs on a remote cluster: submit, list, status, logs, stop.

`collapse submit` checks the config on the laptop first (a typo fails here, not after a queue
wait), writes it resolved (overrides applied, a sweep's base inline) into a small working dir
with the `ray_jobs/` entrypoints, and ships that plus this package's source (`py_modules`), so
the job runs exactly the submitted version of both. The cluster's nodes provide the
dependencies (cluster/ installs them).

Ray 2.60 turns token authentication on by default. The token is read from RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH or Ray's default file (~/.ray/auth_token) and sent as a request header
only: it is never printed, never put in a runtime env (Ray logs those) and never written to a
run. Storage credentials are not forwarded either: the cluster reaches storage with its own
role (cluster/README.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.job_submission import JobStatus, JobSubmissionClient

from collapse.errors import UserError

TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
_PACKAGE = Path(__file__).resolve().parents[1]  # collapse/, which a job ships as a py_module
_ENTRYPOINTS = _PACKAGE.parent / "ray_jobs"


def auth_headers() -> dict[str, str]:
    """The Authorization header for Ray's token auth, if a token is configured."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
        try:
            token = Path(path).read_text().strip()
        except OSError:
            token = ""
    return {"Authorization": f"Bearer {token}"} if token else {}


def client(address: str) -> JobSubmissionClient:
    """A client of exactly `address`: Ray's SDK would otherwise prefer RAY_API_SERVER_ADDRESS
    or RAY_ADDRESS from the environment over the address it is given."""
    hidden = {
        k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if k in os.environ
    }
    try:
        return JobSubmissionClient(address, headers=auth_headers())
    except Exception as err:  # noqa: BLE001 - Ray raises bare exceptions for these
        raise _user_error(address, err) from None
    finally:
        os.environ.update(hidden)


def _user_error(address: str, err: Exception) -> UserError:
    text = str(err)
    if any(code in text for code in ("401", "403", "Unauthorized", "Forbidden", "uthentication")):
        return UserError(
            f"Ray at {address} refused the request (token authentication): set RAY_AUTH_TOKEN "
            "or RAY_AUTH_TOKEN_PATH to the cluster's token (ray get-auth-token)"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return UserError(f"Ray's job server at {address}: {first[:300]}")


@contextmanager
def _calls(address: str) -> Iterator[None]:
    """Ray's SDK errors (network, auth, unknown job) as one-line user errors."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _user_error(address, err) from None


def submit(address: str, kind: str, config_yaml: str, name: str) -> str:
    """Submit a resolved chain or sweep config; returns the job's submission id."""
    entry = {"run": "run_chain.py", "sweep": "run_sweep.py"}[kind]
    job_id = f"collapse-{kind}-{name}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="collapse-submit-") as staging:
        shutil.copytree(_ENTRYPOINTS, Path(staging) / "ray_jobs", ignore=_no_caches)
        (Path(staging) / "config.yaml").write_text(config_yaml)
        command = f"python ray_jobs/{entry} --config config.yaml"
        runtime_env = {
            "working_dir": staging,
            "py_modules": [str(_PACKAGE)],
        }
        jobs = client(address)
        with _calls(address):
            return jobs.submit_job(
                entrypoint=command,
                submission_id=job_id,
                runtime_env=runtime_env,
                metadata={"collapse": kind, "name": name},
            )


def _no_caches(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


def wait(
    address: str,
    job_id: str,
    on_logs: Callable[[str], None],
    poll_s: float = 1.0,
) -> JobStatus:
    """Follow a job to its end, handing new log text to `on_logs` as it comes."""
    jobs = client(address)
    shown = 0
    while True:
        with _calls(address):
            status = jobs.get_job_status(job_id)
            logs = jobs.get_job_logs(job_id)
        if len(logs) > shown:
            on_logs(logs[shown:])
            shown = len(logs)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)


def list_jobs(address: str) -> list[dict[str, Any]]:
    jobs = client(address)
    with _calls(address):
        infos = jobs.list_jobs()
    return [
        {
            "job": info.submission_id or info.job_id,
            "status": str(info.status.value if hasattr(info.status, "value") else info.status),
            "kind": (info.metadata or {}).get("collapse", ""),
            "name": (info.metadata or {}).get("name", ""),
            "started": _time(info.start_time),
            "entrypoint": info.entrypoint,
        }
        for info in sorted(infos, key=lambda i: i.start_time or 0)
    ]


def _time(ms: int | None) -> str:
    return "" if not ms else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def status(address: str, job_id: str) -> dict[str, Any]:
    jobs = client(address)
    with _calls(address):
        info = jobs.get_job_info(job_id)
    return {
        "job": job_id,
        "status": info.status.value,
        "message": info.message or "",
        "started": _time(info.start_time),
        "ended": _time(info.end_time),
    }


def logs(address: str, job_id: str) -> str:
    jobs = client(address)
    with _calls(address):
        return jobs.get_job_logs(job_id)


def stop(address: str, job_id: str) -> bool:
    jobs = client(address)
    with _calls(address):
        return jobs.stop_job(job_id)
