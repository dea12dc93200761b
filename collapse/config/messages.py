"""Validation errors as one line: every key that is wrong, what it got and what is allowed."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from collapse.config.base import short
from collapse.config.chain import ChainConfig
from collapse.config.model_section import FAMILIES
from collapse.config.net_section import NETS, net_keys
from collapse.errors import one_line


def describe_errors(err: ValidationError) -> str:
    """All validation errors on one line: `config error: key: problem; key: problem`."""
    parts = [_describe(e) for e in err.errors(include_url=False)]
    return one_line("config error: " + "; ".join(dict.fromkeys(parts)))


def _describe(e: ErrorDetails) -> str:
    loc = [str(p) for i, p in enumerate(e["loc"]) if not _is_tag(e["loc"], i)]
    kind = e["type"]
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        loc.append("family")
        got = e.get("ctx", {}).get("tag")
        what = "missing" if got is None else f"unknown family {got!r}"
        return f"{'.'.join(loc)}: {what}; allowed: {', '.join(FAMILIES)}"
    key = ".".join(loc) or "config"
    if kind == "extra_forbidden":
        section = _section(e["loc"][:-1])
        if section in NETS.values():
            return f"{key}: unknown key; allowed: {net_keys()}"
        allowed = list(section.model_fields) if section else []
        return f"{key}: unknown key; allowed here: {', '.join(allowed)}"
    msg = e["msg"].removeprefix("Value error, ")
    if not loc:
        return msg
    if kind == "value_error" or "input" not in e:
        return f"{key}: {msg}"
    return f"{key}: {msg}, got {short(e['input'])}"


def _is_tag(loc: tuple[int | str, ...], i: int) -> bool:
    """Whether loc[i] is the tag pydantic puts after a union field (the family after `model`,
    the net after `net`), which names the section but is no key of the config."""
    if i == 1 and loc[0] == "model":
        return loc[1] in FAMILIES
    return i > 1 and loc[i - 1] == "net" and loc[i] in NETS


def _section(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config section at `loc` (tags included), or None where it is a value."""
    model: type[BaseModel] = ChainConfig
    for i, part in enumerate(loc):
        if _is_tag(loc, i):
            model = FAMILIES[str(part)].config if i == 1 else NETS[str(part)]
            continue
        if i + 1 < len(loc) and _is_tag(loc, i + 1):
            continue  # a union field: its tag says which section
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
