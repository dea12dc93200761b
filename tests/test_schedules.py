"""Real-fraction schedules (`data.real_fraction` as a number, linear, exponential or a list):
the share each generation plans with, the rows it takes, validation, and the recorded value."""

import json

import numpy as np
import pytest

from collapse.config.schedule import fractions
from collapse.data.mix import fraction_at, plan_mix, real_counts
from collapse.errors import UserError
from collapse.store.run_config import check_same
from tests.helpers import make_config, run_in_process


def test_each_form_gives_its_closed_form_share_per_generation():
    assert fractions(0.3, 4).tolist() == [0.3, 0.3, 0.3]
    # linear: start at generation 1, end at the last (G - 1 = 5), evenly between
    assert fractions({"linear": [0.8, 0.0]}, 6, 6).tolist() == pytest.approx(
        [0.8, 0.6, 0.4, 0.2, 0]
    )
    assert fraction_at({"linear": [0.8, 0.1]}, 5, 6) == 0.1  # exact at the end
    # exponential: start * rate^(t-1)
    assert fractions({"exponential": [0.5, 0.5]}, 5).tolist() == [0.5, 0.25, 0.125, 0.0625]
    assert fractions([0.1, 0.9, 0.4], 4).tolist() == [0.1, 0.9, 0.4]
    assert fractions(0.3, 1).tolist() == []  # generation 0 alone: no share to plan


def test_plans_follow_the_schedule_and_fresh_rows_never_repeat():
    schedule, n, pool, generations = {"linear": [0.5, 0.1]}, 100, 10_000, 6
    counts = real_counts("fresh_data", n, schedule, generations, generations)
    assert counts.tolist() == [50, 40, 30, 20, 10]
    seen = set(range(n))  # generation 0's
    for t in range(1, generations):
        real, synthetic = plan_mix("fresh_data", t, n, schedule, pool, [n] * t, generations)
        assert (real.count, synthetic.count) == (counts[t - 1], n - counts[t - 1])
        rows = {i for a, b in real.rows for i in range(a, b)}
        assert len(rows) == real.count and not rows & seen
        assert min(rows) == max(seen) + 1  # the window moves on where the last one ended
        seen |= rows
    # synthetic augmentation takes the first r_t * N rows of the fixed pool
    real, _ = plan_mix("synthetic_augmentation", 3, n, [0.2, 0.7, 0.35], pool, [n] * 3)
    assert real.rows == ((0, 35),)
    # a number plans exactly as before schedules existed
    real, _ = plan_mix("fresh_data", 4, n, 0.3, pool, [n] * 4)
    assert real.rows == ((n + 3 * 30, n + 4 * 30),)


def _config(tmp_path, real_fraction, generations=5, **sections):
    return make_config(
        str(tmp_path),
        generations=generations,
        data={"loop": "fresh_data", "n_real": 1000, "real_fraction": real_fraction},
        **sections,
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1.5, ["data.real_fraction: Input should be less than or equal to 1, got 1.5"]),
        ({"linear": [0.5, -0.1]}, ["linear[1]: Input should be greater than or equal to 0"]),
        ({"exponential": [0.5, 0]}, ["exponential[1]: the rate must be > 0, got 0"]),
        ({"exponential": [0.5, 1.5]}, ["the share passes 1 at generation 3 (1.125)"]),
        ([0.5, 0.5], ["one value per generation after 0: 4 for generations 5, got 2"]),
        ([0.5, "x", 0.1, 0.1], ["[1]: a number in [0, 1], got 'x'"]),
        ({"cosine": [0.5, 0.1]}, ["{linear: [start, end]}", "got {'cosine': [0.5, 0.1]}"]),
        ({"linear": [0.5]}, ["{exponential: [start, rate]}"]),
        (True, ["a number in [0, 1]", "got True"]),
    ],
)
def test_bad_schedules_are_one_line_naming_the_key(tmp_path, value, words):
    with pytest.raises(UserError) as err:
        _config(tmp_path, value)
    message = str(err.value)
    assert "\n" not in message and "data.real_fraction" in message
    for word in words:
        assert word in message


def test_the_fewest_real_rows_of_any_generation_set_the_samples_needed(tmp_path):
    # the last generation takes 10 real rows of 100, so 90 samples are needed
    with pytest.raises(UserError, match="sample.n: 80 is below the 90 synthetic rows"):
        _config(tmp_path, {"linear": [0.5, 0.1]}, sample={"n": 80})
    with pytest.raises(UserError, match="rca_reflow pairs real rows"):
        make_config(
            str(tmp_path),
            data={"loop": "fresh_data", "real_fraction": {"exponential": [0.0, 0.5]}},
            model={"family": "rectified_flow"},
            strategy={"name": "rca_reflow"},
        )


def test_a_run_records_each_share_used_and_a_linear_run_cannot_be_extended(tmp_path):
    config = _config(tmp_path, {"linear": [0.6, 0.2]}, generations=4)
    records = run_in_process(config)
    assert [r.get("real_fraction") for r in records] == [None, 0.6, pytest.approx(0.4), 0.2]
    assert [r["mix"][0]["count"] for r in records] == [100, 60, 40, 20]
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["generations"][3]["real_fraction"] == 0.2
    longer = config.model_copy(update={"generations": 6})
    with pytest.raises(UserError, match=r"reaches `end` at its last generation \(3\)"):
        check_same(config, longer, "RUN")
    fixed = _config(tmp_path, 0.5, generations=4)
    assert check_same(fixed, fixed.model_copy(update={"generations": 6}), "RUN") is True


def test_counts_round_like_a_fixed_fraction():
    counts = real_counts("synthetic_augmentation", 10, {"exponential": [0.25, 1.0]}, 4)
    assert np.array_equal(counts, [3, 3, 3])  # 2.5 rounds up, as real_count does
    assert real_counts("fully_synthetic", 10, 0.5, 4).tolist() == [0, 0, 0]
