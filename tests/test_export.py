"""A trained generation's model in its ecosystem's formats: written at each commit and listed in
the manifest with checksums, loaded with diffusers' own classes (not collapse's), and drawing the
chain's own samples from the chain's own noise. Runs written before exports still resume,
report and load."""

from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMPipeline,
    DDIMScheduler,
    DDPMPipeline,
    FlowMatchEulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
    UNet2DModel,
)
from safetensors.torch import load_file

import collapse
from collapse.cli import main
from collapse.config import DDPMModel, StableDiffusionModel
from collapse.data.noise import row_normals
from collapse.data.space import DataSpace
from collapse.engine.run_opening import stored_run_config
from collapse.families import export, get_family
from collapse.families.stable_diffusion import pipeline_parts as sd
from collapse.store.layout import generation_dir
from collapse.training.weights import frozen_names, trainable_state
from tests.helpers import make_config, run_in_process
from tests.tiny_sd import SIZE, build_pipeline

DIGITS = {"real": "sklearn:digits", "n_real": 64, "n_train": 32, "n_eval": 32}
MOG = {"real": "toy:mog8", "dim": 2, "n_real": 64, "n_train": 32, "n_eval": 32}
TRAIN = {"workers": 0, "steps": 4, "checkpoint_every": 4, "log_every": 2, "batch_size": 16}


def chain(tmp, name, model, data=DIGITS, generations=1):
    config = make_config(
        str(tmp),
        name=name,
        generations=generations,
        data=data,
        model=model,
        train=TRAIN,
        sample={"n": 32, "steps": 3},
        eval={"features": "raw", "metrics": ["precision", "recall"], "grid": 4},
    )
    run_in_process(config)
    return config


@pytest.fixture(scope="module")
def runs(ray_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    chain(tmp, "flow", {"family": "rectified_flow", "net": {"preset": "tiny"}})
    chain(tmp, "mlp", {"family": "rectified_flow", "net": {"hidden": 16, "depth": 2}}, MOG)
    return {name: collapse.open_run(str(tmp / name)) for name in ("flow", "mlp")}


def folder(run, generation=0):
    return os.path.join(run.uri, generation_dir(generation), "model", "diffusers")


def chain_noise(run, ids, dim):
    """The noise the chain drew row `id` of generation 0 from (collapse.engine.sampling.draw)."""
    return row_normals(run.config.seed, np.asarray(ids), dim, stream=0)


def test_each_commit_lists_its_export_with_checksums(runs):
    formats = {
        "flow": "diffusers:UNet2DModel+FlowMatchEulerDiscreteScheduler",
        "mlp": "safetensors:VectorField",
    }
    for name, run in runs.items():
        (record,) = run.records
        assert record["export"]["format"] == formats[name]
        for artifact in record["export"]["files"]:
            with open(os.path.join(run.uri, artifact["path"]), "rb") as f:
                data = f.read()
            assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
            assert len(data) == artifact["bytes"]
        paths = {a["path"] for a in record["export"]["files"]}
        if name == "mlp":
            assert paths == {"gen-0000/model/net.safetensors", "gen-0000/model/net.json"}
        else:
            assert "gen-0000/model/diffusers/unet/diffusion_pytorch_model.safetensors" in paths


def written(files, root):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(root / export.EXPORT_DIR)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_a_ddpm_generation_is_a_pipeline_that_draws_the_chains_samples(tmp_path, sampler):
    """Its DDPMPipeline folder, called as diffusers calls it (DDIMPipeline with eta 1 for the
    ancestral sampler), against the family's sampler (what the chain stores) on the same
    noise: the pipeline's initial noise, then for `ddpm` each step's, as the chain's noise row
    holds them."""
    family, space = get_family("ddpm"), DataSpace("image", (8, 8, 1))
    model = DDPMModel(family="ddpm", net={"preset": "tiny"}, timesteps=100, sampler=sampler)
    torch.manual_seed(0)
    weights = {k: v.numpy() for k, v in family.build_net(model, space).state_dict().items()}
    params = family.to_params(weights, model, space, 3)
    fmt, files = get_family("ddpm").export(params)
    assert fmt == "diffusers:DDPMPipeline"
    folder = written(files, tmp_path)
    if sampler == "ddim":
        pipeline = DDPMPipeline.from_pretrained(folder)
        call = {}
    else:
        pipeline = DDIMPipeline.from_pretrained(folder)
        call = {"eta": 1.0}
    assert isinstance(pipeline.scheduler, DDIMScheduler)
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(5)
    drawn = pipeline(
        batch_size=4, generator=generator, num_inference_steps=3, output_type="np", **call
    ).images
    generator = torch.Generator().manual_seed(5)
    draws = 1 if sampler == "ddim" else 4  # the initial noise, and each step's
    noise = torch.cat([torch.randn((4, 64), generator=generator) for _ in range(draws)], dim=1)
    ours = family.sample(params, noise.numpy()).reshape(4, 8, 8, 1)
    np.testing.assert_allclose(drawn, np.clip(ours / 2 + 0.5, 0, 1), atol=2e-5)
    assert np.mean((drawn > 0) & (drawn < 1)) > 0.5, "samples clipped flat: nothing compared"


def test_a_flow_generation_is_a_unet_and_a_flow_matching_scheduler(runs):
    run = runs["flow"]
    unet = UNet2DModel.from_pretrained(folder(run), subfolder="unet")
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder(run), subfolder="scheduler")
    with open(os.path.join(folder(run), "sampling.json")) as f:
        sampling = json.load(f)
    scheduler.set_timesteps(sigmas=sampling["sigmas"])
    assert sampling["num_inference_steps"] == 3

    noise = chain_noise(run, range(8), 64)
    x = torch.as_tensor(noise, dtype=torch.float32).reshape(8, 1, 8, 8)
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    rows = x.permute(0, 2, 3, 1).reshape(8, -1).numpy()
    ours = get_family("rectified_flow").sample(run._params(run.records[0]), noise)
    np.testing.assert_allclose(rows, ours, atol=2e-5)
    images = np.rint(np.clip((rows + 1) * 127.5, 0, 255)).reshape(8, 8, 8, 1)
    stored = run.samples(0)[:8].astype(np.float64)
    assert np.abs(images - stored).max() <= 1 and np.mean(images == stored) > 0.99
    assert np.ptp(stored) > 20, "flat samples: nothing compared"


def test_an_mlp_generation_is_safetensors_and_a_json_that_rebuilds_it_in_plain_torch(runs):
    run = runs["mlp"]
    root = os.path.join(run.uri, "gen-0000", "model")
    weights = load_file(os.path.join(root, "net.safetensors"))
    with open(os.path.join(root, "net.json")) as f:
        config = json.load(f)
    assert (config["dim"], config["hidden"], config["depth"]) == (2, 16, 2)

    # the architecture as net.json describes it, in plain torch
    half = config["time_embed"] // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)

    def velocity(x, t):
        s = torch.full((len(x), 1), t, dtype=torch.float32) * config["time_scale"]
        h = torch.cat([x, torch.sin(s * freqs), torch.cos(s * freqs)], dim=1)
        layers = sorted({int(k.split(".")[1]) for k in weights})
        for i, layer in enumerate(layers):
            h = h @ weights[f"mlp.{layer}.weight"].T + weights[f"mlp.{layer}.bias"]
            h = torch.nn.functional.silu(h) if i < len(layers) - 1 else h
        return h

    noise = chain_noise(run, range(32), 2)
    x = torch.as_tensor(noise, dtype=torch.float32)
    steps = config["sampling"]["num_inference_steps"]
    for t in config["sampling"]["t"]:
        x = x + velocity(x, t) / steps
    np.testing.assert_allclose(x.numpy(), run.samples(0), atol=1e-5)
    assert isinstance(run.model(0), torch.nn.Module)


def test_the_loss_curve_is_kept_read_back_and_plotted(runs, tmp_path, capsys):
    run = runs["mlp"]
    curve = run.loss_curve(0)
    assert list(curve["step"]) == [2, 4]  # train.log_every 2 of 4 steps
    # the generation's reported loss is the mean of steps 1-4: the mean of the two points
    assert curve["loss"].mean() == pytest.approx(run.metrics()["train_loss"][0], rel=1e-5)
    assert isinstance(runs["flow"].model(0), UNet2DModel)
    assert main(["report", run.uri, "--plots", str(tmp_path)]) == 0
    from PIL import Image

    picture = Image.open(tmp_path / "mlp-loss.png").convert("L")
    assert picture.size[0] >= 300 and np.ptp(np.asarray(picture)) > 100


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_pipeline(tmp_path_factory.mktemp("sd") / "tiny-pipeline")


def sd_params(pipeline, finetune):
    """A fine-tuned generation's parameters as the family stores them, with weights moved off
    the pretrained ones (LoRA's up-projection starts at zero), and alpha = 2 x rank."""
    model = StableDiffusionModel(
        family="stable_diffusion",
        pretrained=str(pipeline),
        finetune=finetune,
        lora_rank=4,
        lora_alpha=8.0,
        guidance_scale=2.0,
    )
    net = sd.unet(str(pipeline), finetune, 4, 8.0)
    generator = torch.Generator().manual_seed(1)
    weights = {}
    for name, value in trainable_state(net, frozen_names(net)).items():
        moved = value + 0.05 * torch.randn(value.shape, generator=generator)
        weights[name] = (moved if "lora_B" in name or finetune == "full" else value).numpy()
    space = DataSpace("image", (SIZE, SIZE, 3))
    family = get_family("stable_diffusion")
    return family.to_params(weights, model, space, 2, captions=["a digit three", "a digit one"])


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_stable_diffusion_generations_load_into_the_pretrained_pipeline(
    tiny_sd, tmp_path, finetune
):
    params = sd_params(tiny_sd, finetune)
    fmt, files = get_family("stable_diffusion").export(params)
    exported = written(files, tmp_path)
    if finetune == "lora":
        assert fmt == "diffusers:lora"
        pipeline = StableDiffusionPipeline.from_pretrained(str(tiny_sd))
        pipeline.load_lora_weights(exported)
    else:
        assert fmt == "diffusers:UNet2DConditionModel"
        unet = UNet2DConditionModel.from_pretrained(exported, subfolder="unet")
        pipeline = StableDiffusionPipeline.from_pretrained(str(tiny_sd), unet=unet)
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)

    latents = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(2))
    drawn = pipeline(
        prompt=["a digit three", "a digit one"],
        latents=latents,
        num_inference_steps=2,
        guidance_scale=2.0,
        output_type="np",
    ).images
    pick = np.array([[-3.0], [3.0]])  # column 0 draws the caption: the first, then the last
    noise = np.concatenate([pick, latents.reshape(2, -1).numpy()], axis=1)
    family = get_family("stable_diffusion")
    assert family.captions(params, noise) == ["a digit three", "a digit one"]
    ours = family.sample(params, noise).reshape(2, SIZE, SIZE, 3) / 2 + 0.5
    np.testing.assert_allclose(drawn, ours, atol=1e-4)
    pretrained = StableDiffusionPipeline.from_pretrained(str(tiny_sd))
    pretrained.scheduler = DDIMScheduler.from_config(pretrained.scheduler.config)
    pretrained.set_progress_bar_config(disable=True)
    base = pretrained(
        prompt=["a digit three", "a digit one"],
        latents=latents,
        num_inference_steps=2,
        guidance_scale=2.0,
        output_type="np",
    ).images
    assert np.abs(base - drawn).max() > 1e-3, "the fine-tune changed nothing: nothing compared"


def test_runs_written_before_exports_still_resume_report_and_load(ray_cluster, tmp_path):
    chain(tmp_path, "old", {"family": "rectified_flow", "net": {"hidden": 8}}, MOG)
    run = tmp_path / "old"
    # as such a run was written: no export, no loss curve, no tracking or log_every keys
    manifest = json.loads((run / "manifest.json").read_text())
    for record in manifest["generations"]:
        record.pop("export")
        record.pop("loss_curve")
    (run / "manifest.json").write_text(json.dumps(manifest))
    for rel in ("model/net.safetensors", "model/net.json", "train_loss.json"):
        os.remove(run / "gen-0000" / rel)
    text = (run / "config.yaml").read_text()
    lines = text.splitlines(keepends=True)
    tracking = lines.index("tracking:\n")
    old = "".join(line for line in lines[:tracking] if "log_every" not in line)
    (run / "config.yaml").write_text(old)
    (run / "config.sha256").write_text(f"{hashlib.sha256(old.encode()).hexdigest()}  config.yaml\n")

    opened = collapse.open_run(str(run))
    net = opened.model(0)  # exported in memory from params.npz
    noise = chain_noise(opened, range(4), 2)
    x = torch.as_tensor(noise, dtype=torch.float32)
    with torch.no_grad():
        for i in range(3):
            x = x + net(x, torch.full((4,), i / 3)) / 3
    np.testing.assert_allclose(x.numpy(), opened.samples(0)[:4], atol=1e-5)
    assert opened.loss_curve(0).empty
    assert main(["report", str(run), "--plots", str(tmp_path / "plots")]) == 0

    resumed = stored_run_config(str(run))  # as `collapse resume --generations 2` reads it
    resumed.generations = 2
    run_in_process(resumed)  # generation 1 is written the new way
    later = collapse.open_run(str(run)).records[1]
    assert "export" in later and "loss_curve" in later
