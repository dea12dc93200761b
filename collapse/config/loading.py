"""A chain config from a file or a mapping: YAML read, `--set` applied, validated into one
`ChainConfig`, or one `UserError` line naming every key that is wrong."""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from collapse.config.chain import ChainConfig
from collapse.config.messages import describe_errors
from collapse.config.overrides import apply_overrides
from collapse.config.yaml_text import read_config_file
from collapse.errors import UserError


def validate(raw: dict[str, Any]) -> ChainConfig:
    try:
        return ChainConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_errors(err)) from None


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> ChainConfig:
    return validate(apply_overrides(read_config_file(path), overrides or []))
