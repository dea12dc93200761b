"""The `collapse` command: run | resume | evaluate | sweep | report | list | prepare | submit |
jobs | bench.

User errors exit 2 with one line on stderr and no traceback; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from collapse.catalog import KINDS
from collapse.config import FEATURES, RESUME_SAFE
from collapse.errors import UserError, one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        raise UserError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    from collapse import __version__

    parser = _Parser(
        prog="collapse", description="Self-consuming generative training chains on Ray."
    )
    parser.add_argument("--version", action="version", version=f"collapse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run a chain (re-running an existing run resumes it; a raised generations extends it)",
    )
    run.add_argument("config", help="chain config YAML")
    _override_arguments(run, "run", "data.real_fraction=0.5")
    _dry_run_argument(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")

    resume = commands.add_parser("resume", help="continue a run from its last committed generation")
    resume.add_argument("run_uri", help="the run's directory, e.g. ./runs/quickstart")
    resume.add_argument(
        "--generations",
        type=int,
        metavar="N",
        help="extend the chain to N generations (more than it has; the same as "
        "--set generations=N)",
    )
    resume.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a key that does not change what was computed, for this resume only: "
        f"{', '.join(RESUME_SAFE)} (repeatable); e.g. --set sample.workers=4",
    )
    _dry_run_argument(resume)
    resume.add_argument("--quiet", action="store_true", help="no progress output")

    evaluate = commands.add_parser(
        "evaluate",
        help="measure the stored samples of every committed generation again, with other "
        "metrics or features (stored beside the originals; rerun: resumes)",
    )
    evaluate.add_argument("run_uri", metavar="RUN_URI", help="the run, e.g. ./runs/quickstart")
    evaluate.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="metrics to compute, e.g. fid,coverage (default: the run's eval.metrics; "
        "collapse list metrics)",
    )
    evaluate.add_argument(
        "--features",
        choices=FEATURES,
        help="feature space to measure in (default: the run's eval.features)",
    )
    evaluate.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="K",
        help="Ray tasks at once, one per generation (default 2; 0: in this process)",
    )
    evaluate.add_argument(
        "--gpu", action="store_true", help="run each task on a GPU (feature extraction)"
    )
    evaluate.add_argument("--quiet", action="store_true", help="no line per generation")

    listing = commands.add_parser(
        "list", help="the names a config accepts, from the registries, with what each is"
    )
    listing.add_argument("kind", choices=KINDS, help="what to list")

    sweep = commands.add_parser(
        "sweep", help="run a sweep over config keys as one Ray Tune experiment (rerun: resume)"
    )
    sweep.add_argument("sweep_file", help="sweep YAML: base config, space, resources")
    _override_arguments(sweep, "sweep", "max_concurrent_trials=2")

    submit = commands.add_parser(
        "submit", help="submit a chain or a sweep to a Ray cluster as a Ray Job"
    )
    _address_argument(submit)
    submit.add_argument("--wait", action="store_true", help="follow the job's logs to its end")
    submit.add_argument("kind", choices=["run", "sweep"], help="a chain config or a sweep file")
    submit.add_argument("config", help="chain config or sweep YAML (checked here first)")
    _override_arguments(submit, "run or sweep", "data.real_fraction=0.5")

    jobs = commands.add_parser("jobs", help="list, inspect, follow or stop submitted jobs")
    _address_argument(jobs)
    jobs.add_argument(
        "action",
        choices=["list", "status", "logs", "stop"],
        help="list the jobs; show one's status, print its logs, or stop it",
    )
    jobs.add_argument("job_id", nargs="?", help="the job's id (status, logs, stop)")

    prepare = commands.add_parser(
        "prepare", help="write a real data source as checksummed parquet shards (+ _dataset.json)"
    )
    prepare.add_argument(
        "source",
        help="sklearn:digits | torchvision:cifar10 | torchvision:mnist "
        "| folder:PATH | toy:gaussian|mog8|two_moons",
    )
    prepare.add_argument("--out", required=True, help="local dir or s3://bucket/prefix")
    prepare.add_argument(
        "--split", choices=["train", "test"], default="train", help="the source's split to write"
    )
    prepare.add_argument("--limit", type=int, help="keep the first N rows (toy: rows to draw)")
    prepare.add_argument("--size", type=int, help="resize images to SIZE x SIZE (e.g. 16, 32)")
    prepare.add_argument("--seed", type=int, default=0, help="toy sources: random seed")
    prepare.add_argument("--dim", type=int, default=2, help="toy:gaussian: dimension")
    prepare.add_argument("--root", help="torchvision: directory with (or for) the downloaded files")
    prepare.add_argument(
        "--captions", help="folder: JSON lines {file, text}; default captions.jsonl"
    )
    prepare.add_argument("--rows-per-shard", type=int, help="default: about 96 MiB per shard")

    report = commands.add_parser(
        "report", help="tables and plots of runs, or of a sweep's trials (one row per trial)"
    )
    report.add_argument("run_uris", nargs="+", metavar="RUN_URI", help="runs, or one sweep")
    report.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="how to print the records (default: an aligned table)",
    )
    report.add_argument(
        "--plots",
        metavar="DIR",
        help="write PNGs into DIR: a curve per metric, a sample sheet per image run, "
        "and the final generations side by side when several runs are given",
    )
    report.add_argument(
        "--heatmap",
        metavar="KEY_X,KEY_Y",
        help="a sweep's final --metric over two swept keys (mean over the others), "
        "e.g. data.real_fraction,strategy.name; printed, and drawn into --plots DIR",
    )
    report.add_argument("--metric", help="the metric of --heatmap, e.g. w2")
    bench = commands.add_parser(
        "bench",
        help="measure our training, sampling, chain and data paths against plain PyTorch",
        description="Runs benchmarks/<what>.py of this checkout; any further arguments go to it "
        "(--tiny: a seconds-long CPU run; --help: its options).",
    )
    bench.add_argument("what", choices=BENCHMARKS, help="which benchmarks/<what>.py to run")
    bench.add_argument(
        "bench_args", nargs=argparse.REMAINDER, metavar="...", help="arguments for the benchmark"
    )
    return parser


BENCHMARKS = ("train", "sample", "chain", "data")


def _dry_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config, the first generations' mix plans, the Ray resources "
        "and where the run writes; write nothing",
    )


def _override_arguments(parser: argparse.ArgumentParser, what: str, example: str) -> None:
    """--set, --storage and --name of the `what` ("run", "sweep") being started."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a key of the {what}'s YAML, e.g. --set {example} (repeatable)",
    )
    parser.add_argument("--storage", help="local dir or s3://bucket/prefix (overrides storage)")
    parser.add_argument("--name", help=f"{what} name (overrides name)")


def _with_overrides(args: argparse.Namespace) -> list[str]:
    """--set items, then --storage and --name as the overrides they are."""
    overrides = list(args.overrides)
    if args.storage:
        overrides.append(f"storage={args.storage}")
    if args.name:
        overrides.append(f"name={args.name}")
    return overrides


def _address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=None,
        help="Ray's job server, e.g. http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, "
        "else http://127.0.0.1:8265); the token comes from RAY_AUTH_TOKEN[_PATH]",
    )


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "run":
        from collapse.config import load_config

        overrides = _with_overrides(args)
        _run_chain(load_config(args.config, overrides), args.quiet, args.dry_run)
    elif args.command == "resume":
        _resume(args)
    elif args.command == "evaluate":
        _evaluate(args)
    elif args.command == "list":
        from collapse.catalog import format_entries

        print(format_entries(args.kind))
    elif args.command == "sweep":
        _sweep(args)
    elif args.command == "submit":
        _submit(args)
    elif args.command == "jobs":
        _jobs(args)
    elif args.command == "report":
        _report(args)
    elif args.command == "prepare":
        _prepare(args)
    elif args.command == "bench":
        _bench(args.what, args.bench_args)


def _bench(what: str, bench_args: list[str]) -> None:
    """Benchmarks live in the checkout's benchmarks/ (they are measurements, not the package)."""
    import runpy

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    script = folder / f"{what}.py"
    if not script.is_file():
        raise UserError(f"collapse bench needs a checkout of collapse: {script} not found")
    sys.argv = [str(script), *bench_args]
    sys.path.insert(0, str(folder))
    runpy.run_path(str(script), run_name="__main__")


def _run_chain(config, quiet: bool, dry_run: bool = False) -> None:
    if dry_run:
        from collapse.dry_run import describe

        print(describe(config))
        return
    from collapse.chain import run_chain
    from collapse.progress import ChainProgress

    progress = ChainProgress(config, quiet=quiet)
    outcome = run_chain(config, on_start=progress.start, on_generation=progress.generation)
    progress.finish(outcome.uri, outcome.records, outcome.already_complete)


def _resume(args: argparse.Namespace) -> None:
    from collapse.chain import config_of_run
    from collapse.stored_config import with_overrides

    config = config_of_run(args.run_uri)
    overrides = list(args.overrides)
    if args.generations is not None:
        overrides.append(f"generations={args.generations}")
    if overrides:
        config = with_overrides(config, overrides, args.run_uri)
    _run_chain(config, args.quiet, args.dry_run)


def _evaluate(args: argparse.Namespace) -> None:
    from collapse import evaluate
    from collapse.chain import config_of_run
    from collapse.progress import headline
    from collapse.storage import RunStore

    if args.workers < 0:
        raise UserError(f"--workers: 0 or more, got {args.workers}")
    if args.gpu and not args.workers:
        raise UserError("--gpu runs the Ray tasks on GPUs: give --workers 1 or more")
    metrics = [name.strip() for item in args.metrics for name in item.split(",") if name.strip()]
    measurement = evaluate.measurement(config_of_run(args.run_uri), metrics, args.features)
    store = RunStore.for_config(measurement.config.storage, measurement.config.name)
    if not store.committed():
        raise UserError(f"{store.uri}: no committed generation to evaluate yet")
    if args.workers:
        from collapse.distributed.reevaluation import measure_on_ray

        measure = measure_on_ray(args.workers, args.gpu)
    else:
        measure = evaluate.measure_here
    what = f"{measurement.extractor} features: {', '.join(measurement.metrics)}"
    if not args.quiet:
        print(f"evaluating {store.uri} ({what}) as {measurement.key}", file=sys.stderr)

    def say(entry: dict) -> None:
        if not args.quiet:
            bad = entry.get("nonfinite")
            note = f"  non-finite: {', '.join(bad)}" if bad else ""
            line = f"gen {entry['generation']:>4}  {headline(entry['metrics'], 8)}{note}"
            print(line, file=sys.stderr)

    existing, new = evaluate.run_evaluation(measurement, store, measure, say)
    done = existing + len(new)
    print(
        f"evaluation {measurement.key} ({what}): {done} generations measured"
        f" ({len(new)} now, {existing} before) in {store.uri}/{evaluate.FOLDER}/"
        f"{measurement.key}.json\n  report: collapse report {store.uri}"
    )


def _sweep(args: argparse.Namespace) -> None:
    from collapse.sweep import load_sweep, open_sweep

    overrides = _with_overrides(args)
    sweep = load_sweep(args.sweep_file, overrides)
    resumed = open_sweep(sweep)
    print(f"{'resuming' if resumed else 'starting'} sweep {sweep.uri}", file=sys.stderr)
    from collapse.distributed.tune import run_sweep

    results = run_sweep(sweep)
    failed = [r for r in results if r.error is not None]
    print(
        f"sweep {sweep.uri}: {len(results)} trials, {len(failed)} failed; "
        f"report: collapse report {sweep.uri}"
    )
    for result in failed:
        print(f"  failed: {result.path}: {str(result.error).splitlines()[0]}", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} of {len(results)} trials failed; rerun to resume them")


def _jobs_address(args: argparse.Namespace) -> str:
    from collapse.distributed.jobs import DEFAULT_ADDRESS

    return args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS


def _submit(args: argparse.Namespace) -> None:
    from collapse.distributed import jobs

    overrides = _with_overrides(args)
    if args.kind == "run":
        from collapse.config import dump_yaml, load_config

        config = load_config(args.config, overrides)
        text, name, storage = dump_yaml(config), config.name, config.storage
    else:
        from collapse.sweep import dump_sweep, load_sweep

        sweep = load_sweep(args.config, overrides)
        text, name, storage = dump_sweep(sweep), sweep.name, sweep.storage
    if "://" not in storage and not os.path.isabs(storage):
        raise UserError(
            f"storage {storage!r} would be relative to the job's temporary working dir on the "
            "cluster: give --storage s3://bucket/prefix (or an absolute path there)"
        )
    address = _jobs_address(args)
    job_id = jobs.submit(address, args.kind, text, name)
    print(f"submitted {args.kind} {name!r} as job {job_id} to {address}")
    if not args.wait:
        print(f"  follow: collapse jobs logs {job_id} --address {address}")
        return
    status = jobs.wait(address, job_id, lambda text: print(text, end="", flush=True))
    print(f"job {job_id}: {status.value}")
    if status.value != "SUCCEEDED":
        raise SystemExit(1)


def _jobs(args: argparse.Namespace) -> None:
    from collapse import report
    from collapse.distributed import jobs

    address = _jobs_address(args)
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


def _prepare(args: argparse.Namespace) -> None:
    from collapse.prepare import prepare

    dataset = prepare(
        args.source,
        args.out,
        split=args.split,
        limit=args.limit,
        size=args.size,
        seed=args.seed,
        dim=args.dim,
        root=args.root,
        captions=args.captions,
        rows_per_shard=args.rows_per_shard,
    )
    shape = dataset.index.get("shape") or [dataset.index.get("dim")]
    print(
        f"prepared {dataset.rows} rows of {args.source} ({args.split}, {dataset.kind} "
        f"{'x'.join(map(str, shape))}) in {len(dataset.shard_uris())} shards at {dataset.uri}"
    )


def _report(args: argparse.Namespace) -> None:
    from collapse import plots, report

    if args.heatmap and not args.metric:
        raise UserError("--heatmap needs --metric, e.g. --metric w2")
    trials = report.sweep_trials(args.run_uris[0]) if len(args.run_uris) == 1 else None
    if args.heatmap and trials is None:
        raise UserError("--heatmap is for a sweep: give one sweep URI")
    records = report.load_records(trials.run_uris if trials else args.run_uris)
    written = report.write_plots(records, args.plots) if args.plots else []
    if trials is None:
        formatter = {
            "table": report.format_table,
            "json": report.format_json,
            "csv": report.format_csv,
        }
        print(formatter[args.format](records))
    else:
        rows = report.trial_table(records, trials)
        print(report.format_rows(rows, args.format))
        if args.heatmap:
            x_key, _, y_key = args.heatmap.partition(",")
            xs, ys, matrix = report.heatmap(rows, x_key.strip(), y_key.strip(), args.metric)
            print(f"\n{args.metric} (final generation; rows {y_key}, columns {x_key})")
            print(report.format_rows(report.pivot_rows(xs, ys, matrix, y_key), "table"))
            if args.plots:
                path = Path(args.plots) / f"heatmap-{args.metric}.png"
                plots.heatmap(xs, ys, matrix, x_key, y_key, args.metric, path)
                written.append(path)
    if args.format == "table":  # json and csv keep one record per run
        summary = report.seed_summary(records, final=trials is not None)
        if summary:
            print(f"\n{summary}")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        _dispatch(_parser().parse_args(argv))
    except UserError as err:
        print(f"collapse: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "collapse: interrupted; committed generations are kept, rerun to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
