"""Config files as text: YAML read with limits (and `1e-3` as a number), and written back."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from collapse.errors import UserError

if TYPE_CHECKING:
    from collapse.config.chain import ChainConfig


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.1 needs a dot; researchers don't)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


MAX_YAML_BYTES = 1 << 20  # a config is a page of keys; anything near this is not one
MAX_YAML_VALUES = 100_000  # values once aliases are expanded, as validation will see them


def _expanded_values(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for with its aliases expanded. An alias is the same node
    object as its anchor, so each node is sized once; an alias inside its own anchor (an
    infinite value) is refused."""
    if sizes.get(id(node)) == 0:
        raise UserError("an alias refers to a value that contains it (an infinite value)")
    if id(node) not in sizes:
        sizes[id(node)] = 0  # being sized
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        sizes[id(node)] = 1 + sum(_expanded_values(child, sizes) for child in children)
    return sizes[id(node)]


def parse_yaml(text: str, where: str) -> Any:
    """YAML with limits: a few hundred bytes of nested aliases expand to billions of values,
    which validation would walk for minutes (the "billion laughs"); such a file is refused
    from its parsed graph, before any value is built."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise UserError(f"{where}: {size} bytes of YAML; a config may have at most 1 MiB")
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            values = _expanded_values(node, {})
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
        if values > MAX_YAML_VALUES:
            raise UserError(
                f"{where}: the YAML expands to more than {MAX_YAML_VALUES} values through its "
                "aliases (&anchor/*alias); write the values out"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: invalid YAML{at}: {problem}") from None
    except RecursionError:
        raise UserError(f"{where}: the YAML is nested too deeply to be a config") from None
    finally:
        if loader is not None:
            loader.dispose()


def dump_yaml(config: ChainConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read config file {path}: {err}") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the config must be a mapping of keys, got {type(raw).__name__}")
    return raw
