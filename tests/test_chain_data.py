"""Chains on prepared image data, S3 all the way, with distributed sampling and bad data."""

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest

from collapse.data.prepare import prepare
from collapse.data.shards import from_parquet, table_kind, table_to_images
from collapse.driver.launch import run_chain
from collapse.engine.run_opening import create_or_resume
from collapse.errors import UserError
from collapse.store.run_store import RunStore
from tests.helpers import make_config, run_in_process

DIGITS = {"real": "sklearn:digits", "n_real": 300, "n_train": 300, "n_eval": 120}


def _images(store, record):
    return np.concatenate(
        [table_to_images(from_parquet(store.read_artifact(a))) for a in record["samples"]]
    )


@pytest.mark.slow
def test_image_chain_on_s3_with_a_sampling_pool(ray_cluster, s3_bucket, s3_server, tmp_path):
    config = make_config(
        f"s3://{s3_bucket}/runs",
        name="digits",
        generations=3,
        data=DIGITS,
        sample={"workers": 1, "batch_size": 128},
    )
    outcome = run_chain(config)
    store = RunStore(outcome.uri)
    records = store.committed()
    assert [len(r["samples"]) for r in records] == [3, 3, 3]  # 300 rows in batches of 128
    table = from_parquet(store.read_artifact(records[2]["samples"][0]))
    assert table_kind(table) == "image" and table_to_images(table).shape[1:] == (8, 8, 1)
    assert set(table.column("generation").to_pylist()) == {2}

    # the same chain sampled inside the chain's own worker draws exactly the same images
    local = make_config(
        str(tmp_path),
        name="digits",
        generations=3,
        data=DIGITS,
        sample={"workers": 0, "batch_size": 1000},
    )
    reference = run_in_process(local)
    reference_store = RunStore(str(tmp_path / "digits"))
    for ours, theirs in zip(records, reference, strict=True):
        np.testing.assert_array_equal(_images(store, ours), _images(reference_store, theirs))
        assert ours["metrics"] == pytest.approx(theirs["metrics"], rel=1e-9)

    # neither the endpoint nor the credentials are written anywhere in the run
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    secrets = [
        s3_server["AWS_SECRET_ACCESS_KEY"],
        s3_server["AWS_ACCESS_KEY_ID"],
        s3_server["AWS_ENDPOINT_URL"].split("//")[1],
    ]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert "runs/digits/real/train/_dataset.json" in keys
    for key in keys:
        body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        for secret in secrets:
            assert secret.encode() not in body, f"{secret!r} written into {key}"
    # ... nor into Ray's logs (its runtime-env agent logs env vars verbatim: we pass none)
    logs = Path("/tmp/ray/session_latest/logs")
    assert logs.is_dir()
    for path in logs.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in text, f"{secret!r} written into {path}"


def test_missing_truncated_or_foreign_real_shards_stop_the_run_before_training(tmp_path):
    config = make_config(str(tmp_path), name="bad", data=DIGITS)
    create_or_resume(config)
    shard = tmp_path / "bad" / "real" / "train" / "part-00000.parquet"
    good = shard.read_bytes()

    shard.write_bytes(good[:-100])
    with pytest.raises(UserError, match=f"{shard}: truncated"):
        create_or_resume(config)

    shard.unlink()
    with pytest.raises(UserError, match=f"{shard}: missing"):
        create_or_resume(config)

    shard.write_bytes(good[:50] + bytes([good[50] ^ 0xFF]) + good[51:])
    with pytest.raises(UserError, match=f"{shard}: checksum mismatch"):
        create_or_resume(config)
    shard.write_bytes(good)
    create_or_resume(config)  # repaired: accepted again


def test_a_shard_of_the_wrong_schema_is_reported(tmp_path):
    dataset = prepare("sklearn:digits", str(tmp_path / "d"), limit=50)
    shard = tmp_path / "d" / "part-00000.parquet"
    foreign = io.BytesIO()
    pq.write_table(pq.read_table(shard).drop_columns(["image"]), foreign)
    shard.write_bytes(foreign.getvalue())
    index = json.loads((tmp_path / "d" / "_dataset.json").read_text())

    index["shards"][0].update(
        bytes=len(foreign.getvalue()), sha256=hashlib.sha256(foreign.getvalue()).hexdigest()
    )
    (tmp_path / "d" / "_dataset.json").write_text(json.dumps(index))
    config = make_config(
        str(tmp_path),
        name="p",
        data={"real": f"parquet:{dataset.uri}", "n_real": 30, "n_train": 30, "n_eval": 20},
    )
    with pytest.raises(UserError, match=f"{shard}: wrong schema"):
        create_or_resume(config)


def test_corrupted_samples_are_named_and_recomputed_when_a_ray_chain_resumes(
    ray_cluster, tmp_path, capsys
):
    config = make_config(str(tmp_path), name="r", generations=3)
    run_in_process(make_config(str(tmp_path), name="r", generations=3))
    store = RunStore(str(tmp_path / "r"))
    # forget generation 2, then damage generation 1's samples, which generation 2 trains on
    manifest = tmp_path / "r" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["generations"].pop()
    manifest.write_text(json.dumps(doc))
    shard = tmp_path / "r" / store.committed()[1]["samples"][0]["path"]
    shard.write_bytes(b"x" + shard.read_bytes()[1:])
    records = run_chain(config).records
    assert f"{shard} does not match its committed checksum" in capsys.readouterr().err
    assert [r["generation"] for r in records] == [1, 2]
    store.read_artifact(store.committed()[1]["samples"][0])  # whole again


def test_parquet_source_with_held_out_rows_after_the_pool(tmp_path):
    dataset = prepare("toy:two_moons", str(tmp_path / "moons"), limit=500)
    config = make_config(
        str(tmp_path),
        name="m",
        generations=2,
        data={"real": f"parquet:{dataset.uri}", "n_real": 300, "n_train": 200, "n_eval": 200},
    )
    records = run_in_process(config)
    assert records[0]["mix"][0]["rows"] == [[0, 200]]
    data = {"real": f"parquet:{dataset.uri}", "n_real": 400, "n_train": 200, "n_eval": 200}
    too_many = make_config(str(tmp_path), name="m2", data=data)
    with pytest.raises(UserError, match="data.n_eval: the run needs 600 rows"):
        create_or_resume(too_many)


@pytest.mark.subprocess
def test_cli_prepare_writes_a_dataset_and_refuses_bad_input(tmp_path):
    out = tmp_path / "digits16"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "collapse.cli",
            "prepare",
            "sklearn:digits",
            "--out",
            str(out),
            "--size",
            "16",
            "--rows-per-shard",
            "500",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert ok.returncode == 0, ok.stderr
    assert "prepared 1437 rows of sklearn:digits (train, image 16x16x1) in 3 shards" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "collapse.cli", "prepare", "mnist", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
