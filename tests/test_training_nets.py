"""Velocity nets: shapes, time dependence, gradients, bf16/channels_last, the factory, a fit."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from collapse.training.nets import (
    UNET_PRESETS,
    ImageField,
    VectorField,
    build_unet_config,
    build_velocity_net,
)

IMAGE_SHAPES = [(1, 8, 8), (3, 32, 32)]  # CHW, as the net sees them


def _tiny_image_net(c: int, size: int) -> ImageField:
    torch.manual_seed(0)
    return ImageField(build_unet_config("tiny", c, size))


def _assert_all_grads(net: torch.nn.Module, out: torch.Tensor) -> None:
    # A random projection, so no parameter's gradient cancels by symmetry.
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient reaches {missing}"


def test_vector_field_shape_time_dependence_and_gradients() -> None:
    torch.manual_seed(0)
    net = VectorField(5, hidden=32, depth=2, time_embed=16)
    x = torch.randn(7, 5)
    out = net(x, torch.full((7,), 0.2))
    assert out.shape == (7, 5)
    assert not torch.allclose(out, net(x, torch.full((7,), 0.7)))
    # one time for the whole batch (an Euler step) broadcasts like a per-row time
    assert torch.allclose(net(x, torch.tensor(0.2)), out)
    _assert_all_grads(net, out)


@pytest.mark.parametrize("chw", IMAGE_SHAPES)
def test_image_field_shape_time_dependence_and_gradients(chw: tuple[int, int, int]) -> None:
    c, h, w = chw
    net = _tiny_image_net(c, h)
    x = torch.randn(2, c, h, w)
    out = net(x, torch.full((2,), 0.1))
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, torch.full((2,), 0.9)))
    _assert_all_grads(net, out)


def test_nets_run_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    vec = VectorField(3, hidden=32, depth=2)
    img = _tiny_image_net(3, 32)
    x_vec, x_img = torch.randn(4, 3), torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_vec = vec(x_vec, torch.rand(4))
        out_img = img(x_img, torch.rand(2))
    for x, out in ((x_vec, out_vec), (x_img, out_img)):
        assert out.shape == x.shape
        assert torch.isfinite(out).all()


def test_image_field_takes_channels_last_inputs() -> None:
    net = _tiny_image_net(3, 32).eval()
    x, t = torch.randn(2, 3, 32, 32), torch.rand(2)
    with torch.no_grad():
        expected = net(x, t)
        out = net(x.contiguous(memory_format=torch.channels_last), t)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_unet_attention_goes_through_sdpa() -> None:
    """AttnProcessor2_0 is diffusers' F.scaled_dot_product_attention path (flash/mem-efficient
    kernels on GPU); a preset change that fell back to the eager processor would show here."""
    with torch.device("meta"):
        nets = [ImageField(build_unet_config(p, 3, 32)) for p in UNET_PRESETS]
    for net in nets:
        processors = {type(m.processor).__name__ for m in net.modules() if hasattr(m, "processor")}
        assert processors == {"AttnProcessor2_0"}


def test_ddpm_cifar10_preset_has_the_published_size() -> None:
    with torch.device("meta"):
        unet = UNet2DModel(**build_unet_config("ddpm_cifar10", 3, 32))
    n = sum(p.numel() for p in unet.parameters())
    assert abs(n - 35.7e6) < 0.1e6, n


def test_build_unet_config_merges_preset_shape_and_overrides() -> None:
    config = build_unet_config("small", 1, 28, layers_per_block=1)
    assert config["in_channels"] == config["out_channels"] == 1
    assert config["sample_size"] == 28
    assert config["layers_per_block"] == 1
    assert config["block_out_channels"] == UNET_PRESETS["small"]["block_out_channels"]


def test_factory_builds_from_stored_shapes() -> None:
    vec = build_velocity_net("vector", (4,), {"hidden": 16, "depth": 1})
    assert isinstance(vec, VectorField)
    assert vec(torch.randn(3, 4), torch.rand(3)).shape == (3, 4)
    img = build_velocity_net("image", (8, 8, 1), {"norm_eps": 1e-6})  # HWC, preset tiny
    assert isinstance(img, ImageField)
    assert img.unet.config.in_channels == img.unet.config.out_channels == 1
    assert img.unet.config.sample_size == 8
    assert img.unet.config.norm_eps == 1e-6
    assert img(torch.randn(2, 1, 8, 8), torch.rand(2)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize(
    ("kind", "shape", "net", "message"),
    [
        ("vector", (2,), {"hidden": 8, "widht": 3}, "widht"),
        ("vector", (2,), {"preset": "tiny"}, "preset"),
        ("image", (8, 8, 1), {"preset": "tiny", "hiden": 8}, "hiden"),
        ("image", (8, 8, 1), {"in_channels": 3}, "in_channels"),
        ("image", (8, 8, 1), {"preset": "huge"}, "huge"),
        ("image", (6, 6, 1), {"preset": "small"}, "not divisible by 4"),
        ("image", (8, 8), {}, "(H, W, C)"),
        ("vector", (2, 2), {}, "(d,)"),
        ("audio", (2,), {}, "audio"),
    ],
)
def test_factory_rejects_bad_input_by_name(
    kind: str, shape: tuple[int, ...], net: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_velocity_net(kind, shape, net)


@pytest.mark.slow
def test_vector_field_fits_a_velocity_target() -> None:
    """A few hundred AdamW steps on a smooth v*(x, t) cut the regression loss by 10x."""
    torch.manual_seed(0)
    net = VectorField(2, hidden=64, depth=2, time_embed=16)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)

    def target(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(3 * t)[:, None] - 0.5 * x

    losses = []
    for _ in range(300):
        x, t = torch.randn(256, 2), torch.rand(256)
        loss = (net(x, t) - target(x, t)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first / 10, (first, last)
