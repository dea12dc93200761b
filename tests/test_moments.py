"""Mergeable moments: merging parts equals the moments of the whole, and an accumulate chain of a
family that fits from moments fits what a fit of every row would."""

from __future__ import annotations

import numpy as np
import pytest

from collapse.families.gaussian import FAMILY as GAUSSIAN
from collapse.families.moments import Moments


@pytest.mark.parametrize("full", [False, True])
def test_merging_parts_gives_the_moments_of_all_rows(full):
    rng = np.random.default_rng(0)
    parts = [rng.normal(loc=k, scale=1 + k, size=(n, 3)) for k, n in enumerate([5, 1, 40, 7])]
    merged = Moments(0, np.zeros(0), np.zeros(0))
    for part in parts:
        merged = merged.merge(Moments.of(part, full))
    whole = np.concatenate(parts)
    assert merged.count == len(whole)
    np.testing.assert_allclose(merged.mean, whole.mean(axis=0), rtol=1e-13)
    expected = np.cov(whole.T, ddof=0) if full else whole.var(axis=0)
    np.testing.assert_allclose(merged.covariance(0), expected, rtol=1e-12)


def test_merging_is_stable_far_from_the_origin():
    """A naive sum of squares loses every digit of a variance of 1 at a mean of 1e8."""
    rng = np.random.default_rng(1)
    parts = [1e8 + rng.standard_normal((1000, 2)) for _ in range(50)]
    merged = Moments(0, np.zeros(0), np.zeros(0))
    for part in parts:
        merged = merged.merge(Moments.of(part, full=False))
    np.testing.assert_allclose(merged.covariance(1), np.concatenate(parts).var(0, ddof=1), 1e-6)


@pytest.mark.parametrize("covariance", ["diag", "full"])
@pytest.mark.parametrize("estimator", ["mle", "unbiased"])
def test_a_gaussian_fit_from_moments_is_the_fit_of_the_rows(covariance, estimator):
    from collapse.config.model_section import GaussianModel

    config = GaussianModel(family="gaussian", covariance=covariance, estimator=estimator)
    x = np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32)
    fitted = GAUSSIAN.fit(x, config, np.random.default_rng(0))
    x64, ddof = x.astype(np.float64), 0 if estimator == "mle" else 1
    if covariance == "diag":  # bit for bit what numpy's var gives: unchanged fits
        assert np.array_equal(fitted["var"], x64.var(axis=0, ddof=ddof))
    else:
        np.testing.assert_allclose(fitted["cov"], np.cov(x64.T, ddof=ddof), rtol=1e-12)
    assert np.array_equal(fitted["mean"], x64.mean(axis=0))


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_an_accumulate_chain_fits_its_real_rows_and_every_earlier_sample(tmp_path, covariance):
    """The running total the engine merges generation by generation gives the fit of all the
    rows the plan names, read back from storage."""
    from collapse.data.shards import from_parquet, table_to_vectors
    from collapse.store.records import training_samples
    from collapse.store.run_store import RunStore
    from tests.helpers import make_config, run_in_process

    config = make_config(
        str(tmp_path),
        generations=5,
        data={"loop": "accumulate", "dim": 3},
        model={"family": "gaussian", "covariance": covariance, "estimator": "unbiased"},
    )
    run_in_process(config)
    store = RunStore(str(tmp_path / "t"))
    records = store.committed()

    def rows(record):
        shards = training_samples(record)
        return [table_to_vectors(from_parquet(store.read_artifact(a))) for a in shards]

    real = table_to_vectors(
        from_parquet((tmp_path / "t/real/train/part-00000.parquet").read_bytes())
    )
    everything = np.concatenate([real[:100], *(x for r in records[:4] for x in rows(r))])
    assert len(everything) == records[4]["train_rows"] == 500
    with np.load(store.storage.path(records[4]["model"][0]["path"])) as params:
        np.testing.assert_allclose(params["mean"], everything.astype(np.float64).mean(0), 1e-12)
        key = "cov" if covariance == "full" else "var"
        expected = np.cov(everything.T.astype(np.float64), ddof=1)
        expected = expected if covariance == "full" else np.diag(expected)
        np.testing.assert_allclose(params[key], expected, rtol=1e-12)


@pytest.mark.parametrize("stored_totals", [True, False])
def test_a_resumed_accumulate_chain_fits_the_bits_of_an_uninterrupted_one(
    tmp_path, monkeypatch, stored_totals
):
    """Each generation stores its running total, so a resumed chain reads the latest one, not
    every earlier generation's samples; a run made before totals were stored rebuilds the
    total from the samples in the chain's order. Either way the fits are the same bits."""
    from collapse.engine import ChainEngine, LocalBackend
    from collapse.engine.history import RunHistory
    from collapse.engine.run_opening import create_or_resume
    from tests.helpers import make_config, run_in_process

    def config(where):
        return make_config(str(where), generations=6, data={"loop": "accumulate"})

    reference = run_in_process(config(tmp_path / "ref"))
    create_or_resume(config(tmp_path))
    first = ChainEngine(config(tmp_path), LocalBackend())
    for generation in range(4):
        first.run_generation(generation)
    read = []
    original = RunHistory.read_samples
    monkeypatch.setattr(
        RunHistory,
        "read_samples",
        lambda self, shards: read.extend(a["path"] for a in shards) or original(self, shards),
    )
    fresh = ChainEngine(config(tmp_path), LocalBackend())  # a new process: nothing in memory
    if not stored_totals:
        for record in fresh.store.committed():
            del record["accumulated"]
    records = [fresh.run_generation(4), fresh.run_generation(5)]
    earlier = sorted({path.split("/")[0] for path in read} - {"gen-0004", "gen-0005"})
    assert earlier == ([] if stored_totals else ["gen-0000", "gen-0001", "gen-0002", "gen-0003"])
    for ours, theirs in zip(records, reference[4:], strict=True):
        assert ours["metrics"] == theirs["metrics"] and ours["model"] == theirs["model"]
        assert ours["accumulated"] == theirs["accumulated"]
