"""Checkpoint retention: a committed generation's Ray Train checkpoints go at commit (or stay
for the last `train.keep_checkpoints` generations), the in-flight generation's stay, and a
repair recomputes a generation that has none from step 0, to the same bytes."""

from __future__ import annotations

import pytest

from collapse.errors import UserError
from collapse.store import retention
from collapse.store.layout import generation_dir
from collapse.store.run_store import RunStore
from tests.helpers import make_config, run_in_process


def tree_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def fake_checkpoints(run, generations: int) -> None:
    for g in range(generations):
        state = run / generation_dir(g) / "train" / "checkpoint_0" / "state.pt"
        state.parent.mkdir(parents=True)
        state.write_bytes(b"x" * 1000)


def kept(run) -> list[int]:
    return [g for g in range(10) if (run / generation_dir(g) / "train").exists()]


@pytest.mark.parametrize(
    ("keep", "left", "next_commit"),
    [(0, [4], [4]), (1, [3, 4], [3]), (3, [1, 2, 3, 4], [1]), ("all", [0, 1, 2, 3, 4], [])],
)
def test_the_window_of_committed_generations_whose_checkpoints_stay(
    tmp_path, keep, left, next_commit
):
    run = tmp_path / "r"
    fake_checkpoints(run, 5)  # 0-3 committed long ago, with their checkpoints (keep was "all")
    store = RunStore(str(run))
    retention.prune_checkpoints(store, 3, keep)  # generation 3 commits; 4 is in flight
    assert kept(run) == left
    # the next commit walks back only to the first generation without checkpoints
    assert retention.prune_checkpoints(store, 4, keep) == next_commit


def test_a_crash_between_commit_and_prune_is_caught_up_at_the_next_commit(tmp_path):
    run = tmp_path / "r"
    fake_checkpoints(run, 3)
    store = RunStore(str(run))
    retention.prune_checkpoints(store, 0, 0)
    # generation 1 committed, then the driver died before pruning; generation 2 commits
    assert retention.prune_checkpoints(store, 2, 0) == [2, 1]
    assert kept(run) == []
    assert retention.prune_checkpoints(store, 0, 0) == []  # nothing left to find


@pytest.mark.parametrize("value", ["some", -1, 2.5, True])
def test_keep_checkpoints_is_a_count_or_all(tmp_path, value):
    assert make_config(str(tmp_path), train={"keep_checkpoints": "all"}).train.keep_checkpoints
    with pytest.raises(UserError, match="train.keep_checkpoints: a count of generations"):
        make_config(str(tmp_path), train={"keep_checkpoints": value})


@pytest.mark.ray_train
def test_a_generation_without_checkpoints_is_repaired_from_step_0_and_pruned_at_commit(
    ray_cluster, tmp_path, monkeypatch, capsys
):
    def config(workers):
        return make_config(
            str(tmp_path),
            generations=1,
            model={"family": "rectified_flow", "net": {"hidden": 16, "depth": 1}},
            train={"workers": workers, "cpus_per_worker": 0.5, "batch_size": 32, "steps": 10},
            sample={"steps": 2},
        )

    run, sizes = tmp_path / "t", []
    prune = retention.prune_checkpoints

    def measured(store, committed, keep):  # the generation's bytes at its commit, and after
        folder = run / generation_dir(committed)
        before = (tree_bytes(folder), tree_bytes(folder / "train"))
        pruned = prune(store, committed, keep)
        sizes.append((*before, tree_bytes(folder), tree_bytes(folder / "train")))
        return pruned

    monkeypatch.setattr(retention, "prune_checkpoints", measured)
    # Ray Train's local mode (train.workers 0) commits a generation without checkpoints ...
    (first,) = run_in_process(config(0))
    assert not (run / "gen-0000" / "train").exists()
    samples = run / first["samples"][0]["path"]
    samples.write_bytes(samples.read_bytes()[:-10])  # ... which breaks: the repair recomputes it
    # on a Ray Train worker (train.workers may change on resume), from step 0
    (again,) = run_in_process(config(1))
    assert "generation 0 is recomputed" in capsys.readouterr().err
    assert again["train"]["resumed_from"] == 0 and again["train"]["step"] == 10
    assert again["samples"] == first["samples"] and again["model"] == first["model"]
    committed, in_train, kept, kept_in_train = sizes[-1]
    assert in_train > 0 and kept_in_train == 0 and kept == committed - in_train
    print(f"\ngen-0000: {committed} bytes at commit ({in_train} in train/), {kept} kept")
