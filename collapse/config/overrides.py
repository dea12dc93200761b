"""`--set key=value`: dotted keys applied to a raw config mapping before validation."""

from __future__ import annotations

from typing import Any

from collapse.config.yaml_text import parse_yaml
from collapse.errors import UserError


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides; values are parsed as YAML so `--set seed=3` is an int."""
    out = deep_copy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or any(not p for p in parts):
            raise UserError(
                f"--set expects key=value with a dotted key (e.g. data.n_train=500), got {item!r}"
            )
        set_key(out, key.strip(), parse_yaml(value, f"--set {key}"), f"--set {key}")
    return out


def set_key(raw: dict[str, Any], key: str, value: Any, what: str) -> None:
    """Set dotted `key` in a raw config mapping, making sections as needed (in place)."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise UserError(f"{what}: {where} is a value, not a section")
        node = child
    node[parts[-1]] = value


def deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value
