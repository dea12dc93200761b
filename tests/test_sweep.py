"""Sweeps: the search space checked up front, a grid run as Ray Tune trials, ASHA, a killed
driver resumed, and the sweep's report."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from collapse.cli import main
from collapse.config.sweep_space import trial_config, trial_name
from collapse.errors import UserError
from collapse.store.run_store import RunStore
from collapse.sweeps.definition import check_sweep, create_or_resume_sweep, load_sweep
from tests.helpers import own_stderr

REPO = Path(__file__).resolve().parents[1]
BASE = {
    "generations": 4,
    "data": {"real": "toy:gaussian", "dim": 3, "n_real": 2000, "n_train": 100, "n_eval": 300},
    "model": {"family": "gaussian"},
    "eval": {"metrics": ["w2", "var"]},
}


def sweep_file(tmp_path, **keys) -> Path:
    raw = {"name": "study", "storage": str(tmp_path / "sweeps"), "base": BASE}
    raw.update(keys)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("space", "needles"),
    [
        (
            {"data.real_fractoin": [0.5]},
            ["space.data.real_fractoin", "unknown key", "real_fraction"],
        ),
        ({"data.real_fraction": []}, ["space.data.real_fraction", "empty grid"]),
        ({"seed": {"choice": []}}, ["space.seed", "empty choice"]),
        ({"data.real_fraction": [0.5, 1.5]}, ["space.data.real_fraction[1] = 1.5", "less than"]),
        ({"train.lr": {"loguniform": [0, 1]}}, ["space.train.lr", "low > 0"]),
        ({"train.lr": {"normal": [0, 1]}}, ["space.train.lr", "give a list"]),
        ({"name": ["a", "b"]}, ["space.name", "the sweep sets name"]),
        ({}, ["space: empty"]),
    ],
)
def test_bad_search_spaces_exit_2_with_one_line(tmp_path, capsys, space, needles):
    path = sweep_file(tmp_path, space=space)
    assert main(["sweep", str(path)]) == 2
    err = own_stderr(capsys)
    assert err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err
    assert not (tmp_path / "sweeps").exists(), "nothing is written for a bad sweep"


def test_bad_early_stop_and_resources_are_named(tmp_path):
    space = {"seed": [0, 1]}
    with pytest.raises(UserError, match="early_stop.*'fidd' unknown"):
        check_sweep(
            {
                "name": "s",
                "base": BASE,
                "space": space,
                "early_stop": {"metric": "fidd", "mode": "min"},
            }
        )
    with pytest.raises(UserError, match="resources.gpus"):
        check_sweep({"name": "s", "base": BASE, "space": space, "resources": {"gpus": -1}})


def test_trial_config_applies_the_point_and_places_the_run_in_the_sweep(tmp_path):
    path = sweep_file(
        tmp_path,
        space={"data.loop": ["fresh_data"], "data.real_fraction": [0.25]},
        resources={"train_workers": 3},
    )
    sweep = load_sweep(path)
    params = {"data.loop": "fresh_data", "data.real_fraction": 0.25}
    name = trial_name(7, params)
    assert name == "t007-data.loop-fresh_data_data.real_fraction-0.25"
    config = trial_config(sweep, params, name)
    assert (config.data.loop, config.data.real_fraction, config.train.workers) == (
        "fresh_data",
        0.25,
        3,
    )
    assert config.storage == f"{tmp_path}/sweeps/study/trials" and config.name == name
    assert len(trial_name(1, {"x": "y" * 500})) <= 128


def test_a_changed_sweep_is_refused(tmp_path):
    first = load_sweep(sweep_file(tmp_path, space={"seed": [0, 1]}))
    assert create_or_resume_sweep(first) is False
    assert create_or_resume_sweep(first) is True  # the same sweep again: resume
    changed = load_sweep(sweep_file(tmp_path, space={"seed": [0, 1, 2]}))
    with pytest.raises(UserError, match="differs in: space.seed"):
        create_or_resume_sweep(changed)


@pytest.mark.slow
def test_a_grid_of_four_trials_on_ray_tune_and_its_report(ray_cluster, tmp_path, capsys):
    path = sweep_file(
        tmp_path,
        space={"data.loop": ["fully_synthetic", "fresh_data"], "data.real_fraction": [0.2, 0.8]},
        resources={"cpus": 1},
        max_concurrent_trials=2,
    )
    assert main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 trials, 0 failed" in out
    trials = tmp_path / "sweeps" / "study" / "trials"
    names = sorted(p.name for p in trials.iterdir())
    assert names == [
        "t000-data.loop-fully_synthetic_data.real_fraction-0.2",
        "t001-data.loop-fresh_data_data.real_fraction-0.2",
        "t002-data.loop-fully_synthetic_data.real_fraction-0.8",
        "t003-data.loop-fresh_data_data.real_fraction-0.8",
    ]
    for name in names:
        assert [r["generation"] for r in RunStore(str(trials / name)).committed()] == [0, 1, 2, 3]
    # Tune saw every generation of every trial, with generation as the time attribute
    results = [
        [json.loads(line) for line in (p / "result.json").read_text().splitlines()]
        for p in (tmp_path / "sweeps" / "study" / "tune").iterdir()
        if p.is_dir()
    ]
    assert sorted(len(r) for r in results) == [4, 4, 4, 4]
    assert all([row["generation"] for row in r] == [0, 1, 2, 3] and "w2" in r[0] for r in results)

    sweep_uri = str(tmp_path / "sweeps" / "study")
    plots = tmp_path / "plots"
    argv = ["report", sweep_uri, "--format", "json", "--plots", str(plots)]
    assert main([*argv, "--heatmap", "data.real_fraction,data.loop", "--metric", "w2"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out[: out.index("\n\nw2 (final")])
    assert len(rows) == 4 and rows[0]["trial"] == names[0]
    assert {(r["data.loop"], r["data.real_fraction"], r["generation"]) for r in rows} == {
        (loop, fraction, 3) for loop in ("fully_synthetic", "fresh_data") for fraction in (0.2, 0.8)
    }
    assert all(isinstance(r["w2"], float) for r in rows)
    assert "rows data.loop, columns data.real_fraction" in out
    written = {p.name for p in plots.iterdir()}
    assert {"w2.png", "var.png", "final.png", "heatmap-w2.png"} <= written
    from PIL import Image

    heat = Image.open(plots / "heatmap-w2.png").convert("RGB")
    assert heat.size[0] >= 300 and heat.size[1] >= 200
    assert max(heat.getextrema()[0]) - min(heat.getextrema()[0]) > 50, "blank heatmap"
    # a key that was not swept is named
    assert main(["report", sweep_uri, "--heatmap", "seed,data.loop", "--metric", "w2"]) == 2
    assert "seed is not a swept key" in capsys.readouterr().err


@pytest.mark.slow
def test_asha_stops_trials_that_fall_behind(ray_cluster, tmp_path, capsys):
    path = sweep_file(
        tmp_path,
        base={**BASE, "generations": 8, "data": {**BASE["data"], "loop": "fresh_data"}},
        space={"data.real_fraction": [0.9, 0.0, 0.0]},  # the first is far better than the rest
        max_concurrent_trials=1,  # in order: the good trial sets the bar at every rung
        early_stop={"metric": "w2", "mode": "min", "grace_period": 1, "reduction_factor": 2},
    )
    assert main(["sweep", str(path)]) == 0
    trials = tmp_path / "sweeps" / "study" / "trials"
    done = {p.name: len(RunStore(str(p)).committed()) for p in trials.iterdir()}
    assert done["t000-data.real_fraction-0.9"] == 8
    assert min(done.values()) < 8, f"no trial stopped early: {done}"


@pytest.mark.subprocess
@pytest.mark.faults
def test_a_killed_sweep_driver_resumes_the_experiment(cli_env, tmp_path):
    base = {
        **BASE,
        "generations": 30,
        "data": {**BASE["data"], "dim": 50, "n_real": 1500, "n_train": 1500, "n_eval": 1500},
        "eval": {"metrics": ["w2", "precision", "recall"]},  # k-NN: a generation takes a while
    }
    path = sweep_file(tmp_path, base=base, space={"seed": [0, 1]}, max_concurrent_trials=1)
    proc = subprocess.Popen(
        ["collapse", "sweep", str(path)],
        env=cli_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = tmp_path / "sweeps" / "study" / "trials" / "t000-seed-0"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if (first / "manifest.json").exists() and len(RunStore(str(first)).committed()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = RunStore(str(first)).committed()
    assert 3 <= len(before) < 30, "the kill must land mid-trial"

    resumed = subprocess.run(
        ["collapse", "sweep", str(path)],
        env=cli_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming sweep" in resumed.stderr and "2 trials, 0 failed" in resumed.stdout
    trials = tmp_path / "sweeps" / "study" / "trials"
    assert sorted(p.name for p in trials.iterdir()) == ["t000-seed-0", "t001-seed-1"]
    after = RunStore(str(first)).committed()
    assert [r["generation"] for r in after] == list(range(30))
    assert after[: len(before)] == before, "committed generations were recomputed"
    assert len(RunStore(str(trials / "t001-seed-1")).committed()) == 30


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_load_and_check(path):
    sweep = load_sweep(path)
    assert sweep.space and sweep.base
