"""`strategy:`: the mitigation of collapse a chain applies, one config arm per strategy.

The arms are the strategies' own (`collapse.strategies`, whose registry is the one list), told
apart by `name` as model sections are by `family`: `StrategyConfig` validates a section as the
arm its `name` picks, at validation time, so a strategy registered later is accepted too.

Runs made before the arms existed stored one flat section listing every strategy's keys at
their defaults (`reverse: ode`, `corrector: ideal`, ... under `name: none`). Such a section
still validates, to the same arm: a key another strategy owns is dropped where it equals its
old flat default, and refused (naming who takes it) where it does not.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainValidator, SerializeAsAny, ValidationError
from pydantic_core import InitErrorDetails

from collapse.strategies import STRATEGIES, get_strategy, names
from collapse.strategies.protocol import StrategySection

# The flat section of runs made before the arms: every key and its default then.
FLAT_DEFAULTS: dict[str, Any] = {
    "reverse": "ode",
    "sigma": 1.0,
    "reverse_steps": 20,
    "refresh": 1,
    "corrector": "ideal",
    "correct_fraction": 1.0,
    "strength": 1.0,
    "k": 5,
    "langevin_steps": 50,
    "step_size": 0.05,
    "metropolis": False,
    "level": 0.5,
    "knn_space": "pixel",
    "knn_workers": 0,
}


def _error(key: str, message: str, value: Any) -> ValidationError:
    """A config error at `strategy.<key>` (pydantic adds the section's own location)."""
    detail = InitErrorDetails(
        type="value_error", loc=(key,), input=value, ctx={"error": ValueError(message)}
    )
    return ValidationError.from_exception_data("strategy", [detail])


def _takers(key: str) -> list[str]:
    return [n for s in STRATEGIES if key in s.config.model_fields for n in s.names]


def validate_strategy(value: Any) -> StrategySection:
    if isinstance(value, StrategySection):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a mapping with a name, got {type(value).__name__}")
    name = value.get("name", "none")
    if not isinstance(name, str) or name not in names():
        allowed = ", ".join(repr(n) for n in names())
        raise _error("name", f"unknown strategy {name!r}; allowed: {allowed}", name)
    arm = get_strategy(name).config
    fields = arm.model_fields
    section, foreign = {}, []
    for key, item in value.items():
        if key in fields:
            section[key] = item
        elif key in FLAT_DEFAULTS and _takers(key):
            # a stored flat section lists the defaults too: those say nothing
            default = FLAT_DEFAULTS[key]
            if item != default or isinstance(item, bool) != isinstance(default, bool):
                foreign.append(key)
        else:
            raise _error(key, f"unknown key; allowed here: {', '.join(fields)}", item)
    if foreign:
        takers = sorted({n for key in foreign for n in _takers(key)})
        raise ValueError(f"{', '.join(sorted(foreign))}: only {', '.join(takers)} take these")
    return arm.model_validate(section)


StrategyConfig = Annotated[SerializeAsAny[StrategySection], PlainValidator(validate_strategy)]
