"""Toy real-data sources: distributions whose truth is known, so collapse can be measured exactly.

Rows are drawn i.i.d. from `rng` alone (no global or library-held random state), so a chain
seeded the same way sees the same real pool, and any subset of a draw (train, eval, fresh
rows) is itself an i.i.d. sample of the source.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np


class Draws(Protocol):
    """What a toy source draws with: numpy's `Generator`, or any object with these three of its
    methods (the exact corrector's per-row draws, `collapse.strategies.true_draws`)."""

    def integers(self, low: int, high: int | None = None, size: Any = None) -> Any: ...

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any: ...

    def standard_normal(self, size: Any = None) -> Any: ...


MOG8_RADIUS = 2.0
MOG8_STD = 0.2
MOONS_NOISE = 0.05

# two_moons is standardised with its population moments, computed in closed form for angles
# uniform on [0, pi], a fair choice of moon and the noise. Constants rather than the draw's own
# moments keep every draw (and every generation's samples, compared against it) on one scale.
_MOON_MEAN = np.array([0.5, 0.25])
_MOON_STD = np.sqrt(
    np.array(
        [
            0.5 + 0.25,  # within-moon var of cos + between-moon var of the x offsets 0 and 1
            (0.5 - 4 / math.pi**2) + (4 / math.pi - 0.5) ** 2 / 4,  # same for y
        ]
    )
    + MOONS_NOISE**2
)


def toy_sample(name: str, n: int, dim: int, rng: Draws) -> np.ndarray:
    """Draw `n` rows of the toy source `name` as float32 (n, dim).

    Only `rng.integers`, `rng.uniform` and `rng.standard_normal` are called, each with `n` rows
    first: the exact corrector passes a per-row stand-in (collapse.strategies.true_draws)."""
    if name == "gaussian":
        x = rng.standard_normal((n, dim))
    elif name == "mog8":
        _require_2d(name, dim)
        x = _mog8(n, rng)
    elif name == "two_moons":
        _require_2d(name, dim)
        x = (_two_moons(n, rng) - _MOON_MEAN) / _MOON_STD
    else:
        raise ValueError(f"unknown toy source {name!r}; allowed: gaussian, mog8, two_moons")
    return x.astype(np.float32)


def _require_2d(name: str, dim: int) -> None:
    if dim != 2:
        raise ValueError(f"toy source {name!r} is 2-dimensional; dim must be 2, got {dim}")


def _mog8(n: int, rng: Draws) -> np.ndarray:
    angle = 2 * np.pi * rng.integers(8, size=n) / 8
    centres = MOG8_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + MOG8_STD * rng.standard_normal((n, 2))


def _two_moons(n: int, rng: Draws) -> np.ndarray:
    """sklearn's make_moons geometry, with random angles and moons so rows are i.i.d."""
    theta = rng.uniform(0.0, np.pi, size=n)
    inner = rng.integers(2, size=n).astype(bool)
    x = np.where(inner, 1.0 - np.cos(theta), np.cos(theta))
    y = np.where(inner, 0.5 - np.sin(theta), np.sin(theta))
    return np.stack([x, y], axis=1) + MOONS_NOISE * rng.standard_normal((n, 2))
