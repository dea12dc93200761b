"""The `collapse` command line: every subcommand's arguments and help, in one parser whose
errors are one line (`UserError`), not usage and an error."""

from __future__ import annotations

import argparse
from typing import NoReturn

from collapse.cli.bench_command import BENCHMARKS
from collapse.cli.list_command import KINDS
from collapse.config import FEATURES, RESUME_SAFE
from collapse.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        command = self.prog.removeprefix("collapse").strip()  # main() says "collapse: error:"
        raise UserError(f"{command}: {message}" if command else message)


def build_parser() -> argparse.ArgumentParser:
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
    resume.add_argument(
        "--check-sizes",
        action="store_true",
        help="on object storage too, list the run and check that every committed artifact is "
        "there at its committed size (local runs always do; S3: a request per 1,000 objects)",
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


def overrides_of(args: argparse.Namespace) -> list[str]:
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
