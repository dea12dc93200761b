"""Typed, validated chain configuration: DESIGN.md's keys as pydantic models.

Config is data. Every key is validated strictly (unknown keys and wrong types are errors, not
silently coerced) so that a typo in a sweep never runs a week of GPU time with a default value.
Validation failures become one line naming the key and what is allowed (`UserError`).

One module per part: `data`, `models` (and its `nets`), `strategy` and `sections` (train,
sample, eval, tracking) are the sections, `chain` the whole config and its cross-section rules,
`text` the YAML, `overrides` the `--set` keys, `errors` the one-line messages, `resume` what a
resumed run may change. `models.FAMILIES` is the registry of model families. This package's
namespace is the public surface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from collapse.config.base import Section
from collapse.config.chain import ChainConfig, check_data_needs
from collapse.config.data import (
    BUILTIN_ROWS,
    BUILTIN_SOURCES,
    EXACT_SOURCES,
    IDEAL_SOURCES,
    LOOPS,
    SOURCE_FORMS,
    TOY_SOURCES,
    DataConfig,
    data_kind,
    real_count,
)
from collapse.config.errors import describe_errors
from collapse.config.models import (
    FAMILIES,
    DDPMModel,
    GaussianModel,
    GMMModel,
    KDEModel,
    ModelConfig,
    NetModel,
    RectifiedFlowModel,
    Registration,
    StableDiffusionModel,
    model_problem,
)
from collapse.config.nets import MLPNet, UNetNet
from collapse.config.overrides import apply_overrides, deep_copy, set_key
from collapse.config.resume import RESUME_SAFE, differing_keys, flatten, resume_safe
from collapse.config.sections import (
    FEATURES,
    FLOW_METRICS,
    IMAGE_METRICS,
    METRICS,
    VECTOR_METRICS,
    EvalConfig,
    SampleConfig,
    TrackingConfig,
    TrainConfig,
)
from collapse.config.strategy import StrategyConfig
from collapse.config.text import dump_yaml, parse_yaml, read_config_file
from collapse.errors import UserError


def validate(raw: dict[str, Any]) -> ChainConfig:
    try:
        return ChainConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_errors(err)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ChainConfig:
    return validate(apply_overrides(read_config_file(path), overrides or []))


__all__ = [
    "BUILTIN_ROWS",
    "BUILTIN_SOURCES",
    "EXACT_SOURCES",
    "FAMILIES",
    "FEATURES",
    "FLOW_METRICS",
    "IDEAL_SOURCES",
    "IMAGE_METRICS",
    "LOOPS",
    "METRICS",
    "RESUME_SAFE",
    "SOURCE_FORMS",
    "TOY_SOURCES",
    "VECTOR_METRICS",
    "ChainConfig",
    "DDPMModel",
    "DataConfig",
    "EvalConfig",
    "GMMModel",
    "GaussianModel",
    "KDEModel",
    "MLPNet",
    "ModelConfig",
    "NetModel",
    "RectifiedFlowModel",
    "Registration",
    "SampleConfig",
    "Section",
    "StableDiffusionModel",
    "StrategyConfig",
    "TrackingConfig",
    "TrainConfig",
    "UNetNet",
    "apply_overrides",
    "check_data_needs",
    "data_kind",
    "deep_copy",
    "describe_errors",
    "differing_keys",
    "dump_yaml",
    "flatten",
    "load_config",
    "model_problem",
    "parse_yaml",
    "read_config_file",
    "real_count",
    "resume_safe",
    "set_key",
    "validate",
]
