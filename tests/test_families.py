"""Toy sources and the closed-form families, checked against numpy and the known refitting laws;
every registered family against its protocol, and the registry as the only list of families."""

from __future__ import annotations

import ast
import inspect
import io
import math
import typing
from pathlib import Path

import numpy as np
import pytest
from scipy.special import digamma

from collapse.cli.list_command import entries
from collapse.config import FAMILIES, GaussianModel, GMMModel, KDEModel, ModelConfig, validate
from collapse.data.toy import toy_sample
from collapse.errors import UserError
from collapse.families import NAMES, get_family
from collapse.families.kde import bandwidth
from collapse.families.protocol import (
    ClosedFormFamily,
    DenoisingFamily,
    Family,
    FlowFamily,
    TrainedFamily,
)

gaussian = get_family("gaussian")
kde = get_family("kde")
gmm = get_family("gmm")

MOG8_CENTRES = 2.0 * np.stack(
    [np.cos(2 * np.pi * np.arange(8) / 8), np.sin(2 * np.pi * np.arange(8) / 8)], axis=1
)


def draw(family, params, n, rng):
    """n samples the way the chain draws them: one standard-normal noise row per sample."""
    return family.sample(params, rng.standard_normal((n, family.noise_dim(params))))


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _nearest_centre(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = np.linalg.norm(x[:, None, :] - MOG8_CENTRES[None], axis=2)
    return dist.argmin(axis=1), dist.min(axis=1)


# --- toy sources ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dim"), [("gaussian", 7), ("mog8", 2), ("two_moons", 2)])
def test_toy_shape_dtype_and_determinism(name, dim):
    a = toy_sample(name, 500, dim, _rng(3))
    b = toy_sample(name, 500, dim, _rng(3))
    c = toy_sample(name, 500, dim, _rng(4))
    assert a.shape == (500, dim) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_toy_gaussian_is_standard_normal():
    x = toy_sample("gaussian", 20_000, 5, _rng())
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.04)
    np.testing.assert_allclose(x.var(axis=0), 1.0, atol=0.04)


def test_toy_mog8_points_sit_on_eight_equal_modes_at_radius_2():
    x = toy_sample("mog8", 16_000, 2, _rng())
    radius = np.linalg.norm(x, axis=1)
    assert abs(radius.mean() - 2.0) < 0.02
    assert np.all(np.abs(radius - 2.0) < 1.2)  # 6 std of the 0.2 noise
    which, dist = _nearest_centre(x)
    np.testing.assert_allclose(np.bincount(which, minlength=8) / len(x), 1 / 8, atol=0.01)
    assert abs(np.sqrt((dist**2).mean() / 2) - 0.2) < 0.005


def test_toy_two_moons_is_standardised_by_fixed_constants():
    x = toy_sample("two_moons", 50_000, 2, _rng())
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=0.02)
    small = toy_sample("two_moons", 4, 2, _rng())
    assert not np.allclose(small.std(axis=0), 1.0)  # not rescaled by its own moments


@pytest.mark.parametrize(("name", "dim"), [("nope", 2), ("mog8", 3), ("two_moons", 1)])
def test_toy_bad_name_or_dim_raises(name, dim):
    with pytest.raises(ValueError, match=name):
        toy_sample(name, 10, dim, _rng())


def test_unknown_family_raises():
    with pytest.raises(ValueError, match="allowed: gaussian, kde, gmm"):
        get_family("vae")


# --- gaussian -------------------------------------------------------------------------------


def _gauss(covariance="diag", estimator="mle") -> GaussianModel:
    return GaussianModel(family="gaussian", covariance=covariance, estimator=estimator)


@pytest.mark.parametrize(("estimator", "ddof"), [("mle", 0), ("unbiased", 1)])
def test_gaussian_estimators_match_numpy(estimator, ddof):
    x = (_rng().standard_normal((50, 4)) * [1, 2, 3, 4] + 5).astype(np.float32)
    diag = gaussian.fit(x, _gauss("diag", estimator), _rng())
    full = gaussian.fit(x, _gauss("full", estimator), _rng())
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(diag["mean"], x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(diag["var"], x64.var(axis=0, ddof=ddof), rtol=1e-10)
    np.testing.assert_allclose(full["cov"], np.cov(x64, rowvar=False, ddof=ddof), rtol=1e-10)


def test_gaussian_full_covariance_recovers_the_truth():
    a = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 0.4]])
    true_cov = a @ a.T
    x = (_rng().standard_normal((200_000, 3)) @ a.T).astype(np.float32)
    params = gaussian.fit(x, _gauss("full"), _rng())
    np.testing.assert_allclose(params["cov"], true_cov, atol=0.015)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_gaussian_samples_reproduce_the_fit(covariance):
    x = (_rng(1).standard_normal((100, 3)) @ [[2, 0, 0], [1, 1, 0], [0, 0, 0.5]] + 3).astype(
        np.float32
    )
    params = gaussian.fit(x, _gauss(covariance), _rng())
    y = draw(gaussian, params, 200_000, _rng(2))
    assert y.shape == (200_000, 3) and y.dtype == np.float32
    fitted_cov = np.diag(params["var"]) if covariance == "diag" else params["cov"]
    np.testing.assert_allclose(y.mean(axis=0), params["mean"], atol=0.02)
    np.testing.assert_allclose(np.cov(y, rowvar=False), fitted_cov, atol=0.03)


def test_gaussian_full_covariance_samples_from_a_singular_fit():
    x = _rng().standard_normal((3, 6)).astype(np.float32)  # N < d: rank-2 covariance
    params = gaussian.fit(x, _gauss("full"), _rng())
    y = draw(gaussian, params, 1000, _rng())
    assert np.all(np.isfinite(y))
    assert np.linalg.matrix_rank(y - y.mean(axis=0), tol=1e-3) == 2


def test_gaussian_describe():
    out = gaussian.describe({"mean": np.zeros(2), "var": np.array([1.0, 4.0])})
    assert out == pytest.approx({"sigma2": 2.5, "log_sigma2": math.log(2.0)})
    full = gaussian.describe({"mean": np.zeros(2), "cov": np.array([[1.0, 0.5], [0.5, 4.0]])})
    assert full == pytest.approx(out)


def _refit_chain(estimator: str, n: int, d: int, generations: int) -> np.ndarray:
    """Per-dim fitted variance of fits 1..generations of the replace loop, from N(0, 1) data."""
    rng = _rng(7)
    x = rng.standard_normal((n, d)).astype(np.float32)
    out = []
    for _ in range(generations):
        params = gaussian.fit(x, _gauss("diag", estimator), rng)
        out.append(params["var"])
        x = draw(gaussian, params, n, rng)
    return np.array(out)


def test_gaussian_mle_refitting_shrinks_variance_geometrically():
    n, d = 20, 4000
    var = _refit_chain("mle", n, d, 10)
    t = np.arange(1, 11)
    expected = ((n - 1) / n) ** t
    stderr = var.std(axis=1) / math.sqrt(d)
    assert np.all(np.abs(var.mean(axis=1) - expected) < 4 * stderr)
    assert var.mean(axis=1)[-1] < 0.65  # clearly below the unbiased chain's 1.0


def test_gaussian_unbiased_refitting_keeps_mean_but_drifts_log_variance():
    n, d = 20, 4000
    var = _refit_chain("unbiased", n, d, 10)
    t = np.arange(1, 11)
    log_var = np.log(var)
    expected_log = t * (digamma((n - 1) / 2) + math.log(2 / (n - 1)))
    assert np.all(np.abs(log_var.mean(axis=1) - expected_log) < 4 * log_var.std(axis=1) / d**0.5)
    assert np.all(np.abs(var.mean(axis=1) - 1.0) < 4 * var.std(axis=1) / d**0.5)


# --- kde ------------------------------------------------------------------------------------


def test_kde_round_adds_h2_variance_per_dim():
    x = _rng().standard_normal((2000, 20)).astype(np.float32)
    params = kde.fit(x, KDEModel(family="kde", bandwidth=0.5), _rng())
    assert float(params["bandwidth"]) == 0.5
    y = draw(kde, params, 100_000, _rng(1))
    assert y.shape == (100_000, 20) and y.dtype == np.float32
    added = y.var(axis=0).mean() - x.astype(np.float64).var(axis=0).mean()
    assert abs(added - 0.25) < 0.015


def _with_std(values: np.ndarray, std: float) -> np.ndarray:
    return (values - values.mean(axis=0)) / values.std(axis=0, ddof=1) * std


def test_kde_bandwidth_rules():
    # Scott, d=4, N=16: h = sigma * 16^(-1/8) = sigma / sqrt(2); sigma = mean per-dim std.
    x = _with_std(_rng().standard_normal((16, 4)), 1.0) * [1.0, 2.0, 3.0, 4.0]
    params = kde.fit(x.astype(np.float32), KDEModel(family="kde", bandwidth="scott"), _rng())
    assert float(params["bandwidth"]) == pytest.approx(2.5 / math.sqrt(2), rel=1e-5)
    # Silverman in 1-D is the classic 1.06 sigma N^(-1/5); N=32 gives 1.06 sigma / 2.
    x1 = _with_std(_rng().standard_normal((32, 1)), 3.0).astype(np.float32)
    h = float(kde.fit(x1, KDEModel(family="kde", bandwidth="silverman"), _rng())["bandwidth"])
    assert h == pytest.approx(1.0592 * 3.0 / 2, rel=1e-3)
    # In 2-D the two rules coincide.
    x2 = _rng().standard_normal((100, 2)).astype(np.float32)
    assert bandwidth(x2, "scott") == pytest.approx(bandwidth(x2, "silverman"))


# --- gmm ------------------------------------------------------------------------------------


def test_gmm_recovers_mog8_and_samples_each_mode_equally():
    x = toy_sample("mog8", 4000, 2, _rng())
    params = gmm.fit(x, GMMModel(family="gmm", components=8), _rng())
    means = params["means"]
    assert means.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 2.0, atol=0.05)
    which, dist = _nearest_centre(means)
    assert sorted(which) == list(range(8)) and np.all(dist < 0.05)
    y = draw(gmm, params, 20_000, _rng(1))
    assert y.shape == (20_000, 2) and y.dtype == np.float32
    which, dist = _nearest_centre(y)
    np.testing.assert_allclose(np.bincount(which, minlength=8) / len(y), 1 / 8, atol=0.015)
    assert np.mean(dist > 0.6) < 0.03


def test_gmm_with_too_few_components_merges_modes():
    x = toy_sample("mog8", 4000, 2, _rng())
    params = gmm.fit(x, GMMModel(family="gmm", components=4), _rng())
    y = draw(gmm, params, 20_000, _rng(1))
    _, dist_real = _nearest_centre(x)
    _, dist_fake = _nearest_centre(y)
    assert np.mean(dist_real > 0.6) < 0.02
    assert np.mean(dist_fake > 0.6) > 0.1  # mass smeared into the gaps between modes


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_gmm_every_covariance_type_samples_its_fit(covariance):
    x = toy_sample("two_moons", 3000, 2, _rng())
    config = GMMModel(family="gmm", components=6, covariance=covariance)
    y = draw(gmm, gmm.fit(x, config, _rng()), 50_000, _rng(1))
    np.testing.assert_allclose(y.mean(axis=0), x.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0), rtol=0.08)


def test_gmm_clamps_components_to_rows():
    x = toy_sample("mog8", 5, 2, _rng())
    params = gmm.fit(x, GMMModel(family="gmm", components=8), _rng())
    assert params["weights"].shape == (5,)


# --- protocol -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        GaussianModel(family="gaussian", covariance="full"),
        KDEModel(family="kde", bandwidth="silverman"),
        GMMModel(family="gmm", components=3, covariance="tied"),
    ],
    ids=lambda c: c.family,
)
def test_params_survive_npz_without_pickle_and_sampling_is_seeded(config):
    family = get_family(config.family)
    x = toy_sample("mog8", 300, 2, _rng())
    params = family.fit(x, config, _rng())
    assert all(isinstance(v, np.ndarray) for v in params.values())
    buf = io.BytesIO()
    np.savez(buf, **params)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        loaded = dict(npz)
    a = draw(family, params, 50, _rng(5))
    np.testing.assert_array_equal(a, draw(family, loaded, 50, _rng(5)))
    assert a.shape == (50, 2) and a.dtype == np.float32
    assert not np.array_equal(a, draw(family, params, 50, _rng(6)))
    assert isinstance(family.describe(params), dict)


# --- the registry and the protocols -----------------------------------------------------------

PROTOCOLS = (Family, ClosedFormFamily, TrainedFamily, DenoisingFamily, FlowFamily)


def _members(protocol: type) -> dict[str, object]:
    """A protocol's attributes (None) and methods (the function), its own and inherited."""
    found: dict[str, object] = {}
    for cls in reversed([c for c in protocol.__mro__ if c in PROTOCOLS]):
        found.update(dict.fromkeys(cls.__annotations__))
        found.update({k: v for k, v in vars(cls).items() if inspect.isfunction(v)})
    return {k: v for k, v in found.items() if not k.startswith("_")}


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_family_satisfies_its_protocol(name):
    family = get_family(name)
    declared = [p for p in PROTOCOLS if p in type(family).__mro__]
    assert family.name == name and not type(family).__abstractmethods__
    assert (TrainedFamily in declared) == family.trained != (ClosedFormFamily in declared)
    assert (DenoisingFamily in declared) == FAMILIES[name].denoises
    assert not family.latent or family.trained  # latents are a trained family's inputs
    for protocol in declared:
        for member, function in _members(protocol).items():
            value = getattr(family, member)  # an attribute it lacks raises here
            if function is None:
                continue
            wanted = list(inspect.signature(function).parameters)[1:]  # less self
            given = inspect.signature(value).parameters
            assert list(given)[: len(wanted)] == wanted, f"{name}.{member}"
            extra = list(given.values())[len(wanted) :]
            assert all(p.default is not p.empty for p in extra), f"{name}.{member}"
    for flag in ("trained", "latent", "captioned"):
        assert isinstance(getattr(family, flag), bool)


def test_the_registry_is_the_only_list_of_families():
    union = typing.get_args(typing.get_args(ModelConfig)[0])
    assert union == tuple(r.config for r in FAMILIES.values())
    assert NAMES == tuple(FAMILIES) == tuple(name for name, _ in entries("families"))
    with pytest.raises(UserError, match="allowed: " + ", ".join(FAMILIES)):
        validate({"model": {"family": "vae"}})
    lists, probes = [], []
    for path in sorted(Path("collapse").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
                items = node.keys if isinstance(node, ast.Dict) else node.elts
                names = [i.value for i in items if isinstance(i, ast.Constant) and i.value in NAMES]
                if len(names) > 1:
                    lists.append(f"{path}:{node.lineno}")
            probe = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            probe = probe and node.func.id in ("hasattr", "getattr") and bool(node.args)
            if probe and "famil" in ast.unparse(node.args[0]):
                probes.append(f"{path}:{node.lineno}")
    assert not lists, f"family names listed outside collapse.config.model_section.FAMILIES: {lists}"
    assert not probes, f"a family probed with hasattr/getattr: {probes}"
