"""A real Ray head on loopback, started with `ray start --head --block` in its own process group,
its own temp dir and free ports, with token authentication on; stopped (group and all) after."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.conftest import free_port


@dataclass
class RayHead:
    address: str  # the job server, http://127.0.0.1:PORT
    token: str
    temp_dir: str
    process: subprocess.Popen

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        # anything the head spawned outside its group (workers, job drivers) goes too
        for proc in psutil.process_iter(["cmdline"]):
            if any(self.temp_dir in part for part in proc.info["cmdline"] or []):
                proc.kill()


def start_head(num_cpus: int = 2) -> RayHead:
    token = secrets.token_hex(16)
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: socket paths are limited
    dashboard = free_port()
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard,
        "--ray-client-server-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--metrics-export-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
    }
    low = 10000 + (free_port() % 20000)  # below the ephemeral range free_port draws from
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=true",
        f"--min-worker-port={low}",
        f"--max-worker-port={low + 200}",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    # job entrypoints run `python`: this environment's, as on a cluster set up for collapse
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(Path(temp_dir) / "ray-start.log", "wb")  # noqa: SIM115 - lives with the head
    process = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )
    head = RayHead(f"http://127.0.0.1:{dashboard}", token, temp_dir, process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (Path(temp_dir) / "ray-start.log").read_text()[-2000:]
            raise RuntimeError(f"ray start exited with {process.returncode}: {tail}")
        try:
            request = urllib.request.Request(
                f"{head.address}/api/version", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=2):
                return head
        except OSError:
            time.sleep(0.5)
    head.stop()
    raise RuntimeError("the Ray head did not come up in 90 s")
