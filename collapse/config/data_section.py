"""`data:`: where the real data comes from, how much of it, and how generations mix it in."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from collapse.config.base import Section
from collapse.config.schedule import check_real_fraction

IDEAL_SOURCES = ("toy:gaussian", "toy:mog8")  # sources whose true density is known
LOOPS = ("fully_synthetic", "synthetic_augmentation", "fresh_data", "accumulate")
TOY_SOURCES = {"gaussian": None, "mog8": 2, "two_moons": 2}  # name -> fixed dim (None: data.dim)
EXACT_SOURCES = tuple(f"toy:{n}" for n in TOY_SOURCES)  # sources whose true sampler is known
BUILTIN_SOURCES = ("sklearn:digits", "torchvision:cifar10", "torchvision:mnist")
SOURCE_FORMS = (*(f"toy:{n}" for n in TOY_SOURCES), *BUILTIN_SOURCES, "folder:PATH", "parquet:URI")

Loop = Literal["fully_synthetic", "synthetic_augmentation", "fresh_data", "accumulate"]


def check_source(real: str) -> str:
    kind, _, rest = real.partition(":")
    known = (
        (kind == "toy" and rest in TOY_SOURCES)
        or real in BUILTIN_SOURCES
        or (kind in ("folder", "parquet") and bool(rest))
    )
    if not known:
        raise ValueError(f"unknown source {real!r}; allowed: {', '.join(SOURCE_FORMS)}")
    return real


class DataConfig(Section):
    real: str = "toy:mog8"
    dim: int = Field(2, ge=1, le=65536)
    n_real: int = Field(2000, ge=2, le=10**9)
    n_train: int = Field(2000, ge=2, le=10**9)
    loop: Loop = "fully_synthetic"
    # a number, or a schedule over generations (collapse.config.schedule)
    real_fraction: float | list[float] | dict[str, list[float]] = 0.0
    n_eval: int = Field(2000, ge=2, le=10**9)

    @field_validator("real")
    @classmethod
    def _known_source(cls, real: str) -> str:
        return check_source(real)

    @field_validator("real_fraction", mode="before")
    @classmethod
    def _real_fraction(cls, value: Any) -> Any:
        return check_real_fraction(value)

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        kind, _, name = self.real.partition(":")
        fixed = TOY_SOURCES.get(name) if kind == "toy" else None
        if fixed is not None and self.dim != fixed:
            raise ValueError(
                f"{self.real} is {fixed}-dimensional; dim must be {fixed}, got {self.dim}"
            )
        if self.n_train > self.n_real:
            raise ValueError(
                f"n_train ({self.n_train}) exceeds n_real ({self.n_real}): generation 0 trains "
                "on n_train real rows"
            )
        return self


def data_kind(real: str) -> str | None:
    """ "vector" or "image" for the built-in sources; None for a parquet dataset, whose index
    says which (read when the run opens it)."""
    kind = real.partition(":")[0]
    return {"toy": "vector", "parquet": None}.get(kind, "image")


# Rows of the built-in sources' splits (train, test; sklearn:digits: the fixed 80/20 cut of its
# 1797 images, collapse.data.sources).
BUILTIN_ROWS = {
    "sklearn:digits": (1437, 360),
    "torchvision:cifar10": (50_000, 10_000),
    "torchvision:mnist": (60_000, 10_000),
}
