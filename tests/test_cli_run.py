"""The `collapse` console script as a user runs it, in subprocesses joined to the test cluster."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from collapse import __version__
from collapse.cli import main
from collapse.cli.parser import build_parser
from collapse.config import load_config
from collapse.driver.launch import run_chain
from collapse.store.run_store import RunStore

REPO = Path(__file__).resolve().parents[1]


def collapse(env, *args, check=True, timeout=300):
    result = subprocess.run(
        ["collapse", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.subprocess
def test_run_then_rerun_then_report(cli_env, tmp_path):
    storage = str(tmp_path / "runs")
    first = collapse(
        cli_env,
        "run",
        "configs/quickstart.yaml",
        "--storage",
        storage,
        "--set",
        "generations=3",
        "--set",
        "data.n_train=200",
        "--set",
        "sample.n=200",
    )
    assert "gen    2" in first.stderr  # a line per generation
    assert f"done: generations 0-2 committed in {storage}/quickstart" in first.stdout
    again = collapse(
        cli_env,
        "run",
        "configs/quickstart.yaml",
        "--storage",
        storage,
        "--set",
        "generations=3",
        "--set",
        "data.n_train=200",
        "--set",
        "sample.n=200",
    )
    assert "nothing to do" in again.stdout
    refused = collapse(cli_env, "run", "configs/quickstart.yaml", "--storage", storage, check=False)
    assert refused.returncode == 2
    assert "differs in: data.n_train, sample.n)" in refused.stderr  # generations: raised
    assert "Traceback" not in refused.stderr

    report = json.loads(
        collapse(cli_env, "report", f"{storage}/quickstart", "--format", "json").stdout
    )
    assert [r["generation"] for r in report] == [0, 1, 2]
    assert report[0]["run"] == "quickstart"
    assert set(report[0]["metrics"]) == {"w2", "mmd", "mean_err", "var", "precision", "recall"}


@pytest.mark.subprocess
@pytest.mark.faults
def test_killed_run_resumes_to_the_uninterrupted_result(ray_cluster, cli_env, tmp_path):
    storage = tmp_path / "runs"
    args = [
        "run",
        "configs/gaussian_collapse.yaml",
        "--storage",
        str(storage),
        "--name",
        "killed",
        "--set",
        "generations=40",
        "--set",
        "eval.metrics=[w2, precision, recall]",
        "--set",
        "data.n_eval=1500",
        "--set",
        "data.n_train=1500",
        "--set",
        "data.n_real=1500",
    ]
    proc = subprocess.Popen(
        ["collapse", *args],
        env=cli_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    manifest = storage / "killed" / "manifest.json"
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists():
            committed = len(json.loads(manifest.read_text())["generations"])
            if committed >= 3:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = len(RunStore(str(storage / "killed")).committed())
    assert 3 <= interrupted_at < 40, "the kill must land mid-chain"

    resumed = collapse(cli_env, *args)
    assert f"resuming {storage}/killed at generation" in resumed.stderr
    final = RunStore(str(storage / "killed")).committed()
    assert [r["generation"] for r in final] == list(range(40))

    config = load_config(
        "configs/gaussian_collapse.yaml",
        [a for a in args[7::2]] + [f"storage={tmp_path / 'reference'}"],
    )
    reference = run_chain(config).records  # uninterrupted, same seed, same kind of Ray worker
    assert [r["metrics"] for r in final] == [r["metrics"] for r in reference]


@pytest.mark.subprocess
def test_without_ray_address_a_local_ray_is_started_on_demand(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # its own session, apart from the test cluster (a short path: Ray's sockets live there)
    ray_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env["RAY_TMPDIR"] = ray_dir
    runs = str(tmp_path / "runs")
    try:
        result = collapse(
            env,
            "run",
            "configs/quickstart.yaml",
            "--storage",
            runs,
            "--set",
            "generations=2",
            "--quiet",
        )
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert f"done: generations 0-1 committed in {runs}/quickstart" in result.stdout


def test_version_and_help_for_every_option(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"collapse {__version__}\n"
    commands = next(a for a in build_parser()._actions if a.choices and a.dest == "command")
    assert {"run", "resume", "evaluate", "list"} <= set(commands.choices)
    missing = [
        f"{name} {action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert not missing, f"options without help: {missing}"


def test_list_reads_the_registries(capsys):
    from collapse.config import METRICS, SOURCE_FORMS
    from collapse.families import NAMES

    for kind, names in (("families", NAMES), ("sources", SOURCE_FORMS), ("metrics", METRICS)):
        assert main(["list", kind]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == list(names)
    assert main(["list", "strategies"]) == 0
    out = capsys.readouterr().out
    assert "ra_reflow     alias of rca_reflow" in out and "self_correct" in out
    assert main(["list", "losses"]) == 2


@pytest.mark.subprocess
def test_output_piped_into_a_reader_that_stops_early_is_not_an_error():
    collapse = str(Path(sys.executable).parent / "collapse")
    listing = subprocess.Popen(
        [collapse, "list", "metrics"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    listing.stdout.close()  # as `| head -0` does: the reader is gone before anything is written
    assert listing.wait(timeout=60) == 0
    assert listing.stderr.read() == b""


def test_dry_run_shows_the_plan_and_resources_and_writes_nothing(tmp_path, capsys):
    storage = tmp_path / "runs"
    argv = ["run", "configs/quickstart.yaml", "--storage", str(storage), "--dry-run"]
    argv += ["--set", "data.loop=fresh_data", "--set", "data.real_fraction=0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"run: {storage}/quickstart\n  new run: generations 0-9" in out
    assert "  loop: fresh_data" in out  # the resolved config
    assert "gen 0: 500 rows = 500 real rows [0, 500)" in out
    assert "gen 2: 500 rows = 250 real rows [750, 1000) + 250 samples of gen 1 [0, 250)" in out
    assert "chain     1 x the chain's actor (whole run): 1 CPU each" in out
    assert not storage.exists()

    flow = tmp_path / "flow.yaml"
    flow.write_text(
        yaml.safe_dump(
            {
                "name": "flow",
                "data": {"real": "sklearn:digits", "n_real": 1000, "n_train": 1000, "n_eval": 360},
                "model": {"family": "rectified_flow"},
                "train": {"workers": 4, "use_gpu": True},
                "sample": {"workers": 2},
            }
        )
    )
    assert main(["run", str(flow), "--storage", str(storage), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "train     4 x Ray Train workers: 0 CPU + 1 GPU each" in out
    assert "sample    2 x Ray Data sampling actors: 0 CPU + 1 GPU each" in out
    assert "evaluate  1 x image evaluation task: 1 CPU + 1 GPU each" in out
    assert "at most 1 CPU + 4 GPU at once" in out
    assert "gen-NNNN/train/: Ray Train checkpoints, kept while its generation is in flight" in out
    assert not storage.exists()
