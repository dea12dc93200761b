"""docs/extending.md: its two worked examples, a strategy and a corrector, are the modules under
tests/extending/, quoted whole by that page, and each runs a short closed-form chain once
registered with one line."""

from pathlib import Path

import numpy as np
import pytest

from collapse.config.strategy_section import STRATEGIES, StrategyRegistration
from collapse.data.shards import from_parquet, table_to_vectors
from collapse.store.run_store import RunStore
from collapse.strategies.correctors import CORRECTORS
from tests.extending.clip_strategy import ClipConfig
from tests.extending.toward_mean import TowardMean
from tests.helpers import make_config, run_in_process

ROOT = Path(__file__).parents[1]


def _quoted(module: str) -> None:
    source = (ROOT / "tests" / "extending" / module).read_text()
    page = (ROOT / "docs" / "extending.md").read_text()
    assert f"```python\n{source}```\n" in page, f"docs/extending.md no longer quotes {module} whole"


@pytest.fixture
def clip_registered():
    # the one registry line the docs give, for this test only
    STRATEGIES.append(StrategyRegistration(ClipConfig, "tests.extending.clip_strategy"))
    yield
    STRATEGIES.pop()


def test_the_readme_strategy_example_clips_what_the_next_generation_trains_on(
    tmp_path, clip_registered
):
    _quoted("clip_strategy.py")
    config = make_config(
        str(tmp_path),
        model={"family": "kde", "bandwidth": 0.5},
        strategy={"name": "clip", "quantile": 0.9},
    )
    records = run_in_process(config)
    assert all(r["correction"]["rows"] > 0 for r in records)
    store = RunStore(str(tmp_path / "t"))
    passed = table_to_vectors(from_parquet(store.read_artifact(records[0]["corrected"][0])))
    sampled = table_to_vectors(from_parquet(store.read_artifact(records[0]["samples"][0])))
    assert np.abs(passed).max() < np.abs(sampled).max()  # the tails were cut
    assert records[1]["mix"][0]["generation"] == 0  # generation 1 trained on them


def test_the_readme_corrector_example_moves_rows_toward_the_real_mean(tmp_path, monkeypatch):
    _quoted("toward_mean.py")
    monkeypatch.setitem(CORRECTORS, "toward_mean", TowardMean())  # the one registry line
    config = make_config(
        str(tmp_path),
        generations=2,
        data={"loop": "fully_synthetic"},
        strategy={"name": "self_correct", "corrector": "toward_mean", "strength": 0.5},
    )
    records = run_in_process(config)
    assert [r["correction"]["corrector"] for r in records] == ["toward_mean"] * 2
    assert all(r["correction"]["rows"] == 100 for r in records)  # correct_fraction 1
    # halfway to the mean: the samples passed on have a quarter of the variance
    store = RunStore(str(tmp_path / "t"))
    for record in records:
        passed = table_to_vectors(from_parquet(store.read_artifact(record["corrected"][0])))
        sampled = table_to_vectors(from_parquet(store.read_artifact(record["samples"][0])))
        np.testing.assert_allclose(passed.var(axis=0), sampled.var(axis=0) / 4, rtol=1e-4)
