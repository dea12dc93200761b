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
from collapse.errors import UserError

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
        validate(raw)
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
    ],
)
def test_cli_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
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
