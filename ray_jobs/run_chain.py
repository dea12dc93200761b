"""Ray Jobs entrypoint: run (or resume) one chain on the cluster this job runs on.

    ray job submit --working-dir . -- python ray_jobs/run_chain.py \
        --config configs/rf_cifar10.yaml --storage s3://bucket/runs [--set key=value ...]

`--config` is a path in the job's working directory or a storage URI (s3://...). A resubmitted
job resumes the run from its last committed generation: Ray never retries a job itself.
"""

from __future__ import annotations

import sys

from _entry import run

if __name__ == "__main__":
    sys.exit(run("run", __doc__))
