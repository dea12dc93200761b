"""`collapse sweep`: a sweep file started or resumed as one Ray Tune experiment; a failed
trial makes the command fail after the others finished."""

from __future__ import annotations

import argparse
import sys

from collapse.cli.parser import overrides_of
from collapse.errors import UserError


def start_sweep(args: argparse.Namespace) -> None:
    from collapse.sweeps.definition import create_or_resume_sweep, load_sweep

    overrides = overrides_of(args)
    sweep = load_sweep(args.sweep_file, overrides)
    resumed = create_or_resume_sweep(sweep)
    print(f"{'resuming' if resumed else 'starting'} sweep {sweep.uri}", file=sys.stderr)
    from collapse.distributed.tune import run_sweep

    results = run_sweep(sweep)
    failed = [r for r in results if r.error is not None]  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__
    print(
        f"sweep {sweep.uri}: {len(results)} trials, {len(failed)} failed; "
        f"report: collapse report {sweep.uri}"
    )
    for result in failed:
        print(f"  failed: {result.path}: {str(result.error).splitlines()[0]}", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} of {len(results)} trials failed; rerun to resume them")
