"""Rectified flow chains on Ray Train with 2 CPU workers: vectors, images, and resume."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from collapse.config import validate
from collapse.data.dataset import open_dataset
from collapse.data.mix import plan_mix
from collapse.data.space import DataSpace
from collapse.driver.launch import run_chain
from collapse.engine.run_opening import create_or_resume
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage

pytestmark = pytest.mark.ray_train  # every test here fits on Ray Train workers

TWO_WORKERS = {"workers": 2, "cpus_per_worker": 0.5, "batch_size": 64, "lr": 2e-3}


def rf_config(tmp_path, name, **sections):
    raw = {
        "name": name,
        "storage": str(tmp_path),
        "generations": 2,
        "data": {"real": "toy:mog8", "n_real": 256, "n_train": 256, "n_eval": 256},
        "model": {"family": "rectified_flow", "net": {"hidden": 64, "depth": 2}},
        "train": {**TWO_WORKERS, "steps": 40, "checkpoint_every": 20},
        "sample": {"steps": 8},
        "eval": {"metrics": ["w2", "mean_err", "var"]},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return validate(raw)


def test_rca_reflow_chain_trains_on_two_workers_and_stores_pairs(ray_cluster, tmp_path):
    config = rf_config(
        tmp_path,
        "rca",
        generations=3,
        data={"loop": "synthetic_augmentation", "real_fraction": 0.5},
        strategy={"name": "rca_reflow", "reverse": "sde", "sigma": 0.5, "refresh": 2},
    )
    outcome = run_chain(config)
    store = RunStore(outcome.uri)
    records = store.committed()
    assert [r["generation"] for r in records] == [0, 1, 2]
    assert [r["train"]["step"] for r in records] == [40, 40, 40]
    # generation 1 paired its 128 real rows by the reverse SDE of generation 0's model;
    # generation 2 reuses them (refresh: 2)
    assert "real_pairs" not in records[0]
    assert records[1]["real_pairs"]["made_at"] == 1 and records[1]["real_pairs"]["rows"] == [
        [0, 128]
    ]
    assert records[2]["real_pairs"] == records[1]["real_pairs"]
    pairs = pq.read_table(io.BytesIO(store.read_artifact(records[1]["real_pairs"]["shards"][0])))
    noise = np.stack(pairs.column("noise").to_numpy(zero_copy_only=False))
    assert pairs.column("source").to_pylist() == ["real"] * 128 and np.isfinite(noise).all()
    assert 0.3 < noise.var() < 3.0  # the model's noise partners, roughly standard
    for record in records:
        assert np.isfinite(list(record["metrics"].values())).all()
        table = pq.read_table(io.BytesIO(store.read_artifact(record["samples"][0])))
        assert "noise" in table.column_names  # (noise, sample) pairs for the next reflow
    # each generation's Ray Train run lives under the generation until it is committed; then
    # its checkpoints are pruned (train.keep_checkpoints: 0), the committed model stays
    assert "train" not in store.storage.list_dir("gen-0001")
    with np.load(io.BytesIO(store.read_artifact(records[1]["model"][0]))) as npz:
        assert "spec" in npz.files and any(k.startswith("w.") for k in npz.files)
    # generation 0 learned the ring: samples sit near radius 2, not at the noise's radius ~1.25
    samples = np.stack(table.column("x").to_numpy(zero_copy_only=False))
    assert 1.4 < np.median(np.linalg.norm(samples, axis=1)) < 2.6


def test_ocar_trains_on_pairs_made_per_batch_and_stores_none(ray_cluster, tmp_path):
    config = rf_config(
        tmp_path,
        "ocar",
        data={"loop": "synthetic_augmentation", "real_fraction": 0.5},
        strategy={"name": "ocar", "reverse_steps": 4},
    )
    records = RunStore(run_chain(config).uri).committed()
    assert [r["train"]["step"] for r in records] == [40, 40]
    assert all("real_pairs" not in r for r in records)
    store = RunStore(str(tmp_path / "ocar"))
    table = pq.read_table(io.BytesIO(store.read_artifact(records[1]["samples"][0])))
    assert "noise" not in table.column_names
    assert np.isfinite(list(records[1]["metrics"].values())).all()


def test_image_generation_on_a_tiny_unet(ray_cluster, tmp_path):
    config = rf_config(
        tmp_path,
        "digits",
        generations=1,
        data={"real": "sklearn:digits", "n_real": 128, "n_train": 128, "n_eval": 64},
        model={"family": "rectified_flow", "net": {"preset": "tiny"}},
        train={"steps": 6, "checkpoint_every": 3, "batch_size": 32},
        sample={"steps": 2},
    )
    outcome = run_chain(config)
    store = RunStore(outcome.uri)
    (record,) = store.committed()
    table = pq.read_table(io.BytesIO(store.read_artifact(record["samples"][0])))
    assert table.column("shape").to_pylist()[0] == [8, 8, 1]
    assert record["sample_rows"] == 128


def test_an_interrupted_generation_continues_from_its_checkpoint(ray_cluster, tmp_path):
    from collapse.distributed.train import train_generation
    from collapse.distributed.training_set import training_dataset

    config = rf_config(tmp_path, "resume", train={"steps": 20, "checkpoint_every": 10})
    store, _ = create_or_resume(config)
    pool = open_dataset(store.storage.uri_of("real/train"))
    space = DataSpace.of_index(pool.index)
    plan = plan_mix("fully_synthetic", 0, 256, 0.0, 256, [])
    real = (Storage(pool.uri), pool.index["shards"])

    def fit(steps):
        cfg = rf_config(tmp_path, "resume", train={"steps": steps, "checkpoint_every": 10})
        dataset = training_dataset(plan, real, {}, space, seed=0)
        return train_generation(cfg, store.storage, 0, dataset, space, None)

    first, report = fit(20)  # "dies" after its checkpoint at step 20 ...
    assert report["resumed_from"] == 0 and report["step"] == 20
    second, report = fit(30)  # ... and the restarted generation continues from step 20, not 0
    assert report["resumed_from"] == 20 and report["step"] == 30
    checkpoints = store.storage.list_dir("gen-0000/train")
    assert any(name.startswith("checkpoint") for name in checkpoints)
    assert set(first) == set(second)
    assert any(not np.array_equal(first[k], second[k]) for k in first)
