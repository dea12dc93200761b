"""The exact corrector: Gillman et al.'s pi_gamma = (p_theta + gamma p*) / (1 + gamma), each
row replaced by a true draw with probability gamma / (1 + gamma), and what it does to a fully
synthetic GMM loop on toy:mog8 that Langevin, a local corrector, cannot."""

from __future__ import annotations

import numpy as np
import pytest

from collapse.data.toy import MOG8_RADIUS, MOG8_STD, toy_sample
from collapse.errors import UserError
from collapse.strategies.self_correct import correct_rows
from collapse.strategies.true_draws import true_draws
from tests.helpers import make_config, run_in_process

N = 40_000
CENTRES = MOG8_RADIUS * np.stack(
    [np.cos(2 * np.pi * np.arange(8) / 8), np.sin(2 * np.pi * np.arange(8) / 8)], axis=1
)


def _modes(x: np.ndarray) -> np.ndarray:
    """Each row's nearest mog8 centre."""
    return np.linalg.norm(x[:, None, :] - CENTRES[None], axis=2).argmin(axis=1)


def _strategy(source="toy:mog8", **strategy):
    dim = 3 if source == "toy:gaussian" else 2
    data = {"real": source, "dim": dim}
    return make_config("/unused", data=data, strategy={"name": "self_correct", **strategy}).strategy


@pytest.mark.parametrize("source", ["toy:gaussian", "toy:mog8", "toy:two_moons"])
def test_true_draws_follow_the_sources_own_law_and_depend_on_the_row_alone(source):
    dim = 3 if source == "toy:gaussian" else 2
    ids = np.arange(N)
    ours = true_draws(source, ids, dim, seed=7, stream=123)
    theirs = toy_sample(source.removeprefix("toy:"), N, dim, np.random.default_rng(0))
    # two independent samples of one law: moments agree within 4 Monte-Carlo standard errors
    se = np.sqrt((ours.var(axis=0) + theirs.var(axis=0)) / N)
    assert np.all(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) < 4 * se)
    se_var = np.sqrt(2 / N) * (ours.var(axis=0) + theirs.var(axis=0))
    assert np.all(np.abs(ours.var(axis=0) - theirs.var(axis=0)) < 4 * se_var)
    if source == "toy:mog8":  # each mode a fair eighth, and the modes' own spread
        shares = np.bincount(_modes(ours), minlength=8) / N
        np.testing.assert_allclose(shares, 1 / 8, atol=4 * np.sqrt(1 / 8 * 7 / 8 / N))
        spread = (ours - CENTRES[_modes(ours)]).std()
        assert abs(spread - MOG8_STD) < 4 * MOG8_STD / np.sqrt(4 * N)
    part = true_draws(source, ids[N // 2 :], dim, seed=7, stream=123)
    np.testing.assert_array_equal(part, ours[N // 2 :])
    assert not np.allclose(true_draws(source, ids[:10], dim, seed=8, stream=123), ours[:10])


def test_exact_replaces_a_share_strength_of_the_chosen_rows_by_true_draws():
    x = np.full((N, 2), 9.0, dtype=np.float32)  # far from every mode
    ids = np.arange(N)
    for fraction, strength in [(1.0, 0.5), (0.5, 0.5), (1.0, 0.0), (1.0, 1.0)]:
        strategy = _strategy(corrector="exact", correct_fraction=fraction, strength=strength)
        out, drawn = correct_rows(x, ids, strategy, "toy:mog8", None, seed=3, generation=5)
        expected = fraction * strength
        assert abs(drawn.mean() - expected) < 4 * np.sqrt(0.25 / N)
        np.testing.assert_array_equal(out[~drawn], x[~drawn])
        assert np.all(np.abs(np.linalg.norm(out[drawn], axis=1) - MOG8_RADIUS) < 8 * MOG8_STD)
    part, part_drawn = correct_rows(
        x[N // 2 :], ids[N // 2 :], strategy, "toy:mog8", None, seed=3, generation=5
    )
    np.testing.assert_array_equal(part_drawn, drawn[N // 2 :])
    np.testing.assert_array_equal(part, out[N // 2 :])


def test_exact_restores_lost_modes_and_langevin_does_not():
    """A collapsed set on four of the eight modes: pi_1 (strength 0.5) puts 1/16 of the rows on
    each lost mode. Langevin, even Metropolis-adjusted, moves rows within the modes they are
    near: it reaches a lost mode only across the 7-nat barrier between modes, and in 50 steps
    of 0.02 (a diffusion time of 1) about 0.4% of the rows do."""
    rng = np.random.default_rng(1)
    kept = rng.integers(4, size=N) * 2  # modes 0, 2, 4, 6
    x = (CENTRES[kept] + MOG8_STD * rng.standard_normal((N, 2))).astype(np.float32)
    ids = np.arange(N)
    exact = _strategy(corrector="exact", strength=0.5)
    out, _ = correct_rows(x, ids, exact, "toy:mog8", None, seed=2, generation=1)
    lost_shares = np.bincount(_modes(out), minlength=8)[1::2] / N
    np.testing.assert_allclose(lost_shares, 0.5 / 8, atol=4 * np.sqrt(0.5 / 8 / N))
    mala = _strategy(corrector="ideal", step_size=0.02, metropolis=True)
    out, _ = correct_rows(x[:4000], ids[:4000], mala, "toy:mog8", None, seed=2, generation=1)
    assert np.isin(_modes(out), [1, 3, 5, 7]).mean() < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("seed", [401, 402, 403])
def test_exact_correction_keeps_a_fully_synthetic_gmm_loop_at_generation_0(tmp_path, seed):
    """Gillman et al.'s claim where Langevin falls short: GMM(8) refit on 200 of its own
    samples for 25 generations. Uncorrected, modes die and recall falls to a third of
    generation 0's (0.304 +- 0.045 at generation 24, seeds 401-404); with pi_1 (strength 0.5)
    precision and recall stay where generation 0 put them (0.964 +- 0.006, 0.898 +- 0.040)."""
    base = {
        "seed": seed,
        "generations": 25,
        "data": {"real": "toy:mog8", "n_real": 200, "n_train": 200, "n_eval": 1000},
        "model": {"family": "gmm", "components": 8},
        "eval": {"metrics": ["precision", "recall"]},
    }
    arms = {
        "none": make_config(str(tmp_path / "none"), **base),
        "exact": make_config(
            str(tmp_path / "exact"),
            **base,
            strategy={"name": "self_correct", "corrector": "exact", "strength": 0.5},
        ),
    }
    curves = {}
    for arm, config in arms.items():
        records = run_in_process(config)
        curves[arm] = np.array(
            [[r["metrics"]["precision"], r["metrics"]["recall"]] for r in records]
        )
    none, exact = curves["none"], curves["exact"]
    (p0, r0) = exact[0]
    np.testing.assert_array_equal(none[0], exact[0])  # generation 0 trains on real data alone
    assert none[-1, 1] < 0.6 * r0, none[:, 1]
    assert exact[:, 0].min() > p0 - 0.1, exact[:, 0]
    assert exact[:, 1].min() > r0 - 0.15, exact[:, 1]
    assert exact[-5:, 1].mean() > r0 - 0.08, exact[:, 1]


def test_exact_needs_a_source_whose_sampler_is_known():
    with pytest.raises(UserError, match="exact draws from the true source") as err:
        make_config(
            "/unused",
            data={"real": "sklearn:digits"},
            strategy={"name": "self_correct", "corrector": "exact"},
        )
    assert "\n" not in str(err.value)
    assert _strategy("toy:two_moons", corrector="exact").corrector == "exact"
