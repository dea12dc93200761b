import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from collapse.cli import main
from tests.helpers import make_config, run_in_process


@pytest.fixture
def two_runs(tmp_path):
    uris = []
    for name, loop in (("synthetic", "fully_synthetic"), ("fresh", "fresh_data")):
        config = make_config(
            str(tmp_path / "runs"),
            name=name,
            generations=4,
            data={"loop": loop, "real_fraction": 0.5, "n_real": 1000},
        )
        run_in_process(config)
        uris.append(str(tmp_path / "runs" / name))
    return uris


def test_json_has_one_record_per_generation_and_run(two_runs, capsys):
    assert main(["report", *two_runs, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["run"], r["generation"]) for r in records] == [
        ("synthetic", g) for g in range(4)
    ] + [("fresh", g) for g in range(4)]
    for r in records:
        assert set(r["metrics"]) == {"sigma2", "log_sigma2", "w2", "mean_err", "var"}
        assert all(isinstance(v, float) for v in r["metrics"].values())
    assert records[5]["mix"][0] == {
        "source": "real",
        "generation": None,
        "count": 50,
        "rows": [[100, 150]],
    }


def test_csv_and_table_agree_with_json(two_runs, capsys):
    main(["report", *two_runs, "--format", "json"])
    records = json.loads(capsys.readouterr().out)
    main(["report", *two_runs, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8 and rows[0]["run"] == "synthetic"
    assert float(rows[3]["w2"]) == pytest.approx(records[3]["metrics"]["w2"])
    main(["report", *two_runs])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["run", "generation"] and "w2" in table[0]
    assert len(table) == 2 + 8


def test_plots_are_one_png_per_metric_with_a_line_per_run(two_runs, tmp_path, capsys):
    out = tmp_path / "plots"
    assert main(["report", *two_runs, "--plots", str(out)]) == 0
    pngs = sorted(p.name for p in out.iterdir())
    metrics = ("sigma2", "log_sigma2", "w2", "mean_err", "var")
    assert pngs == sorted([*(f"{m}.png" for m in metrics), "final.png"])
    image = _picture(out / "sigma2.png", min_size=(400, 600))
    # two runs -> two distinctly coloured lines (matplotlib's first two cycle colours)
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours
    bars = _picture(out / "final.png", min_size=(600, 1000))  # 5 panels: 2 rows of 3
    colours = {tuple(c) for c in bars.reshape(-1, 3)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours


def test_one_run_has_curves_but_no_final_bars(two_runs, tmp_path):
    out = tmp_path / "one"
    assert main(["report", two_runs[0], "--plots", str(out)]) == 0
    assert "final.png" not in {p.name for p in out.iterdir()}


def test_each_vector_generation_draws_its_samples_over_the_real_data(two_runs):
    from collapse.store.run_store import RunStore

    store = RunStore(two_runs[0])
    for record in store.committed():
        assert record["feature_extractor"] == "raw"
        picture = _picture(store.storage.path(record["samples_png"]["path"]), min_size=(300, 300))
        colours = {tuple(c) for c in picture.reshape(-1, 3)}
        assert (190, 190, 190) in colours and (31, 119, 180) in colours  # real and samples


def _picture(path, min_size) -> np.ndarray:
    """The PNG at `path` as RGB, checked to be at least `min_size` (rows, cols) and not blank."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], image.shape
    assert image.std() > 10, f"{path} is blank"
    return image


def test_report_of_a_missing_run_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no run here" in capsys.readouterr().err
