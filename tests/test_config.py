import typing

import pytest

from collapse.cli import main
from collapse.config import (
    apply_overrides,
    differing_keys,
    dump_yaml,
    load_config,
    parse_yaml,
    validate,
)
from collapse.engine import preflight
from collapse.errors import UserError
from tests.helpers import own_stderr

REPO_CONFIGS = [
    "quickstart",
    "gaussian_collapse",
    "mad_fresh_data",
    "kde_two_moons",
    "rf_mog8_reflow",
    "rf_digits",
    "rf_cifar10",
    "mad_ddpm_digits",
    "mad_sd_finetune",
]


@pytest.mark.parametrize("name", REPO_CONFIGS)
def test_shipped_configs_validate(name):
    config = load_config(f"configs/{name}.yaml")
    assert config.name
    assert config.sample.n is not None


def test_defaults_resolve_sample_count_to_training_size():
    config = validate({"data": {"n_train": 300, "n_real": 300}})
    assert config.sample.n == 300
    assert config.model.family == "gaussian"


def test_overrides_are_typed_by_yaml():
    raw = apply_overrides(
        {"data": {"n_train": 10}},
        [
            "data.real_fraction=0.25",
            "seed=7",
            "train.use_gpu=true",
            "train.lr=1e-4",
            "model.family=kde",
            "model.bandwidth=0.3",
            "eval.metrics=[w2, var]",
        ],
    )
    config = validate({**raw, "data": {**raw["data"], "n_real": 100, "loop": "fresh_data"}})
    assert config.data.real_fraction == 0.25
    assert config.seed == 7 and config.train.use_gpu is True
    assert config.train.lr == pytest.approx(1e-4)
    assert config.model.family == "kde" and config.model.bandwidth == 0.3
    assert config.eval.metrics == ["w2", "var"]


def test_eval_defaults_follow_the_kind_of_data():
    vectors = validate({})
    assert vectors.eval.features == "raw"
    assert vectors.eval.metrics == ["w2", "mmd", "mean_err", "var", "precision", "recall"]
    digits = validate(
        {"data": {"real": "sklearn:digits", "n_real": 1000, "n_train": 1000, "n_eval": 360}}
    )
    assert digits.eval.features == "digits-cnn"
    assert digits.eval.metrics == ["fid", "kid", "precision", "recall", "density", "coverage"]
    cifar = validate({"data": {"real": "torchvision:cifar10"}})
    assert cifar.eval.features == "inception"
    parquet = validate({"data": {"real": "parquet:s3://b/d"}})  # kind known only from its index
    assert (parquet.eval.features, parquet.eval.metrics) == ("auto", None)
    chosen = validate({"eval": {"metrics": ["fid", "w2"], "features": "raw"}})
    assert (chosen.eval.features, chosen.eval.metrics) == ("raw", ["fid", "w2"])


def test_yaml_reads_exponent_floats():
    assert parse_yaml("lr: 1e-3\nbig: 2E+5\nn: 12", "x") == {"lr": 1e-3, "big": 2e5, "n": 12}


def test_dump_and_reload_is_identity():
    for raw in (
        {"model": {"family": "gmm", "components": 3}},
        {"model": {"family": "rectified_flow"}, "strategy": {"name": "reflow"}},
        {
            "model": {"family": "rectified_flow"},
            "strategy": {"name": "ocar", "sigma": 0.3},
            "data": {"loop": "accumulate"},
        },
    ):
        config = validate(raw)
        assert validate(parse_yaml(dump_yaml(config), "x")) == config


def test_differing_keys_names_the_changed_keys_only():
    a = validate({"seed": 1})
    b = validate(
        {
            "seed": 2,
            "storage": "elsewhere",
            "model": {"family": "gaussian", "estimator": "unbiased"},
        }
    )
    assert differing_keys(a, b) == ["model.estimator", "seed"]


RF = {"family": "rectified_flow"}
DDPM = {"family": "ddpm"}
DIGITS = {"data": {"real": "sklearn:digits", "n_real": 1000, "n_train": 1000}}


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        (
            {"data": {"real_fraction": 1.5}},
            ["data.real_fraction", "less than or equal to 1", "1.5"],
        ),
        ({"data": {"nope": 1}}, ["data.nope", "unknown key", "n_train"]),
        ({"bogus": 1}, ["bogus", "unknown key", "generations"]),
        ({"generations": "ten"}, ["generations", "valid integer"]),
        ({"generations": 2.5}, ["generations"]),
        ({"generations": 0}, ["generations", "greater than or equal to 1"]),
        ({"data": {"n_train": -5}}, ["data.n_train"]),
        ({"train": {"lr": float("nan")}}, ["train.lr", "finite"]),
        ({"model": {"family": "vae"}}, ["model.family", "'vae'", "gaussian, kde, gmm"]),
        ({"model": {"family": "gaussian", "estimator": "robust"}}, ["model.estimator", "'mle'"]),
        ({"model": {"family": "gmm", "covarianc": "full"}}, ["model.covarianc", "components"]),
        ({"strategy": {"name": "nope"}}, ["strategy.name", "'none'", "'reflow'"]),
        ({"strategy": {"name": "none", "sigma": 2.0}}, ["strategy", "sigma", "only", "rca_reflow"]),
        ({"strategy": {"name": "none", "strength": 0.5}}, ["strength", "only self_correct"]),
        ({"strategy": {"name": "reflow"}}, ["strategy.name", "needs model.family rectified_flow"]),
        ({"model": {"family": "rectified_flow", "init": "last"}}, ["model.init", "'previous'"]),
        (
            {"model": RF | {"net": {"hiddn": 3}}},
            ["model.net.hiddn", "unknown key", "hidden, depth", "preset"],
        ),
        (
            {"model": RF | {"net": {"hidden": "wide"}}},
            ["model.net.hidden", "valid integer", "'wide'"],
        ),
        ({"model": RF | {"net": {"time_embed": 5}}}, ["model.net.time_embed", "multiple of 2"]),
        ({"model": RF | {"net": 3}}, ["model.net", "a mapping"]),
        (
            {"model": DDPM | {"net": {"preset": "huge"}}},
            ["model.net.preset", "'tiny'", "'ddpm_cifar10'"],
        ),
        (
            {"model": DDPM | {"net": {"block_out_channels": 64}}},
            ["model.net.block_out_channels", "list"],
        ),
        (
            {"model": RF | {"net": {"preset": "small"}}},
            ["model.net.preset", "vector data trains the MLP"],
        ),
        (DIGITS | {"model": RF | {"net": {"depth": 2}}}, ["model.net.depth", "image data", "UNet"]),
        ({"data": {"real": "toy:spiral"}}, ["data.real", "toy:mog8"]),
        ({"data": {"real": "toy:mog8", "dim": 3}}, ["data", "2-dimensional"]),
        ({"data": {"n_train": 5000}}, ["n_train", "n_real"]),
        ({"data": {"loop": "recycle"}}, ["data.loop", "fresh_data"]),
        ({"sample": {"n": 10}}, ["sample.n"]),
        ({"eval": {"metrics": ["fjd"]}}, ["eval.metrics", "'w2'", "'fid'"]),
        ({"eval": {"features": "clip"}}, ["eval.features", "'digits-cnn'", "'inception'"]),
        ({"eval": {"grid": -1}}, ["eval.grid"]),
        ({"name": "../escape"}, ["name"]),
    ],
)
def test_bad_config_is_one_clear_line(raw, needles):
    with pytest.raises(UserError) as err:
        preflight.check(validate(raw))  # what the config says, then what its code needs
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_bad_overrides_are_user_errors():
    with pytest.raises(UserError, match="key=value"):
        apply_overrides({}, ["seed"])
    with pytest.raises(UserError, match="data.n_train is a value"):
        apply_overrides({"data": {"n_train": 5}}, ["data.n_train.x=1"])
    with pytest.raises(UserError, match="invalid YAML"):
        apply_overrides({}, ["seed=[1"])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "does/not/exist.yaml"], "config file not found: does/not/exist.yaml"),
        (
            ["run", "configs/quickstart.yaml", "--set", "data.real_fraction=1.5"],
            "data.real_fraction",
        ),
        (["run", "configs/quickstart.yaml", "--set", "model.family=nope"], "model.family"),
        (["run", "configs/quickstart.yaml", "--set", "strategy.name=nope"], "strategy.name"),
        (["run", "configs/quickstart.yaml", "--storage", "ftp://host/x"], "unsupported scheme"),
        (["launch"], "invalid choice"),
        (["resume", "/nonexistent/run"], "no run here"),
        ([], "collapse: error: the following arguments are required: command"),  # said once
        (["resume"], "collapse: error: resume: the following arguments are required: run_uri"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = own_stderr(capsys)
    assert err.count("\n") == 1 and err.startswith("collapse: error:")
    assert needle in err
    assert "Traceback" not in err


def test_invalid_yaml_file_names_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: [1,\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML at line" in err and str(path) in err


def test_non_mapping_config_is_rejected(tmp_path, capsys):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert main(["run", str(path)]) == 2
    assert "must be a mapping" in capsys.readouterr().err


def test_a_net_key_typo_exits_2_in_one_line_before_anything_runs(tmp_path, capsys):
    storage = tmp_path / "runs"
    argv = ["run", "configs/rf_mog8_reflow.yaml", "--storage", str(storage)]
    assert main([*argv, "--set", "model.net.hiddn=3"]) == 2
    err = own_stderr(capsys)
    assert err.count("\n") == 1 and err.startswith("collapse: error: config error: model.net.hiddn")
    assert "unknown key" in err and not storage.exists()


def test_a_net_keeps_the_keys_given_in_their_order_through_config_yaml():
    unet = {"preset": "ddpm_cifar10", "attention_head_dim": None}  # None: no attention heads
    for net in ({}, {"depth": 2, "hidden": 64}, unet):
        data = {"real": "torchvision:cifar10"} if "preset" in net else {}
        config = validate({"data": data, "model": {"family": "ddpm", "net": net}})
        assert list(config.model.net.as_dict().items()) == list(net.items())
        again = validate(parse_yaml(dump_yaml(config), "config.yaml"))
        assert list(again.model.net.as_dict().items()) == list(net.items())
        assert again.model_dump() == config.model_dump()
    assert validate({"model": RF}).model.net.hidden == 256  # VectorField's default


def test_a_parquet_dataset_checks_the_net_against_its_kind_when_opened():
    from collapse.data.space import DataSpace
    from collapse.engine.preflight import check_data_fit

    raw = {"data": {"real": "parquet:/data/set"}, "model": RF | {"net": {"hidden": 8}}}
    config = validate(raw)  # the kind is not known until the dataset's index is read
    check_data_fit(config, DataSpace("vector", (2,)), "/data/set")
    with pytest.raises(UserError, match=r"^model\.net\.hidden: .* image data trains the UNet"):
        check_data_fit(config, DataSpace("image", (8, 8, 1)), "/data/set")


def test_the_typed_nets_are_the_net_factory_s_keys():
    """The config's nets list what `collapse.training.nets` builds: the MLP's keys and
    defaults, the UNet presets, and every UNet2DModel key but the three the data sets, each
    typed so that UNet2DModel's own default validates."""
    import inspect

    from diffusers import UNet2DModel

    from collapse.config import MLPNet, UNetNet
    from collapse.training.nets import UNET_PRESETS, VectorField

    mlp = inspect.signature(VectorField.__init__).parameters
    assert {k: p.default for k, p in mlp.items() if k not in ("self", "dim")} == {
        k: f.default for k, f in MLPNet.model_fields.items()
    }
    unet = inspect.signature(UNet2DModel.__init__).parameters
    shape = {"self", "in_channels", "out_channels", "sample_size"}
    keys = set(UNetNet.model_fields) - {"preset"}
    assert keys == set(unet) - shape
    for key in keys:
        default = unet[key].default
        given = UNetNet.model_validate({key: default}).as_dict()
        assert given == {key: list(default) if isinstance(default, tuple) else default}
    assert typing.get_args(UNetNet.model_fields["preset"].annotation) == tuple(UNET_PRESETS)
