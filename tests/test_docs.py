"""The docs (README.md and docs/) are the project's own description of its contracts, kept
current by the commits that change the code (docs/architecture.md, docs/testing.md).

Each list below is read from the code, never kept by hand, and each check is exact about what
counts as documented:

- a config key: the first cell of a row of a table whose header's first cell is `key`, in
  docs/configuration.md, written as the dotted key in backticks (`model.net.hidden`); the
  sweep file's keys in the same kind of table under its heading `## The sweep file`, the chain
  config's under any other heading. Keys come from walking the pydantic models: `ChainConfig`
  and every arm of its unions (each family in `FAMILIES`, each net in `NETS`, each strategy arm
  in `STRATEGIES`), and `SweepConfig`. A table may name no key the code lacks.
- a CLI command and option: docs/cli.md has a section `## `collapse COMMAND`` per subcommand of
  `build_parser()` (and `## `collapse`` for the top level) holding each of its option strings in
  backticks (`--set`), and each choice of its positional arguments (`families`); an option in
  the first cell of a section's table must exist.
- a metric name: every name of `METRICS`, `FEATURES`, `recorded_names(METRICS)` and what a
  family's `describe` returns (`sigma2`, `log_sigma2`) in backticks in docs/metrics.md; a table
  there whose header's first cell is `name` or `metric`, and every `<metric>_nfe<k>` or
  `inversion_*` name, may name only those.
- the module map: every module of `collapse/` in the first cell of a table with header
  `module` in docs/architecture.md.
- paths: every `collapse.x.y` written in README.md or docs/ (and every name a `from collapse.x
  import ...` there imports) names a module (and, after it, a name the module defines) or a
  string the package uses (an MLflow tag); every `collapse/...`,
  `configs/...`, `tests/...` path exists; every relative link resolves, anchors included.
"""

from __future__ import annotations

import ast
import re
import typing
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from collapse.cli.parser import build_parser
from collapse.config import ChainConfig
from collapse.config.metric_names import FEATURES, METRICS, recorded_names
from collapse.config.model_section import FAMILIES
from collapse.config.net_section import NETS
from collapse.config.strategy_section import STRATEGIES
from collapse.config.sweep_schema import SweepConfig

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "collapse"
SWEEP_HEADING = "The sweep file"
# a path of the repository as the docs write it: `collapse/engine/`, `configs/quickstart.yaml`
REPO_PATH = r"(?<![\w./<-])((?:collapse|configs|tests|benchmarks|cluster|ray_jobs)/[\w./-]*)"


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _without_code(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", "", text, flags=re.S | re.M)


def _sections(text: str) -> dict[str, str]:
    """Each `## ` heading's text (without the `## `) -> its section, up to the next one."""
    found: dict[str, str] = {}
    parts = re.split(r"^## (.+)$", _without_code(text), flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        found[heading.strip()] = body
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_first_cells(text: str, headers: tuple[str, ...]) -> list[str]:
    """The first cell of every body row of every table whose header's first cell is one of
    `headers`."""
    cells, lines = [], _without_code(text).splitlines()
    for i, line in enumerate(lines):
        is_header = line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|--")
        if not is_header or _cells(line)[0] not in headers:
            continue
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            cells.append(_cells(row)[0])
    return cells


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- config keys ----------------------------------------------------------------------------

# The unions whose arms a plain walk of annotations cannot see (`strategy` validates by a
# function) or should see whole: every arm of each, from its registry.
ARMS: dict[str, list[type[BaseModel]]] = {
    "model": [registration.config for registration in FAMILIES.values()],
    "model.net": list(NETS.values()),
    "strategy": [registration.config for registration in STRATEGIES],
}


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _keys(
    model: type[BaseModel], prefix: str = "", arms: dict | None = None, sections: bool = False
) -> set[str]:
    """Every leaf key of `model`, dotted, through nested sections and every arm of a union;
    with `sections`, the keys of the sections too (`model.net`, which a table may name)."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = (arms or {}).get(key) or _models_in(field.annotation)
        if nested:
            keys |= {key} if sections else set()
            for section in nested:
                keys |= _keys(section, f"{key}.", arms, sections)
        else:
            keys.add(key)
    return keys


def _documented_keys() -> tuple[set[str], set[str]]:
    """(the chain config's keys, the sweep file's keys) in docs/configuration.md's key tables."""
    chain: set[str] = set()
    sweep: set[str] = set()
    for heading, body in _sections(_page("configuration.md")).items():
        found = set()
        for cell in _table_first_cells(body, ("key",)):
            assert re.fullmatch(r"`[^`]+`", cell), f"configuration.md: a key cell is {cell!r}"
            found.add(cell.strip("`"))
        (sweep if heading == SWEEP_HEADING else chain).update(found)
    return chain, sweep


def test_every_config_key_is_in_the_configuration_page():
    chain, _ = _documented_keys()
    missing = sorted(_keys(ChainConfig, arms=ARMS) - chain)
    assert not missing, f"docs/configuration.md has no key-table row for {', '.join(missing)}"


def test_every_sweep_file_key_is_in_the_configuration_page():
    _, sweep = _documented_keys()
    missing = sorted(_keys(SweepConfig) - sweep)
    assert not missing, (
        f"docs/configuration.md ({SWEEP_HEADING}) has no key-table row for {', '.join(missing)}"
    )


def test_the_configuration_page_names_only_keys_the_code_has():
    chain, sweep = _documented_keys()
    stale = sorted(chain - _keys(ChainConfig, arms=ARMS, sections=True))
    stale += sorted(sweep - _keys(SweepConfig, sections=True))
    assert not stale, f"docs/configuration.md documents keys the code lacks: {', '.join(stale)}"


# --- the command line ---------------------------------------------------------------------


def _commands() -> dict[str, object]:
    """`collapse` and `collapse COMMAND` -> its argparse parser."""
    import argparse

    parser = build_parser()
    found: dict[str, object] = {"collapse": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"collapse {name}"] = sub
    return found


def _words(parser) -> tuple[set[str], set[str]]:
    """(option strings, choices of positional arguments) of one parser, help left out."""
    import argparse

    options: set[str] = set()
    choices: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        options.update(action.option_strings)
        if not action.option_strings and action.choices:
            choices.update(map(str, action.choices))
    return options, choices


def test_every_cli_command_and_option_is_in_the_cli_page():
    sections = _sections(_page("cli.md"))
    missing = []
    for command, parser in _commands().items():
        section = sections.get(f"`{command}`")
        if section is None:
            missing.append(f"a section '## `{command}`'")
            continue
        options, choices = _words(parser)
        missing += [
            f"{command} {option}"
            for option in sorted(options)
            if not re.search("`" + re.escape(option) + r"(?=[` =\[])", section)
        ]
        missing += [f"{command} {c}" for c in sorted(choices) if f"`{c}`" not in section]
    assert not missing, f"docs/cli.md lacks {'; '.join(missing)}"


def test_the_cli_page_names_only_options_the_parser_has():
    sections, commands = _sections(_page("cli.md")), _commands()
    stale = []
    for heading, section in sections.items():
        command = heading.strip("`")
        if command not in commands:
            continue
        options, _ = _words(commands[command])
        for cell in _table_first_cells(section, ("option",)):
            word = cell.strip("`").split(" ")[0]
            if word.startswith("--") and word not in options | {"--help"}:
                stale.append(f"{command} {word}")
    assert not stale, f"docs/cli.md documents options the parser lacks: {', '.join(stale)}"


# --- metric names ---------------------------------------------------------------------------


def _described() -> set[str]:
    """The names a registered family's `describe` returns (a dict literal), read from its
    module's source: importing the trained families would take seconds."""
    names: set[str] = set()
    for registration in FAMILIES.values():
        tree = ast.parse(_module_file(registration.module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "describe":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                        names.update(
                            k.value
                            for k in ret.value.keys
                            if isinstance(k, ast.Constant) and isinstance(k.value, str)
                        )
    assert names, "no family's describe returns a dict literal: read its names another way"
    return names


def _metric_names() -> set[str]:
    return {*METRICS, *FEATURES, *recorded_names(METRICS), *_described()}


def test_every_metric_name_is_in_the_metrics_page():
    ticked = set(_ticked(_page("metrics.md")))
    missing = sorted(_metric_names() - ticked)
    assert not missing, f"docs/metrics.md does not name {', '.join(missing)}"


def test_the_metrics_page_names_only_metrics_the_code_has():
    page, known = _page("metrics.md"), _metric_names()
    named = [t for cell in _table_first_cells(page, ("name", "metric")) for t in _ticked(cell)]
    derived = [t for t in _ticked(page) if re.fullmatch(r"\w+_nfe\d+|inversion_\w+", t)]
    stale = sorted(set(named + derived) - known)
    assert not stale, f"docs/metrics.md names metrics the code lacks: {', '.join(stale)}"


# --- the module map -------------------------------------------------------------------------


def _module_file(dotted: str) -> Path:
    path = ROOT.joinpath(*dotted.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _modules() -> set[str]:
    """Every module and package of collapse/, dotted (the root package itself left out)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found - {"collapse"}


def test_every_module_is_in_the_architecture_page():
    cells = _table_first_cells(_page("architecture.md"), ("module",))
    mapped = {t for cell in cells for t in _ticked(cell)}
    missing = sorted(_modules() - mapped)
    assert not missing, f"docs/architecture.md's module map lacks {', '.join(missing)}"


# --- paths and links ------------------------------------------------------------------------


@cache
def _defined(module: str) -> dict[str, ast.AST]:
    """The top-level names a module's source binds, each with its node."""
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


@cache
def _package_strings() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))


def _names_something(dotted: str) -> bool:
    """`collapse.x.y[.Name[.member]]`: the longest module prefix exists and the rest is defined
    in it (a class's member in its body); or the package uses the whole as a string."""
    if f'"{dotted}"' in _package_strings() or f"'{dotted}'" in _package_strings():
        return True
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if _module_file(module).is_file():
            break
    else:
        return False
    rest = parts[cut:]
    if not rest:
        return True
    node = _defined(module).get(rest[0])
    if node is None:
        return False
    if len(rest) > 1 and isinstance(node, ast.ClassDef):
        members = {
            getattr(n, "name", None) or getattr(getattr(n, "target", None), "id", None)
            for n in node.body
        }
        return rest[1] in members
    return True


def test_every_collapse_path_in_the_docs_names_a_module():
    stale = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        dotted = set(re.findall(r"(?<![\w./-])collapse(?:\.[A-Za-z_]\w*)+", text))
        for module, names in re.findall(r"from (collapse(?:\.\w+)*) import ([\w, ]+)", text):
            dotted.update(f"{module}.{name.strip()}" for name in names.split(",") if name.strip())
        for name in sorted(dotted):
            if not _names_something(name):
                stale.append(f"{page.relative_to(ROOT)}: {name}")
        for path in set(re.findall(REPO_PATH, text)):
            if not (ROOT / path.rstrip(".")).exists():
                stale.append(f"{page.relative_to(ROOT)}: {path}")
    assert not stale, "names in the docs that the code lacks: " + "; ".join(sorted(stale))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _without_code(path.read_text("utf-8")), re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_every_relative_link_resolves():
    broken = []
    for page in _pages():
        text = re.sub(r"`[^`\n]*`", "", _without_code(page.read_text(encoding="utf-8")))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links: " + "; ".join(broken)
