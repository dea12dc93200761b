"""The chain engine end to end: on the real local Ray, on local disk and on S3."""

import json
from pathlib import Path

import numpy as np
import pytest

from collapse.cli import main
from collapse.data.shards import from_parquet, table_to_vectors
from collapse.driver.launch import run_chain
from collapse.engine import ChainEngine, LocalBackend
from collapse.engine.run_opening import create_or_resume, stored_run_config
from collapse.errors import UserError
from collapse.report import load_records
from collapse.store.layout import generation_dir
from collapse.store.run_store import RunStore
from tests.helpers import make_config, run_in_process


def metrics_of(records):
    return [r["metrics"] for r in records]


def test_chain_on_ray_writes_the_run_layout(ray_cluster, tmp_path):
    config = make_config(
        str(tmp_path), generations=3, data={"loop": "synthetic_augmentation", "real_fraction": 0.3}
    )
    seen = []
    outcome = run_chain(config, on_generation=seen.append)
    assert (
        [r["generation"] for r in outcome.records] == [0, 1, 2] == [r["generation"] for r in seen]
    )
    run = tmp_path / "t"
    assert (run / "config.yaml").is_file() and (run / "manifest.json").is_file()
    for g in range(3):
        gen = run / generation_dir(g)
        assert (gen / "model" / "params.npz").is_file()
        assert (gen / "metrics.json").is_file()
        table = from_parquet((gen / "samples" / "part-000000000.parquet").read_bytes())
        assert table.num_rows == 100 and set(table.column("generation").to_pylist()) == {g}
    manifest = json.loads((run / "manifest.json").read_text())
    mix = manifest["generations"][2]["mix"]
    assert mix == [
        {"source": "real", "generation": None, "count": 30, "rows": [[0, 30]]},
        {"source": "synthetic", "generation": 1, "count": 70, "rows": [[0, 70]]},
    ]
    assert set(manifest["generations"][0]["metrics"]) == {
        "sigma2",
        "log_sigma2",
        "w2",
        "mean_err",
        "var",
    }


def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    a = run_in_process(make_config(str(tmp_path / "a")))
    b = run_in_process(make_config(str(tmp_path / "b")))
    c = run_in_process(make_config(str(tmp_path / "c"), seed=1))
    assert metrics_of(a) == metrics_of(b) != metrics_of(c)


def test_rerun_of_a_finished_run_does_nothing(ray_cluster, tmp_path):
    config = make_config(str(tmp_path), generations=2)
    run_in_process(config)
    manifest = tmp_path / "t" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    outcome = run_chain(config)
    assert outcome.already_complete and outcome.records == []
    assert manifest.stat().st_mtime_ns == before


def test_changed_config_is_refused_naming_the_keys(tmp_path):
    run_in_process(make_config(str(tmp_path), generations=2))
    changed = make_config(str(tmp_path), generations=2, seed=5, data={"real_fraction": 0.5})
    with pytest.raises(UserError, match=r"differs in: data\.real_fraction, seed"):
        create_or_resume(changed)


def test_resume_overwrites_scratch_and_matches_uninterrupted(ray_cluster, tmp_path):
    config = make_config(
        str(tmp_path / "x"),
        generations=5,
        model={"family": "kde", "bandwidth": 0.2},
        data={"loop": "fresh_data", "real_fraction": 0.2},
    )
    reference = run_in_process(
        make_config(
            str(tmp_path / "ref"),
            generations=5,
            model={"family": "kde", "bandwidth": 0.2},
            data={"loop": "fresh_data", "real_fraction": 0.2},
        )
    )
    create_or_resume(config)
    worker = ChainEngine(config, LocalBackend())
    worker.run_generation(0)
    worker.run_generation(1)
    scratch = tmp_path / "x" / "t" / "gen-0002" / "samples"
    scratch.mkdir(parents=True)
    (scratch / "part-000000000.parquet").write_bytes(b"half-written")
    outcome = run_chain(config)
    assert outcome.start == 2 and [r["generation"] for r in outcome.records] == [2, 3, 4]
    assert metrics_of(RunStore(str(tmp_path / "x" / "t")).committed()) == metrics_of(reference)


def test_resume_by_uri_uses_the_stored_config(ray_cluster, tmp_path):
    config = make_config(str(tmp_path / "old-place"), generations=2)
    run_in_process(config)
    moved = tmp_path / "new-place"
    (tmp_path / "old-place").rename(moved)
    again = stored_run_config(str(moved / "t"))
    assert again.storage == str(moved) and again.name == "t"
    assert run_chain(again).already_complete


@pytest.mark.parametrize("family", ["gaussian", "kde"])  # a running total; a pile of samples
def test_accumulate_reads_earlier_samples_back_from_storage(tmp_path, family):
    def config_in(where):
        return make_config(
            str(where), generations=4, data={"loop": "accumulate"}, model={"family": family}
        )

    config = config_in(tmp_path)
    reference = run_in_process(config_in(tmp_path / "ref"))
    create_or_resume(config)
    ChainEngine(config, LocalBackend()).run_generation(0)
    ChainEngine(config, LocalBackend()).run_generation(1)
    fresh = ChainEngine(config, LocalBackend())  # a new process: nothing cached, all from shards
    records = [fresh.run_generation(2), fresh.run_generation(3)]
    assert records[-1]["train_rows"] == 400
    assert metrics_of(records) == metrics_of(reference[2:])


def test_corrupted_shard_is_detected_on_resume(tmp_path):
    config = make_config(str(tmp_path), generations=3)
    create_or_resume(config)
    ChainEngine(config, LocalBackend()).run_generation(0)
    shard = tmp_path / "t" / "gen-0000" / "samples" / "part-000000000.parquet"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(
        UserError, match="gen-0000/samples/part-000000000.parquet: checksum mismatch"
    ):
        ChainEngine(config, LocalBackend()).run_generation(1)


def test_chain_on_s3_through_ray(ray_cluster, s3_bucket, capsys):
    config = make_config(
        f"s3://{s3_bucket}/chains", generations=3, model={"family": "gmm", "components": 2}
    )
    outcome = run_chain(config)
    assert outcome.uri == f"s3://{s3_bucket}/chains/t"
    store = RunStore(outcome.uri)
    assert [r["generation"] for r in store.committed()] == [0, 1, 2]
    samples = table_to_vectors(
        from_parquet(store.read_artifact(store.committed()[2]["samples"][0]))
    )
    assert samples.shape == (100, 2) and np.isfinite(samples).all()
    records = load_records([outcome.uri])
    assert [r["generation"] for r in records] == [0, 1, 2] and records[0]["run"] == "t"
    assert run_chain(config).already_complete
    # an older artifact lost from the bucket: found when asked for (a listing of the run)
    lost = store.committed()[1]["samples_png"]["path"]
    store.storage.delete(lost)
    assert run_chain(config).already_complete  # not listed by default: nothing reads it
    capsys.readouterr()
    assert main(["resume", outcome.uri, "--check-sizes", "--quiet"]) == 0
    assert "is missing: generation 1 is recomputed" in capsys.readouterr().err
    assert store.storage.exists(lost)  # generation 1 recomputed, and 2 after it


@pytest.mark.subprocess
def test_math_modules_never_import_ray():
    import subprocess
    import sys

    code = (
        "import sys, collapse.driver.launch, collapse.config, collapse.store.storage, "
        "collapse.report, collapse.families.gaussian, collapse.families.kde, "
        "collapse.families.gmm, collapse.metrics, collapse.data.mix, collapse.data.toy, "
        "collapse.data.shards, collapse.engine, collapse.strategies.self_correct\n"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.subprocess
def test_a_closed_form_chain_runs_in_process_without_importing_ray(tmp_path):
    """The local backend: nothing of Ray is imported, at import or while the chain runs."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from collapse.engine.run_opening import create_or_resume\n"
        "from collapse.engine import ChainEngine, LocalBackend\n"
        "from tests.helpers import make_config\n"
        f"config = make_config({str(tmp_path)!r}, generations=2,\n"
        "    strategy={'name': 'self_correct', 'corrector': 'knn'})\n"
        "create_or_resume(config)\n"
        "engine = ChainEngine(config, LocalBackend())\n"
        "records = [engine.run_generation(g) for g in range(2)]\n"
        "assert records[1]['correction']['rows'] == 100\n"
        "loaded = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_the_local_backend_refuses_a_trained_family_in_one_line(tmp_path):
    config = make_config(str(tmp_path), model={"family": "rectified_flow"})
    with pytest.raises(UserError, match=r"^model.family: rectified_flow is trained on Ray Train"):
        ChainEngine(config, LocalBackend())
