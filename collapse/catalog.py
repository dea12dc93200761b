"""`collapse list families|strategies|sources|metrics`: the names a config accepts, read from
the registries and the config's own types, so the list cannot drift from what is validated."""

from __future__ import annotations

import re
import typing

from collapse.config import (
    IMAGE_METRICS,
    METRICS,
    SOURCE_FORMS,
    VECTOR_METRICS,
    ModelConfig,
    StrategyConfig,
    data_kind,
)
from collapse.families import NAMES

KINDS = ("families", "strategies", "sources", "metrics")


WIDTH = 100  # a description longer than this is cut, with "..."


def _sentence(text: str) -> str:
    """The first sentence of `text` ("et al. 2022" does not end one), cut to WIDTH."""
    first = re.split(r"(?<=\.)\s+(?=[A-Z`])", " ".join(text.split()))[0]
    return first if len(first) <= WIDTH else first[: WIDTH - 3].rstrip() + "..."


def _strategy(name: str) -> str:
    """What StrategyConfig's docstring says of `name`: the paragraph that opens with it, the
    alias it is, or the clause that names it."""
    paragraphs = [" ".join(p.split()) for p in (StrategyConfig.__doc__ or "").split("\n\n")]
    tag = f"`{name}`"
    for paragraph in paragraphs:
        if paragraph.startswith(tag):
            return _sentence(paragraph.removeprefix(tag).lstrip(" :"))
        if f"alias {tag}" in paragraph:
            return f"alias of {paragraph.split('`')[1]}"
    clauses = [c.strip() for p in paragraphs for c in re.split(r"[;:]", p) if tag in c]
    return _sentence(clauses[0]) if clauses else ""


def entries(kind: str) -> list[tuple[str, str]]:
    """(name, what it is) for each name of `kind`."""
    if kind == "families":
        union = typing.get_args(typing.get_args(ModelConfig)[0])
        docs = {
            typing.get_args(model.model_fields["family"].annotation)[0]: model.__doc__
            for model in union
        }
        return [(name, _sentence(docs.get(name) or "")) for name in NAMES]
    if kind == "strategies":
        names = typing.get_args(StrategyConfig.model_fields["name"].annotation)
        return [(name, _strategy(name)) for name in names]
    if kind == "sources":
        return [(form, f"{data_kind(form) or 'vector or image'} data") for form in SOURCE_FORMS]
    if kind == "metrics":
        defaults = {"vectors": VECTOR_METRICS, "images": IMAGE_METRICS}
        return [
            (name, ", ".join(f"default for {k}" for k, names in defaults.items() if name in names))
            for name in METRICS
        ]
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


def format_entries(kind: str) -> str:
    found = entries(kind)
    width = max(len(name) for name, _ in found)
    return "\n".join(f"{name:<{width}}  {what}".rstrip() for name, what in found)
