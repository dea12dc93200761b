"""An image chain end to end: evaluation as Ray work in digits-cnn space, samples.png, the
fixed-noise grid, the report's sheet and bars, and the offline Inception error."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from collapse.cli import main
from collapse.config import IMAGE_METRICS, validate
from collapse.data.shards import from_parquet
from collapse.data.space import DataSpace
from collapse.driver.launch import run_chain
from collapse.engine.sampling import SampleJob, sample_grid
from collapse.families.gaussian import FAMILY as gaussian
from collapse.metrics.inception import WEIGHTS_ENV
from collapse.store.run_store import RunStore
from tests.helpers import make_config, own_stderr, run_in_process


def digits_config(storage, name="digits", **eval_keys):
    return validate(
        {
            "name": name,
            "storage": str(storage),
            "generations": 2,
            "data": {"real": "sklearn:digits", "n_real": 128, "n_train": 128, "n_eval": 96},
            "model": {"family": "rectified_flow", "net": {"preset": "tiny"}},
            "train": {"workers": 0, "steps": 4, "batch_size": 32, "checkpoint_every": 4},
            "sample": {"steps": 2, "workers": 1, "batch_size": 64},  # grid drawn on the pool
            "eval": {"grid": 12, **eval_keys},
        }
    )


def _picture(path) -> np.ndarray:
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.std() > 10, f"{path} is blank"
    return image


@pytest.mark.slow
def test_image_chain_measures_in_digits_cnn_space_on_ray(ray_cluster, tmp_path):
    store = RunStore(run_chain(digits_config(tmp_path)).uri)
    records = store.committed()
    assert [r["generation"] for r in records] == [0, 1]
    for record in records:
        assert record["feature_extractor"] == "digits-cnn"
        assert list(record["metrics"]) == list(IMAGE_METRICS)
        assert np.isfinite(list(record["metrics"].values())).all()
        # samples.png: the 12-image fixed-noise grid, 4 x 3 tiles of 8x8 digits scaled up
        grid = _picture(store.storage.path(record["samples_png"]["path"]))
        assert grid.shape[0] >= 3 * 48 and grid.shape[1] >= 4 * 48
        (shard,) = record["grid"]
        assert shard["rows"] == 12 and "/grid/" in shard["path"]
    # the classifier is cached once per storage, the real features once per run
    assert (tmp_path / "_extractors" / "digits-cnn-r1-8x8x1.pt").is_file()
    cache = tmp_path / "digits" / "eval" / "real-digits-cnn.npy"
    assert np.load(cache).shape == (96, 128)
    second_samples = store.storage.path(records[1]["samples"][0]["path"])
    assert os.path.getmtime(cache) < os.path.getmtime(second_samples), "recomputed at gen 1"

    # the report: curves, the sheet (one row per generation) and the final bars of two runs
    vectors = make_config(str(tmp_path), name="vectors", generations=2)
    run_in_process(vectors)
    out = tmp_path / "plots"
    assert main(["report", store.uri, str(tmp_path / "vectors"), "--plots", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"fid.png", "coverage.png", "w2.png", "digits-samples.png", "final.png"} <= names
    assert "vectors-samples.png" not in names  # a vector run has no grid
    sheet = _picture(out / "digits-samples.png")
    assert sheet.shape[0] >= 2 * 48 and sheet.shape[1] >= 12 * 48
    _picture(out / "fid.png")
    _picture(out / "final.png")


def test_grid_noise_is_the_same_in_every_generation(tmp_path):
    space = DataSpace("vector", (3,))
    store = RunStore(str(tmp_path / "run"))
    first = {"mean": np.zeros(3), "var": np.ones(3)}
    second = {"mean": np.full(3, 2.0), "var": np.full(3, 4.0)}
    grids = []
    for generation, params in enumerate((first, second)):
        params = {k: v.astype(np.float64) for k, v in params.items()}
        model = store.write_artifact(generation, "model/params.npz", b"")  # unread here
        job = SampleJob(
            store.uri, "gaussian", params, model, space, generation, 0, 1, 6, 5, 1.0, False
        )
        shard = sample_grid(store, job, gaussian)
        grids.append(space.to_vectors(from_parquet(store.read_artifact(shard))))
    # x = mean + sd * z with one z for both generations
    np.testing.assert_allclose((grids[1] - 2.0) / 2.0, grids[0], rtol=1e-6)


def test_missing_inception_weights_exit_2_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: fid\ndata: {real: 'sklearn:digits', n_real: 64, n_train: 64, n_eval: 32}\n"
        "model: {family: rectified_flow, net: {preset: tiny}}\n"
        f"eval: {{features: inception, inception_weights: {tmp_path / 'missing.pt'}}}\n"
    )
    code = main(["run", str(config), "--storage", str(tmp_path / "runs")])
    err = own_stderr(capsys)
    assert code == 2 and err.count("\n") == 1
    assert "inception-2015-12-05.pt" in err and "missing.pt" in err
    assert not (tmp_path / "runs" / "fid").exists()


@pytest.mark.skipif(
    os.path.exists("/tmp/inception-2015-12-05.pt"), reason="clean-fid's weights are on this machine"
)
def test_inception_by_default_for_cifar_sized_data_names_clean_fids_cache(tmp_path, monkeypatch):
    from collapse.engine.run_opening import _check_inception_weights
    from collapse.errors import UserError

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    config = validate({"data": {"real": "torchvision:cifar10"}})
    assert config.eval.features == "inception"
    with pytest.raises(UserError, match="place it at /tmp/inception-2015-12-05.pt"):
        _check_inception_weights(config, config.eval.features)
