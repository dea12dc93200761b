"""DDPM: the epsilon objective, diffusers' DDIM/ancestral samplers against the closed form for
Gaussian data, MAD's sampling bias, and a DDPM generation on Ray Train with 2 CPU workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from collapse.config import validate
from collapse.driver.launch import run_chain
from collapse.engine.sampling import draw
from collapse.families import get_family
from collapse.families.ddpm.denoising import epsilon_objective, noise_per_row, sample, schedule
from collapse.store.run_store import RunStore
from tests.helpers import make_config, run_in_process

SCALE = 2.0  # data ~ N(0, SCALE^2 I)
CONFIG = schedule(1000, "linear", clip=False)
ALPHAS = DDPMScheduler.from_config(CONFIG).alphas_cumprod


class OptimalNoisePredictor(torch.nn.Module):
    """E[eps | x_k] for Gaussian data: sqrt(1 - a) x_k / (a s^2 + 1 - a)."""

    def forward(self, x, t):
        k = torch.round(t * 999).long()
        a = ALPHAS[k].view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        return (1 - a).sqrt() * x / (a * SCALE**2 + 1 - a)


@pytest.mark.parametrize(("sampler", "tolerance"), [("ddim", 0.03), ("ddpm", 0.08)])
def test_samplers_with_the_optimal_predictor_reproduce_gaussian_data(sampler, tolerance):
    generator = torch.Generator().manual_seed(0)
    steps = 100
    noise = torch.randn(20_000, noise_per_row(2, steps, sampler), generator=generator)
    x = sample(OptimalNoisePredictor(), CONFIG, noise, (2,), steps, sampler)
    assert x.std().item() == pytest.approx(SCALE, rel=tolerance)
    assert abs(x.mean().item()) < 0.05


@pytest.mark.slow
def test_ddim_is_a_function_of_the_noise_and_bias_narrows_it():
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(20_000, 2, generator=generator)
    full = sample(OptimalNoisePredictor(), CONFIG, noise, (2,), 100, "ddim")
    again = sample(OptimalNoisePredictor(), CONFIG, noise, (2,), 100, "ddim")
    assert torch.equal(full, again)
    # DDIM's flow is linear for Gaussian data: noise scaled by lambda gives samples scaled by it
    biased = sample(OptimalNoisePredictor(), CONFIG, noise * 0.5, (2,), 100, "ddim")
    assert biased.std().item() == pytest.approx(0.5 * full.std().item(), rel=0.02)


def test_epsilon_objective_is_the_noise_regression_of_diffusers_add_noise():
    objective = epsilon_objective(CONFIG)
    x = torch.randn(4096, 2) * SCALE
    noise = torch.randn(4096, 2)
    optimal = objective(OptimalNoisePredictor(), noise, x, torch.Generator().manual_seed(2))
    zero = objective(lambda x, t: torch.zeros_like(x), noise, x, torch.Generator().manual_seed(2))
    assert zero.item() == pytest.approx(noise.square().mean().item(), rel=1e-6)
    assert optimal.item() < 0.6 * zero.item()
    k = torch.randint(0, 1000, (4096,), generator=torch.Generator().manual_seed(2))
    noisy = DDPMScheduler.from_config(CONFIG).add_noise(x, noise, k)
    manual = (OptimalNoisePredictor()(noisy, k.float() / 999) - noise).square().mean()
    assert optimal.item() == pytest.approx(manual.item(), rel=1e-6)


def test_bias_scales_only_a_familys_continuous_noise():
    kde = get_family("kde")
    params = {"points": np.zeros((4, 2)), "bandwidth": np.array(1.0)}
    ids = np.arange(8)
    _, plain = draw(kde, params, 3, 0, ids)
    _, biased = draw(kde, params, 3, 0, ids, bias=0.5)
    np.testing.assert_array_equal(biased[:, 0], plain[:, 0])  # the kernel choice is kept
    np.testing.assert_allclose(biased[:, 1:], 0.5 * plain[:, 1:])


def test_mad_sampling_bias_loses_recall_faster_and_keeps_precision(tmp_path):
    """MAD (Alemohammad et al. 2023), toy scale: in a fully synthetic loop, biased sampling
    (lambda < 1) loses recall faster than unbiased sampling, and precision no faster."""
    curves = {}
    for bias in (1.0, 0.8):
        config = make_config(
            str(tmp_path),
            name=f"bias-{bias}",
            generations=6,
            data={"real": "toy:gaussian", "dim": 2, "n_real": 500, "n_train": 500, "n_eval": 500},
            sample={"bias": bias},
            eval={"metrics": ["precision", "recall"]},
        )
        records = run_in_process(config)
        assert all(r["sample_bias"] == bias for r in records)
        curves[bias] = [(r["metrics"]["precision"], r["metrics"]["recall"]) for r in records]
    (p_first, r_first), (p_last, r_last) = curves[1.0][0], curves[1.0][-1]
    (pb_first, rb_first), (pb_last, rb_last) = curves[0.8][0], curves[0.8][-1]
    assert rb_first - rb_last > (r_first - r_last) + 0.2, curves
    assert pb_first - pb_last <= (p_first - p_last) + 0.02, curves
    assert pb_last > 0.9, curves


@pytest.mark.ray_train
def test_a_ddpm_generation_trains_on_two_workers_and_samples(ray_cluster, tmp_path):
    config = validate(
        {
            "name": "ddpm",
            "storage": str(tmp_path),
            "generations": 1,
            "data": {"real": "sklearn:digits", "n_real": 128, "n_train": 128, "n_eval": 64},
            "model": {"family": "ddpm", "net": {"preset": "tiny"}, "sampler": "ddpm"},
            "train": {
                "workers": 2,
                "cpus_per_worker": 0.5,
                "steps": 6,
                "batch_size": 32,
                "checkpoint_every": 3,
            },
            "sample": {"steps": 3, "bias": 0.9},
            "eval": {"metrics": ["fid", "precision"], "grid": 4},
        }
    )
    store = RunStore(run_chain(config).uri)
    (record,) = store.committed()
    assert record["train"]["step"] == 6 and record["sample_bias"] == 0.9
    assert record["sample_rows"] == 128
    assert np.isfinite(list(record["metrics"].values())).all()
    with np.load(store.storage.path(record["model"][0]["path"])) as npz:
        assert "spec" in npz.files and '"sampler": "ddpm"' in str(npz["spec"])
