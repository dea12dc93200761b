"""Bad data, as a new user makes it: broken dataset indexes and shards, broken image folders,
configs that ask data for more than it gives, correctors that misbehave and metrics that are
not finite. Every case is a valid run or one line (UserError, exit 2), never a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from collapse.cli import main
from collapse.config import validate
from collapse.data.dataset import DATASET_INDEX, open_dataset, write_dataset
from collapse.data.shards import id_spans, images_to_table, to_parquet, vectors_to_table
from collapse.data.space import DataSpace
from collapse.driver.launch import run_chain
from collapse.driver.progress import ChainProgress
from collapse.engine import preflight
from collapse.engine.preflight import check_real_data
from collapse.errors import UserError
from collapse.metrics import evaluate
from collapse.metrics.frechet import fid
from collapse.store.run_store import RunStore
from collapse.store.storage import Storage
from collapse.strategies.self_correct import correct_rows
from tests.helpers import make_config, own_stderr, run_in_process

COLLAPSE = str(Path(sys.executable).parent / "collapse")
IMAGE_SHAPE = (2, 3, 1)


def one_line(err: UserError, *names: str) -> str:
    message = str(err)
    assert message and "\n" not in message and "Traceback" not in message
    for name in names:
        assert name in message, (name, message)
    return message


# --- broken datasets, generated -------------------------------------------------------------
def dataset(folder: Path, kind: str, rows: int, shards: int) -> dict:
    """A valid dataset; returns its index."""
    rng = np.random.default_rng(rows)
    if kind == "vector":
        table = vectors_to_table(rng.standard_normal((rows, 2)), "real", None)
    else:
        images = rng.integers(0, 256, (rows, *IMAGE_SHAPE), dtype=np.uint8)
        captions = [f"c{i}" for i in range(rows)]
        table = images_to_table(images, "real", None, labels=np.arange(rows), captions=captions)
    per_shard = -(-rows // shards)
    return write_dataset(
        Storage(str(folder)), [table], source="t", split="train", rows_per_shard=per_shard
    )


JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
OUTSIDE = ["../x.parquet", "/etc/passwd", "s3://b/x.parquet", "a/../../x", "..", "C:\\x", "./a"]


def _column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


def _float_lists(x: np.ndarray, dtype: pa.DataType, fixed: bool) -> pa.Array:
    flat = pa.array(x.reshape(-1), type=dtype)
    offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
    if fixed:
        return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    return pa.ListArray.from_arrays(offsets, flat)


def damage_table(table: pa.Table, how: str, data: st.DataObject) -> pa.Table:
    """One shard's rows, broken the way `how` names (or left as they are where it does not
    apply to this kind of shard)."""
    n = table.num_rows
    row = data.draw(st.integers(0, max(n - 1, 0)))
    vector = "x" in table.column_names
    plain = vector and table.schema.field("x").type == pa.list_(pa.float32(), 2)
    plain = plain and table.column("x").null_count == 0
    if how in ("nan", "inf", "varlist", "float64", "wrong_dim", "null_x") and plain and n:
        x = table.column("x").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        x = x.reshape(n, 2).astype(np.float64)
        if how in ("nan", "inf"):
            x[row, data.draw(st.integers(0, x.shape[1] - 1))] = np.nan if how == "nan" else -np.inf
            return _column(table, "x", _float_lists(x, pa.float32(), fixed=True))
        if how == "varlist":
            return _column(table, "x", _float_lists(x, pa.float32(), fixed=False))
        if how == "float64":
            return _column(table, "x", _float_lists(x, pa.float64(), fixed=True))
        if how == "wrong_dim":
            return _column(table, "x", _float_lists(np.c_[x, x[:, :1]], pa.float32(), True))
        mask = np.zeros(n, bool)
        mask[row] = True
        column = table.column("x").combine_chunks()
        nulled = pa.FixedSizeListArray.from_arrays(column.values, 2, mask=pa.array(mask))
        return _column(table, "x", nulled)
    # an earlier damage may have dropped, renamed or retyped the id column
    has_ids = "id" in table.column_names and table.schema.field("id").type == pa.int64()
    if how == "ids" and n and has_ids:
        shift = data.draw(st.integers(1, 5))
        ids = np.asarray(table.column("id")) + np.where(np.arange(n) >= row, shift, 0)
        return _column(table, "id", pa.array(ids, pa.int64()))
    if how == "null_id" and n and has_ids:
        ids = table.column("id").to_pylist()
        ids[row] = None
        return _column(table, "id", pa.array(ids, pa.int64()))
    if how == "drop":
        return table.drop_columns([data.draw(st.sampled_from(table.column_names))])
    if how == "rename":
        name = data.draw(st.sampled_from(table.column_names))
        return table.rename_columns([c + "_" if c == name else c for c in table.column_names])
    if how == "retype":
        name = data.draw(st.sampled_from(table.column_names))
        return _column(table, name, pa.array([str(v) for v in table.column(name).to_pylist()]))
    pictures = {"image", "shape"} <= set(table.column_names) and table.column(
        "shape"
    ).null_count == 0
    if how in ("image_len", "png", "shape") and pictures and n:
        images = table.column("image").to_pylist()
        if how == "shape":
            shapes = table.column("shape").to_pylist()
            shapes[row] = [3, 2, 1]
            return _column(table, "shape", pa.array(shapes, pa.list_(pa.int32(), 3)))
        images[row] = images[row][:-1] if how == "image_len" else b"\x89PNG\r\n\x1a\n...."
        return _column(table, "image", pa.array(images, pa.binary()))
    if how == "fewer_rows":
        return table.slice(0, max(n - 1, 0))
    return table


SHARD_DAMAGE = [
    "nan", "inf", "varlist", "float64", "wrong_dim", "null_x", "ids", "null_id", "drop",
    "rename", "retype", "image_len", "png", "shape", "fewer_rows",
]  # fmt: skip
RAW_DAMAGE = ["empty", "random", "truncated", "deleted"]
INDEX_DAMAGE = ["del_key", "junk_key", "del_shard_key", "junk_shard_key", "outside", "extra"]


def damage(folder: Path, index: dict, data: st.DataObject) -> str | bytes:
    """Break the dataset in `folder` once; returns the index as it is to be written."""
    shard = data.draw(st.sampled_from(index["shards"]))
    path = folder / shard["path"]
    how = data.draw(st.sampled_from(SHARD_DAMAGE + RAW_DAMAGE + INDEX_DAMAGE + ["garbage"]))
    if how in SHARD_DAMAGE + RAW_DAMAGE and not path.exists():
        how = "deleted"
    if how in SHARD_DAMAGE:
        try:
            table = damage_table(pq.read_table(path), how, data)
        except (pa.ArrowException, OSError):  # damaged before: the raw damage of an unreadable file
            how = "random"
    if how in SHARD_DAMAGE:
        payload = to_parquet(table)
        path.write_bytes(payload)
        if data.draw(st.booleans()):  # the index agrees with the new shard: its values must tell
            before = shard["rows"]
            shard.update(rows=table.num_rows, bytes=len(payload))
            shard["sha256"] = hashlib.sha256(payload).hexdigest()
            index["rows"] += table.num_rows - before
    elif how in RAW_DAMAGE:
        old = path.read_bytes() if path.exists() else b""
        if how == "deleted":
            path.unlink(missing_ok=True)
        else:
            cut = data.draw(st.integers(0, max(len(old) - 1, 0)))
            noise = np.random.default_rng(cut).integers(0, 256, len(old), np.uint8).tobytes()
            payload = {"empty": b"", "random": noise, "truncated": old[:cut]}[how]
            path.write_bytes(payload)
            if data.draw(st.booleans()):
                shard.update(bytes=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    elif how == "del_key":
        index.pop(data.draw(st.sampled_from(sorted(index))))
    elif how == "junk_key":
        index[data.draw(st.sampled_from(sorted(index)))] = data.draw(JUNK)
    elif how == "del_shard_key":
        shard.pop(data.draw(st.sampled_from(sorted(shard))))
    elif how == "junk_shard_key":
        shard[data.draw(st.sampled_from([*sorted(shard), "ids"]))] = data.draw(JUNK)
    elif how == "outside":
        shard["path"] = data.draw(st.sampled_from(OUTSIDE))
    elif how == "extra":  # a note of the user's: harmless
        index["note"] = data.draw(JUNK)
    else:
        return data.draw(st.binary(max_size=40) | st.text(max_size=40))
    return json.dumps(index)


def intact(text: str | bytes, shard_files: set[str]) -> bool:
    """Whether an index still names its own shard files in typed entries, so that damaging it
    again touches only the dataset's own files."""
    try:
        index = json.loads(text)
        shards = index["shards"]
        return (
            bool(shards)
            and all(
                isinstance(s, dict) and s.get("path") in shard_files and type(s.get("rows")) is int
                for s in shards
            )
            and type(index.get("rows")) is int
        )
    except (ValueError, TypeError, KeyError):
        return False


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(["vector", "image"]),
    rows=st.integers(4, 10),
    shards=st.integers(1, 3),
    times=st.integers(1, 2),
    data=st.data(),
)
def test_any_broken_dataset_is_read_whole_or_refused_in_one_line(
    tmp_path_factory, kind, rows, shards, times, data
):
    folder = tmp_path_factory.mktemp("ds")
    index = dataset(folder, kind, rows, min(shards, rows))
    shard_files = {s["path"] for s in index["shards"]}
    text: str | bytes = json.dumps(index)
    for _ in range(times):
        if intact(text, shard_files):
            text = damage(folder, json.loads(text), data)
    (folder / DATASET_INDEX).write_bytes(text if isinstance(text, bytes) else text.encode())
    config = make_config(
        str(folder.parent / f"{folder.name}-runs"),
        data={"real": f"parquet:{folder}", "n_real": 2, "n_train": 2, "n_eval": 2},
        eval={"metrics": ["w2"], "features": "raw"},
    )
    try:
        check_real_data(config, RunStore.for_config(config.storage, config.name))  # as `run` does
    except UserError as err:
        one_line(err, str(folder))
        return
    finally:
        assert not Path(config.storage).exists()  # nothing written
    # accepted: then every reader downstream gets what it expects
    opened = open_dataset(str(folder))
    table = opened.read_all()
    space = DataSpace.of_index(opened.index)
    x = space.to_vectors(table)
    assert x.shape == (opened.rows, space.dim) and np.isfinite(x).all()
    assert table.column("id").to_pylist() == list(range(opened.rows))
    spans = id_spans(opened.index["shards"])
    assert [hi - lo for lo, hi in spans] == [s["rows"] for s in opened.index["shards"]]


@pytest.mark.parametrize(
    ("shard_entry", "complaint"),
    [
        ({"bytes": None}, "shards[0].bytes: missing"),
        ({"rows": "3"}, "shards[0].rows: Input should be a valid integer, got '3'"),
        ({"path": "../elsewhere/part-00000.parquet"}, "is not a file below the dataset's folder"),
        ({"bytes": 3 * 2**30}, "over the 2147483648 a shard may have"),
    ],
)
def test_the_reported_index_faults_name_the_key(tmp_path, shard_entry, complaint):
    index = dataset(tmp_path, "vector", 4, 1)
    for key, value in shard_entry.items():
        if value is None:
            index["shards"][0].pop(key)
        else:
            index["shards"][0][key] = value
    (tmp_path / DATASET_INDEX).write_text(json.dumps(index))
    with pytest.raises(UserError) as err:
        open_dataset(str(tmp_path))
    one_line(err.value, str(tmp_path / DATASET_INDEX), complaint)


def test_variable_length_vectors_are_refused_by_the_writer_and_the_reader(tmp_path):
    x = np.ones((3, 2))
    table = vectors_to_table(x, "real", None)
    table = _column(table, "x", _float_lists(x, pa.float32(), fixed=False))
    with pytest.raises(ValueError, match="variable-length lists"):
        write_dataset(Storage(str(tmp_path / "w")), [table], source="t", split="train")
    index = dataset(tmp_path / "r", "vector", 3, 1)
    payload = to_parquet(table)
    (tmp_path / "r" / "part-00000.parquet").write_bytes(payload)
    index["shards"][0].update(bytes=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    (tmp_path / "r" / DATASET_INDEX).write_text(json.dumps(index))
    with pytest.raises(UserError) as err:
        open_dataset(str(tmp_path / "r")).verify()
    one_line(err.value, "part-00000.parquet: wrong schema: column x is list<", "variable-length")


# --- image folders --------------------------------------------------------------------------
def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size (and holds no pixels): all PIL reads before it decodes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def image_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((4, 4, 3), i * 20, np.uint8)).save(folder / f"{i:02d}.png")
    return folder


FOLDER_FAULTS = {
    "bomb": (lambda f: (f / "05.png").write_bytes(png_header(20_000, 20_000)), "05.png: over"),
    "over_limit": (lambda f: (f / "05.png").write_bytes(png_header(10_000, 9_000)), "over"),
    "not_an_image": (lambda f: (f / "05.png").write_bytes(b"hello"), "not a readable image"),
    "truncated": (
        lambda f: (f / "05.png").write_bytes((f / "05.png").read_bytes()[:45]),
        "05.png: not a readable image",
    ),
    "other_size": (
        lambda f: Image.new("RGB", (5, 4)).save(f / "05.png"),
        "05.png: 5x4 but the first image is 4x4",
    ),
    "captions": (
        lambda f: (f / "captions.jsonl").write_bytes(b'{"file": "00.png", "text": "\xff"}\n'),
        "cannot be read as UTF-8",
    ),
    "too_few": (lambda f: (f / "05.png").unlink(), "needs 10 images of folder:"),
}


@pytest.mark.parametrize("fault", sorted(FOLDER_FAULTS))
def test_a_broken_image_folder_is_one_line_before_anything_is_written(tmp_path, fault):
    folder = image_folder(tmp_path / "images", 10)
    make_fault, complaint = FOLDER_FAULTS[fault]
    make_fault(folder)
    config = make_config(
        str(tmp_path / "runs"),
        data={"real": f"folder:{folder}", "n_real": 6, "n_train": 6, "n_eval": 4},
        eval={"metrics": ["w2", "fid"], "features": "raw"},
    )
    with pytest.raises(UserError) as err:
        check_real_data(config, RunStore.for_config(config.storage, config.name))
    one_line(err.value, complaint)
    assert not (tmp_path / "runs").exists()


def test_a_folder_with_a_bomb_exits_2_in_one_line_and_writes_no_run(tmp_path, capsys):
    folder = image_folder(tmp_path / "images", 10)
    (folder / "03.png").write_bytes(png_header(20_000, 20_000))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: f\ndata: {{real: 'folder:{folder}', n_real: 6, n_train: 6, n_eval: 4}}\n"
        "model: {family: gaussian}\neval: {features: raw, metrics: [w2, var]}\n"
    )
    code = main(["run", str(config), "--storage", str(tmp_path / "runs"), "--quiet"])
    err = own_stderr(capsys)
    assert code == 2 and err.count("\n") == 1 and "03.png: over 89478485 pixels" in err, err
    assert not (tmp_path / "runs").exists()


# --- the data check end to end --------------------------------------------------------------
@pytest.mark.subprocess
def test_nan_in_the_held_out_rows_stops_the_run_before_it_starts(tmp_path):
    """The issue's case: it used to commit a generation whose w2 and mmd were NaN."""
    folder = tmp_path / "d"
    dataset(folder, "vector", 50, 3)
    shard = folder / "part-00002.parquet"
    x = np.zeros((16, 2), np.float32)
    x[5, 1] = np.nan
    payload = to_parquet(vectors_to_table(x, "real", None, first_id=34))
    shard.write_bytes(payload)
    index = json.loads((folder / DATASET_INDEX).read_text())
    index["shards"][2].update(bytes=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    (folder / DATASET_INDEX).write_text(json.dumps(index))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    args = ["--set", f"data.real=parquet:{folder}", "--set", "data.n_real=30"]
    args += ["--set", "data.n_train=30", "--set", "data.n_eval=20", "--set", "sample.n=30"]
    done = subprocess.run(
        [COLLAPSE, "run", "configs/quickstart.yaml", "--storage", str(tmp_path / "runs"), *args],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"collapse: error: {shard}: row 39: x is not finite (nan at dim 1)\n"
    assert not (tmp_path / "runs").exists()


# --- constraints known before training ------------------------------------------------------
@pytest.mark.parametrize(
    ("sections", "complaint"),
    [
        (
            {"data": {"n_eval": 3}, "eval": {"metrics": ["w2", "precision", "recall"]}},
            "data.n_eval: 3 held-out rows, but precision, recall need at least 4",
        ),
        (
            {"sample": {"n": 2}, "data": {"loop": "accumulate"}, "eval": {"metrics": ["recall"]}},
            "sample.n: 2 samples, but recall need at least 4",
        ),
        (
            {"eval": {"metrics": ["fid"]}, "sample": {"n": 1}, "data": {"loop": "accumulate"}},
            "sample.n: 1 samples, but fid need at least 2",
        ),
        ({"eval": {"metrics": ["density"]}, "data": {"n_eval": 5}}, "at least 6"),
        (
            {"data": {"real": "sklearn:digits", "n_real": 100, "n_train": 100, "n_eval": 400}},
            "data.n_eval: sklearn:digits has 360 test rows, got 400",
        ),
        (
            {"model": {"family": "rectified_flow"}, "strategy": {"name": "rca_reflow"}},
            "rca_reflow pairs real rows, but data.loop fully_synthetic",
        ),
        (
            {
                "model": {"family": "rectified_flow"},
                "strategy": {"name": "ocar"},
                "data": {"loop": "fresh_data", "real_fraction": 0.001},
            },
            "ocar pairs real rows",
        ),
        ({"eval": {"features": "inception"}}, "eval.features: inception is for images"),
        (
            {
                "data": {"real": "torchvision:cifar10"},
                "eval": {"features": "digits-cnn", "metrics": ["fid"]},
            },
            "digits-cnn reads single-channel images",
        ),
        (
            {"strategy": {"name": "self_correct", "corrector": "no_such_module_xyz:fix"}},
            "strategy.corrector 'no_such_module_xyz:fix': cannot import it",
        ),
        (
            {"strategy": {"name": "self_correct", "corrector": "tests.helpers:no_such_function"}},
            "cannot import it",
        ),
    ],
)
def test_what_the_data_cannot_give_is_a_config_error(tmp_path, sections, complaint):
    with pytest.raises(UserError) as err:
        make_config(str(tmp_path), **sections)
    one_line(err.value, "config error: ", complaint)


@pytest.mark.parametrize(
    ("source", "complaint"),
    [("raise RuntimeError('broken at import')", "RuntimeError: broken at import"),
     ("def fix(:", "SyntaxError")],
)  # fmt: skip
def test_a_corrector_module_that_fails_to_import_is_a_config_error(
    tmp_path, monkeypatch, source, complaint
):
    (tmp_path / "broken_corrector.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError) as err:
        make_config(
            str(tmp_path), strategy={"name": "self_correct", "corrector": "broken_corrector:fix"}
        )
    one_line(err.value, "cannot import it", complaint)


ANY_METRIC = ["w2", "mmd", "mean_err", "var", "precision", "recall", "density", "coverage"]
ANY_METRIC += ["fid", "kid"]


@settings(max_examples=60, deadline=None)
@given(
    n_eval=st.integers(1, 8),
    n=st.integers(1, 8),
    metrics=st.lists(st.sampled_from(ANY_METRIC), min_size=1, unique=True),
    seed=st.integers(0, 3),
)
def test_a_config_that_passes_has_rows_enough_for_its_metrics(n_eval, n, metrics, seed):
    raw = {
        "data": {"real": "toy:gaussian", "n_real": 10, "n_train": 2, "loop": "accumulate"},
        "sample": {"n": n},
        "eval": {"metrics": metrics, "features": "raw"},
    }
    raw["data"]["n_eval"] = n_eval
    try:
        preflight.check(validate(raw))
    except UserError as err:
        one_line(err)
        return
    rng = np.random.default_rng(seed)
    measured = evaluate(metrics, rng.standard_normal((n, 2)), rng.standard_normal((n_eval, 2)))
    assert set(measured) == set(metrics)  # no exception; FID may be NaN, which the chain reports


def test_fid_of_too_few_rows_is_nan_not_a_traceback():
    rng = np.random.default_rng(0)
    assert np.isnan(fid(rng.standard_normal((1, 4)), rng.standard_normal((10, 4))))


# --- user correctors ------------------------------------------------------------------------
def raises(x, *, real, rng):
    raise RuntimeError("boom")


def wrong_shape(x, *, real, rng):
    return x[:, :1]


def nan_rows(x, *, real, rng):
    out = x.copy()
    out[len(out) // 2] = np.nan
    return out


def huge(x, *, real, rng):
    return x * 1e300


def words(x, *, real, rng):
    return "corrected"


CALLS: list[int] = []  # in the chain's actor, which imports this module for the corrector


def fails_after_generation_0(x, *, real, rng):
    CALLS.append(len(x))
    if len(CALLS) > 1:
        raise KeyError("lookup")
    return x


@pytest.mark.parametrize(
    ("corrector", "complaint"),
    [
        ("raises", "raised RuntimeError: boom"),
        ("wrong_shape", "returned shape (20, 1) for rows of shape (20, 2)"),
        ("nan_rows", "returned NaN, infinite or beyond-float32 values in 1 of 20 rows"),
        ("huge", "returned NaN, infinite or beyond-float32 values in 20 of 20 rows"),
        ("words", "returned str, not an array of numbers"),
    ],
)
def test_a_misbehaving_corrector_is_one_line_naming_it_and_the_generation(
    tmp_path, corrector, complaint
):
    spec = f"{__name__}:{corrector}"
    strategy = make_config(str(tmp_path), strategy={"name": "self_correct", "corrector": spec})
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(UserError) as err:
        correct_rows(x, np.arange(20), strategy.strategy, "toy:gaussian", lambda: x, 0, 3)
    one_line(err.value, f"generation 3: corrector {spec} {complaint}")


def test_a_corrector_failing_at_generation_1_keeps_generation_0(ray_cluster, tmp_path):
    """Through the chain's Ray actor, as `collapse run` goes: the line comes out whole."""
    spec = f"{__name__}:fails_after_generation_0"
    config = make_config(str(tmp_path), strategy={"name": "self_correct", "corrector": spec})
    with pytest.raises(UserError) as err:
        run_chain(config)
    one_line(err.value, f"generation 1: corrector {spec} raised KeyError: 'lookup'")
    store = RunStore(str(tmp_path / "t"))
    (kept,) = store.committed()
    for artifact in kept["samples"] + kept["model"]:
        store.read_artifact(artifact)  # whole, as committed


# --- metrics that are not finite ------------------------------------------------------------
def diverging(storage: str, **eval_keys):
    """A KDE whose bandwidth puts every sample beyond float32: stored, they are infinite."""
    return make_config(
        storage, generations=2, model={"family": "kde", "bandwidth": 1e300}, eval=eval_keys
    )


def test_nonfinite_metrics_stop_the_chain_saying_which_and_why(tmp_path):
    with pytest.raises(UserError) as err:
        run_in_process(diverging(str(tmp_path)))
    one_line(
        err.value,
        "generation 0: w2 is nan, mean_err is",
        "the samples hold NaN or infinite values in 100 of 100 rows",
        "eval.allow_nonfinite",
    )
    assert RunStore(str(tmp_path / "t")).committed() == []


def test_allowed_nonfinite_metrics_are_recorded_and_shown(tmp_path, capsys):
    config = diverging(str(tmp_path), allow_nonfinite=True)
    records = run_in_process(config)
    assert [r["nonfinite"] for r in records] == [["w2", "mean_err", "var"]] * 2
    assert RunStore(str(tmp_path / "t")).committed()[1]["nonfinite"] == ["w2", "mean_err", "var"]
    progress = ChainProgress(config)
    progress.start(RunStore(str(tmp_path / "t")), 0)
    progress.generation(records[0])
    assert "non-finite: w2, mean_err, var (allowed)" in capsys.readouterr().err
