"""`collapse evaluate`: a finished run's stored samples measured again with other metrics,
stored beside the originals (never over them), shown by `report`, resumable and idempotent,
in this process or as Ray tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collapse.cli import main
from collapse.driver import reevaluation
from collapse.engine import measurement as measuring
from collapse.engine.run_opening import stored_run_config
from collapse.store.layout import generation_dir
from collapse.store.run_store import RunStore
from tests.helpers import make_config, own_stderr, run_in_process


@pytest.fixture
def finished(tmp_path):
    """A 3-generation run measured by w2, mean_err and var only."""
    run_in_process(make_config(str(tmp_path), generations=3))
    return str(tmp_path / "t")


def files(uri: str, generation: int) -> dict[str, bytes]:
    folder = Path(uri) / generation_dir(generation)
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_new_metrics_are_stored_beside_the_originals_and_reported(finished, capsys):
    manifest = (Path(finished) / "manifest.json").read_bytes()
    before = files(finished, 1)
    argv = ["evaluate", finished, "--metrics", "precision,recall", "--workers", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    key = measuring.measurement(stored_run_config(finished), ["precision", "recall"], None).key
    assert key.startswith("raw-") and f"evaluation {key}" in out and "3 now, 0 before" in out
    assert (Path(finished) / "manifest.json").read_bytes() == manifest, "the manifest changed"
    after = files(finished, 1)
    assert {k: v for k, v in after.items() if k in before} == before, "an original changed"
    (added,) = set(after) - set(before)
    assert added.endswith(f"gen-0001/evaluations/{key}.json")
    result = json.loads(after[added])
    assert set(result["metrics"]) == {"precision", "recall"}
    assert result["samples"] == [a["sha256"] for a in RunStore(finished).committed()[1]["samples"]]

    assert main(["report", finished, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["evaluations"][0]["feature_extractor"] for r in records] == ["raw"] * 3
    assert all(0 <= r["evaluations"][0]["metrics"]["recall"] <= 1 for r in records)
    assert set(records[0]["metrics"]) == {"sigma2", "log_sigma2", "w2", "mean_err", "var"}
    assert main(["report", finished]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[-2:] == ["precision@raw", "recall@raw"] and "w2" in header


def test_evaluate_is_idempotent_resumable_and_follows_an_extended_run(
    finished, tmp_path, monkeypatch, capsys
):
    measurement = measuring.measurement(stored_run_config(finished), ["var"], None)
    store = RunStore(finished)

    def stops_after_one(m, records):  # the driver dies after the first result is stored
        for record, measured in measuring.measure_here(m, records):
            yield record, measured
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reevaluation.run_evaluation(measurement, store, stops_after_one)
    assert reevaluation.read_index(store, measurement.key) is None  # the index was not saved ...
    assert reevaluation.run_evaluation(measurement, store)[0] == 1  # ... its result file counts
    existing, new = reevaluation.run_evaluation(measurement, store)
    assert (existing, new) == (3, [])

    run_in_process(make_config(str(tmp_path), generations=4))  # the chain is extended
    existing, new = reevaluation.run_evaluation(measurement, RunStore(finished))
    assert existing == 3 and [e["generation"] for e in new] == [3]
    # the same metric in the same feature space gives what the chain itself measured
    committed = RunStore(finished).committed()
    index = reevaluation.read_index(RunStore(finished), measurement.key)
    assert [e["metrics"]["var"] for e in index["generations"]] == [
        r["metrics"]["var"] for r in committed
    ]


def test_ray_tasks_measure_what_this_process_does(ray_cluster, finished, capsys):
    assert main(["evaluate", finished, "--metrics", "mmd", "--workers", "2"]) == 0
    assert "3 now, 0 before" in capsys.readouterr().out
    measurement = measuring.measurement(stored_run_config(finished), ["mmd"], None)
    on_ray = reevaluation.read_index(RunStore(finished), measurement.key)["generations"]
    here = [m for _, m in measuring.measure_here(measurement, RunStore(finished).committed())]
    assert [e["metrics"] for e in on_ray] == [m["metrics"] for m in here]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--metrics", "fidd"], "--metrics: unknown fidd; allowed: w2"),
        (["--features", "inception"], "eval.features: inception is for images"),
        (["--metrics", "density", "--gpu", "--workers", "0"], "--gpu runs the Ray tasks"),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(finished, capsys, args, needle):
    before = files(finished, 0)
    assert main(["evaluate", finished, *args]) == 2
    err = own_stderr(capsys)
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert files(finished, 0) == before
    assert not RunStore(finished).storage.exists(reevaluation.FOLDER)
