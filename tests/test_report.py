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
    assert pngs == sorted(f"{m}.png" for m in ("sigma2", "log_sigma2", "w2", "mean_err", "var"))
    image = np.asarray(Image.open(out / "sigma2.png").convert("RGB"))
    assert image.shape[0] >= 400 and image.shape[1] >= 600
    assert image.std() > 10, "the plot is blank"
    # two runs -> two distinctly coloured lines (matplotlib's first two cycle colours)
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours


def test_report_of_a_missing_run_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no run here" in capsys.readouterr().err
