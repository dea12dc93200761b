"""The `collapse` command: run | resume | evaluate | sweep | report | list | prepare | submit |
jobs | bench.

User errors exit 2 with one line on stderr and no traceback; bugs keep their traceback.

- `parser`: every subcommand's arguments and help (`build_parser`).
- `runs`: run, resume and evaluate, the commands on one chain run.
- `sweeps`: sweep. `jobs`: submit and jobs, on a Ray cluster's job server.
- `reports`: report. `prepare`: prepare. `bench`: bench.

`main` is the console script (`collapse.cli:main`); `python -m collapse.cli` runs it too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from collapse.cli.bench import run_benchmark
from collapse.cli.jobs import manage_jobs, submit_job
from collapse.cli.parser import build_parser
from collapse.cli.prepare import prepare_source
from collapse.cli.reports import print_report
from collapse.cli.runs import evaluate_run, resume_run, start_run
from collapse.cli.sweeps import start_sweep
from collapse.errors import UserError, one_line


def _list(args: argparse.Namespace) -> None:
    from collapse.catalog import format_entries

    print(format_entries(args.kind))


def _bench(args: argparse.Namespace) -> None:
    run_benchmark(args.what, args.bench_args)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "run": start_run,
    "resume": resume_run,
    "evaluate": evaluate_run,
    "list": _list,
    "sweep": start_sweep,
    "submit": submit_job,
    "jobs": manage_jobs,
    "report": print_report,
    "prepare": prepare_source,
    "bench": _bench,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except UserError as err:
        print(f"collapse: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `collapse list families | head`: the reader stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except KeyboardInterrupt:
        print(
            "collapse: interrupted; committed generations are kept, rerun to resume",
            file=sys.stderr,
        )
        return 130
    return 0
