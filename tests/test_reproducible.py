"""A trained generation is a function of (config, seed) (issue #19): the same config gives the
same model and sample bytes run after run, with 0, 1 or 2 Ray Train workers, and a
generation whose worker was killed, resumed from its checkpoint, gives the bytes of one that
was not killed."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from collapse.driver.launch import run_chain
from collapse.store.integrity import artifacts
from collapse.store.run_store import RunStore
from tests.helpers import make_config, run_in_process

FAMILIES = {
    "rectified_flow": {"family": "rectified_flow", "net": {"hidden": 32, "depth": 2}},
    "ddpm": {"family": "ddpm", "net": {"hidden": 32, "depth": 2}, "timesteps": 50},
}


def chain(tmp_path, name: str, family: str, generations: int, **train):
    """A small trained chain on 2-d data (mog8), with half-CPU Ray Train workers."""
    return make_config(
        str(tmp_path),
        name=name,
        generations=generations,
        data={"real": "toy:mog8", "n_real": 256, "n_train": 256, "n_eval": 128},
        model=FAMILIES[family],
        train={"cpus_per_worker": 0.5, "batch_size": 32, "lr": 2e-3, **train},
        sample={"steps": 4},
    )


def checksums(tmp_path, name: str) -> list[dict[str, str]]:
    """Every committed artifact but the picture, by path and sha256, generation by generation."""
    return [
        {a["path"]: a["sha256"] for a in artifacts(record) if not a["path"].endswith(".png")}
        for record in RunStore(str(tmp_path / name)).committed()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_trained_chain_in_local_mode_is_the_same_bytes_twice(ray_cluster, tmp_path, family):
    """Two generations: the second trains on the first's sample shards (local mode: Ray Train
    runs the loop in this process; the training set still goes through the object store)."""
    for name in ("first", "second"):
        run_in_process(chain(tmp_path, name, family, 2, workers=0, steps=30))
    first = checksums(tmp_path, "first")
    assert len(first) == 2 and first == checksums(tmp_path, "second")


def _kill_a_train_worker(snapshot, killed: list[int]) -> None:
    """SIGKILL a Ray Train worker of this test's own cluster once the generation has a
    checkpoint (never a process of another cluster on the machine)."""
    deadline = time.time() + 300
    while not snapshot.exists() and time.time() < deadline:
        time.sleep(0.02)
    workers = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:  # a zombie or a process that just exited has no command line to read
            if "RayTrainWorker" in " ".join(process.cmdline()):
                workers.append(process)
        except psutil.Error:
            continue
    if workers:
        workers[0].kill()
        killed.append(workers[0].pid)


@pytest.mark.ray_train
@pytest.mark.faults
@pytest.mark.parametrize(("family", "workers"), [("rectified_flow", 2), ("ddpm", 1)])
def test_a_killed_worker_resumes_to_the_bytes_of_an_uninterrupted_run(
    ray_cluster, tmp_path, family, workers
):
    """Rectified flow against the same config on 2 workers, not killed; DDPM on 1 worker
    against local mode (the same single rank, in this process)."""
    train = {"steps": 60, "checkpoint_every": 10, "max_failures": 2}
    if workers == 2:
        run_chain(chain(tmp_path, "whole", family, 1, workers=2, **train))
    else:
        run_in_process(chain(tmp_path, "whole", family, 1, workers=0, **train))
    snapshot = tmp_path / "killed" / "gen-0000" / "train" / "checkpoint_manager_snapshot.json"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_train_worker, args=(snapshot, killed))
    killer.start()
    (record,) = run_chain(chain(tmp_path, "killed", family, 1, workers=workers, **train)).records
    killer.join()
    assert killed, "no Ray Train worker was found to kill"
    assert 0 < record["train"]["resumed_from"] < 60, record["train"]  # from a checkpoint
    assert checksums(tmp_path, "killed") == checksums(tmp_path, "whole")
