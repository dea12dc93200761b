"""Ray Jobs entrypoint: run (or resume) a sweep as one Ray Tune experiment on this cluster.

    ray job submit --working-dir . -- python ray_jobs/run_sweep.py \
        --config configs/sweeps/reflow_strategies.yaml --storage s3://bucket/sweeps

`--config` is a path in the job's working directory or a storage URI; a sweep read from a URI
needs its `base:` inline or as an absolute path. Resubmitting resumes the experiment.
"""

from __future__ import annotations

import sys

from _entry import run

if __name__ == "__main__":
    sys.exit(run("sweep", __doc__))
