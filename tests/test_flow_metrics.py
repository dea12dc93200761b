"""Flow metrics of rectified-flow generations (their names: collapse.config.metric_names; their
math: collapse.families.rectified_flow.diagnostics): each against a closed form or a constructed
flow, then once through a chain."""

import math

import numpy as np
import pytest
import torch

from collapse.config import RectifiedFlowModel, metric_names
from collapse.config.sweep_schema import EarlyStop
from collapse.data.space import DataSpace
from collapse.errors import UserError
from collapse.families.rectified_flow import FAMILY as rectified_flow
from collapse.families.rectified_flow import diagnostics
from collapse.metrics.vectors import w2_gaussian
from collapse.training.nets import build_velocity_net
from tests.helpers import make_config, run_in_process


def _rows_with_moments(n: int, mean: np.ndarray, std: np.ndarray, seed: int = 0) -> np.ndarray:
    """n rows whose sample mean and (ddof-0) covariance are exactly `mean` and diag(std^2)."""
    x = np.random.default_rng(seed).standard_normal((n, len(mean)))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(x.T @ x / n)).T  # whitened: covariance exactly I
    return mean + x * std


@pytest.mark.parametrize("steps", [1, 2, 10, 1000])
def test_straightness_of_a_time_varying_field_matches_its_closed_form(steps):
    # v(x, t) = 2t u: the Euler velocities are 2 t_k u, t_k = k/K; their spread around the mean
    # is Var(2k/K) ||u||^2 = (1 - 1/K^2) / 3 ||u||^2, -> 1/3 ||u||^2 as K grows (int (2t-1)^2)
    u = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)

    def net(x, t):
        return 2 * t[:, None] * u.expand_as(x)

    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = (1 - 1 / steps**2) / 3 * float(u @ u)
    assert diagnostics.straightness(net, z, steps) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_an_exactly_straight_flow_that_depends_on_x_has_straightness_zero():
    # the rectified flow of a point mass m: v(x, t) = (m - x) / (1 - t) moves every noise point
    # along the straight line to m at constant speed, so the Euler path is that line
    m = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def net(x, t):
        return (m - x) / (1 - t[:, None])

    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert diagnostics.straightness(net, z, 16) == pytest.approx(0.0, abs=1e-18)
    # a field that bends the same paths is not straight
    assert diagnostics.straightness(lambda x, t: (m - x) * 2 * t[:, None], z, 16) > 0.1


def test_inversion_statistics_of_constructed_noise_match_their_closed_forms():
    d, n = 4, 4000
    std, shift = np.array([1.0, 1.0, 2.0, 0.5]), np.array([0.3, 0.0, 0.0, -0.4])
    z = _rows_with_moments(n, shift, std)
    stats = diagnostics.inversion_stats(z)
    # W2 between N(shift, diag(std^2)) and N(0, I): |shift|^2 + sum (std - 1)^2
    assert stats["inversion_w2"] == pytest.approx(
        math.sqrt(shift @ shift + ((std - 1) ** 2).sum()), rel=1e-9
    )
    assert stats["inversion_cov"] == pytest.approx(np.linalg.norm(std**2 - 1), rel=1e-9)
    exact = diagnostics.inversion_stats(_rows_with_moments(n, np.zeros(d), np.ones(d)))
    assert exact["inversion_w2"] == pytest.approx(0.0, abs=1e-6)
    assert exact["inversion_cov"] == pytest.approx(0.0, abs=1e-9)
    # the mean norm of N(0, I_d) is sqrt(2) Gamma((d+1)/2) / Gamma(d/2)
    gaussian = np.random.default_rng(2).standard_normal((200_000, d))
    chi_mean = math.sqrt(2) * math.gamma((d + 1) / 2) / math.gamma(d / 2)
    assert diagnostics.inversion_stats(gaussian)["inversion_norm"] == pytest.approx(
        chi_mean, rel=5e-3
    )


def _constant_flow(u: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """A rectified_flow generation's parameters whose net is v(x, t) = u everywhere: every
    weight zero but the output layer's bias."""
    model = RectifiedFlowModel(family="rectified_flow", net={"hidden": 8, "depth": 2})
    net = build_velocity_net("vector", (len(u),), dict(model.net))
    state = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    last = [k for k in state if k.endswith(".bias")][-1]  # the output layer's
    state[last] = torch.as_tensor(u, dtype=torch.float32)
    weights = {k: v.numpy() for k, v in state.items()}
    return rectified_flow.to_params(weights, model, DataSpace("vector", (len(u),)), steps)


def test_a_constant_velocity_flow_is_straight_has_the_same_quality_at_every_nfe_and_inverts():
    u = np.array([1.5, -0.5])
    params = _constant_flow(u, steps=10)
    noise = np.random.default_rng(3).standard_normal((512, 2))
    real = _rows_with_moments(600, u, np.array([1.0, 3.0]), seed=4)
    found = rectified_flow.flow_metrics(
        params,
        ["straightness", "nfe", "inversion"],
        noise,
        real,
        "w2",
        lambda samples: w2_gaussian(samples, real),
    )
    assert set(found) == {"straightness", *metric_names.nfe_names("w2"), *metric_names.INVERSION}
    assert found["straightness"] == pytest.approx(0.0, abs=1e-9)
    # x = z + u at any number of steps: one W2 for all four
    at_one = w2_gaussian(noise + u, real)
    for name in metric_names.nfe_names("w2"):
        assert found[name] == pytest.approx(at_one, rel=1e-5)
    # the reverse ODE maps real rows to x - u: N(0, diag(1, 9)) exactly, so W2 to N(0, I) is 2
    assert found["inversion_w2"] == pytest.approx(2.0, rel=1e-5)
    assert found["inversion_cov"] == pytest.approx(8.0, rel=1e-5)


def test_flow_metrics_are_refused_where_they_cannot_be_measured(tmp_path):
    from collapse.engine.measurement import measurement

    with pytest.raises(UserError, match="--metrics: nfe are measured by the chain, on the model"):
        measurement(make_config(str(tmp_path)), ["w2", "nfe"], None)  # stored samples only
    # what a sweep may stop early on: the names recorded, not the ones asked for
    assert metric_names.recorded_names(["w2", "mmd", "nfe", "inversion"]) == [
        "w2",
        "mmd",
        *metric_names.nfe_names("w2"),
        *metric_names.nfe_names("mmd"),
        *metric_names.INVERSION,
    ]
    assert EarlyStop(metric="w2_nfe1", mode="min").metric == "w2_nfe1"
    with pytest.raises(ValueError, match="metric 'nfe' unknown"):
        EarlyStop(metric="nfe", mode="min")
    with pytest.raises(UserError, match="straightness: metrics of a rectified flow's ODE"):
        make_config(str(tmp_path), eval={"metrics": ["w2", "straightness"]})
    with pytest.raises(UserError, match=r"nfe repeats the first sample metric.*\[w2, nfe\]"):
        make_config(str(tmp_path), model={"family": "rectified_flow"}, eval={"metrics": ["nfe"]})


def test_a_chain_records_the_flow_metrics_of_its_generations(ray_cluster, tmp_path):
    config = make_config(
        str(tmp_path),
        generations=1,
        data={"real": "toy:mog8", "n_real": 256, "n_train": 256, "n_eval": 300},
        model={"family": "rectified_flow", "net": {"hidden": 16, "depth": 1}},
        train={"workers": 0, "batch_size": 128, "steps": 30},
        sample={"steps": 4},
        eval={"metrics": ["w2", "straightness", "nfe", "inversion"]},
    )
    for record in run_in_process(config):
        metrics = record["metrics"]
        assert list(metrics) == [
            "w2",
            "straightness",
            *metric_names.nfe_names("w2"),
            *metric_names.INVERSION,
        ]
        # all 256 samples are within FLOW_ROWS: at the configured 4 steps the sweep redraws them
        assert metrics["w2_nfe4"] == pytest.approx(metrics["w2"], rel=1e-6)
        assert metrics["straightness"] > 0 and record["timings"]["flow_s"] < 5
