"""`collapse bench chain`: where a generation's wall time goes, and the engine's fixed cost.

    collapse bench chain [--generations 3] [--steps 200]
    collapse bench chain --tiny        # seconds, on a CPU: what CI runs

1. A trained image chain (rectified flow, tiny UNet on digits; the CIFAR UNet on a GPU) on
   Ray Train and a Ray Data sampling pool: for each generation its wall time (measured by the
   driver, commit to commit) split into steady training (steps x batch over the loop's own
   steady rate), the fixed cost inside training (worker group start, dataset, first steps,
   checkpoints), sampling, evaluation, and everything else (scheduling, shard writes, commit).
   The overhead is the fixed training cost plus everything else. Its share of a 10-minute GPU
   generation is printed against issue #10's goal (<= 5%).
2. The engine alone: a gaussian chain of many generations (closed-form fits, milliseconds of
   work each): Ray start-up and the per-generation cost of planning, shard writes and commits.
3. The quickstart in a new process, against the README's "under two minutes" (not with --tiny).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import device, line, parser, start_ray

REPO = Path(__file__).resolve().parents[1]


def trained_chain(args, storage: str, on: torch.device) -> None:
    from collapse.chain import run_chain
    from collapse.config import validate

    gpu = on.type == "cuda"
    config = validate(
        {
            "name": "bench-chain",
            "storage": storage,
            "generations": args.generations,
            "data": {"real": "sklearn:digits", "n_real": 512, "n_train": 512, "n_eval": 256},
            "model": {"family": "rectified_flow", "net": {"preset": "tiny"}},
            "train": {
                "workers": 0 if args.tiny else 1,  # tiny: Ray Train's local mode
                "use_gpu": gpu,
                "cpus_per_worker": 1 if gpu else 0.5,
                "batch_size": 64,
                "steps": args.steps,
                "precision": "bf16" if gpu else "fp32",
                "checkpoint_every": max(1, args.steps // 4),
            },
            "sample": {"steps": 10, "workers": 1, "batch_size": 256},
            "eval": {"features": "raw", "metrics": ["precision", "recall"], "grid": 16},
        }
    )
    marks: list[float] = []
    outcome = run_chain(
        config,
        on_start=lambda store, start: marks.append(time.perf_counter()),
        on_generation=lambda record: marks.append(time.perf_counter()),
    )
    mode = "local mode" if args.tiny else "1 worker"
    print(f"trained chain on {on.type}: rectified flow, tiny UNet, digits, {args.steps} steps")
    line("Ray Train", f"{mode}; sampling on 1 Ray Data actor")
    overheads = []
    for record, begin, end in zip(outcome.records, marks[:-1], marks[1:], strict=True):
        wall, t = end - begin, record["timings"]
        steady = record["train"]["step"] * 64 / record["train"]["rows_per_s"]
        fixed_train = t["train_s"] - steady
        outside = wall - t["train_s"] - t["sample_s"] - t["eval_s"]
        overheads.append(fixed_train + outside)
        line(
            f"generation {record['generation']}: wall {wall:.1f} s",
            f"steady train {steady:.1f}, fixed in train {fixed_train:.1f}, sample "
            f"{t['sample_s']:.1f}, eval {t['eval_s']:.1f}, other {outside:.1f} s",
        )
    later = overheads[1:] or overheads
    fixed = sum(later) / len(later)
    line("fixed overhead per generation (after the first)", f"{fixed:.1f} s")
    line("its share of a 10-minute generation", f"{fixed / 600:.1%}  (goal <= 5%)")


def engine(generations: int, storage: str) -> None:
    from collapse.chain import run_chain
    from collapse.config import validate

    config = validate(
        {
            "name": "bench-engine",
            "storage": storage,
            "generations": generations,
            "data": {"real": "toy:gaussian", "dim": 10, "n_real": 1000, "n_train": 1000},
            "model": {"family": "gaussian"},
            "eval": {"metrics": ["w2", "mean_err", "var"]},
        }
    )
    start = time.perf_counter()
    outcome = run_chain(config)
    total = time.perf_counter() - start
    print(f"engine: gaussian chain, {generations} generations, N=1000, d=10, local storage")
    line(
        "per generation (plan, fit, sample, commit)",
        f"{1000 * total / len(outcome.records):.1f} ms",
    )


def quickstart(storage: str) -> None:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "collapse.cli", "run", "configs/quickstart.yaml"]
        + ["--storage", storage, "--quiet"],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    total = time.perf_counter() - start
    line("quickstart in a new process (local Ray)", f"{total:.1f} s  (README: < 120 s)")


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--generations", type=int, default=None)
    cli.add_argument("--steps", type=int, default=None)
    args = cli.parse_args()
    on = device()
    args.generations = args.generations or (2 if args.tiny else 3)
    args.steps = args.steps or (8 if args.tiny else 200)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.tiny:
            quickstart(f"{tmp}/quickstart")
        start = time.perf_counter()
        start_ray()
        line("Ray start (or join)", f"{time.perf_counter() - start:.1f} s")
        engine(100 if args.tiny else 1000, f"{tmp}/engine")
        trained_chain(args, f"{tmp}/trained", on)


if __name__ == "__main__":
    main()
