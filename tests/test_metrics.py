"""Vector metrics against closed forms, hand-computed cases and the properties they promise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

import collapse.metrics
from collapse.config import VECTOR_METRICS
from collapse.metrics import evaluate, manifold
from collapse.metrics.manifold import knn_radii, precision_recall
from collapse.metrics.vectors import (
    mean_err,
    mean_variance,
    mmd_rbf,
    w2_gaussian,
    w2_gaussian_params,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _col(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


# --- moments -------------------------------------------------------------------------------


def test_mean_err_hand_made():
    samples = np.array([[-1.0, 0.0], [1.0, 0.0]])
    real = np.array([[3.0, 4.0], [3.0, 4.0]])
    assert mean_err(samples, real) == pytest.approx(5.0)
    assert mean_err(real, real) == 0.0


def test_mean_variance_hand_made():
    # per-dim variances (ddof=0): 1 and 4
    assert mean_variance(np.array([[0.0, 0.0], [2.0, 4.0]])) == pytest.approx(2.5)
    assert mean_variance(np.ones((5, 3))) == 0.0


# --- W2 --------------------------------------------------------------------------------------


def test_w2_params_diagonal_closed_form():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([3.0, 1.0, 2.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = math.sqrt(np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert w2_gaussian_params(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_w2_params_one_dimensional():
    # W2 between N(m1, s1^2) and N(m2, s2^2) is sqrt((m1 - m2)^2 + (s1 - s2)^2)
    got = w2_gaussian_params(
        np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])
    )
    assert got == pytest.approx(math.sqrt(9.0 + 1.0), rel=1e-12)


def test_w2_params_full_covariance_matches_sqrtm_formula():
    rng = _rng(1)
    d = 4
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    root2 = scipy.linalg.sqrtm(s2)
    cross = np.real(scipy.linalg.sqrtm(root2 @ s1 @ root2))
    expected = math.sqrt(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2.0 * cross))
    assert w2_gaussian_params(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-8)
    # the distance is symmetric although the formula is not written symmetrically
    assert w2_gaussian_params(m2, s2, m1, s1) == pytest.approx(expected, rel=1e-8)


def test_w2_gaussian_large_samples_near_analytic():
    rng = _rng(2)
    d, n = 3, 200_000
    mu = np.array([1.0, -2.0, 0.5])
    x = rng.normal(size=(n, d))
    y = mu + 2.0 * rng.normal(size=(n, d))
    # N(0, I) vs N(mu, 4I): W2^2 = |mu|^2 + d (sqrt(1) - sqrt(4))^2
    expected = math.sqrt(mu @ mu + d)
    assert w2_gaussian(x, y) == pytest.approx(expected, rel=0.01)


def test_w2_gaussian_of_a_set_with_itself_is_zero():
    x = _rng(3).normal(size=(500, 6))
    assert w2_gaussian(x, x) == pytest.approx(0.0, abs=1e-6)


def test_w2_gaussian_collapsed_set_has_singular_covariance():
    real = _rng(4).normal(size=(400, 3))
    point = np.array([1.0, 2.0, 3.0])
    collapsed = np.tile(point, (50, 1))
    cov = np.cov(real, rowvar=False, bias=True)
    expected = math.sqrt(np.sum((point - real.mean(axis=0)) ** 2) + np.trace(cov))
    assert w2_gaussian(collapsed, real) == pytest.approx(expected, rel=1e-9)


# --- MMD -------------------------------------------------------------------------------------


def test_mmd_two_points_hand_computed():
    # one pooled pair at distance 1: bandwidth 1, k(x, y) = exp(-1/2)
    got = mmd_rbf(np.array([[0.0]]), np.array([[1.0]]))
    assert got == pytest.approx(2.0 - 2.0 * math.exp(-0.5), rel=1e-12)


def test_mmd_matches_a_direct_double_loop():
    rng = _rng(13)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(6, 2)) + 0.7
    pooled = np.vstack([x, y])
    dist = np.linalg.norm(pooled[:, None] - pooled[None, :], axis=-1)
    s = np.median(dist[~np.eye(len(pooled), dtype=bool)])  # 156 entries: an even count
    kernel = np.exp(-(dist**2) / (2 * s**2))
    expected = kernel[:7, :7].mean() + kernel[7:, 7:].mean() - 2 * kernel[:7, 7:].mean()
    assert mmd_rbf(x, y) == pytest.approx(expected, rel=1e-10)


def test_mmd_of_a_set_with_itself_is_zero():
    x = _rng(5).normal(size=(300, 4))
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)


def test_mmd_positive_and_increasing_with_shift():
    rng = _rng(6)
    x, y = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    values = [mmd_rbf(x, y + np.array([shift, 0.0])) for shift in (0.5, 1.0, 2.0, 4.0)]
    assert values[0] > 0.0
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_mmd_uses_only_the_first_max_points_rows():
    rng = _rng(7)
    x, y = rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 1.0
    far = np.full((30, 2), 100.0)
    base = mmd_rbf(x, y, max_points=100)
    assert mmd_rbf(np.vstack([x, far]), np.vstack([y, far]), max_points=100) == base
    assert mmd_rbf(np.vstack([x, far]), y, max_points=130) != base


def test_mmd_identical_points_is_zero_not_nan():
    same = np.ones((10, 3))
    assert mmd_rbf(same, same) == 0.0


# --- precision / recall ----------------------------------------------------------------------


def test_knn_radii_hand_computed():
    real = _col([0.0, 1.0, 3.0, 7.0])
    np.testing.assert_array_equal(knn_radii(real, 1), [1.0, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(knn_radii(real, 2), [3.0, 2.0, 3.0, 6.0])
    # a duplicate is a neighbour at distance 0, the point itself is not
    np.testing.assert_array_equal(knn_radii(_col([0.0, 0.0, 5.0]), 1), [0.0, 0.0, 5.0])


def test_knn_radii_rejects_k_out_of_range():
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(_col([0.0, 1.0, 2.0]), 3)


def test_precision_recall_hand_computed():
    real = _col([0.0, 1.0, 3.0, 7.0])  # k=1 balls: [-1,1] [0,2] [1,5] [3,11]
    samples = _col([0.0, 0.5, 6.0, 6.5, 11.0, 11.5])  # k=1 radii all 0.5
    # precision: 11 lies on the boundary of 7's ball, only 11.5 is outside every ball -> 5/6
    # recall: 0, 1 (boundary) and 7 (boundary) are covered, 3 is not -> 3/4
    assert precision_recall(samples, real, k=1) == (pytest.approx(5 / 6), 0.75)


def test_precision_recall_same_set_is_one():
    x = _rng(8).normal(size=(300, 3))
    assert precision_recall(x, x) == (1.0, 1.0)


def test_precision_recall_far_apart_is_zero():
    rng = _rng(9)
    samples, real = rng.normal(size=(200, 2)) + 100.0, rng.normal(size=(200, 2))
    assert precision_recall(samples, real) == (0.0, 0.0)


def test_mode_collapse_keeps_precision_and_loses_recall():
    rng = _rng(10)
    centres = np.array([[-10.0, 0.0], [10.0, 0.0]])
    real = np.vstack([c + rng.normal(size=(500, 2)) for c in centres])
    collapsed = centres[0] + rng.normal(size=(1000, 2))
    precision, recall = precision_recall(collapsed, real)
    assert precision > 0.9
    assert 0.35 < recall < 0.55


def test_precision_recall_independent_of_chunking(monkeypatch):
    rng = _rng(11)
    samples, real = rng.normal(size=(230, 3)), rng.normal(size=(170, 3)) + 0.5
    whole, radii = precision_recall(samples, real), knn_radii(real, 3)
    monkeypatch.setattr(manifold, "_CHUNK_ELEMENTS", 1000)  # a few rows per chunk
    np.testing.assert_allclose(knn_radii(real, 3), radii, rtol=1e-12)
    assert precision_recall(samples, real) == whole


# --- registry --------------------------------------------------------------------------------


def test_evaluate_returns_exactly_the_asked_names_as_floats():
    rng = _rng(12)
    samples, real = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    for names in (["var"], ["recall", "w2"], list(VECTOR_METRICS)):
        got = evaluate(names, samples, real)
        assert list(got) == names
        assert all(type(v) is float for v in got.values())
    got = evaluate(list(VECTOR_METRICS), samples, real)
    assert got["w2"] == w2_gaussian(samples, real)
    assert got["var"] == mean_variance(samples)
    assert (got["precision"], got["recall"]) == precision_recall(samples, real)


def test_evaluate_computes_precision_and_recall_once(monkeypatch):
    calls = []

    def counting(samples, real):
        calls.append(1)
        return 0.25, 0.75

    monkeypatch.setitem(collapse.metrics._JOINT, ("precision", "recall"), counting)
    monkeypatch.setitem(collapse.metrics._JOINT, ("density", "coverage"), counting)
    x = np.zeros((5, 2))
    assert evaluate(["precision", "recall"], x, x) == {"precision": 0.25, "recall": 0.75}
    assert len(calls) == 1
    assert evaluate(["coverage", "recall", "density"], x, x) == {
        "coverage": 0.75,
        "recall": 0.75,
        "density": 0.25,
    }
    assert len(calls) == 3


def test_evaluate_rejects_unknown_names():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="'fjd'.*allowed: w2"):
        evaluate(["w2", "fjd"], x, x)
