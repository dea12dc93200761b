"""`collapse bench chain`: where a generation's wall time goes, and the engine's fixed cost.

    collapse bench chain [--generations 10000] [--trained-generations 3] [--steps 200]
    collapse bench chain --tiny        # seconds, on a CPU: what CI runs

1. A trained image chain (rectified flow, tiny UNet on digits; the CIFAR UNet on a GPU) on
   Ray Train and a Ray Data sampling pool: for each generation its wall time (measured by the
   driver, commit to commit) split into steady training (steps x batch over the loop's own
   steady rate), the fixed cost inside training, sampling (the pool's start included),
   evaluation, and everything else (scheduling, shard writes, commit). The fixed cost in
   training is broken down (issue #22) into the feed's build (planning; reading a set held in
   memory), Ray Train's start (`fit()` to the loop's start: controller and worker group), the
   model's setup in the worker (imports, the net, a checkpoint's restore), the wait for the
   first batch, checkpoint writes, and the rest (the first steps before the steady rate,
   `fit()`'s return). The overhead is the fixed training cost plus everything else. Its share
   of a 10-minute GPU generation is printed against issue #10's goal (<= 5%).
2. The engine alone (benchmarks/long_chain.py): gaussian chains of `--generations`
   generations, fully synthetic and accumulate (closed-form fits, milliseconds of work each):
   the time per generation over the first and the last 10% of the chain, and the resume of
   the finished chain on local disk and on S3 (issue #27: the cost must not grow with it).
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
from long_chain import long_chain

REPO = Path(__file__).resolve().parents[1]
FIXED = {  # the manifest's `train` timings of a generation's fixed cost in training
    "feed_s": "feed build",
    "start_s": "Ray Train start",
    "setup_s": "model setup",
    "first_batch_s": "first batch",
    "checkpoint_s": "checkpoints",
}


def trained_chain(args, storage: str, on: torch.device) -> None:
    from collapse.config import validate
    from collapse.driver.launch import run_chain

    gpu = on.type == "cuda"
    config = validate(
        {
            "name": "bench-chain",
            "storage": storage,
            "generations": args.trained_generations,
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
        parts = {k: record["train"].get(k, 0.0) for k in FIXED}
        rest = fixed_train - sum(parts.values())
        line(
            f"  fixed in train, generation {record['generation']}",
            ", ".join(f"{FIXED[k]} {v:.1f}" for k, v in parts.items()) + f", rest {rest:.1f} s",
        )
    later = overheads[1:] or overheads
    fixed = sum(later) / len(later)
    line("fixed overhead per generation (after the first)", f"{fixed:.1f} s")
    line("its share of a 10-minute generation", f"{fixed / 600:.1%}  (goal <= 5%)")


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
    cli.add_argument("--generations", type=int, default=None, help="of the closed-form chains")
    cli.add_argument("--trained-generations", type=int, default=None)
    cli.add_argument("--steps", type=int, default=None)
    args = cli.parse_args()
    on = device()
    args.generations = args.generations or (50 if args.tiny else 1000)
    args.trained_generations = args.trained_generations or (2 if args.tiny else 3)
    args.steps = args.steps or (8 if args.tiny else 200)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.tiny:
            quickstart(f"{tmp}/quickstart")
        start = time.perf_counter()
        start_ray()
        line("Ray start (or join)", f"{time.perf_counter() - start:.1f} s")
        long_chain(args.generations, f"{tmp}/long")
        trained_chain(args, f"{tmp}/trained", on)


if __name__ == "__main__":
    main()
