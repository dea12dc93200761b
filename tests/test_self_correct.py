"""Self-correcting loops (Gillman et al. 2024): the correctors, the rows they touch, what the
manifest records, and the paper's claim on a toy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse.engine import preflight
from collapse.errors import UserError
from collapse.strategies import correctors, langevin
from collapse.strategies.self_correct import correct_rows
from tests.helpers import make_config, run_in_process


def test_langevin_on_the_true_score_restores_a_collapsed_gaussian():
    rng = np.random.default_rng(0)
    collapsed = rng.normal(size=(20_000, 2)) * 0.3 + 1.0
    noise = rng.normal(size=(20_000, 200, 2))
    out = langevin.langevin(collapsed, langevin.gaussian_score, 0.05, noise)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=0.05)


def test_ideal_computes_what_it_computed_before_mala_and_exact():
    """Stored runs resume identically: these rows are what unadjusted `ideal` gave before the
    exact and Metropolis-adjusted correctors were added (same streams, same steps)."""
    config = make_config(
        "/unused",
        data={"real": "toy:gaussian", "dim": 3, "n_real": 50, "n_train": 50, "n_eval": 50},
        strategy={
            "name": "self_correct",
            "corrector": "ideal",
            "correct_fraction": 0.6,
            "strength": 0.3,
        },
    )
    x = np.arange(15, dtype=np.float32).reshape(5, 3) / 7 - 1
    out, touched = correct_rows(
        x, np.arange(10, 15), config.strategy, "toy:gaussian", None, seed=11, generation=4
    )
    assert touched.tolist() == [True, False, False, True, True]
    before = [
        [2.61220026, -0.329361856, -1.106377125],
        [-0.571428537, -0.428571403, -0.285714269],
        [-0.142857134, 0.0, 0.142857194],
        [0.064773656, 0.183593199, -0.654234409],
        [0.641097069, 0.603032589, 2.35747385],
    ]
    np.testing.assert_allclose(out, before, rtol=1e-7, atol=1e-8)


MOG8_CENTRES = 2.0 * np.stack(
    [np.cos(2 * np.pi * np.arange(8) / 8), np.sin(2 * np.pi * np.arange(8) / 8)], axis=1
)


def _in_mode_spread(x: np.ndarray) -> float:
    nearest = np.linalg.norm(x[:, None, :] - MOG8_CENTRES[None], axis=2).argmin(axis=1)
    return float((x - MOG8_CENTRES[nearest]).std())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_langevin_in_mode_spread_matches_the_truth_when_metropolis_adjusted(seed):
    """On toy:mog8 (std 0.2, curvature L = 25) from modes collapsed to 0.3 of their width:
    Metropolis-adjusted Langevin ends at the true std within its Monte-Carlo error, at any step;
    unadjusted Langevin ends at its own closed form 0.2 / sqrt(1 - step L / 2): 7% wide at
    step 0.01 (far beyond that error), and about 0.32 at the old default 0.05 (now refused)."""
    n, steps = 10_000, 50
    rng = np.random.default_rng(seed)
    centre = MOG8_CENTRES[rng.integers(8, size=n)]
    x = centre + 0.3 * 0.2 * rng.standard_normal((n, 2))
    noise, uniforms = rng.standard_normal((n, steps, 2)), rng.random((n, steps))
    error = 0.2 / np.sqrt(2 * 2 * n)  # standard error of a std from 2n normal values
    for step in (0.02, 0.05):
        out = langevin.mala(
            x, langevin.mog8_score, langevin.mog8_log_density, step, noise, uniforms
        )
        assert abs(_in_mode_spread(out) - 0.2) < 4 * error, step
    unadjusted = _in_mode_spread(langevin.langevin(x, langevin.mog8_score, 0.01, noise))
    assert abs(unadjusted - 0.2 / np.sqrt(1 - 0.01 * 25 / 2)) < 4 * error
    assert unadjusted - 0.2 > 10 * error
    assert _in_mode_spread(langevin.langevin(x, langevin.mog8_score, 0.05, noise)) > 0.3


def test_mala_is_exact_on_a_gaussian_where_unadjusted_langevin_is_four_times_too_wide():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20_000, 1)) * 0.1 + 2.0
    noise, uniforms = rng.standard_normal((20_000, 60, 1)), rng.random((20_000, 60))
    exact = langevin.mala(
        x, langevin.gaussian_score, langevin.gaussian_log_density, 1.5, noise, uniforms
    )
    np.testing.assert_allclose([exact.mean(), exact.var()], [0.0, 1.0], atol=0.04)
    biased = langevin.langevin(x, langevin.gaussian_score, 1.5, noise)
    assert biased.var() == pytest.approx(1 / (1 - 1.5 / 2), rel=0.05)  # 4


def test_mog8_log_density_has_the_score_as_its_gradient():
    x = np.random.default_rng(6).normal(size=(50, 2)) * 1.5
    h = 1e-5
    numeric = np.stack(
        [
            (langevin.mog8_log_density(x + h * e) - langevin.mog8_log_density(x - h * e)) / (2 * h)
            for e in np.eye(2)
        ],
        axis=1,
    )
    np.testing.assert_allclose(numeric, langevin.mog8_score(x), rtol=1e-5, atol=1e-4)


def test_an_unadjusted_step_beyond_the_curvature_is_refused_in_one_line():
    mog8 = {"real": "toy:mog8", "n_real": 50, "n_train": 50, "n_eval": 50}
    ideal = {"name": "self_correct", "corrector": "ideal"}
    with pytest.raises(UserError, match=r"step_size: 0.05 x the largest curvature") as err:
        make_config("/unused", data=mog8, strategy=ideal)
    assert "\n" not in str(err.value) and "metropolis: true" in str(err.value)
    assert make_config("/unused", data=mog8, strategy={**ideal, "metropolis": True})
    assert make_config("/unused", data=mog8, strategy={**ideal, "step_size": 0.004})
    assert make_config("/unused", strategy=ideal)  # toy:gaussian: 0.05 x 1, as before


@pytest.mark.parametrize("metropolis", [False, True])
def test_ideal_at_strength_0_runs_no_step_and_leaves_the_rows(metropolis):
    strategy = make_config(
        "/unused",
        strategy={"name": "self_correct", "strength": 0.0, "metropolis": metropolis},
    ).strategy
    x = np.random.default_rng(7).normal(size=(20, 2)).astype(np.float32)
    out, _ = correct_rows(x, np.arange(20), strategy, "toy:gaussian", None, seed=1, generation=2)
    np.testing.assert_array_equal(out, x)


def test_mog8_score_points_to_the_nearest_mode():
    at_mode = np.array([[2.0, 0.0]])
    np.testing.assert_allclose(langevin.mog8_score(at_mode), 0.0, atol=1e-9)
    beside = np.array([[2.1, 0.0]])  # 0.1 outward of the mode at (2, 0): score -0.1 / std^2
    np.testing.assert_allclose(langevin.mog8_score(beside), [[-0.1 / 0.04, 0.0]], atol=1e-9)


def test_knn_moves_rows_toward_their_nearest_real_rows():
    real = np.array([[0.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    x = np.array([[0.0, 1.0], [9.0, 9.0]])
    np.testing.assert_allclose(
        correctors.toward_nearest_real(x, real, k=2), [[0.0, 1.0], [5.0, 6.0]]
    )
    assert correctors.blend(np.zeros((1, 2)), np.ones((1, 2)), 0.25).tolist() == [[0.25, 0.25]]


def test_the_fraction_and_rows_corrected_do_not_depend_on_batching():
    config = make_config(
        "/unused",
        strategy={"name": "self_correct", "corrector": "knn", "correct_fraction": 0.3},
    )
    x = np.random.default_rng(1).normal(size=(1000, 2)).astype(np.float32)
    real = np.random.default_rng(2).normal(size=(300, 2))
    whole, touched = correct_rows(
        x, np.arange(1000), config.strategy, "toy:gaussian", lambda: real, seed=4, generation=2
    )
    assert 0.25 < touched.mean() < 0.35
    np.testing.assert_array_equal(whole[~touched], x[~touched])
    part, part_touched = correct_rows(
        x[500:],
        np.arange(500, 1000),
        config.strategy,
        "toy:gaussian",
        lambda: real,
        seed=4,
        generation=2,
    )
    np.testing.assert_array_equal(part_touched, touched[500:])
    np.testing.assert_allclose(part, whole[500:], rtol=1e-6)


def test_a_user_corrector_is_imported_and_recorded(tmp_path):
    config = make_config(
        str(tmp_path),
        generations=2,
        strategy={
            "name": "self_correct",
            "corrector": "tests.helpers:to_real_mean",
            "correct_fraction": 0.5,
            "strength": 0.5,
        },
    )
    records = run_in_process(config)
    for record in records:
        correction_record = record["correction"]
        assert correction_record["corrector"] == "tests.helpers:to_real_mean"
        assert 30 < correction_record["rows"] < 70  # half of 100 samples
        assert correction_record["mean_distance"] > 0.1
        assert (
            record["corrected"][0]["rows"] == 100
            and "/corrected/" in record["corrected"][0]["path"]
        )


@pytest.mark.parametrize("strategy", [None, {"name": "self_correct", "corrector": "ideal"}])
def test_ideal_correction_keeps_a_fully_synthetic_chain_near_generation_0(tmp_path, strategy):
    """Gillman et al.'s claim: with 100% synthetic data, an ideal corrector keeps the chain
    near where it started, while the uncorrected chain drifts away."""
    sections = {"strategy": strategy} if strategy else {}
    config = make_config(
        str(tmp_path),
        generations=12,
        data={"real": "toy:gaussian", "dim": 10, "n_real": 50, "n_train": 50, "n_eval": 4000},
        eval={"metrics": ["w2"]},
        **sections,
    )
    w2 = [r["metrics"]["w2"] for r in run_in_process(config)]
    if strategy is None:
        assert w2[-1] > 1.5 * w2[0], w2
    else:
        assert max(w2) < w2[0] + 0.5 and w2[-1] < 1.5 * w2[0] + 0.2, w2


def _flow_params(steps=8):
    from collapse.families import trained
    from collapse.training.nets import build_velocity_net

    torch.manual_seed(0)
    net = build_velocity_net("vector", (2,), {"hidden": 16, "depth": 2})
    weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    spec = {"kind": "vector", "shape": [2], "net": {"hidden": 16, "depth": 2}, "steps": steps}
    return trained.pack(weights, spec)


def test_sdedit_on_the_flow_spans_keeping_the_row_to_sampling_anew():
    from collapse.families.rectified_flow import FAMILY as rectified_flow

    params = _flow_params()
    rng = np.random.default_rng(3)
    x, z = rng.normal(size=(64, 2)), rng.normal(size=(64, 2))
    np.testing.assert_allclose(
        rectified_flow.sdedit(params, x, 1.0, z), rectified_flow.sample(params, z), rtol=1e-5
    )
    slight = rectified_flow.sdedit(params, x, 0.01, z)
    assert np.abs(slight - x).max() < 0.1


def test_ddpm_sdedit_with_the_optimal_predictor_keeps_gaussian_data_gaussian():
    from collapse.families.ddpm.denoising import denoise_from
    from tests.test_ddpm import CONFIG, SCALE, OptimalNoisePredictor

    generator = torch.Generator().manual_seed(4)
    x = torch.randn(20_000, 2, generator=generator) * SCALE
    z = torch.randn(20_000, 2, generator=generator)
    out = denoise_from(OptimalNoisePredictor(), CONFIG, x, z, 0.5, 100)
    assert out.std().item() == pytest.approx(SCALE, rel=0.05)
    assert (out - x).abs().mean().item() > 0.1  # it did re-draw the rows


def test_the_reference_corrector_denoises_with_generation_0s_model(ray_cluster, tmp_path):
    from collapse.config import validate

    config = validate(
        {
            "name": "ref",
            "storage": str(tmp_path),
            "generations": 2,
            "data": {"real": "toy:mog8", "n_real": 256, "n_train": 256, "n_eval": 256},
            "model": {"family": "rectified_flow", "net": {"hidden": 32, "depth": 2}},
            "train": {"workers": 0, "steps": 20, "batch_size": 64, "checkpoint_every": 20},
            "sample": {"steps": 4},
            "strategy": {"name": "self_correct", "corrector": "reference", "level": 0.4},
            "eval": {"metrics": ["w2"]},
        }
    )
    records = run_in_process(config)
    for record in records:
        assert record["correction"]["corrector"] == "reference"
        assert record["correction"]["rows"] == 256
        assert record["correction"]["mean_distance"] > 0.0
    with pytest.raises(Exception, match="reference denoises with a trained model"):
        preflight.check(validate({"strategy": {"name": "self_correct", "corrector": "reference"}}))


def test_knn_in_feature_space_picks_neighbours_by_features_and_moves_pixels():
    real = np.array([[0.0, 0.0], [1.0, 10.0]])
    x = np.array([[0.1, 9.0]])
    assert correctors.toward_nearest_real(x, real, 1).tolist() == [[1.0, 10.0]]
    by_first = correctors.toward_nearest_real(x, real, 1, x[:, :1] * 0, real[:, :1])
    assert by_first.tolist() == [[0.0, 0.0]]


@pytest.mark.slow
def test_knn_as_a_ray_data_pass_matches_the_in_process_chain(ray_cluster, tmp_path):
    from collapse.distributed.knn_search import nearest_on_ray
    from collapse.driver.launch import run_chain
    from collapse.store.run_store import RunStore

    rng = np.random.default_rng(5)
    rows, real = rng.normal(size=(700, 3)), rng.normal(size=(300, 3))
    expected = correctors.toward_nearest_real(rows, real, 4, rows[:, :2], real[:, :2])
    got = nearest_on_ray(rows, real, 4, rows[:, :2], real[:, :2], workers=2, batch_size=128)
    np.testing.assert_allclose(got, expected)

    strategy = {"name": "self_correct", "corrector": "knn", "correct_fraction": 0.5}
    local = make_config(str(tmp_path / "local"), strategy=strategy)
    on_ray = make_config(str(tmp_path / "ray"), strategy={**strategy, "knn_workers": 2})
    ours = RunStore(run_chain(on_ray).uri).committed()
    theirs = run_in_process(local)
    assert [r["metrics"] for r in ours] == [r["metrics"] for r in theirs]
    assert [r["correction"] for r in ours] == [r["correction"] for r in theirs]
