"""`collapse list families|strategies|sources|metrics`: the names a config accepts, read from
the registries and the config's own types, so the list cannot drift from what is validated."""

from __future__ import annotations

import re

from collapse.config import (
    FAMILIES,
    IMAGE_METRICS,
    METRICS,
    SOURCE_FORMS,
    VECTOR_METRICS,
    data_kind,
)
from collapse.config.strategy_section import STRATEGIES

KINDS = ("families", "strategies", "sources", "metrics")


WIDTH = 100  # a description longer than this is cut, with "..."


def _sentence(text: str) -> str:
    """The first sentence of `text` ("et al. 2022" does not end one), cut to WIDTH."""
    first = re.split(r"(?<=\.)\s+(?=[A-Z`])", " ".join(text.split()))[0]
    return first if len(first) <= WIDTH else first[: WIDTH - 3].rstrip() + "..."


def _strategies() -> list[tuple[str, str]]:
    """Each registered strategy's name with the first sentence of its config's docstring
    (which opens with the name), then its aliases."""
    found = []
    for strategy in STRATEGIES:
        name, *aliases = strategy.names
        doc = " ".join((strategy.config.__doc__ or "").split())
        found.append((name, _sentence(doc.removeprefix(f"`{name}`").lstrip(" :"))))
        found.extend((alias, f"alias of {name}") for alias in aliases)
    return found


def entries(kind: str) -> list[tuple[str, str]]:
    """(name, what it is) for each name of `kind`."""
    if kind == "families":
        return [(name, _sentence(r.config.__doc__ or "")) for name, r in FAMILIES.items()]
    if kind == "strategies":
        return _strategies()
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
