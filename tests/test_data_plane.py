"""The data plane on the real local Ray: planned training sets fed to a 2-worker Ray Train job
in an order fixed by the seed, and distributed sampling that does not depend on how it is
spread."""

import itertools
import tempfile
from collections import Counter

import numpy as np
import pytest

from collapse.config import validate
from collapse.data.dataset import open_dataset
from collapse.data.feed.batches import Feed
from collapse.data.feed.chunks import plan_chunks, read_all
from collapse.data.feed.decode import Decode
from collapse.data.feed.order import span
from collapse.data.mix import expand, plan_mix
from collapse.data.prepare import prepare
from collapse.data.shards import table_to_images
from collapse.data.space import DataSpace
from collapse.engine.sampling import SampleJob, sample_in_process
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage


def sample_locally(store, space, params, seed, generation, n, batch_size):
    """A gaussian generation's samples drawn in this process (its params stored first)."""
    model = store.write_artifact(generation, "model/params.npz", _npz(params))
    job = SampleJob(
        store.uri, "gaussian", params, model, space, generation, n, batch_size, 0, seed, 1.0, False
    )
    return sample_in_process(job)[0]


@pytest.fixture
def gaussian_samples(tmp_path):
    """A real pool of 3 shards and two generations of samples in 4 shards each."""
    pool = prepare("toy:gaussian", str(tmp_path / "pool"), limit=200, dim=3, rows_per_shard=70)
    store = RunStore(str(tmp_path / "run"))
    space = DataSpace("vector", (3,))
    params = {"mean": np.zeros(3), "var": np.ones(3)}
    samples = {
        g: (store.storage, sample_locally(store, space, params, 0, g, 100, 25)) for g in (0, 1)
    }
    return (Storage(pool.uri), pool.index["shards"]), samples, space


def _planned_rows(plan):
    expected = Counter()
    for part in expand(plan):
        g = -1 if part.generation is None else part.generation
        expected.update((g, i) for a, b in part.rows for i in range(a, b))
    return expected


def _feed(plan, real, samples, space, seed, in_memory, window=7):
    parts = [
        (s.uri, shards, part.rows)
        for part in expand(plan)
        for s, shards in [real if part.source == "real" else samples[part.generation]]
    ]
    chunks, decode = plan_chunks(parts), Decode(space)
    rows = read_all(chunks, decode) if in_memory else None
    return Feed(seed, decode, chunks, rows, window=window)


def _epochs(feed, batch, world, epochs):
    """Each epoch's (generation, id) rows, rank after rank, from `epochs` epochs of steps."""
    epoch_rows = []
    for rank in range(world):
        start, end = span(feed.size, rank, world)
        n = end - start
        got = list(itertools.islice(feed.batches(batch, rank, world), -(-epochs * n // batch)))
        generation = np.concatenate([b["generation"] for b in got]).tolist()
        ids = np.concatenate([b["id"] for b in got]).tolist()
        rows = list(zip(generation, ids, strict=True))
        epoch_rows.append([rows[e * n : (e + 1) * n] for e in range(epochs)])
    return [[row for rank in epoch_rows for row in rank[e]] for e in range(epochs)]


@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "streamed"])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_each_planned_row_once_per_epoch_in_a_new_order_that_the_seed_fixes(
    tmp_path, gaussian_samples, in_memory, world
):
    real, samples, space = gaussian_samples
    plan = plan_mix("accumulate", 2, 100, 0.0, 200, [100, 100])  # 3 parts, 10 shards
    feed = _feed(plan, real, samples, space, 5, in_memory)
    epochs = _epochs(feed, 16, world, 3)
    for rows in epochs:
        assert Counter(rows) == _planned_rows(plan), "each planned row exactly once per epoch"
    assert epochs[0] != epochs[1] != epochs[2], "a new order every epoch"
    assert _epochs(_feed(plan, real, samples, space, 5, in_memory), 16, world, 3) == epochs
    assert _epochs(_feed(plan, real, samples, space, 6, in_memory), 16, world, 1)[0] != epochs[0]
    for rank in range(world):  # a resumed generation continues with the batches it would have had
        whole = list(itertools.islice(feed.batches(16, rank, world), 30))
        for step in (1, 7, 19, 23):
            resumed = itertools.islice(feed.batches(16, rank, world, step=step), 30 - step)
            for a, b in zip(whole[step:], resumed, strict=True):
                np.testing.assert_array_equal(a["id"], b["id"])
                np.testing.assert_array_equal(a["x"], b["x"])


def test_a_streamed_set_reads_its_shards_from_s3(s3_bucket):
    pool = prepare("toy:gaussian", f"s3://{s3_bucket}/pool", limit=90, dim=3, rows_per_shard=40)
    plan = plan_mix("fully_synthetic", 0, 90, 0.0, 90, [])
    real = (Storage(pool.uri), pool.index["shards"])
    feed = _feed(plan, real, {}, DataSpace("vector", (3,)), 0, in_memory=False, window=50)
    batch = next(feed.batches(90))
    assert sorted(batch["id"].tolist()) == list(range(90))
    expected = DataSpace("vector", (3,)).to_vectors(pool.read_all())
    np.testing.assert_array_equal(batch["x"][np.argsort(batch["id"])], expected)


def _count_rows_per_epoch(config):
    """Ray Train loop: every worker takes two epochs' steps of each set; rank 0 reports what
    all of them saw, epoch by epoch."""
    import torch.distributed as dist
    from ray import train

    rank, world = dist.get_rank(), dist.get_world_size()
    seen = []
    for dataset in config["sets"]:
        feed = dataset.open()
        n = span(feed.size, rank, world)[1] - span(feed.size, rank, world)[0]
        rows = []
        for batch in itertools.islice(feed.batches(32, rank, world), -(-2 * n // 32)):
            assert batch["x"].shape[1:] == (3,)
            rows += list(zip(batch["generation"].tolist(), batch["id"].tolist(), strict=True))
        gathered = [None] * world
        dist.all_gather_object(gathered, [rows[:n], rows[n : 2 * n]])
        seen.append(gathered)
    # Train V2 keeps reported metrics only together with a checkpoint.
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = train.Checkpoint.from_directory(tmp) if rank == 0 else None
        train.report({"sets": seen}, checkpoint=checkpoint)


@pytest.mark.ray_train
def test_two_train_workers_share_each_epoch_in_memory_and_streamed(
    ray_cluster, tmp_path, gaussian_samples
):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from collapse.distributed.training_set import training_dataset

    real, samples, space = gaussian_samples
    plan = plan_mix("accumulate", 2, 100, 0.0, 200, [100, 100])
    sets = [
        training_dataset(plan, real, samples, space, seed=1),
        training_dataset(plan, real, samples, space, seed=1, materialize_bytes=0),
    ]
    assert [s.in_memory for s in sets] == [True, False]
    trainer = TorchTrainer(
        _count_rows_per_epoch,
        train_loop_config={"sets": sets},
        scaling_config=ScalingConfig(
            num_workers=2, use_gpu=False, resources_per_worker={"CPU": 0.5}
        ),
        run_config=RunConfig(storage_path=str(tmp_path / "train"), name="count"),
    )
    for per_worker in trainer.fit().metrics["sets"]:
        assert [len(epochs[0]) for epochs in per_worker] == [150, 150]
        for e in range(2):
            rows = [tuple(r) for epochs in per_worker for r in epochs[e]]
            assert Counter(rows) == _planned_rows(plan), "each planned row exactly once per epoch"


def test_fresh_rows_are_selected_across_shard_boundaries(ray_cluster, tmp_path, gaussian_samples):
    from collapse.distributed.training_set import training_dataset

    real, _, space = gaussian_samples
    plan = plan_mix("fresh_data", 4, 100, 0.3, 200, [100] * 4)  # real rows wrap: 190..200, 0..20
    store = RunStore(str(tmp_path / "run4"))
    params = {"mean": np.zeros(3), "var": np.ones(3)}
    samples = {3: (store.storage, sample_locally(store, space, params, 0, 3, 100, 30))}
    feed = training_dataset(plan, real, samples, space, seed=2).open()
    (batch,) = itertools.islice(feed.batches(100), 1)
    got = Counter(zip(batch["generation"].tolist(), batch["id"].tolist(), strict=True))
    assert got == _planned_rows(plan)
    assert batch["id"].tolist() != sorted(batch["id"].tolist()), "rows are shuffled"
    with pytest.raises(ValueError, match=r"do not hold every id in \[100, 130\)"):
        plan_chunks(
            [(real[0].uri, real[1], [(100, 130)]), (store.uri, samples[3][1], [(100, 130)])]
        )


def test_image_rows_reach_workers_as_chw_bytes(ray_cluster, tmp_path):
    from collapse.distributed.training_set import training_dataset

    pool = prepare("sklearn:digits", str(tmp_path / "digits"), limit=64, rows_per_shard=20)
    plan = plan_mix("fully_synthetic", 0, 64, 0.0, 64, [])
    space = DataSpace.of_index(pool.index)
    for bound in (None, 0):  # held in memory, and streamed
        dataset = training_dataset(
            plan,
            (Storage(pool.uri), pool.index["shards"]),
            {},
            space,
            seed=0,
            **({} if bound is None else {"materialize_bytes": bound}),
        )
        batch = next(dataset.open().batches(64))
        assert batch["x"].shape == (64, 1, 8, 8) and batch["x"].dtype == np.uint8  # CHW bytes
        images = table_to_images(pool.read_rows([(0, 64)])).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(batch["x"][np.argsort(batch["id"])], images)
        assert sorted(batch["id"].tolist()) == list(range(64))
        np.testing.assert_array_equal(batch["generation"], np.full(64, -1))


@pytest.mark.slow
def test_distributed_sampling_matches_in_process_sampling(ray_cluster, tmp_path):
    from collapse.distributed.sampling_pool import sample_with_ray_data

    space = DataSpace("vector", (4,))
    params = {"mean": np.arange(4.0), "var": np.full(4, 2.0)}
    reference_store = RunStore(str(tmp_path / "reference"))
    reference = sample_locally(reference_store, space, params, 7, 3, 1000, 1000)
    expected = space.to_vectors(reference_store.storage and _read(reference_store, reference))

    store = RunStore(str(tmp_path / "run"))
    model = store.write_artifact(3, "model/params.npz", _npz(params))
    for workers, batch in ((1, 1000), (2, 96), (2, 333)):
        config = validate(
            {
                "seed": 7,
                "data": {"real": "toy:gaussian", "dim": 4, "n_train": 1000, "n_real": 1000},
                "model": {"family": "gaussian"},
                "sample": {"n": 1000, "workers": workers, "batch_size": batch},
            }
        )
        store.clear_generation(3)
        store.write_artifact(3, "model/params.npz", _npz(params))
        job = SampleJob.of(config, store.uri, space, params, model, 3)
        shards, grid = sample_with_ray_data(job)
        assert grid == []  # vectors draw no fixed-noise grid
        assert sum(s["rows"] for s in shards) == 1000
        assert len(shards) == -(-1000 // batch)
        np.testing.assert_array_equal(space.to_vectors(_read(store, shards)), expected)


def _read(store, shards):
    import pyarrow as pa

    from collapse.data.shards import from_parquet

    return pa.concat_tables([from_parquet(store.read_artifact(s)) for s in shards])


def _npz(params):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **params)
    return buffer.getvalue()


def test_prepared_dataset_is_what_the_chain_reads(tmp_path):
    ds = open_dataset(str(prepare("toy:mog8", str(tmp_path / "p"), limit=10).uri))
    assert ds.rows == 10 and ds.kind == "vector"
