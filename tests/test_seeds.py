"""Seeds as an axis (collapse.report.seed_stats): runs that differ only in seed are grouped by
setting and reported by mean, sd and min-max, in `collapse report`'s table and as bands in its
curves."""

import json
import math
import statistics

import numpy as np
import pytest
from PIL import Image

from collapse.cli import main
from collapse.report.seed_stats import across_seeds, group_by_seed, last_common, spread
from collapse.store.sweep_trials import SWEEP_FILE
from collapse.sweeps.definition import check_sweep, dump_sweep
from tests.helpers import make_config, run_in_process


def test_spread_is_mean_sample_sd_and_range():
    values = [0.1, 0.4, 0.25, 0.3]
    s = spread(values)
    assert s["mean"] == pytest.approx(statistics.fmean(values))
    assert s["sd"] == pytest.approx(statistics.stdev(values))
    assert (s["min"], s["max"]) == (0.1, 0.4)
    assert spread([2.0]) == {"mean": 2.0, "sd": None, "min": 2.0, "max": 2.0}


def _flat(seed, loop, name):
    return {"name": name, "seed": seed, "storage": "/x", "data.loop": loop, "data.n_train": 100}


def test_runs_are_grouped_by_everything_but_seed_name_and_storage():
    configs = {
        f"u{i}": _flat(seed, loop, f"r{i}")
        for i, (seed, loop) in enumerate(
            [(0, "fresh_data"), (1, "fresh_data"), (2, "fresh_data"), (0, "accumulate")]
        )
    }
    groups = group_by_seed(configs)
    assert [(g.label, g.uris, g.seeds) for g in groups] == [
        ("data.loop=fresh_data", ["u0", "u1", "u2"], [0, 1, 2]),
        ("data.loop=accumulate", ["u3"], [0]),
    ]
    # no setting with two seeds: nothing to group; one setting: named by the runs' common name
    assert group_by_seed({k: configs[k] for k in ("u0", "u3")}) == []
    one = {f"u{s}": _flat(s, "fresh_data", f"rf-s{s}") for s in range(3)}
    assert [g.label for g in group_by_seed(one)] == ["rf-s"]


def test_across_seeds_counts_the_runs_reaching_each_generation():
    groups = group_by_seed({f"u{s}": _flat(s, "fresh_data", f"r{s}") for s in range(3)})
    records = [
        {"uri": f"u{s}", "generation": g, "metrics": {"w2": 0.1 * s + g}}
        for s in range(3)
        for g in range(3 if s else 2)  # seed 0 stopped after generation 1
    ]
    rows = across_seeds(records, groups)
    assert [(r["generation"], r["seeds"]) for r in rows] == [(0, 3), (1, 3), (2, 2)]
    assert rows[1]["metrics"]["w2"]["mean"] == pytest.approx(1.1)
    assert rows[2]["metrics"]["w2"]["sd"] == pytest.approx(math.sqrt(0.005))
    # a sweep's summary row: the last generation every seed reached
    assert [r["generation"] for r in last_common(rows, groups)] == [1]


@pytest.fixture
def seeded_runs(tmp_path):
    """Two settings (fresh data, fully synthetic) x three seeds of a 4-generation Gaussian,
    stored where a sweep `sw` keeps its trials."""
    trials, uris = tmp_path / "sw" / "trials", []
    for loop in ("fresh_data", "fully_synthetic"):
        for seed in range(3):
            name = f"{loop}-s{seed}"
            run_in_process(
                make_config(
                    str(trials),
                    name=name,
                    seed=seed,
                    generations=4,
                    data={"loop": loop, "real_fraction": 0.5, "n_real": 1000},
                )
            )
            uris.append(str(trials / name))
    return uris


def test_report_of_seeded_runs_prints_mean_and_spread_and_draws_bands(
    seeded_runs, tmp_path, capsys
):
    out = tmp_path / "plots"
    assert main(["report", *seeded_runs, "--plots", str(out)]) == 0
    text = capsys.readouterr().out
    table = text.split("across seeds: mean ± sd [min, max]\n")[1].splitlines()
    assert table[0].split()[:3] == ["data.loop", "generation", "seeds"]
    assert len(table) == 2 + 2 * 4  # header, rule, two settings x four generations
    main(["report", *seeded_runs, "--format", "json"])
    records = json.loads(capsys.readouterr().out)  # json keeps one record per run
    final = [r["metrics"]["w2"] for r in records if r["generation"] == 3][:3]
    last = next(line for line in table if line.split()[:3] == ["fresh_data", "3", "3"])
    assert f"{statistics.fmean(final):.4g} ± {statistics.stdev(final):.3g}" in last
    assert f"[{min(final):.4g}, {max(final):.4g}]" in last
    # a band per setting: the first two colours of the cycle, each also in a paler shade
    image = Image.open(out / "w2.png").convert("RGB")
    colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours
    assert len(colours) > 200  # the bands blend into many shades; lines alone have few


def test_a_sweep_with_seed_in_its_space_reports_each_point_across_seeds(
    seeded_runs, tmp_path, capsys
):
    sweep = check_sweep(
        {
            "name": "sw",
            "storage": str(tmp_path),
            "base": {"data": {"real_fraction": 0.5, "n_train": 100}, "generations": 4},
            "space": {"data.loop": ["fresh_data", "fully_synthetic"], "seed": [0, 1, 2]},
        }
    )
    (tmp_path / "sw" / SWEEP_FILE).write_text(dump_sweep(sweep))  # the six chains: its trials
    assert main(["report", str(tmp_path / "sw")]) == 0
    text = capsys.readouterr().out
    trials, summary = text.split("across seeds: mean ± sd [min, max]\n")
    assert len(trials.strip().splitlines()) == 2 + 6  # one row per trial, as before
    rows = summary.splitlines()[2:]
    assert [row.split()[:3] for row in rows] == [
        ["fresh_data", "3", "3"],
        ["fully_synthetic", "3", "3"],
    ]
