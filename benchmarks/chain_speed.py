"""Fixed cost of the chain engine on CPU: a long toy chain and the quickstart, end to end.

    python benchmarks/chain_speed.py [--generations 1000]

Prints wall times; it is a measurement, not a test. Targets (issue 2): a gaussian chain of 1000
generations (N=1000, d=10, local storage) in under 10 s including Ray start-up, and the
quickstart under 2 minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def long_chain(generations: int, storage: str) -> None:
    from collapse.chain import run_chain
    from collapse.config import validate
    from collapse.distributed.runtime import ensure_ray

    config = validate(
        {
            "name": "bench",
            "storage": storage,
            "generations": generations,
            "data": {
                "real": "toy:gaussian",
                "dim": 10,
                "n_real": 1000,
                "n_train": 1000,
                "n_eval": 1000,
            },
            "model": {"family": "gaussian"},
            "eval": {"metrics": ["w2", "mean_err", "var"]},
        }
    )
    start = time.perf_counter()
    ensure_ray()
    ray_up = time.perf_counter() - start
    outcome = run_chain(config)
    total = time.perf_counter() - start
    chain = total - ray_up
    steps = {
        k: sum(r["timings"][k] for r in outcome.records) for k in outcome.records[0]["timings"]
    }
    print(f"gaussian chain, {generations} generations, N=1000, d=10, local storage:")
    print(
        f"  end to end {total:.2f} s  (Ray start {ray_up:.2f} s, chain {chain:.2f} s, "
        f"{1000 * chain / generations:.2f} ms/generation)"
    )
    print("  inside the worker: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()))
    print(f"  target < 10 s end to end: {'met' if total < 10 else 'MISSED'}")


def quickstart(storage: str) -> None:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "collapse.cli",
            "run",
            "configs/quickstart.yaml",
            "--storage",
            storage,
            "--quiet",
        ],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    total = time.perf_counter() - start
    print(
        f"quickstart (new process, local Ray): {total:.2f} s; target < 120 s: "
        f"{'met' if total < 120 else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        quickstart(f"{tmp}/quickstart")
        long_chain(args.generations, f"{tmp}/long")


if __name__ == "__main__":
    main()
