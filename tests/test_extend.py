"""Long chains as researchers run them: a raised `generations` extends a finished run (locally,
on S3, from the CLI, in a sweep), a lowered one or any other changed key is refused, an
extension cut between its writes leaves a run that opens, and `resume --set` takes only the
keys that do not change what was computed."""

from __future__ import annotations

import pytest
import yaml

from collapse.cli import main
from collapse.config import resume_safe
from collapse.config.sweep_space import trial_config, trial_name
from collapse.engine.run_opening import create_or_resume
from collapse.errors import UserError
from collapse.store import run_config
from collapse.store.run_store import RunStore
from collapse.sweeps.definition import create_or_resume_sweep, load_sweep
from tests.helpers import make_config, own_stderr, run_in_process


def metrics_of(uri: str) -> list[dict[str, float]]:
    return [r["metrics"] for r in RunStore(uri).committed()]


def test_raising_generations_extends_to_what_an_uninterrupted_chain_gives(tmp_path):
    run_in_process(make_config(str(tmp_path), generations=3))
    uri = str(tmp_path / "t")
    first = RunStore(uri).committed()
    run_in_process(make_config(str(tmp_path), generations=5))
    extended = RunStore(uri).committed()
    assert [r["generation"] for r in extended] == [0, 1, 2, 3, 4]
    assert extended[:3] == first, "an extension recomputed committed generations"
    run_in_process(make_config(str(tmp_path), name="whole", generations=5))
    assert metrics_of(uri) == metrics_of(str(tmp_path / "whole"))
    store = RunStore(uri)
    assert run_config.read(store).generations == 5
    assert len(store.storage.read_text(run_config.CONFIG_SHA).splitlines()) == 1


def test_a_lowered_generations_or_another_changed_key_is_refused(tmp_path):
    run_in_process(make_config(str(tmp_path), generations=3))
    with pytest.raises(UserError, match=r"has generations: 3; a lower count \(2\) is refused"):
        create_or_resume(make_config(str(tmp_path), generations=2))
    with pytest.raises(UserError, match=r"differs in: seed\)"):  # generations raised: not named
        create_or_resume(make_config(str(tmp_path), generations=9, seed=1))
    assert run_config.read(RunStore(str(tmp_path / "t"))).generations == 3


@pytest.mark.parametrize("writes_done", [1, 2])
def test_an_extension_cut_between_its_writes_leaves_a_run_that_opens(
    tmp_path, monkeypatch, writes_done
):
    run_in_process(make_config(str(tmp_path), generations=2))
    store = RunStore(str(tmp_path / "t"))
    real_write = type(store.storage).write_bytes
    done = []

    def crash_after(self, rel, data, atomic=False):
        if rel in ("config.yaml", run_config.CONFIG_SHA) and len(done) == writes_done:
            raise KeyboardInterrupt  # the driver dies here
        real_write(self, rel, data, atomic)
        done.append(rel)

    monkeypatch.setattr(type(store.storage), "write_bytes", crash_after)
    with pytest.raises(KeyboardInterrupt):
        run_config.extend(store, 4)
    monkeypatch.undo()
    # step 1 done: the old config, vouched for with the new; step 2: the new one
    assert run_config.read(store).generations == (2 if writes_done == 1 else 4)
    records = run_in_process(make_config(str(tmp_path), generations=4))
    assert [r["generation"] for r in records] == [2, 3]
    assert run_config.read(store).generations == 4
    assert len(store.storage.read_text(run_config.CONFIG_SHA).splitlines()) == 1


def test_extending_a_run_on_s3(s3_bucket):
    storage = f"s3://{s3_bucket}/runs"
    run_in_process(make_config(storage, generations=2))
    assert [r["generation"] for r in run_in_process(make_config(storage, generations=3))] == [2]
    store = RunStore(f"{storage}/t")
    assert len(store.committed()) == 3 and run_config.read(store).generations == 3
    with pytest.raises(UserError, match="lower count"):
        create_or_resume(make_config(storage, generations=2))


def test_resume_set_takes_placement_and_eval_keys_and_refuses_the_rest(tmp_path):
    run_in_process(make_config(str(tmp_path), generations=2))
    uri = str(tmp_path / "t")
    stored = run_config.read(RunStore(uri))
    config = run_config.with_overrides(
        stored, ["sample.workers=2", "train.workers=0", "eval.metrics=[w2]"], uri
    )
    assert (config.sample.workers, config.train.workers, config.eval.metrics) == (2, 0, ["w2"])
    assert run_config.check_same(stored, config, uri) is False  # a resume, not a change
    for key, value in (("data.n_train", 50), ("seed", 3), ("name", "other")):
        with pytest.raises(UserError, match=rf"resume --set {key}: not a key a resume may"):
            run_config.with_overrides(stored, [f"{key}={value}"], uri)
    # a knn corrector in feature space trains on what eval.features gives: not resume-safe
    knn = make_config(
        str(tmp_path),
        name="knn",
        strategy={"name": "self_correct", "corrector": "knn", "knn_space": "features"},
    )
    assert resume_safe("eval.features", stored) and not resume_safe("eval.features", knn)


def test_resume_generations_and_set_from_the_cli(ray_cluster, tmp_path, capsys):
    run_in_process(make_config(str(tmp_path), generations=2))
    uri = str(tmp_path / "t")
    assert main(["resume", uri, "--generations", "3", "--dry-run"]) == 0
    assert "extends it from 2 to 3 generations" in capsys.readouterr().out
    assert len(RunStore(uri).committed()) == 2, "a dry run ran something"
    assert main(["resume", uri, "--generations", "3", "--set", "eval.metrics=[w2]"]) == 0
    records = RunStore(uri).committed()
    assert len(records) == 3 and set(records[2]["metrics"]) == {"sigma2", "log_sigma2", "w2"}
    assert run_config.read(RunStore(uri)).eval.metrics == ["w2", "mean_err", "var"]
    capsys.readouterr()
    assert main(["resume", uri, "--set", "data.n_train=50"]) == 2
    err = own_stderr(capsys)
    assert err.count("\n") == 1 and "resume --set data.n_train" in err
    assert main(["resume", uri, "--generations", "2"]) == 2
    assert "a lower count (2) is refused" in capsys.readouterr().err


SWEEP_BASE = {
    "generations": 2,
    "data": {"real": "toy:gaussian", "dim": 2, "n_real": 400, "n_train": 100, "n_eval": 200},
    "model": {"family": "gaussian"},
    "eval": {"metrics": ["w2", "var"]},
}


def write_sweep(tmp_path, generations: int):
    path = tmp_path / "sweep.yaml"
    raw = {
        "name": "study",
        "storage": str(tmp_path / "sweeps"),
        "base": {**SWEEP_BASE, "generations": generations},
        "space": {"seed": [0, 1]},
        "max_concurrent_trials": 2,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_a_sweep_with_raised_generations_extends_every_trial(ray_cluster, tmp_path, capsys):
    # the sweep as its first run leaves it (its trials' chains run in-process, for time)
    sweep = load_sweep(write_sweep(tmp_path, 2))
    assert create_or_resume_sweep(sweep) is False
    for index, seed in enumerate((0, 1)):
        name = trial_name(index, {"seed": seed})
        run_in_process(trial_config(sweep, {"seed": seed}, name))
    trials = tmp_path / "sweeps" / "study" / "trials"
    before = {p.name: RunStore(str(p)).committed() for p in trials.iterdir()}
    assert sorted(before) == ["t000-seed-0", "t001-seed-1"]
    with pytest.raises(UserError, match=r"a lower count \(1\) is refused"):
        create_or_resume_sweep(load_sweep(write_sweep(tmp_path, 1)))
    assert main(["sweep", str(write_sweep(tmp_path, 4))]) == 0
    assert "2 trials, 0 failed" in capsys.readouterr().out
    for name, records in before.items():
        after = RunStore(str(trials / name)).committed()
        assert [r["generation"] for r in after] == [0, 1, 2, 3]
        assert after[:2] == records
    assert (tmp_path / "sweeps" / "study" / "tune-g4").is_dir()
    assert load_sweep(write_sweep(tmp_path, 4)).base["generations"] == 4


def test_a_sweep_is_extended_only_once_all_its_trials_started(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, 2))
    create_or_resume_sweep(sweep)
    run_in_process(trial_config(sweep, {"seed": 0}, trial_name(0, {"seed": 0})))
    with pytest.raises(UserError, match="has started 1 of its 2 trials: rerun it unchanged"):
        create_or_resume_sweep(load_sweep(write_sweep(tmp_path, 4)))
