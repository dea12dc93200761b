import json

import boto3
import numpy as np
import pytest

from collapse.data.shards import from_parquet, table_to_vectors, to_parquet, vectors_to_table
from collapse.errors import UserError
from collapse.storage import RunStore, Storage


@pytest.fixture(params=["local", "s3"])
def run_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "runs" / "r1")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/prefix/r1"


def test_shard_schema_round_trip():
    x = np.random.default_rng(0).normal(size=(37, 5)).astype(np.float32)
    table = from_parquet(to_parquet(vectors_to_table(x, "synthetic", 4, first_id=10)))
    assert table.column_names == ["x", "source", "generation", "id"]
    np.testing.assert_array_equal(table_to_vectors(table), x)
    assert set(table.column("source").to_pylist()) == {"synthetic"}
    assert set(table.column("generation").to_pylist()) == {4}
    assert table.column("id").to_pylist() == list(range(10, 47))


def test_manifest_commit_and_reload(run_uri):
    store = RunStore(run_uri)
    store.storage.check_reachable()
    assert store.committed() == []
    art = store.write_artifact(0, "samples/part-00000.parquet", b"abc", rows=1)
    assert art["path"] == "gen-0000/samples/part-00000.parquet" and art["rows"] == 1
    store.commit({"generation": 0, "samples": [art], "metrics": {"w2": 0.5}})
    again = RunStore(run_uri)
    assert again.committed()[0]["metrics"] == {"w2": 0.5}
    assert again.read_artifact(again.committed()[0]["samples"][0]) == b"abc"
    with pytest.raises(RuntimeError, match="expects 1"):
        again.commit({"generation": 3})


def test_checksum_mismatch_names_the_artifact(run_uri):
    store = RunStore(run_uri)
    art = store.write_artifact(0, "model/params.npz", b"good")
    store.storage.write_bytes(art["path"], b"evil")
    with pytest.raises(UserError, match="gen-0000/model/params.npz: checksum mismatch"):
        store.read_artifact(art)


def test_clear_generation_removes_scratch_only(run_uri):
    store = RunStore(run_uri)
    store.write_artifact(0, "a.bin", b"0")
    store.write_artifact(1, "a.bin", b"1")
    store.clear_generation(1)
    assert store.storage.list_dir("") == ["gen-0000"]


def test_local_manifest_write_leaves_no_temporary_files(tmp_path):
    store = RunStore(str(tmp_path / "r"))
    for g in range(3):
        store.commit({"generation": g})
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["manifest.json"]
    assert len(json.loads((tmp_path / "r" / "manifest.json").read_text())["generations"]) == 3


def test_s3_objects_are_where_the_layout_says(s3_bucket, s3_server):
    store = RunStore(f"s3://{s3_bucket}/runs/r2")
    store.write_config("name: r2\n")
    store.write_artifact(0, "metrics.json", b"{}")
    store.commit({"generation": 0})
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["runs/r2/config.yaml", "runs/r2/gen-0000/metrics.json", "runs/r2/manifest.json"]


def test_missing_bucket_and_unreachable_endpoint_are_user_errors(s3_bucket, monkeypatch):
    with pytest.raises(UserError, match="bucket 'no-such-bucket' does not exist"):
        Storage("s3://no-such-bucket/x").check_reachable()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(UserError, match="not reachable"):
        Storage(f"s3://{s3_bucket}/x").check_reachable()


def test_local_check_does_not_create_the_run(tmp_path):
    Storage(str(tmp_path / "a" / "b")).check_reachable()
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a writable directory"):
        Storage(str(tmp_path / "file" / "run")).check_reachable()
