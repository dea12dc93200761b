import json
import re

import boto3
import numpy as np
import pytest

from collapse.data.shards import from_parquet, table_to_vectors, to_parquet, vectors_to_table
from collapse.errors import UserError
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage


def record(store: RunStore, generation: int, **fields) -> dict:
    """A minimal valid manifest record of `generation`, its one artifact written."""
    art = store.write_artifact(generation, "samples/part-00000.parquet", b"abc", rows=1)
    base = {"generation": generation, "mix": [], "train_rows": 1, "sample_rows": 1}
    return {**base, "samples": [art], "model": [art], "metrics": {}, **fields}


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
    first = record(store, 0, metrics={"w2": 0.5})
    art = first["samples"][0]
    assert art["path"] == "gen-0000/samples/part-00000.parquet" and art["rows"] == 1
    store.commit(first)
    again = RunStore(run_uri)
    assert again.committed()[0]["metrics"] == {"w2": 0.5}
    assert again.read_artifact(again.committed()[0]["samples"][0]) == b"abc"
    with pytest.raises(RuntimeError, match="expects 1"):
        again.commit(record(again, 3))
    with pytest.raises(RuntimeError, match="'sample_rows' must be int"):
        again.commit(record(again, 1, sample_rows="5"))


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
        store.commit(record(store, g))
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == ["gen-0000", "gen-0001", "gen-0002", "manifest.json"]
    assert len(json.loads((tmp_path / "r" / "manifest.json").read_text())["generations"]) == 3


def test_s3_objects_are_where_the_layout_says(s3_bucket, s3_server):
    store = RunStore(f"s3://{s3_bucket}/runs/r2")
    store.write_config("name: r2\n")
    store.write_artifact(0, "metrics.json", b"{}")
    store.commit(record(store, 0))
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == [
        "runs/r2/config.yaml",
        "runs/r2/gen-0000/metrics.json",
        "runs/r2/gen-0000/samples/part-00000.parquet",
        "runs/r2/manifest.json",
    ]


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


def test_a_long_chain_commits_in_constant_time_and_reads_back_whole(run_uri):
    """Sealed chunks of 64 records plus an inline tail: the head stays small however long
    the chain, every record reads back, and truncation across a chunk works."""
    store = RunStore(run_uri)
    heads = []
    for g in range(150):
        store.commit(record(store, g, metrics={"g": float(g)}))
        heads.append(len(store.storage.read_bytes("manifest.json")))
    assert store.storage.list_dir("manifest") == [
        "generations-000000.json",
        "generations-000064.json",
    ]
    assert max(heads[128:]) < max(heads[:64]) + 400  # the head does not grow with the chain
    again = RunStore(run_uri).committed()
    assert [r["metrics"]["g"] for r in again] == [float(g) for g in range(150)]
    store.truncate(100)
    assert [r["generation"] for r in RunStore(run_uri).committed()] == list(range(100))
    store.commit(record(store, 100))
    assert len(RunStore(run_uri).committed()) == 101


def test_a_manifest_of_format_1_still_reads_and_is_upgraded_at_the_next_commit(tmp_path):
    store = RunStore(str(tmp_path / "r"))
    old = [record(store, g) for g in range(70)]
    text = '{"format": 1, "generations": [\n' + ",\n".join(json.dumps(r) for r in old) + "\n]}"
    (tmp_path / "r" / "manifest.json").write_text(text)
    assert RunStore(str(tmp_path / "r")).committed() == old
    store.commit(record(store, 70))
    head = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert head["format"] == 2 and len(head["sealed"]) == 1 and len(head["generations"]) == 7
    assert RunStore(str(tmp_path / "r")).committed() == [*old, record(store, 70)]


def test_a_damaged_sealed_chunk_is_one_line(tmp_path):
    store = RunStore(str(tmp_path / "r"))
    for g in range(64):
        store.commit(record(store, g))
    chunk = tmp_path / "r" / "manifest" / "generations-000000.json"
    chunk.write_text(chunk.read_text().replace('"generation":5', '"generation":6'))
    with pytest.raises(UserError, match="generations-000000.json does not match the checksum"):
        RunStore(str(tmp_path / "r")).committed()


def test_resume_checks_the_latest_checksums_and_elsewhere_sizes_where_they_are_cheap(run_uri):
    """A local run's every artifact is checked for its size (one walk of the run); an object
    store's only when asked, since that is a listing of the whole run (a PUT is whole or
    absent, so there are no short objects to find); the latest generation's are read and
    checksummed everywhere."""
    from collapse.store.integrity import first_broken

    store = RunStore(run_uri)
    store.storage.check_reachable()
    records = [record(store, g) for g in range(3)]
    for r in records:
        store.commit(r)
    assert first_broken(store) is None and first_broken(store, every_size=True) is None
    store.storage.delete(records[0]["samples"][0]["path"])
    missing = (0, f"{store.storage.uri_of(records[0]['samples'][0]['path'])} is missing")
    assert first_broken(store, every_size=True) == missing
    assert first_broken(store) == (missing if store.storage.local else None)
    latest = records[2]["samples"][0]["path"]
    store.storage.write_bytes(latest, b"abd")  # same size, other bytes
    broken = (2, f"{store.storage.uri_of(latest)} does not match its committed checksum")
    assert first_broken(store, every_size=False) == broken
    store.storage.delete(latest)
    assert first_broken(store, every_size=False) == (
        2,
        f"{store.storage.uri_of(latest)} is missing",
    )


def test_a_resume_reads_the_head_and_only_the_chunks_it_asks_for(tmp_path):
    """count, sample_counts and the latest record come from the head; an earlier record reads
    its own chunk; only `committed()` (reports, --check-sizes) reads them all."""
    store = RunStore(str(tmp_path / "r"))
    for g in range(150):
        store.commit(record(store, g, sample_rows=1 + (g >= 100)))
    (tmp_path / "r" / "manifest" / "generations-000064.json").unlink()
    again = RunStore(str(tmp_path / "r"))
    assert again.count() == 150 and again.record(149)["generation"] == 149
    assert list(again.sample_counts()) == [1] * 100 + [2] * 50
    assert again.record(10)["generation"] == 10  # chunk 0, which is there
    with pytest.raises(UserError, match="generations-000064.json is missing .*manifest.json"):
        again.committed()
    assert again.count() == 150  # the store is still usable after the refusal


def test_a_head_without_sample_counts_reads_them_from_its_chunks(tmp_path):
    store = RunStore(str(tmp_path / "r"))
    for g in range(70):
        store.commit(record(store, g, sample_rows=g % 2))
    head = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert head["sample_counts"] == [[g, g, g % 2] for g in range(64)]
    del head["sample_counts"]  # as the first format-2 heads were written
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(head))
    assert list(RunStore(str(tmp_path / "r")).sample_counts()) == [g % 2 for g in range(70)]


@pytest.mark.parametrize(
    "counts, says",
    [
        ([[0, 62, 1]], "covers generations 0..62, the sealed chunks 0..63"),
        ([[0, 10, 1], [12, 63, 1]], "got [12, 63, 1] where generation 11 starts"),
        ("x", "got None where generation 0 starts"),
        ([[0, 63, 2]], "generations-000000.json does not match the sample counts"),
    ],
)
def test_a_head_whose_sample_counts_lie_is_one_line(tmp_path, counts, says):
    store = RunStore(str(tmp_path / "r"))
    for g in range(64):
        store.commit(record(store, g))
    head = json.loads((tmp_path / "r" / "manifest.json").read_text())
    head["sample_counts"] = counts
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(head))
    with pytest.raises(UserError, match=re.escape(says)):
        RunStore(str(tmp_path / "r")).committed()
