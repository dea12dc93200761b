"""The package's shape (docs/architecture.md): no import cycle at any depth, a top level of
layers, small modules; and runs keep loading across moves, since they name no module path.

The layers' order itself is import-linter's contract in pyproject.toml (`make test` runs
`lint-imports`); these tests hold what it does not: cycles within a layer or a package."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import grimp
import pytest

import collapse
from collapse.engine import ChainEngine, LocalBackend
from collapse.engine.run_opening import create_or_resume, stored_run_config
from collapse.store.run_store import RunStore

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "collapse"
OLD_RUN = ROOT / "tests" / "data" / "made-before-layers"  # written by the code before the move
MAX_LINES = 300


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in graph.modules or not other.startswith("collapse"):
                continue
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module.startswith("collapse") and module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back_through_others():
    """Module-level, in functions and under TYPE_CHECKING alike; the root package, which
    re-exports the Python API, is the one module every layer may reach through a name."""
    graph = grimp.build_graph("collapse", include_external_packages=False)
    graph.remove_module("collapse")  # `collapse` -> api: the root is not a layer
    assert _cycles(graph) == []


def test_the_top_level_is_layers_plus_api_errors_and_init():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "api.py", "errors.py"]
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    layers = re.search(r"layers = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S)
    assert layers is not None
    named = {m.split(".")[1] for m in re.findall(r"collapse\.\w+", layers.group(1))}
    assert set(packages) <= named, "every package is a layer of the import-linter contract"


def test_no_module_is_over_300_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "made-before-layers"
    shutil.copytree(OLD_RUN, run)
    return run


def test_a_run_made_before_the_move_reads_and_continues_as_it_would_have(old_run):
    """The run under tests/data was made by the code before the layers moved every module; it
    reads back whole, and extending it gives the generation that code gave (its record in
    made-before-layers.gen3.json: the same metrics, plan and sample bytes). Nothing either
    code wrote names a module of collapse, which is why moving modules breaks no stored run."""
    run = collapse.open_run(str(old_run))
    assert list(run.metrics()["generation"]) == [0, 1, 2]
    assert run.samples(2).shape == (50, 2)
    before = [dict(r) for r in run.records]

    config = stored_run_config(str(old_run)).model_copy(update={"generations": 4})
    store, start = create_or_resume(config)
    assert start == 3
    record = ChainEngine(config, LocalBackend()).run_generation(3)

    expected = json.loads((OLD_RUN.parent / "made-before-layers.gen3.json").read_text())
    assert record["metrics"] == expected["metrics"]
    assert record["mix"] == expected["mix"]
    assert [s["sha256"] for s in record["samples"]] == expected["samples"]
    assert [s["sha256"] for s in record.get("corrected", [])] == expected["corrected"]
    assert RunStore(str(old_run)).committed(refresh=True)[:3] == before
    named = re.compile(rb"collapse\.[a-z_]+")
    for path in old_run.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yaml", ".sha256"):
            assert not named.search(path.read_bytes()), path
