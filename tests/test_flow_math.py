"""The rectified-flow math against closed forms: the Gaussian 1-RF field, its ODE, the reverse
ODE/SDE and the linear-DAE collapse recursion (Liu et al. 2022; Zhu et al., arXiv 2412.08175).

For data x1 ~ N(m, s^2 I) and noise x0 ~ N(0, I), independent, every dimension is a 1-D problem:
x_t = t x1 + (1-t) x0 has mean t m and variance V(t) = t^2 s^2 + (1-t)^2, the target x1 - x0 has
variance s^2 + 1 and covariance C(t) = t s^2 - (1-t) with x_t. The optimal velocity is the
regression E[x1 - x0 | x_t = x] = a(t) + b(t) x with b = C/V, a = m (1 - t b); the loss it leaves
is the conditional variance s^2 + 1 - C^2/V. Its ODE is x_t = t m + sqrt(V(t)) z (the derivative
is m + C/sqrt(V) z = a + b x_t), so it maps the noise z exactly to m + s z.
"""

import itertools
import math

import pytest
import torch

from collapse.families.rectified_flow.dae import linear_dae_recursion
from collapse.families.rectified_flow.interpolant import (
    flow_matching_loss,
    interpolate,
    sample_time,
    target_velocity,
)
from collapse.families.rectified_flow.samplers import (
    euler_forward,
    euler_reverse,
    make_pairs,
    reverse_pairs,
    reverse_sde,
)

M = torch.tensor([2.0, -1.0], dtype=torch.float64)
S = 0.5


def variance(t: torch.Tensor) -> torch.Tensor:
    return t**2 * S**2 + (1 - t) ** 2


def covariance(t: torch.Tensor) -> torch.Tensor:
    return t * S**2 - (1 - t)


def optimal_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.reshape(-1, 1)
    b = covariance(t) / variance(t)
    return M * (1 - t * b) + b * x


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def data(n: int, generator: torch.Generator, shift: float = 0.0, scale: float = 1.0):
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return M + shift + scale * S * z


def test_interpolate_and_target_by_hand():
    x0 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    x1 = torch.tensor([[2.0, 4.0], [3.0, 5.0]])
    t = torch.tensor([0.25, 1.0])
    assert torch.equal(interpolate(x0, x1, t), torch.tensor([[0.5, 1.0], [3.0, 5.0]]))
    assert torch.equal(target_velocity(x0, x1), torch.tensor([[2.0, 4.0], [2.0, 4.0]]))
    images = torch.ones(2, 3, 4, 4)
    xt = interpolate(torch.zeros_like(images), images, torch.tensor([0.0, 0.5]))
    assert torch.equal(xt[0], torch.zeros(3, 4, 4)) and torch.equal(
        xt[1], torch.full((3, 4, 4), 0.5)
    )


def test_loss_by_hand_sees_interpolant_and_time():
    x0 = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    x1 = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    t = torch.tensor([0.5, 0.25])
    seen = {}

    def net(x, time):
        seen["x"], seen["t"] = x, time
        return torch.zeros_like(x)

    # targets (1, 3) and (0, 0): mean of squares over all 4 elements = (1 + 9) / 4
    assert flow_matching_loss(net, x0, x1, t).item() == pytest.approx(2.5)
    assert torch.equal(seen["x"], torch.tensor([[0.5, 1.5], [2.0, 2.0]]))
    assert torch.equal(seen["t"], t)
    exact = flow_matching_loss(lambda x, time: target_velocity(x0, x1), x0, x1, t)
    assert exact.item() == 0.0


def test_sample_time_schedules():
    uniform = sample_time(100_000, generator=gen())
    assert uniform.shape == (100_000,) and uniform.dtype == torch.float32
    assert ((uniform > 0) & (uniform < 1)).all()
    assert uniform.mean().item() == pytest.approx(0.5, abs=0.005)
    assert torch.equal(uniform, sample_time(100_000, generator=gen()))

    logit = sample_time(100_000, generator=gen(), schedule="logit_normal", mean=0.5, std=1.0)
    assert ((logit > 0) & (logit < 1)).all()
    assert logit.median().item() == pytest.approx(1 / (1 + math.exp(-0.5)), abs=0.01)
    # a wide logit-normal saturates the sigmoid to exactly 0 or 1 in fp32; still inside (0, 1)
    wide = sample_time(10_000, generator=gen(), schedule="logit_normal", std=30.0)
    assert ((wide > 0) & (wide < 1)).all()
    with pytest.raises(ValueError, match="schedule"):
        sample_time(4, schedule="cosine")


def test_gaussian_optimal_velocity_minimises_the_loss_at_its_closed_form():
    g = gen(1)
    n = 200_000
    x1 = data(n, g)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = sample_time(n, generator=g).double()
    best = flow_matching_loss(optimal_velocity, x0, x1, t).item()
    minimum = (S**2 + 1 - covariance(t) ** 2 / variance(t)).mean().item()
    assert best == pytest.approx(minimum, rel=0.01)
    perturbed = [
        lambda x, s: optimal_velocity(x, s) + 0.2,
        lambda x, s: 1.1 * optimal_velocity(x, s),
        lambda x, s: optimal_velocity(x, s) + 0.1 * x,
        lambda x, s: target_velocity(torch.zeros_like(M), M).expand_as(x),  # straight to the mean
    ]
    for field in perturbed:
        assert flow_matching_loss(field, x0, x1, t).item() > best + 0.005


def test_euler_with_exact_field_maps_noise_to_the_data_gaussian():
    z = torch.randn(10_000, 2, generator=gen(2), dtype=torch.float64)
    exact = M + S * z
    errors = {}
    for steps in (100, 200):
        x = euler_forward(optimal_velocity, z, steps)
        errors[steps] = (x - exact).abs().max().item()
    assert errors[100] < 0.05
    # the field is linear in x with smooth coefficients: Euler's global error is O(1/steps)
    assert errors[100] / errors[200] == pytest.approx(2.0, rel=0.1)
    assert x.mean(0).tolist() == pytest.approx(M.tolist(), abs=0.02)
    assert x.var(0).tolist() == pytest.approx([S**2, S**2], rel=0.05)


def test_forward_then_reverse_ode_returns_the_start():
    z = torch.randn(1000, 2, generator=gen(3), dtype=torch.float64)
    errors = [
        (euler_reverse(optimal_velocity, euler_forward(optimal_velocity, z, n), n) - z)
        .abs()
        .max()
        .item()
        for n in (25, 100, 400)
    ]
    # each leg has O(1/steps) error, so 16 times the steps gives about 1/16 of the round trip's
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[2] == pytest.approx(16, rel=0.25)
    assert errors[2] < 0.03


def test_samplers_report_each_step_and_keep_dtype():
    calls = []
    x = torch.zeros(3, 2, dtype=torch.float32)
    out = euler_forward(
        lambda x, t: torch.ones_like(x), x, 4, callback=lambda i, t, y: calls.append((i, t))
    )
    assert calls == [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0)]
    assert out.dtype == torch.float32 and torch.allclose(out, torch.ones(3, 2))
    calls.clear()
    seen_times = []

    def net(x, t):
        seen_times.append(t[0].item())
        return torch.ones_like(x)

    back = euler_reverse(net, out, 4, callback=lambda i, t, y: calls.append((i, t)))
    assert seen_times == [1.0, 0.75, 0.5, 0.25]
    assert calls == [(0, 0.75), (1, 0.5), (2, 0.25), (3, 0.0)]
    assert back.dtype == torch.float32 and torch.allclose(back, torch.zeros(3, 2))


def test_reverse_sde_without_noise_is_the_reverse_ode_bit_for_bit():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def net(x, t):
        return mlp(torch.cat([x, t[:, None]], dim=1))

    x1 = torch.randn(64, 2, generator=gen(4))
    assert torch.equal(reverse_sde(0.0, gen(5))(net, x1, 30), euler_reverse(net, x1, 30))
    assert not torch.equal(reverse_sde(0.5, gen(5))(net, x1, 30), euler_reverse(net, x1, 30))
    with pytest.raises(ValueError, match="sigma"):
        reverse_sde(-1.0)


def test_reverse_sde_keeps_the_noise_gaussian_and_damps_a_data_mismatch():
    g = gen(6)
    steps = 200
    # the model's own data: the reverse SDE keeps the marginals, so z0 ~ N(0, I) for any sigma
    z = reverse_sde(1.0, g)(optimal_velocity, data(10_000, g), steps)
    assert z.mean(0).tolist() == pytest.approx([0.0, 0.0], abs=0.04)
    assert z.var(0).tolist() == pytest.approx([1.0, 1.0], abs=0.06)

    # real data the model does not generate (shifted by 0.5, twice as wide): the reverse ODE
    # transports the mismatch to the noise, z0 = (x1 - m)/s ~ N(1, 4); the Langevin part of the
    # reverse SDE pulls it toward N(0, I), the more the larger sigma
    real = data(10_000, g, shift=0.5, scale=2.0)
    mean_error, var_error = [], []
    for sigma in (0.0, 1.0, 2.0):
        z = reverse_sde(sigma, g)(optimal_velocity, real, steps)
        mean_error.append(z.mean(0).abs().max().item())
        var_error.append((z.var(0) - 1).abs().max().item())
    assert mean_error[0] == pytest.approx(1.0, abs=0.05)
    assert var_error[0] == pytest.approx(3.0, abs=0.25)
    assert mean_error[0] > mean_error[1] + 0.2 > mean_error[2] + 0.4
    assert var_error[0] > var_error[1] + 0.5 > var_error[2] + 1.0


def test_reverse_sde_gives_one_image_many_noise_partners():
    x1 = M.expand(2000, 2).clone()
    ode = euler_reverse(optimal_velocity, x1, 100)
    sde = reverse_sde(1.0, gen(7))(optimal_velocity, x1, 100)
    assert ode.std(0).max().item() == 0.0
    assert sde.std(0).min().item() > 0.5


def test_pairs():
    z = torch.randn(5, 2, generator=gen(8), dtype=torch.float64)
    noise, sample = make_pairs(optimal_velocity, z, 10)
    assert noise is z and torch.equal(sample, euler_forward(optimal_velocity, z, 10))
    x1 = data(5, gen(9))
    partner, image = reverse_pairs(euler_reverse, optimal_velocity, x1, 10)
    assert image is x1 and torch.equal(partner, euler_reverse(optimal_velocity, x1, 10))


def random_covariance(eigenvalues: list[float]) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen(10), dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_linear_dae_recursion_is_the_composition_of_the_trained_denoisers():
    cov, noise_var = random_covariance([4.0, 1.0, 0.25]), 0.5
    eye = torch.eye(3, dtype=torch.float64)
    data_cov, end_to_end, expected = cov, eye, []
    for _ in range(6):
        w = data_cov @ torch.linalg.inv(data_cov + noise_var * eye)
        data_cov, end_to_end = w @ data_cov @ w.T, w @ end_to_end
        expected.append(torch.linalg.matrix_norm(end_to_end, ord=2).item())
    assert linear_dae_recursion(cov, noise_var, 6) == pytest.approx(expected, rel=1e-9)


def test_linear_dae_collapses_without_real_data_and_not_with_it():
    cov, noise_var = random_covariance([4.0, 1.0, 0.25]), 0.5
    synthetic = linear_dae_recursion(cov, noise_var, 30)
    rate = 4.0 / (4.0 + noise_var)  # the largest gain of any DAE on this data
    assert synthetic[0] == pytest.approx(rate)
    for before, after in itertools.pairwise(synthetic):
        assert after <= rate * before * (1 + 1e-12)
    assert synthetic[-1] < 1e-6

    r = 0.5
    mixed = linear_dae_recursion(cov, noise_var, 30, real_fraction=r)
    floor = math.sqrt(r) * r * 4.0 / (r * 4.0 + noise_var)
    assert min(mixed) >= floor
    assert mixed[-1] == pytest.approx(mixed[-2], rel=1e-6)  # a positive fixed point
    assert linear_dae_recursion(cov, noise_var, 5, real_fraction=1.0) == pytest.approx([rate] * 5)
