"""Every benchmark runs at toy size on the CPU (what `collapse bench X --tiny` does), on the
suite's Ray cluster: CI exercises the code of each measurement. No figure is asserted, only
that each line a reader needs is printed with a number in it."""

from __future__ import annotations

import re

import pytest

from collapse.cli import main

EXPECTED = {
    "train": ["plain PyTorch loop", "ours: Ray Train + Ray Data (steady)", "ratio ours / plain"],
    "sample": ["plain PyTorch loop", "ours: Ray Data actor pool + shards", "ratio ours / plain"],
    "chain": [
        "fully_synthetic, first 10%:",
        "accumulate, ratio last / first:",
        "accumulate, resume, S3 (moto):",
        "accumulate, resume --check-sizes, S3 (moto):",
        "generation 1: wall",
        "fixed in train, generation 1",
        "share of a",
    ],
    "data": [
        "ratio ours / DataLoader rows/s, held in memory",
        "ratio ours / DataLoader rows/s, streamed",
        "goal: both ratios",
    ],
}


# train, chain and data fit on Ray Train workers; sample runs a Ray Data pool only
MARKS = {"sample": pytest.mark.slow}


@pytest.mark.parametrize(
    "what", [pytest.param(w, marks=MARKS.get(w, pytest.mark.ray_train)) for w in EXPECTED]
)
def test_each_benchmark_runs_tiny_on_cpu_and_prints_its_figures(ray_cluster, capsys, what):
    assert main(["bench", what, "--tiny"]) == 0
    out = capsys.readouterr().out
    for label in EXPECTED[what]:
        (found,) = [line for line in out.splitlines() if label in line]
        assert re.search(r"\d", found.split(label, 1)[1]), found


def test_an_unknown_benchmark_is_refused(capsys):
    assert main(["bench", "everything"]) == 2
    assert "invalid choice" in capsys.readouterr().err
