"""The data plane on the real local Ray: planned training sets streamed into a 2-worker Ray
Train job, and distributed sampling that does not depend on how it is spread."""

import tempfile
from collections import Counter

import numpy as np
import pytest

from collapse.config import validate
from collapse.data.dataset import open_dataset
from collapse.data.mix import plan_mix
from collapse.data.shards import table_to_images
from collapse.data.space import DataSpace
from collapse.families import gaussian
from collapse.prepare import prepare
from collapse.sampling import sample_locally
from collapse.storage import RunStore, Storage


def _count_rows_per_epoch(config):
    """Ray Train loop: every worker reads its shard twice; rank 0 reports what all of them saw."""
    import torch.distributed as dist
    from ray import train

    shard = train.get_dataset_shard("train")
    seen = []
    for _epoch in range(2):
        rows = []
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"]):
            assert batch["x"].shape[1:] == tuple(config["x_shape"])
            rows += list(zip(batch["generation"].tolist(), batch["id"].tolist(), strict=True))
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, rows)
        seen.append([len(r) for r in gathered] + [r for part in gathered for r in part])
    # Train V2 keeps reported metrics only together with a checkpoint.
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = train.Checkpoint.from_directory(tmp) if dist.get_rank() == 0 else None
        train.report({"epochs": seen}, checkpoint=checkpoint)


def _run_trainer(ds, tmp_path, x_shape, name):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        _count_rows_per_epoch,
        train_loop_config={"batch_size": 32, "x_shape": list(x_shape)},
        # Half a CPU each leaves one of the test cluster's two CPUs to Ray Data's reads.
        scaling_config=ScalingConfig(
            num_workers=2, use_gpu=False, resources_per_worker={"CPU": 0.5}
        ),
        datasets={"train": ds},
        run_config=RunConfig(storage_path=str(tmp_path / "train"), name=name),
    )
    return trainer.fit().metrics["epochs"]


@pytest.fixture
def gaussian_samples(tmp_path):
    """A real pool of 3 shards and two generations of samples in 4 shards each."""
    pool = prepare("toy:gaussian", str(tmp_path / "pool"), limit=200, dim=3, rows_per_shard=70)
    store = RunStore(str(tmp_path / "run"))
    space = DataSpace("vector", (3,))
    params = {"mean": np.zeros(3), "var": np.ones(3)}
    samples = {
        g: (store.storage, sample_locally(store, space, gaussian, params, 0, g, 100, 25))
        for g in (0, 1)
    }
    return (Storage(pool.uri), pool.index["shards"]), samples, space


def test_workers_see_exactly_the_planned_rows_once_per_epoch(
    ray_cluster, tmp_path, gaussian_samples
):
    from collapse.distributed.datasets import training_dataset

    real, samples, space = gaussian_samples
    plan = plan_mix("accumulate", 2, 100, 0.0, 200, [100, 100])
    ds = training_dataset(plan, real, samples, space, seed=1)
    epochs = _run_trainer(ds, tmp_path, (3,), "count-accumulate")
    expected = _planned_rows(plan)
    assert Counter(g for g, _ in expected) == Counter({-1: 100, 0: 100, 1: 100})
    for epoch in epochs:
        per_worker, rows = epoch[:2], [tuple(r) for r in epoch[2:]]
        assert per_worker == [150, 150]
        assert Counter(rows) == expected, "each planned row exactly once per epoch"


def test_fresh_rows_are_selected_across_shard_boundaries(ray_cluster, tmp_path, gaussian_samples):
    from collapse.distributed.datasets import training_dataset

    real, _, space = gaussian_samples
    plan = plan_mix("fresh_data", 4, 100, 0.3, 200, [100] * 4)  # real rows wrap: 190..200, 0..20
    store = RunStore(str(tmp_path / "run4"))
    params = {"mean": np.zeros(3), "var": np.ones(3)}
    samples = {3: (store.storage, sample_locally(store, space, gaussian, params, 0, 3, 100, 30))}
    rows = training_dataset(plan, real, samples, space, seed=2).take_all()
    got = Counter((int(r["generation"]), int(r["id"])) for r in rows)
    assert got == _planned_rows(plan)
    assert [r["id"] for r in rows] != sorted(r["id"] for r in rows), "rows are shuffled"


def _planned_rows(plan):
    expected = Counter()
    for part in plan:
        g = -1 if part.generation is None else part.generation
        expected.update((g, i) for a, b in part.rows for i in range(a, b))
    return expected


def test_image_rows_reach_workers_as_chw_bytes(ray_cluster, tmp_path):
    from collapse.distributed.datasets import training_dataset

    pool = prepare("sklearn:digits", str(tmp_path / "digits"), limit=64, rows_per_shard=20)
    plan = plan_mix("fully_synthetic", 0, 64, 0.0, 64, [])
    space = DataSpace.of_index(pool.index)
    ds = training_dataset(plan, (Storage(pool.uri), pool.index["shards"]), {}, space, seed=0)
    batch = next(iter(ds.iter_batches(batch_size=64, batch_format="numpy")))
    assert batch["x"].shape == (64, 1, 8, 8) and batch["x"].dtype == np.uint8  # CHW bytes
    images = table_to_images(pool.read_rows([(0, 64)])).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(batch["x"][np.argsort(batch["id"])], images)
    assert sorted(batch["id"].tolist()) == list(range(64))
    np.testing.assert_array_equal(batch["generation"], np.full(64, -1))


def test_distributed_sampling_matches_in_process_sampling(ray_cluster, tmp_path):
    from collapse.distributed.sampling import sample_with_ray_data

    space = DataSpace("vector", (4,))
    params = {"mean": np.arange(4.0), "var": np.full(4, 2.0)}
    reference_store = RunStore(str(tmp_path / "reference"))
    reference = sample_locally(reference_store, space, gaussian, params, 7, 3, 1000, 1000)
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
        shards, grid = sample_with_ray_data(config, store.uri, space, model, 3)
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
