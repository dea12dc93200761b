"""The Python API: `collapse.run` starts a chain from a script, `collapse.open_run` reads it back
as a DataFrame, numpy arrays (or a Ray Dataset) and fitted models, as the manifest records them.
(`collapse.sweep` and `collapse.open_sweep` are tested with Tune's trackers in test_tracking.)"""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

import collapse
from collapse.errors import UserError
from collapse.families import get_family


def config(storage):
    return {
        "name": "api",
        "storage": str(storage),
        "generations": 3,
        "data": {"real": "toy:gaussian", "dim": 2, "n_real": 200, "n_train": 100, "n_eval": 200},
        "model": {"family": "gaussian"},
        "eval": {"metrics": ["w2", "var"]},
    }


@pytest.mark.slow
def test_a_chain_run_from_python_reads_back_as_a_dataframe_arrays_and_models(ray_cluster, tmp_path):
    run = collapse.run(config(tmp_path), overrides=["seed=4"], quiet=True)
    assert run.uri == str(tmp_path / "api") and run.config.seed == 4
    records = run.records

    frame = run.metrics()
    assert list(frame["generation"]) == [0, 1, 2]
    for row, record in zip(frame.to_dict("records"), records, strict=True):
        for name in ("w2", "var", "sigma2", "log_sigma2"):
            assert row[name] == record["metrics"][name]
        assert row["train_rows"] == 100 and row["feature_extractor"] == "raw"
        assert row["train_s"] == record["timings"]["train_s"]

    samples = run.samples(2)
    table = pq.read_table(io.BytesIO(run.store.read_artifact(records[2]["samples"][0])))
    assert samples.dtype == np.float32 and samples.shape == (100, 2)
    np.testing.assert_array_equal(samples, np.stack(table.column("x").to_numpy(False)))

    stream = run.samples(2, dataset=True).to_pandas().sort_values("id")
    assert list(stream["id"]) == list(range(100))
    np.testing.assert_array_equal(np.stack(stream["x"].to_numpy()), samples)

    params = run.model(1)  # closed forms: their parameters
    assert get_family("gaussian").describe(params)["sigma2"] == frame["sigma2"][1]

    again = collapse.run(config(tmp_path), overrides=["seed=4"], quiet=True)  # nothing to do
    assert again.records == records
    with pytest.raises(UserError, match="generation 3 is not committed"):
        run.samples(3)
    with pytest.raises(UserError, match="no run here"):
        collapse.open_run(str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="exists with a different config"):
        collapse.run(config(tmp_path), overrides=["seed=5"], quiet=True)
