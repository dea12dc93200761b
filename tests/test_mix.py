import numpy as np
import pytest

from collapse.data.mix import expand, plan_mix


def summary(plan):
    return [(p.source, p.generation, p.count, [list(r) for r in p.rows]) for p in expand(plan)]


@pytest.mark.parametrize(
    "loop", ["fully_synthetic", "synthetic_augmentation", "fresh_data", "accumulate"]
)
def test_generation_zero_trains_on_the_first_real_rows(loop):
    assert summary(plan_mix(loop, 0, 100, 0.3, 1000, [])) == [("real", None, 100, [[0, 100]])]


def test_fully_synthetic_takes_only_the_previous_generation():
    plan = plan_mix("fully_synthetic", 3, 100, 0.5, 1000, [120, 120, 120])
    assert summary(plan) == [("synthetic", 2, 100, [[0, 100]])]


def test_synthetic_augmentation_reuses_the_same_real_rows():
    plans = [plan_mix("synthetic_augmentation", t, 100, 0.25, 1000, [100] * t) for t in (1, 2, 5)]
    for t, plan in zip((1, 2, 5), plans, strict=True):
        assert summary(plan) == [("real", None, 25, [[0, 25]]), ("synthetic", t - 1, 75, [[0, 75]])]


def test_fresh_data_draws_unused_real_rows_until_the_pool_wraps():
    n, k, pool = 100, 30, 200
    seen = set(range(n))
    for t in range(1, 4):
        real, synthetic = plan_mix("fresh_data", t, n, 0.3, pool, [100] * t)
        assert real.count == k and synthetic.count == n - k and synthetic.generation == t - 1
        rows = {i for a, b in real.rows for i in range(a, b)}
        assert len(rows) == k
        if t <= 3 and n + t * k <= pool:
            assert not rows & seen, "fresh rows must not repeat while the pool lasts"
        seen |= rows
    # generation 4 needs rows 190..220 of a 200-row pool: it wraps to the start
    real, _ = plan_mix("fresh_data", 4, n, 0.3, pool, [100] * 4)
    assert [list(r) for r in real.rows] == [[190, 200], [0, 20]]


def test_accumulate_keeps_real_and_every_earlier_generation():
    plan = plan_mix("accumulate", 3, 100, 0.9, 1000, [100, 80, 60])
    assert summary(plan) == [
        ("real", None, 100, [[0, 100]]),
        ("synthetic", 0, 100, [[0, 100]]),
        ("synthetic", 1, 80, [[0, 80]]),
        ("synthetic", 2, 60, [[0, 60]]),
    ]


def test_real_fraction_rounds_to_the_nearest_row_and_one_is_all_real():
    real, synthetic = plan_mix("synthetic_augmentation", 1, 10, 0.25, 100, [10])
    assert (real.count, synthetic.count) == (3, 7)
    (only_real,) = plan_mix("fresh_data", 1, 10, 1.0, 100, [10])
    assert only_real.source == "real" and only_real.count == 10


def test_plan_refuses_missing_history_and_short_samples():
    with pytest.raises(ValueError):
        plan_mix("fully_synthetic", 2, 10, 0.0, 100, [10])
    with pytest.raises(ValueError, match="stored 5 samples"):
        plan_mix("fully_synthetic", 1, 10, 0.0, 100, [5])
    with pytest.raises(ValueError, match="unknown loop"):
        plan_mix("recycle", 1, 10, 0.0, 100, [10])


def test_an_accumulate_plan_is_compact_and_plans_the_same_rows_as_one_part_per_generation():
    counts = [50] * 5000 + [40] * 3 + [50] * 2
    plan = plan_mix("accumulate", len(counts), 50, 0.0, 1000, counts)
    assert [p.as_record() for p in plan] == [
        {"source": "real", "generation": None, "count": 50, "rows": [[0, 50]]},
        {"source": "synthetic", "generation": 0, "count": 250_000, "rows": [[0, 50]], "last": 4999},
        {"source": "synthetic", "generation": 5000, "count": 120, "rows": [[0, 40]], "last": 5002},
        {"source": "synthetic", "generation": 5003, "count": 100, "rows": [[0, 50]], "last": 5004},
    ]
    one_per_generation = [("real", None, 50, [[0, 50]])] + [
        ("synthetic", g, n, [[0, n]]) for g, n in enumerate(counts)
    ]
    assert summary(plan) == one_per_generation


def test_the_stores_kept_runs_of_sample_counts_plan_what_a_list_plans():
    """The store keeps runs of equal counts as generations commit, so a plan at generation
    10,000 does not scan 10,000 counts; at every length it plans what the list does."""
    from collapse.store.sample_counts import SampleCounts

    rng = np.random.default_rng(0)
    counts = list(rng.choice([30, 40], size=60, p=[0.8, 0.2]))
    kept = SampleCounts()
    for generation, count in enumerate(counts):
        kept.append(int(count))
        for stop in (generation, generation + 1):
            assert plan_mix("accumulate", stop, 50, 0.0, 1000, kept) == plan_mix(
                "accumulate", stop, 50, 0.0, 1000, counts[:stop]
            )
    assert list(kept) == counts and kept[3:5] == counts[3:5]
