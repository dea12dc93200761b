"""Run files that people and tools edit or damage: the manifest, config.yaml, the lease,
folders beside the generations, YAML bombs, a failed first run, and storage that fails (full,
read-only). Each is one line and exit 2, deleting nothing a committed generation needs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from collapse.cli import main
from collapse.config import dump_yaml
from collapse.engine import ChainEngine, LocalBackend
from collapse.engine.run_opening import create_or_resume
from collapse.errors import UserError
from collapse.store.lease import LEASE, RunLease
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage
from tests.helpers import make_config, own_stderr, run_in_process


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def one_line_error(capsys, code: int) -> str:
    err = own_stderr(capsys)
    assert code == 2 and err.startswith("collapse: error: ") and err.count("\n") == 1, err
    return err


def six_config(storage: Path):
    return make_config(
        str(storage),
        name="six",
        generations=6,
        data={"real": "toy:mog8", "n_real": 300, "n_train": 300, "n_eval": 300},
        model={"family": "gmm", "components": 4},
        eval={"metrics": ["w2"]},
    )


@pytest.fixture
def six(tmp_path) -> tuple[Path, Path]:
    """A GMM run of 6 generations with 3 committed, and its config file."""
    config = six_config(tmp_path / "runs")
    create_or_resume(config)
    worker = ChainEngine(config, LocalBackend())
    for generation in range(3):
        worker.run_generation(generation)
    path = tmp_path / "six.yaml"
    path.write_text(dump_yaml(config))
    return path, tmp_path / "runs" / "six"


# --- the manifest -------------------------------------------------------------------------
def _edit_manifest(run: Path, edit) -> None:
    path = run / "manifest.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


MANIFEST_FAULTS = {
    "a record removed from the middle": (
        lambda d: {**d, "generations": [d["generations"][0], d["generations"][2]]},
        "record 1 is generation 2",
    ),
    "no generations": (lambda d: {"format": 1}, "'generations' must be a list"),
    "a JSON list": (lambda d: d["generations"], "it is a JSON list, not an object"),
    "a duplicated record": (
        lambda d: {**d, "generations": [*d["generations"], d["generations"][-1]]},
        "record 3 is generation 2",
    ),
    "a generation as a string": (
        lambda d: {**d, "generations": [{**d["generations"][0], "generation": "0"}]},
        "record 0: 'generation' must be int, got str",
    ),
    "an artifact outside the run": (
        lambda d: {
            **d,
            "generations": [
                {**d["generations"][0], "model": [{"path": "../x", "sha256": "0", "bytes": 1}]}
            ],
        },
        "record 0.model[0].path must be a path inside the run",
    ),
    "not JSON": (None, "manifest.json is corrupt"),
}


@pytest.mark.parametrize("fault", list(MANIFEST_FAULTS))
def test_a_broken_manifest_is_one_line_for_run_and_report_and_nothing_is_deleted(
    six, ray_cluster, capsys, fault
):
    config, run = six
    edit, message = MANIFEST_FAULTS[fault]
    if edit is None:
        (run / "manifest.json").write_text('{"format": 1, "generations": [')
    else:
        _edit_manifest(run, edit)
    before = files_of(run)
    err = one_line_error(capsys, main(["run", str(config), "--quiet"]))
    assert f"{run / 'manifest.json'}" in err and message in err
    assert "restore" in err  # what to do
    err = one_line_error(capsys, main(["report", str(run)]))
    assert message in err
    assert files_of(run) == before


# --- config.yaml --------------------------------------------------------------------------
def test_a_hand_edited_config_is_refused_and_a_cosmetic_edit_is_not(six, ray_cluster, capsys):
    _, run = six
    stored = (run / "config.yaml").read_text()
    assert (run / "config.sha256").is_file()
    (run / "config.yaml").write_text(stored.replace("seed: 0", "seed: 7"))
    before = files_of(run)
    err = one_line_error(capsys, main(["resume", str(run), "--quiet"]))
    assert "config.yaml was edited after the run was created" in err and "undo the edit" in err
    assert files_of(run) == before
    # comments and layout change nothing that was computed: resume goes on
    (run / "config.yaml").write_text("# my notes\n" + stored.replace("seed: 0", "seed:    0"))
    assert main(["resume", str(run), "--quiet"]) == 0
    assert len(RunStore(str(run)).committed()) == 6


def test_a_run_made_before_config_checksums_is_vouched_for_on_resume(six, ray_cluster):
    _, run = six
    (run / "config.sha256").unlink()
    assert main(["resume", str(run), "--quiet"]) == 0
    assert (run / "config.sha256").is_file()


# --- folders beside the generations ---------------------------------------------------------
def test_a_backup_folder_beside_the_generations_is_left_alone_by_repair(six, capsys):
    _, run = six
    shutil.copytree(run / "gen-0002", run / "gen-0002.bak")
    shard = run / RunStore(str(run)).committed()[1]["samples"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:-10])
    backup = files_of(run / "gen-0002.bak")
    records = run_in_process(six_config(run.parent))
    assert [r["generation"] for r in records] == [1, 2, 3, 4, 5]
    assert "generation 1 is recomputed" in capsys.readouterr().err
    assert files_of(run / "gen-0002.bak") == backup


# --- the lease ------------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"token": 5, "heartbeat": "x"}'])
def test_a_garbled_lease_stops_the_next_commit_with_one_line(six, garbage):
    _, run = six
    config = six_config(run.parent)
    storage = Storage(str(run))
    with RunLease(storage) as lease:
        worker = ChainEngine(config, LocalBackend(), lease.token)
        (run / LEASE).write_text(garbage)
        with pytest.raises(UserError, match="overwritten with something that is not a lease"):
            worker.run_generation(3)
    assert len(RunStore(str(run)).committed()) == 3
    with RunLease(storage) as taker:  # not a lease: the next driver takes it over
        assert json.loads((run / LEASE).read_text())["token"] == taker.token


# --- YAML -----------------------------------------------------------------------------------
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    lines, previous = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'], "a"
    for name in "bcdefghij":
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines))
    assert len(bomb.read_bytes()) < 500  # 9**10 values
    clock = time.perf_counter()
    err = one_line_error(capsys, main(["run", str(bomb)]))
    assert time.perf_counter() - clock < 5  # 12 s and 1.2 GB before the limits
    assert "expands to more than 100000 values" in err
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 50_000)
    assert "nested too deeply" in one_line_error(capsys, main(["run", str(tmp_path / "deep.yaml")]))
    (tmp_path / "big.yaml").write_text("# " + "x" * (1 << 20))
    assert "at most 1 MiB" in one_line_error(capsys, main(["run", str(tmp_path / "big.yaml")]))
    (tmp_path / "self.yaml").write_text("data: &d {real: *d}")
    assert "contains it" in one_line_error(capsys, main(["run", str(tmp_path / "self.yaml")]))


# --- a failed first run ---------------------------------------------------------------------
def test_a_failed_first_run_leaves_nothing_a_corrected_rerun_trips_on(
    tmp_path, ray_cluster, capsys
):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)

    def add(count: int, start: int) -> None:
        for i in range(start, start + count):
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{i:03d}.png")

    add(10, 0)
    config = tmp_path / "folder.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "folder",
                "storage": str(tmp_path / "runs"),
                "generations": 1,
                "data": {"real": f"folder:{images}", "n_real": 16, "n_train": 16, "n_eval": 8},
                "model": {"family": "gaussian"},
                "eval": {"metrics": ["w2"], "features": "raw"},
            }
        )
    )
    err = one_line_error(capsys, main(["run", str(config), "--quiet"]))
    assert "which has 10" in err
    assert not (tmp_path / "runs" / "folder" / "config.yaml").exists()
    add(20, 10)  # the user fixes the folder
    assert main(["run", str(config), "--quiet"]) == 0
    assert len(RunStore(str(tmp_path / "runs" / "folder")).committed()) == 1


# --- storage that fails ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("number", "cause", "advice"),
    [
        (errno.ENOSPC, "no space left on device", "free space"),
        (errno.EROFS, "read-only file system", "make it writable"),
        (errno.EACCES, "permission denied", "fix its permissions"),
    ],
)
def test_storage_errors_are_one_line_naming_the_path(tmp_path, number, cause, advice):
    class Failing:
        """The local file system, failing as a disk does, after the file was opened."""

        def __init__(self, fs):
            self._fs = fs

        def __getattr__(self, name):
            return getattr(self._fs, name)

        def open_output_stream(self, path):
            stream = self._fs.open_output_stream(path)
            stream.close()
            raise OSError(number, os.strerror(number))

    storage = Storage(str(tmp_path / "run"))
    storage.write_bytes("a/old.bin", b"old")
    storage.fs = Failing(storage.fs)
    for atomic in (False, True):
        with pytest.raises(UserError) as caught:
            storage.write_bytes("a/new.bin", b"new", atomic=atomic)
        message = str(caught.value)
        assert f"storage {tmp_path / 'run' / 'a' / 'new.bin'}: cannot write" in message
        assert cause in message and advice in message and "\n" not in message
    # the atomic write left no temporary file (the plain one is scratch a rerun overwrites)
    assert sorted(os.listdir(tmp_path / "run" / "a")) == ["new.bin", "old.bin"]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs): full and read-only as a disk is, even for root."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "1m"):
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.faults
def test_a_full_or_read_only_disk_mid_chain_is_one_line_and_the_chain_resumes(
    small_disk, tmp_path, ray_cluster, capsys
):
    config = tmp_path / "disk.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "r",
                "storage": str(small_disk),
                "generations": 8,
                "data": {"real": "toy:gaussian", "dim": 16, "n_real": 2000, "n_eval": 200},
                "model": {"family": "gaussian"},
                "sample": {"n": 2000},
                "eval": {"metrics": ["w2"]},
            }
        )
    )
    run = small_disk / "r"
    err = one_line_error(capsys, main(["run", str(config), "--quiet"]))
    assert f"storage {run}/" in err and "no space left on device" in err
    assert "rerun to resume" in err
    committed = RunStore(str(run)).committed()
    assert 0 < len(committed) < 8
    for record in committed:  # every committed generation is whole
        for artifact in record["samples"] + record["model"]:
            RunStore(str(run)).read_artifact(artifact)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    err = one_line_error(capsys, main(["run", str(config), "--quiet"]))
    assert f"storage {run}: {run} is on a read-only file system" in err
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert main(["run", str(config), "--quiet"]) == 0
    assert [r["generation"] for r in RunStore(str(run)).committed()] == list(range(8))
    assert not (run / LEASE).exists()


# --- a killed driver's workers --------------------------------------------------------------
RUN_ACTORS = (
    "RayChainWorker",
    "TrainController",
    "RayTrainWorker",
    "SplitCoordinator",
    "PlacementGroupCleaner",
)


def run_processes() -> dict[int, str]:
    """The Ray processes of a chain on this test's own cluster (started by this process, so
    other Ray clusters on the machine are not counted)."""
    import psutil

    found = {}
    for process in psutil.Process().children(recursive=True):
        try:
            title = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if title.startswith("ray::") and any(name in title for name in RUN_ACTORS):
            found[process.pid] = title
    return found


@pytest.mark.ray_train
@pytest.mark.subprocess
@pytest.mark.faults
def test_the_ray_workers_of_a_killed_driver_exit(cli_env, tmp_path):
    import signal
    import sys

    import ray

    from collapse.distributed.chain_actor import NAMESPACE, actor_name
    from collapse.distributed.orphans import stop_left_behind

    earlier = set(run_processes())  # actors of earlier tests that are still exiting
    config = tmp_path / "k.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "k",
                "storage": str(tmp_path / "runs"),
                "generations": 1,
                "data": {"real": "toy:mog8", "n_real": 256, "n_train": 256, "n_eval": 256},
                "model": {"family": "rectified_flow", "net": {"hidden": 16, "depth": 1}},
                "train": {
                    "workers": 2,
                    "cpus_per_worker": 0.5,
                    "batch_size": 64,
                    "steps": 5000,
                    "checkpoint_every": 5,
                },
                "eval": {"metrics": ["w2"]},
            }
        )
    )
    collapse = str(Path(sys.executable).parent / "collapse")
    driver = subprocess.Popen([collapse, "run", str(config), "--quiet"], env=cli_env)
    snapshot = tmp_path / "runs" / "k" / "gen-0000" / "train" / "checkpoint_manager_snapshot.json"
    deadline = time.time() + 120
    try:
        while not snapshot.exists() and time.time() < deadline and driver.poll() is None:
            time.sleep(0.1)
        assert snapshot.exists(), "training never checkpointed"
        alive = {pid: t for pid, t in run_processes().items() if pid not in earlier}
        assert {"RayChainWorker", "RayTrainWorker"} <= {
            name for title in alive.values() for name in RUN_ACTORS if name in title
        }, alive
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()

    # The chain's actor and the Ray Train workers it owns go with the driver (about a second
    # on an idle machine). Ray Train V2's detached PlacementGroupCleaner does not (it watches
    # its controller through the State API, which a cluster without a dashboard lacks), and a
    # controller has been seen to outlive its owner on a long-lived cluster: the next driver
    # of the run stops what is left, as `remote_worker` does before it starts its own actor.
    def left() -> dict[int, str]:
        return {pid: t for pid, t in run_processes().items() if pid not in earlier}

    def owned() -> dict[int, str]:
        return {p: t for p, t in left().items() if "RayChainWorker" in t or "RayTrainWorker" in t}

    deadline = time.time() + 90
    while owned() and time.time() < deadline:
        time.sleep(0.2)
    assert not owned(), owned()
    name = actor_name(str(tmp_path / "runs" / "k"))
    with pytest.raises(ValueError):
        ray.get_actor(name, namespace=NAMESPACE)
    stopped = stop_left_behind(name)
    assert "PlacementGroupCleaner" in stopped, stopped
    deadline = time.time() + 30
    while left() and time.time() < deadline:
        time.sleep(0.2)
    assert not left(), left()


def test_a_chain_actor_left_by_a_dead_driver_is_reaped_by_the_next(ray_cluster, tmp_path):
    import ray

    from collapse.distributed.chain_actor import NAMESPACE, actor_name
    from collapse.driver.launch import run_chain

    @ray.remote(num_cpus=0)
    class Orphan:
        def ping(self) -> bool:
            return True

    config = make_config(str(tmp_path), generations=1)
    name = actor_name(str(tmp_path / "t"))
    orphan = Orphan.options(name=name, namespace=NAMESPACE).remote()
    assert ray.get(orphan.ping.remote())
    assert [r["generation"] for r in run_chain(config).records] == [0]
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(orphan.ping.remote())


def test_a_checkpoint_that_cannot_be_written_is_named_however_ray_train_wrapped_it():
    """Ray Train reports a worker's failure as text inside its own errors."""
    from collapse.distributed.failures import storage_failure

    try:
        try:
            raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space")
        except OSError as worker:
            raise RuntimeError("Training failed: worker group error") from worker
    except RuntimeError as wrapped:
        assert storage_failure(wrapped) == ("no space left on device", "free space")
    assert storage_failure(RuntimeError("[Errno 30] Read-only file system: '/x'")) == (
        "read-only file system",
        "make it writable",
    )
    assert storage_failure(ValueError("something else")) is None


def test_what_a_dead_chain_actor_started_is_found_by_ownership_and_nothing_else():
    from collapse.distributed.orphans import left_behind

    def actor(aid, cls, port, owner_port, state="ALIVE", job="01", start=10, end=0, name=""):
        return {
            "ActorID": aid,
            "ActorClassName": cls,
            "Name": name,
            "State": state,
            "JobID": job,
            "StartTime": start,
            "EndTime": end,
            "Address": {"IPAddress": "10.0.0.1", "Port": port, "NodeID": "n"},
            "OwnerAddress": {"IPAddress": "10.0.0.1", "Port": owner_port, "NodeID": "n"},
            "Pid": port,
        }

    table = [
        actor("a", "RayChainWorker", 100, 1, "DEAD", start=1, end=50, name="chain-x"),
        actor("b", "TrainController", 200, 100, "DEAD", start=5, end=40),
        actor("c", "PlacementGroupCleaner", 300, 200, start=6),  # detached: outlives b
        actor("d", "RayTrainWorker", 400, 200, "ALIVE", start=7),
        actor("e", "Unrelated", 500, 100, start=60),  # port 100 reused after a ended
        actor("f", "OtherJob", 600, 100, job="02", start=8),
        actor("g", "RayChainWorker", 700, 1, start=1, name="chain-y"),
        actor("h", "TrainController", 800, 700, start=5),  # another run's
    ]
    found = sorted(a["ActorID"] for a in left_behind(table, "chain-x"))
    assert found == ["c", "d"]
    assert left_behind(table, "chain-z") == []


@pytest.mark.ray_train
@pytest.mark.faults
def test_a_chain_actor_stopped_mid_training_leaves_no_reserved_cpus_or_cleaner(
    ray_cluster, tmp_path
):
    import threading

    import ray

    from collapse.distributed.chain_actor import remote_worker
    from collapse.engine.run_opening import create_or_resume

    earlier = set(run_processes())
    config = make_config(
        str(tmp_path),
        generations=1,
        model={"family": "rectified_flow", "net": {"hidden": 16, "depth": 1}},
        train={
            "workers": 2,
            "cpus_per_worker": 0.5,
            "batch_size": 64,
            "steps": 5000,
            "checkpoint_every": 5,
        },
        eval={"metrics": ["w2"]},
    )
    store, _ = create_or_resume(config)
    snapshot = Path(store.uri) / "gen-0000" / "train" / "checkpoint_manager_snapshot.json"
    cpus = ray.available_resources().get("CPU", 0)  # earlier tests' actors may still hold some
    with remote_worker(config) as worker:  # left as an error or Ctrl-C in the driver would
        generations = worker.run_generations(0, 1)
        threading.Thread(target=lambda: list(generations), daemon=True).start()
        deadline = time.time() + 120
        while not snapshot.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert snapshot.exists(), "training never checkpointed"

    def left() -> dict[int, str]:
        return {pid: t for pid, t in run_processes().items() if pid not in earlier}

    deadline = time.time() + 30
    while (left() or ray.available_resources().get("CPU", 0) < cpus) and time.time() < deadline:
        time.sleep(0.2)
    assert not left(), left()
    assert ray.available_resources().get("CPU", 0) >= cpus
