"""`collapse run`, `resume` and `evaluate`: the commands on one chain run, with its progress
on stderr."""

from __future__ import annotations

import argparse
import sys

from collapse.cli.parser import overrides_of
from collapse.errors import UserError


def start_run(args: argparse.Namespace) -> None:
    from collapse.config import load_config

    overrides = overrides_of(args)
    _run_chain(load_config(args.config, overrides), args.quiet, args.dry_run)


def _run_chain(config, quiet: bool, dry_run: bool = False, every_size: bool | None = None) -> None:
    if dry_run:
        from collapse.driver.dry_run import describe

        print(describe(config))
        return
    from collapse.driver.launch import run_chain
    from collapse.driver.progress import ChainProgress

    progress = ChainProgress(config, quiet=quiet)
    outcome = run_chain(
        config,
        on_start=progress.start,
        on_generation=progress.generation,
        every_size=every_size,
    )
    progress.finish(outcome.uri, outcome.records, outcome.already_complete)


def resume_run(args: argparse.Namespace) -> None:
    from collapse.engine.run_opening import stored_run_config
    from collapse.store.run_config import with_overrides

    config = stored_run_config(args.run_uri)
    overrides = list(args.overrides)
    if args.generations is not None:
        overrides.append(f"generations={args.generations}")
    if overrides:
        config = with_overrides(config, overrides, args.run_uri)
    _run_chain(config, args.quiet, args.dry_run, every_size=args.check_sizes or None)


def evaluate_run(args: argparse.Namespace) -> None:
    from collapse.driver import reevaluation
    from collapse.driver.progress import metrics_line
    from collapse.engine.measurement import measure_here, measurement
    from collapse.engine.run_opening import stored_run_config
    from collapse.store.run_store import RunStore

    if args.workers < 0:
        raise UserError(f"--workers: 0 or more, got {args.workers}")
    if args.gpu and not args.workers:
        raise UserError("--gpu runs the Ray tasks on GPUs: give --workers 1 or more")
    metrics = [name.strip() for item in args.metrics for name in item.split(",") if name.strip()]
    asked = measurement(stored_run_config(args.run_uri), metrics, args.features)
    store = RunStore.for_config(asked.config.storage, asked.config.name)
    if not store.committed():
        raise UserError(f"{store.uri}: no committed generation to evaluate yet")
    if args.workers:
        from collapse.distributed.measure_tasks import measure_on_ray

        measure = measure_on_ray(args.workers, args.gpu)
    else:
        measure = measure_here
    what = f"{asked.extractor} features: {', '.join(asked.metrics)}"
    if not args.quiet:
        print(f"evaluating {store.uri} ({what}) as {asked.key}", file=sys.stderr)

    def say(entry: dict) -> None:
        if not args.quiet:
            bad = entry.get("nonfinite")
            note = f"  non-finite: {', '.join(bad)}" if bad else ""
            line = f"gen {entry['generation']:>4}  {metrics_line(entry['metrics'], 8)}{note}"
            print(line, file=sys.stderr)

    existing, new = reevaluation.run_evaluation(asked, store, measure, say)
    done = existing + len(new)
    print(
        f"evaluation {asked.key} ({what}): {done} generations measured"
        f" ({len(new)} now, {existing} before) in {store.uri}/{reevaluation.FOLDER}/"
        f"{asked.key}.json\n  report: collapse report {store.uri}"
    )
