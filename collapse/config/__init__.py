"""Typed, validated chain configuration: pure schema, no code of what it configures.

Config is data. Every key is validated strictly (unknown keys and wrong types are errors, not
silently coerced) so that a typo in a sweep never runs a week of GPU time with a default value.
Validation failures become one line naming the key and what is allowed (`UserError`).

One module per part: the sections (`data_section`, `model_section` and its `net_section`,
`strategy_section`, `step_sections`: train, sample, eval, tracking), `chain` (the whole config
and its cross-section rules), `schedule` (real-fraction schedules), `metric_names`,
`sweep_schema` and `sweep_space` (a sweep file and its points), `yaml_text`, `overrides`
(`--set`), `loading`, `messages` (one-line errors) and `resume_rules`. The registries
`model_section.FAMILIES` and `strategy_section.STRATEGIES` name each family's and strategy's
code by module path; nothing here imports it (checks that need it: `collapse.engine.preflight`).
This package's namespace is the public surface of a chain config.
"""

from __future__ import annotations

from collapse.config.base import Section
from collapse.config.chain import ChainConfig, check_data_needs
from collapse.config.data_section import (
    BUILTIN_ROWS,
    BUILTIN_SOURCES,
    EXACT_SOURCES,
    IDEAL_SOURCES,
    LOOPS,
    SOURCE_FORMS,
    TOY_SOURCES,
    DataConfig,
    data_kind,
)
from collapse.config.loading import load_config, validate
from collapse.config.messages import describe_errors
from collapse.config.metric_names import (
    FEATURES,
    FLOW_METRICS,
    IMAGE_METRICS,
    METRICS,
    VECTOR_METRICS,
)
from collapse.config.model_section import (
    FAMILIES,
    DDPMModel,
    GaussianModel,
    GMMModel,
    KDEModel,
    ModelConfig,
    NetModel,
    RectifiedFlowModel,
    StableDiffusionModel,
    model_problem,
)
from collapse.config.net_section import MLPNet, UNetNet
from collapse.config.overrides import apply_overrides, deep_copy, set_key
from collapse.config.resume_rules import RESUME_SAFE, differing_keys, flatten, resume_safe
from collapse.config.schedule import real_count
from collapse.config.step_sections import (
    EvalConfig,
    SampleConfig,
    TrackingConfig,
    TrainConfig,
)
from collapse.config.strategy_section import (
    STRATEGIES,
    SelfCorrectConfig,
    StrategyConfig,
    StrategySection,
)
from collapse.config.yaml_text import dump_yaml, parse_yaml, read_config_file

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
    "STRATEGIES",
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
    "SampleConfig",
    "Section",
    "SelfCorrectConfig",
    "StableDiffusionModel",
    "StrategyConfig",
    "StrategySection",
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
