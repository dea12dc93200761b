"""`collapse submit` and `collapse jobs`: a chain or a sweep, checked here, submitted to a Ray
cluster as a Ray Job, and the submitted jobs listed, followed or stopped."""

from __future__ import annotations

import argparse
import os

from collapse.cli.parser import overrides_of
from collapse.errors import UserError


def _job_server(args: argparse.Namespace) -> str:
    from collapse.distributed.jobs import DEFAULT_ADDRESS

    return args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS


def submit_job(args: argparse.Namespace) -> None:
    from collapse.distributed import jobs

    overrides = overrides_of(args)
    if args.kind == "run":
        from collapse.config import dump_yaml, load_config
        from collapse.engine import preflight

        config = preflight.check(load_config(args.config, overrides))
        text, name, storage = dump_yaml(config), config.name, config.storage
    else:
        from collapse.sweeps.definition import dump_sweep, load_sweep

        sweep = load_sweep(args.config, overrides)
        text, name, storage = dump_sweep(sweep), sweep.name, sweep.storage
    if "://" not in storage and not os.path.isabs(storage):
        raise UserError(
            f"storage {storage!r} would be relative to the job's temporary working dir on the "
            "cluster: give --storage s3://bucket/prefix (or an absolute path there)"
        )
    address = _job_server(args)
    job_id = jobs.submit(address, args.kind, text, name)
    print(f"submitted {args.kind} {name!r} as job {job_id} to {address}")
    if not args.wait:
        print(f"  follow: collapse jobs logs {job_id} --address {address}")
        return
    status = jobs.wait(address, job_id, lambda text: print(text, end="", flush=True))
    print(f"job {job_id}: {status.value}")
    if status.value != "SUCCEEDED":
        raise SystemExit(1)


def manage_jobs(args: argparse.Namespace) -> None:
    from collapse import report
    from collapse.distributed import jobs

    address = _job_server(args)
    if args.action == "list":
        rows = jobs.list_jobs(address)
        print(report.format_rows(rows, "table") if rows else f"no jobs at {address}")
        return
    if not args.job_id:
        raise UserError(f"jobs {args.action}: give the job's id (collapse jobs list)")
    if args.action == "status":
        info = jobs.status(address, args.job_id)
        print("  ".join(f"{k}: {v}" for k, v in info.items() if v))
    elif args.action == "logs":
        print(jobs.logs(address, args.job_id), end="")
    else:
        stopped = jobs.stop(address, args.job_id)
        print(f"job {args.job_id}: {'stop requested' if stopped else 'already finished'}")
