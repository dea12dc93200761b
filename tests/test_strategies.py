"""The strategies' config union and the rules a strategy brings: stored flat sections of runs
made before the union still validate and resume, and a strategy that pairs real rows refuses
a data plan that gives a generation none."""

import numpy as np
import pytest
import yaml

from collapse.cli import main
from collapse.config import validate
from collapse.config.strategy_section import FLAT_DEFAULTS, names
from collapse.errors import UserError
from collapse.strategies import get_strategy
from tests.helpers import make_config, own_stderr, run_in_process

FLOW = {"family": "rectified_flow"}
MIXING = {"real": "toy:gaussian", "loop": "synthetic_augmentation", "real_fraction": 0.5}


@pytest.mark.parametrize("name", names())
def test_a_stored_flat_section_validates_to_its_strategys_arm(name):
    """config.yaml of a run made before the union lists every strategy's key at its default."""
    model = {"family": "gaussian"} if name in ("none", "self_correct") else FLOW
    config = validate({"model": model, "data": MIXING, "strategy": {"name": name, **FLAT_DEFAULTS}})
    arm = get_strategy(name).config
    assert type(config.strategy) is arm and config.strategy.name == name  # aliases kept
    assert set(config.strategy.model_dump()) == set(arm.model_fields)
    again = validate(config.model_dump(mode="json"))
    assert again.strategy == config.strategy


def test_a_changed_key_of_another_strategy_is_still_refused():
    with pytest.raises(UserError, match="knn_workers: only self_correct take these"):
        validate({"strategy": {**FLAT_DEFAULTS, "name": "none", "knn_workers": 2}})


def test_a_run_stored_with_the_flat_section_resumes(tmp_path):
    config = make_config(str(tmp_path / "old"), generations=2, data={"loop": "fully_synthetic"})
    run_in_process(config)
    run = tmp_path / "old" / "t"
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["strategy"] = {"name": "none", **FLAT_DEFAULTS}  # as the flat StrategyConfig wrote it
    (run / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    (run / "config.sha256").unlink()  # a run made before checksums: trusted, vouched on open
    extended = make_config(str(tmp_path / "old"), generations=3, data={"loop": "fully_synthetic"})
    resumed = run_in_process(extended)
    whole = run_in_process(
        make_config(str(tmp_path / "new"), generations=3, data={"loop": "fully_synthetic"})
    )
    assert [r["generation"] for r in resumed] == [2]
    assert resumed[0]["metrics"] == whole[2]["metrics"]


@pytest.mark.parametrize("name", ["rca_reflow", "ra_reflow", "ocar", "ora_reflow"])
@pytest.mark.parametrize(
    "fraction, first",
    [([0.5, 0.0, 0.25], 2), ({"linear": [0.2, 0.0]}, 3), ({"exponential": [0.5, 0.001]}, 2)],
)
def test_real_pairing_refuses_a_schedule_that_leaves_a_generation_without_real_rows(
    tmp_path, capsys, name, fraction, first
):
    """Such a generation would run as plain reflow, silently (issue 20)."""
    path = tmp_path / "c.yaml"
    raw = {
        "generations": 4,
        "data": {**MIXING, "n_real": 200, "n_train": 100, "real_fraction": fraction},
        "model": FLOW,
        "strategy": {"name": name},
    }
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--storage", str(tmp_path)]) == 2
    err = own_stderr(capsys)
    assert err.count("\n") == 1 and f"gives generation {first} none" in err
    assert f"strategy.name: {name} pairs real rows" in err
    assert not (tmp_path / "quickstart").exists()  # nothing written


def test_real_pairing_accepts_a_schedule_with_real_rows_in_every_generation():
    raw = {"generations": 4, "data": {**MIXING, "real_fraction": [0.5, 0.1, 0.02]}}
    config = validate({**raw, "model": FLOW, "strategy": {"name": "rca_reflow"}})
    assert config.strategy.name == "rca_reflow" and np.isclose(config.data.real_fraction[2], 0.02)
