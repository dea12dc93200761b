"""`collapse bench`: the checkout's benchmarks/<what>.py, run as a script (they are
measurements, not the package)."""

from __future__ import annotations

import sys
from pathlib import Path

from collapse.errors import UserError

BENCHMARKS = ("train", "sample", "chain", "data")


def run_benchmark(what: str, bench_args: list[str]) -> None:
    """Benchmarks live in the checkout's benchmarks/ (they are measurements, not the package)."""
    import runpy

    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    script = folder / f"{what}.py"
    if not script.is_file():
        raise UserError(f"collapse bench needs a checkout of collapse: {script} not found")
    sys.argv = [str(script), *bench_args]
    sys.path.insert(0, str(folder))
    runpy.run_path(str(script), run_name="__main__")
