"""Ray Jobs entrypoint: run (or resume) a sweep as one Ray Tune experiment on this cluster.

    ray job submit --working-dir . -- python ray_jobs/run_sweep.py \
        --config configs/sweeps/reflow_strategies.yaml --storage s3://bucket/sweeps

`--config` is a path in the job's working directory or a storage URI; a sweep read from a URI
needs its `base:` inline or as an absolute path. Resubmitting resumes the experiment.
"""

from __future__ import annotations

import sys

from _entry import job_args, local_copy

from collapse.cli import main

if __name__ == "__main__":
    args = job_args(__doc__)
    argv = ["sweep", local_copy(args.config), *(f"--set={item}" for item in args.overrides)]
    if args.storage:
        argv += ["--storage", args.storage]
    sys.exit(main(argv))
