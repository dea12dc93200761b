"""The closed forms of Gaussian refitting (Shumailov et al. 2024; Borji 2024), checked through
the chain engine.

The `sigma2` of generation g is the variance fitted by G_g, which has been refit g + 1 times
since the true N(0, 1) (generation 0 fits real data). Averaging over many independent dims makes
each check tight: tolerances are a few standard errors computed from the same closed forms.
"""

import math

from scipy.special import digamma, polygamma

from tests.helpers import make_config, run_in_process

DIMS = 1000


def records(tmp_path, n, generations, dims=DIMS, model=None, data=None):
    data = {
        "real": "toy:gaussian",
        "dim": dims,
        "n_real": n * (generations + 1),  # enough fresh rows for every generation
        "n_train": n,
        "n_eval": 50,
        **(data or {}),
    }
    config = make_config(
        str(tmp_path),
        generations=generations,
        data=data,
        model=model or {"family": "gaussian"},
        eval={"metrics": ["mean_err"]},
    )
    return run_in_process(config)


def test_mle_variance_shrinks_by_n_minus_1_over_n_per_refit(tmp_path):
    n, generations = 100, 20
    recs = records(tmp_path, n, generations, model={"family": "gaussian", "estimator": "mle"})
    m = (n - 1) / n
    second = ((n - 1) ** 2 + 2 * (n - 1)) / n**2  # E[(chi2_{n-1}/n)^2]
    for g, rec in enumerate(recs):
        refits = g + 1
        expected = m**refits
        se = math.sqrt((second**refits - m ** (2 * refits)) / DIMS)
        assert abs(rec["metrics"]["sigma2"] - expected) < 4 * se, (
            g,
            rec["metrics"]["sigma2"],
            expected,
        )
    assert recs[-1]["metrics"]["sigma2"] < 0.86  # it really shrank: 0.99^20 = 0.818


def test_unbiased_estimator_drifts_in_log_variance(tmp_path):
    n, generations = 20, 15
    recs = records(tmp_path, n, generations, model={"family": "gaussian", "estimator": "unbiased"})
    step = digamma((n - 1) / 2) + math.log(2 / (n - 1))
    step_var = float(polygamma(1, (n - 1) / 2))  # Var[ln chi2_{n-1}]
    for g, rec in enumerate(recs):
        refits = g + 1
        se = math.sqrt(refits * step_var / DIMS)
        assert abs(rec["metrics"]["log_sigma2"] - refits * step) < 4 * se
    # ... while its mean variance stays unbiased at the start (E[sigma2_1] = 1)
    assert abs(recs[0]["metrics"]["sigma2"] - 1) < 4 * math.sqrt(2 / (n - 1) / DIMS)


def test_fresh_real_data_keeps_variance_away_from_zero(tmp_path):
    n, generations = 20, 40
    collapsed = records(tmp_path / "a", n, generations, dims=200)
    fresh = records(
        tmp_path / "b", n, generations, dims=200, data={"loop": "fresh_data", "real_fraction": 0.5}
    )
    accumulated = records(tmp_path / "c", n, generations, dims=200, data={"loop": "accumulate"})
    assert collapsed[-1]["metrics"]["sigma2"] < 0.2  # (19/20)^41 = 0.12
    assert min(r["metrics"]["sigma2"] for r in fresh) > 0.75  # fixed point ~0.9
    assert min(r["metrics"]["sigma2"] for r in accumulated) > 0.75
    assert fresh[-1]["train_rows"] == n and accumulated[-1]["train_rows"] == n * generations
