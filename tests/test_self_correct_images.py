"""Self-correction on images: the corrected set is stored as images and trained on."""

from __future__ import annotations

from collapse.data.shards import from_parquet, table_kind, table_to_images
from collapse.store.run_store import RunStore
from tests.helpers import make_config, run_in_process


def test_knn_correction_of_digit_images_feeds_the_next_generation(tmp_path):
    config = make_config(
        str(tmp_path),
        generations=2,
        data={"real": "sklearn:digits", "n_real": 200, "n_train": 200, "n_eval": 100},
        eval={"metrics": ["w2"], "features": "raw", "grid": 0},
        strategy={
            "name": "self_correct",
            "corrector": "knn",
            "k": 3,
            "strength": 0.5,
            "correct_fraction": 0.5,
        },
    )
    records = run_in_process(config)
    store = RunStore(str(tmp_path / "t"))
    for record in records:
        assert 70 < record["correction"]["rows"] < 130
        assert record["correction"]["mean_distance"] > 0.5  # in [-1, 1] pixels over 64 dims
        (shard,) = record["corrected"]
        table = from_parquet(store.read_artifact(shard))
        assert table_kind(table) == "image" and table_to_images(table).shape == (200, 8, 8, 1)
    # generation 1 trained on generation 0's corrected images, not its raw samples
    assert records[1]["mix"][0]["generation"] == 0
