"""`strategy:`: the mitigation of collapse a chain applies, one config arm per strategy, and
`STRATEGIES`, the registry of strategies: the one list of their names, config arms and code.

The arms are told apart by `name` as model sections are by `family`: `StrategyConfig` validates
a section as the arm its `name` picks, at validation time, so a strategy registered later (a
researcher's own `StrategyRegistration`, appended to `STRATEGIES`) is accepted too. Each
registration names the module whose `STRATEGY` implements it
(`collapse.strategies.protocol.Strategy`) by path, imported only by
`collapse.strategies.get_strategy`: reading a config loads no strategy.

Runs made before the arms existed stored one flat section listing every strategy's keys at
their defaults (`reverse: ode`, `corrector: ideal`, ... under `name: none`). Such a section
still validates, to the same arm: a key another strategy owns is dropped where it equals its
old flat default, and refused (naming who takes it) where it does not.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, SerializeAsAny, ValidationError, field_validator
from pydantic_core import InitErrorDetails

from collapse.config.base import Section

USER_CORRECTOR_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # package.module:function


class StrategySection(Section):
    """A strategy's config arm: its `name` is a Literal of the strategy's names (the name, then
    its aliases)."""

    name: str


class NoStrategyConfig(StrategySection):
    """`none`: the plain loop: each generation trains on its planned mix of real rows and
    samples as they are."""

    name: Literal["none"] = "none"


class ReflowConfig(StrategySection):
    """`reflow` (rectified_flow only): each generation's samples keep their noise, and the
    next generation trains on those (noise, sample) pairs instead of fresh independent noise:
    the self-consuming reflow loop of Zhu et al. (arXiv 2412.08175) that collapses."""

    name: Literal["reflow"] = "reflow"


class ReversePairingConfig(StrategySection):
    """The keys of the strategies that pair real rows with reverse-flow noise."""

    reverse: Literal["ode", "sde"] = "ode"
    sigma: float = Field(1.0, ge=0, le=100)
    reverse_steps: int = Field(20, ge=1, le=10_000)
    refresh: int = Field(1, ge=1, le=1_000_000)

    @property
    def sde_sigma(self) -> float | None:
        """The reverse SDE's noise strength, or None for the reverse ODE."""
        return self.sigma if self.reverse == "sde" else None


class RealPairingConfig(ReversePairingConfig):
    """`rca_reflow` (alias `ra_reflow`: the paper's v1 and v2 names): reflow whose real rows
    (`data.real_fraction` of a mixing loop) are paired with the noise the previous generation's
    model recovers from them by its reverse ODE (`reverse: ode`) or reverse SDE (`reverse: sde`
    with noise strength `sigma`), over `reverse_steps` steps, recomputed every `refresh`
    generations."""

    name: Literal["rca_reflow", "ra_reflow"] = "rca_reflow"


class OnlinePairingConfig(ReversePairingConfig):
    """`ocar` (alias `ora_reflow`; with `reverse: sde` the paper's ORAS Reflow): online reflow.
    Nothing is stored; each mini-batch pairs its real rows by the frozen previous model's
    reverse flow and fills the rest with that model's forward pairs from fresh noise
    (`refresh` is accepted and unused: there are no stored pairs to remake)."""

    name: Literal["ocar", "ora_reflow"] = "ocar"


class SelfCorrectConfig(StrategySection):
    """`self_correct` (any family; Gillman et al. 2024): a `correct_fraction` of each
    generation's samples is moved toward the true distribution by `corrector` before the next
    generation trains on them, with `strength` in [0, 1] (knn and user: the share of the way to
    the corrector's output; ideal: the share of its Langevin steps run; exact: gamma / (1 +
    gamma)): `exact` (Gillman et al.'s pi_gamma: each row replaced by a draw of the toy source
    with probability `strength`), `ideal` (Langevin on the true density of
    toy:gaussian/toy:mog8, `langevin_steps` of `step_size`, Metropolis-adjusted with
    `metropolis`; unadjusted, a step with step x curvature >= 1 is refused), `knn` (toward the
    mean of the `k` nearest real rows, in `knn_space`, over `knn_workers` Ray Data tasks if > 0),
    `reference` (SDEdit at noise `level` by generation 0's model) or `module:function`."""

    name: Literal["self_correct"] = "self_correct"
    corrector: str = "ideal"
    correct_fraction: float = Field(1.0, gt=0, le=1)
    strength: float = Field(1.0, ge=0, le=1)
    k: int = Field(5, ge=1, le=10_000)
    langevin_steps: int = Field(50, ge=1, le=100_000)
    step_size: float = Field(0.05, gt=0, le=10)
    metropolis: bool = False  # ideal: MALA, whose stationary law is the true one at any step
    level: float = Field(0.5, gt=0, le=1)  # reference: SDEdit's noise level
    knn_space: Literal["pixel", "features"] = "pixel"  # features: eval.features' extractor
    knn_workers: int = Field(0, ge=0, le=4096)  # > 0: a Ray Data pass over that many tasks

    @field_validator("corrector")
    @classmethod
    def _named(cls, value: str) -> str:
        """A corrector's name or `module:function`; which names exist is the correctors'
        registry's to say (`collapse.engine.preflight`), which a researcher may extend."""
        if re.fullmatch(r"[A-Za-z_]\w*", value) or USER_CORRECTOR_SPEC.match(value):
            return value
        raise ValueError(f"a corrector's name or module:function, got {value!r}")


def knn_workers(strategy: StrategySection) -> int:
    """The Ray Data tasks the knn corrector's search asks for (0: in the chain's process)."""
    return strategy.knn_workers if isinstance(strategy, SelfCorrectConfig) else 0


@dataclass(frozen=True)
class StrategyRegistration:
    """A strategy: its `strategy:` arm (whose `name` Literal lists the strategy's names, the
    name first, then aliases) and the module whose `STRATEGY` implements it, by path."""

    config: type[StrategySection]
    module: str

    @property
    def names(self) -> tuple[str, ...]:
        return typing.get_args(self.config.model_fields["name"].annotation)


STRATEGIES: list[StrategyRegistration] = [
    StrategyRegistration(NoStrategyConfig, "collapse.strategies.none"),
    StrategyRegistration(ReflowConfig, "collapse.strategies.reflow"),
    StrategyRegistration(RealPairingConfig, "collapse.strategies.real_pairing"),
    StrategyRegistration(OnlinePairingConfig, "collapse.strategies.online_pairing"),
    StrategyRegistration(SelfCorrectConfig, "collapse.strategies.self_correct"),
]


def names() -> list[str]:
    """Every `strategy.name` a config takes, aliases after their strategy's name."""
    return [name for registration in STRATEGIES for name in registration.names]


def registration(name: str) -> StrategyRegistration:
    for found in STRATEGIES:
        if name in found.names:
            return found
    raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(map(repr, names()))}")


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
    return [n for r in STRATEGIES if key in r.config.model_fields for n in r.names]


def validate_strategy(value: Any) -> StrategySection:
    if isinstance(value, StrategySection):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a mapping with a name, got {type(value).__name__}")
    name = value.get("name", "none")
    if not isinstance(name, str) or name not in names():
        allowed = ", ".join(repr(n) for n in names())
        raise _error("name", f"unknown strategy {name!r}; allowed: {allowed}", name)
    arm = registration(name).config
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
