"""The `collapse` command: run | resume | evaluate | sweep | report | list | prepare | submit |
jobs | bench.

User errors exit 2 with one line on stderr and no traceback; bugs keep their traceback.

- `parser`: every subcommand's arguments and help (`build_parser`).
- `chain_commands`: run, resume and evaluate, the commands on one chain run.
- `sweep_command`: sweep. `job_commands`: submit and jobs, on a Ray cluster's job server.
- `report_command`: report. `list_command`: list. `prepare_command`: prepare.
  `bench_command`: bench.

`main` is the console script (`collapse.cli:main`); `python -m collapse.cli` runs it too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from collapse.cli.bench_command import run_benchmark
from collapse.cli.chain_commands import evaluate_run, resume_run, start_run
from collapse.cli.job_commands import manage_jobs, submit_job
from collapse.cli.parser import build_parser
from collapse.cli.prepare_command import prepare_source
from collapse.cli.report_command import print_report
from collapse.cli.sweep_command import start_sweep
from collapse.errors import UserError, one_line


def _list(args: argparse.Namespace) -> None:
    from collapse.cli.list_command import format_entries

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
