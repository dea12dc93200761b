"""The training loop without Ray (the same function a Ray Train worker runs) and its EMA."""

import math

import pytest
import torch

from collapse.families.rectified_flow.interpolant import flow_matching_objective
from collapse.families.rectified_flow.samplers import euler_forward
from collapse.training.ema import EMA
from collapse.training.loop import pairs, train
from collapse.training.nets import VectorField
from collapse.training.state import TrainSettings, TrainState


def gaussian_batches(mean, std, batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield {"x": mean + std * torch.randn(batch, 2, generator=generator)}


@pytest.mark.slow
def test_loop_learns_a_gaussian_and_samples_it():
    torch.manual_seed(0)
    settings = TrainSettings(steps=600, lr=3e-3, ema_decay=0.99, checkpoint_every=200)
    state = TrainState.create(VectorField(2, hidden=64, depth=2), settings, torch.device("cpu"))
    losses = []
    train(
        state,
        gaussian_batches(3.0, 0.5, 256),
        settings,
        torch.device("cpu"),
        checkpoint=lambda s, loss: losses.append(loss),
        objective=flow_matching_objective,
    )
    assert state.step == 600 and len(losses) == 3 and losses[-1] < losses[0]
    x = euler_forward(
        state.ema.module, torch.randn(4000, 2, generator=torch.Generator().manual_seed(1)), 20
    )
    assert (x.mean(0) - 3.0).abs().max() < 0.15
    assert (x.std(0) - 0.5).abs().max() < 0.15


def test_resumed_training_equals_uninterrupted():
    settings = TrainSettings(steps=30, lr=1e-2, checkpoint_every=10)
    device = torch.device("cpu")
    flow = {"objective": flow_matching_objective, "seed": 5}

    def fresh():
        torch.manual_seed(0)
        return TrainState.create(VectorField(2, hidden=16, depth=1), settings, device)

    whole = train(fresh(), gaussian_batches(1.0, 1.0, 32), settings, device, **flow)
    saved = {}
    half = TrainSettings(steps=20, lr=1e-2, checkpoint_every=10)
    batches = gaussian_batches(1.0, 1.0, 32)
    train(fresh(), batches, half, device, lambda s, _: saved.update(s.state_dict()), **flow)
    restarted = fresh()
    restarted.load_state_dict(saved)
    assert restarted.step == 20
    train(restarted, batches, settings, device, **flow)
    for a, b in zip(whole.model.parameters(), restarted.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_pairs_keep_stored_noise_and_draw_fresh_noise_for_the_rest():
    x = torch.zeros(4, 3)
    noise = torch.full((4, 3), 7.0)
    paired = torch.tensor([True, False, True, False])
    x0, x1 = pairs({"x": x, "noise": noise, "paired": paired}, torch.Generator().manual_seed(0))
    assert torch.equal(x0[paired], noise[paired]) and not (x0[~paired] == 7.0).any()
    images = torch.full((2, 1, 2, 2), 255, dtype=torch.uint8)
    _, scaled = pairs({"x": images}, torch.Generator())
    assert scaled.dtype == torch.float32 and torch.all(scaled == 1.0)


def test_ema_warms_up_then_follows_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=0)  # warm-up decay (1 + 0) / (10 + 0) = 0.1
    assert math.isclose(ema.module.weight.item(), 0.9, rel_tol=1e-6)
    ema.update(model, step=1000)  # decay 0.9
    assert math.isclose(ema.module.weight.item(), 0.9 + 0.1 * 0.1, rel_tol=1e-6)


class _Still(torch.nn.Module):
    """v = 0: the forward and reverse flows are the identity, so every pair is (x, x)."""

    def forward(self, x, t):
        return torch.zeros_like(x)


def test_online_pairs_mix_reverse_real_pairs_and_forward_synthetic_pairs():
    from collapse.families.rectified_flow.online_pairs import online_pairs

    make = online_pairs(
        _Still(), batch_size=8, row_shape=(1, 2, 2), forward_steps=3, reverse_steps=3
    )
    real = torch.full((3, 1, 2, 2), 255, dtype=torch.uint8)
    x0, x1 = make({"x": real}, torch.Generator().manual_seed(0))
    assert x0.shape == x1.shape == (8, 1, 2, 2)
    assert torch.equal(x1[:3], torch.ones(3, 1, 2, 2)) and torch.equal(x0, x1)
    again, _ = make({"x": real}, torch.Generator().manual_seed(0))
    assert torch.equal(again, x0)  # synthetic noise from the step's generator: reproducible
    only_synthetic, _ = make({}, torch.Generator().manual_seed(1))
    assert only_synthetic.shape == (8, 1, 2, 2)
    sde = online_pairs(_Still(), 8, (1, 2, 2), 3, 3, sde_sigma=1.0)
    noisy, _ = sde({"x": real}, torch.Generator().manual_seed(0))
    assert not torch.equal(noisy[:3], torch.ones(3, 1, 2, 2))  # the SDE spreads the partners
