"""Experiment tracking, read back with each backend's own reader: a chain's metrics (step =
generation), samples.png and training loss curve in TensorBoard (its event reader), MLflow (its
client on a local file store) and W&B (offline run files, W&B's `leet inspect`); a sweep through
Ray Tune's own callbacks, read back as a DataFrame too; the loss curve the training loop keeps."""

from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import collapse
from collapse.families.rectified_flow.interpolant import flow_matching_objective
from collapse.training.loop import train
from collapse.training.nets import VectorField
from collapse.training.state import TrainSettings, TrainState

WANDB = str(Path(sys.executable).parent / "wandb")


def tracking(tmp_path, wandb=True):
    return {
        "tensorboard": True,
        "mlflow": {"uri": f"file:{tmp_path / 'mlruns'}", "experiment": "collapse-tests"},
        "wandb": {"mode": "offline", "project": "collapse-tests", "dir": str(tmp_path / "wb")}
        if wandb
        else {"mode": "off"},
    }


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No W&B credentials anywhere: offline must not need a login."""
    for key in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc, no ~/.config/wandb


def same(points, expected):
    """(step, value) points: the same steps, values equal to float32's precision."""
    points, expected = list(points), list(expected)
    assert [s for s, _ in points] == [s for s, _ in expected]
    assert [v for _, v in points] == pytest.approx([v for _, v in expected], rel=1e-6)


def wandb_history(folder):
    """History rows of the offline W&B runs under `folder`, as W&B's own reader gives them."""
    rows = []
    for path in sorted(glob.glob(f"{folder}/wandb/offline-run-*/run-*.wandb")):
        out = subprocess.run(
            [WANDB, "leet", "inspect", "--json", path], capture_output=True, text=True, check=True
        ).stdout
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        rows += [r["history"]["item"] for r in records if r.get("type") == "history"]
    return rows


@pytest.mark.slow
def test_a_chain_logs_metrics_samples_and_loss_curves_to_three_trackers(
    ray_cluster, tmp_path, offline
):
    config = {
        "name": "tracked",
        "storage": str(tmp_path / "runs"),
        "generations": 2,
        "data": {"real": "toy:mog8", "dim": 2, "n_real": 64, "n_train": 32, "n_eval": 32},
        "model": {"family": "rectified_flow", "net": {"hidden": 8, "depth": 1}},
        "train": {"workers": 0, "steps": 4, "checkpoint_every": 4, "log_every": 2},
        "sample": {"steps": 2},
        "eval": {"metrics": ["w2", "var"]},
        "tracking": tracking(tmp_path),
    }
    run = collapse.run(config, quiet=True)
    records = run.records
    w2 = [r["metrics"]["w2"] for r in records]
    curve = [(g * 4 + s, v) for g in (0, 1) for s, v in run.loss_curve(g).to_numpy()]
    assert [s for s, _ in curve] == [2, 4, 6, 8]

    events = EventAccumulator(os.path.join(run.uri, "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    same(((e.step, e.value) for e in events.Scalars("metrics/w2")), enumerate(w2))
    same(((e.step, e.value) for e in events.Scalars("train/loss")), curve)
    assert [e.step for e in events.Images("samples")] == [0, 1]

    client = MlflowClient(config["tracking"]["mlflow"]["uri"])
    (found,) = client.search_runs([client.get_experiment_by_name("collapse-tests").experiment_id])
    assert found.data.tags["collapse.run_uri"] == run.uri
    assert found.data.params["model.family"] == "rectified_flow"
    history = client.get_metric_history(found.info.run_id, "w2")
    same(((m.step, m.value) for m in history), enumerate(w2))
    losses = client.get_metric_history(found.info.run_id, "train_loss")
    same(sorted((m.step, m.value) for m in losses), curve)
    pictures = [a.path for a in client.list_artifacts(found.info.run_id, "samples")]
    assert pictures == ["samples/gen-0000.png", "samples/gen-0001.png"]

    rows = wandb_history(tmp_path / "wb")
    logged = [(r["generation"], r["metrics/w2"]) for r in rows if "generation" in r]
    same(logged, enumerate(w2))
    assert all(r["samples._type"] == "image-file" for r in rows if "generation" in r)
    steps = [(r["train/step"], r["train/loss"]) for r in rows if "train/step" in r]
    same(steps, curve)

    # extended (tracking may change on resume, here without W&B): MLflow finds its run again
    collapse.run({**config, "generations": 3, "tracking": tracking(tmp_path, False)}, quiet=True)
    (again,) = client.search_runs([found.info.experiment_id])
    assert again.info.run_id == found.info.run_id
    assert [m.step for m in client.get_metric_history(again.info.run_id, "w2")] == [0, 1, 2]


@pytest.mark.slow
def test_a_sweep_from_python_logs_through_tunes_callbacks_and_reads_back(
    ray_cluster, tmp_path, offline
):
    spec = {
        "name": "study",
        "storage": str(tmp_path / "sweeps"),
        "base": {
            "generations": 2,
            "data": {"real": "toy:gaussian", "dim": 2, "n_real": 200, "n_train": 100},
            "model": {"family": "gaussian"},
            "eval": {"metrics": ["w2", "var"]},
            "tracking": tracking(tmp_path),
        },
        "space": {"data.real_fraction": [0.0, 0.5]},
        "resources": {"cpus": 1},
        "max_concurrent_trials": 2,
    }
    spec["base"]["data"]["loop"] = "fresh_data"
    frame = collapse.sweep(spec)
    assert len(frame) == 4 and set(frame["data.real_fraction"]) == {0.0, 0.5}
    assert sorted(frame["generation"]) == [0, 0, 1, 1]
    assert frame.equals(collapse.open_sweep(str(tmp_path / "sweeps" / "study")))
    by_trial = {t: list(rows["w2"]) for t, rows in frame.groupby("trial")}

    # Tune's step is its training iteration (generation + 1); `generation` is logged beside
    for folder in glob.glob(f"{tmp_path}/sweeps/study/tune/t00*"):
        events = EventAccumulator(folder)
        events.Reload()
        w2 = [e.value for e in events.Scalars("ray/tune/w2")]
        assert w2 == pytest.approx(by_trial[Path(folder).name])

    client = MlflowClient(spec["base"]["tracking"]["mlflow"]["uri"])
    runs = client.search_runs([client.get_experiment_by_name("collapse-tests").experiment_id])
    assert len(runs) == 2
    for found in runs:
        history = client.get_metric_history(found.info.run_id, "w2")
        assert len(history) == 2 and found.data.tags["collapse.sweep_uri"].endswith("study")

    rows = wandb_history(tmp_path / "wb")
    assert sorted(r["generation"] for r in rows if "w2" in r) == [0, 0, 1, 1]


def test_the_loss_curve_is_the_mean_of_each_window_and_survives_a_restart():
    settings = TrainSettings(steps=10, lr=1e-2, checkpoint_every=4, log_every=3)
    device = torch.device("cpu")
    batch = {"x": torch.randn(16, 2, generator=torch.Generator().manual_seed(0))}

    def fresh():
        torch.manual_seed(0)
        return TrainState.create(VectorField(2, hidden=8, depth=1), settings, device)

    losses = []

    def objective(model, x0, x1, generator, batch=None):
        loss = flow_matching_objective(model, x0, x1, generator)
        losses.append(loss.item())  # the test's own host sync, to check the curve against
        return loss

    whole = train(fresh(), iter(lambda: batch, None), settings, device, objective=objective)
    means = [np.mean(losses[a:b]) for a, b in ((0, 3), (3, 6), (6, 9), (9, 10))]
    assert [s for s, _ in whole.curve] == [3, 6, 9, 10]
    np.testing.assert_allclose([v for _, v in whole.curve], means, rtol=1e-6)

    class Stop(Exception):
        pass

    saved = {}

    def stop_at_first_checkpoint(state, loss):  # step 4: in the middle of the second window
        saved.update(copy.deepcopy(state.state_dict()))
        raise Stop

    with pytest.raises(Stop):
        train(
            fresh(),
            iter(lambda: batch, None),
            settings,
            device,
            stop_at_first_checkpoint,
            objective=flow_matching_objective,
        )
    restarted = fresh()
    restarted.load_state_dict(saved)
    train(restarted, iter(lambda: batch, None), settings, device, objective=flow_matching_objective)
    assert restarted.curve == whole.curve
