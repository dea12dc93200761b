"""Stable Diffusion fine-tunes: a tiny pipeline built from configs and loaded through
from_pretrained, fine-tuned (LoRA and full) on Ray Train with 2 CPU workers on cached VAE
latents, sampled for captions of the real set; the offline and bad-path errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from collapse.cli import main
from collapse.config import StableDiffusionModel
from collapse.driver.launch import run_chain
from collapse.engine.latent_cache import captions_of
from collapse.engine.sampling import draw
from collapse.errors import UserError
from collapse.families.stable_diffusion import FAMILY as family
from collapse.families.stable_diffusion import pipeline_parts as sd
from collapse.store.run_store import RunStore
from tests.conftest import free_port
from tests.helpers import make_config, own_stderr
from tests.tiny_sd import build_pipeline, captioned_digits

COLLAPSE = str(Path(sys.executable).parent / "collapse")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return build_pipeline(tmp_path_factory.mktemp("sd") / "tiny-pipeline")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return captioned_digits(tmp_path_factory.mktemp("data") / "digits", 96)


def sd_config(storage, pipeline, digits, **model):
    return make_config(
        str(storage),
        name="sd",
        generations=2,
        data={
            "real": f"folder:{digits}",
            "n_real": 64,
            "n_train": 32,
            "n_eval": 32,
            "loop": "fully_synthetic",
        },
        model={"family": "stable_diffusion", "pretrained": str(pipeline), **model},
        train={
            "workers": 2,
            "cpus_per_worker": 0.5,
            "steps": 4,
            "batch_size": 8,
            "checkpoint_every": 2,
            "lr": 1e-3,
        },
        sample={"n": 32, "steps": 2, "batch_size": 16},
        eval={"features": "raw", "metrics": ["precision", "recall", "coverage"], "grid": 4},
    )


def params_of(store, record):
    with np.load(store.storage.path(record["model"][0]["path"]), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.ray_train
def test_lora_chain_fine_tunes_on_cached_latents_and_samples_for_real_captions(
    ray_cluster, tmp_path, pipeline, digits
):
    config = sd_config(tmp_path, pipeline, digits, finetune="lora", guidance_scale=2.0)
    store = RunStore(run_chain(config).uri)
    first, second = store.committed()
    assert first["train"]["step"] == second["train"]["step"] == 4
    assert np.isfinite(first["train"]["loss"])

    # only the adapter is stored, and generation 1 fine-tuned on from generation 0's
    params = params_of(store, second)
    names = [k for k in params if k.startswith("w.")]
    assert names and all(".lora_" in k for k in names)
    assert not np.array_equal(params[names[0]], params_of(store, first)[names[0]])

    # the real pool's latents were encoded once, generation 0's samples' when 1 trained on them
    real_index = json.loads(store.storage.read_text("latents/real/_index.json"))
    assert sum(s["rows"] for s in real_index) >= 64
    sample_index = json.loads(store.storage.read_text("latents/gen-0000/_index.json"))
    assert sum(s["rows"] for s in sample_index) == 32
    latent = pq.read_table(store.storage.path(sample_index[0]["path"]))
    assert latent.schema.field("latent").type.list_size == 4 * 8 * 8

    # samples carry captions drawn from the real pool's, and those are what the model knows
    real_captions = set(params["captions"].tolist())
    assert len(params["captions"]) == 64 and all(c.startswith("a digit ") for c in real_captions)
    for shard in second["samples"]:
        table = pq.read_table(store.storage.path(shard["path"]))
        assert set(table.column("caption").to_pylist()) <= real_captions
        assert table.column("image").null_count == 0
    assert set(latent.column("caption").to_pylist()) <= real_captions
    assert np.isfinite(list(second["metrics"].values())).all()


@pytest.mark.ray_train
def test_full_fine_tune_trains_every_unet_weight_on_two_workers(
    ray_cluster, tmp_path, pipeline, digits
):
    config = sd_config(tmp_path, pipeline, digits, finetune="full", guidance_scale=1.0)
    config.generations = 1
    store = RunStore(run_chain(config).uri)
    (record,) = store.committed()
    params = params_of(store, record)
    pretrained = sd.unet(str(pipeline), "full", 4, None).state_dict()
    weights = family.weights(params)
    assert set(weights) == set(pretrained)
    changed = [k for k in weights if not np.array_equal(weights[k], pretrained[k].numpy())]
    assert len(changed) > len(weights) // 2
    assert record["sample_rows"] == 32


@pytest.mark.slow
def test_a_sample_is_a_function_of_its_noise_row_and_bias_leaves_the_caption(pipeline):
    from collapse.data.space import DataSpace
    from collapse.families.trained import pack

    space = DataSpace("image", (16, 16, 3))
    model = StableDiffusionModel(family="stable_diffusion", pretrained=str(pipeline))
    lora = sd.unet(str(pipeline), "lora", 4, None)
    weights = {k: v.numpy() for k, v in lora.state_dict().items() if ".lora_" in k}
    params = family.to_params(weights, model, space, 3, captions=["a digit one", "a digit two"])
    assert params.keys() == pack(weights, {}).keys() | {"captions"}
    ids = np.arange(6)
    x, noise = draw(family, params, 7, 0, ids)
    part, _ = draw(family, params, 7, 0, ids[3:])
    assert x.shape == (6, 16 * 16 * 3) and np.abs(x).max() <= 1.0
    np.testing.assert_allclose(x[3:], part, atol=1e-5)
    _, biased = draw(family, params, 7, 0, ids, bias=0.5)
    assert family.captions(params, biased) == family.captions(params, noise)
    np.testing.assert_allclose(biased[:, 1:], 0.5 * noise[:, 1:], rtol=1e-6)


def test_latents_are_the_scaled_posterior_mean_and_captions_fall_back_to_labels(pipeline):
    import pyarrow as pa

    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    latents = sd.encode(str(pipeline), images, torch.device("cpu"))
    vae = sd.part(str(pipeline), "vae")
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    expected = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    np.testing.assert_allclose(latents, expected.detach().numpy(), atol=1e-5)
    assert sd.latent_shape(str(pipeline), (16, 16, 3)) == (4, 8, 8)
    assert captions_of(pa.table({"label": [3, 5]})) == ["3", "5"]
    assert captions_of(pa.table({"id": [0]})) == [""]


@pytest.mark.subprocess
def test_a_hub_id_without_network_exits_2_with_one_line_naming_a_local_dir(tmp_path, digits):
    """A hub endpoint nothing listens on is a machine without network, whatever this one has."""
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: sd\ndata: {{real: 'folder:{digits}', n_real: 64, n_train: 32, n_eval: 32}}\n"
        "model: {family: stable_diffusion, pretrained: stabilityai/stable-diffusion-2-1}\n"
    )
    done = subprocess.run(
        [COLLAPSE, "run", str(config), "--storage", str(tmp_path / "runs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "stabilityai/stable-diffusion-2-1" in done.stderr and "--local-dir" in done.stderr
    assert "unreachable" in done.stderr
    assert not (tmp_path / "runs" / "sd").exists()


def test_offline_mode_refuses_an_uncached_hub_id_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        sd.check_available("stabilityai/stable-diffusion-2-1")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.pretrained=./no/such/pipeline", "no such directory"),
        ("data.real=toy:gaussian", "needs images"),
        ("strategy={name: self_correct, corrector: knn}", "without a strategy"),
        ("model.finetune=half", "model.finetune"),
    ],
)
def test_bad_stable_diffusion_settings_exit_2(
    tmp_path, capsys, pipeline, digits, override, message
):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: sd\ndata: {{real: 'folder:{digits}', n_real: 64, n_train: 32, n_eval: 32}}\n"
        f"model: {{family: stable_diffusion, pretrained: {pipeline}}}\n"
    )
    args = ["run", str(config), "--storage", str(tmp_path / "runs"), "--set", override]
    assert main(args) == 2
    err = own_stderr(capsys)
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs" / "sd").exists()


def test_gpu_options_reach_the_unet(pipeline):
    net = sd.unet(str(pipeline), "lora", 2, 4.0, gradient_checkpointing=True)
    assert net.is_gradient_checkpointing
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    try:
        import xformers  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="xformers"):
            sd.unet(str(pipeline), "full", 4, None, attention="xformers")
