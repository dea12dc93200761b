"""What the job entrypoints share: their arguments, and a config that may live in storage."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def job_args(doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML path in the working dir, or a URI")
    parser.add_argument("--storage", help="local dir or s3://bucket/prefix for the results")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args()


def local_copy(config: str) -> str:
    """A path to read `config` from: itself, or a temporary copy of a storage URI."""
    if "://" not in config:
        return config
    from collapse.store.storage import Storage

    parent, _, name = config.rpartition("/")
    path = Path(tempfile.mkdtemp(prefix="collapse-job-")) / name
    path.write_bytes(Storage(parent).read_bytes(name))
    return str(path)


def run(command: str, doc: str | None) -> int:
    """`collapse <command> CONFIG [--set ...] [--storage ...]` with the job's arguments."""
    from collapse.cli import main

    args = job_args(doc)
    argv = [command, local_copy(args.config), *(f"--set={item}" for item in args.overrides)]
    if args.storage:
        argv += ["--storage", args.storage]
    return main(argv)
