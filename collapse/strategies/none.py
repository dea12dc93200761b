"""`strategy.name: none`: the plain self-consuming loop, with no mitigation."""

from __future__ import annotations

from typing import Literal

from collapse.strategies.protocol import Strategy, StrategySection


class NoStrategyConfig(StrategySection):
    """`none`: the plain loop: each generation trains on its planned mix of real rows and
    samples as they are."""

    name: Literal["none"] = "none"


class NoStrategy(Strategy):
    names = ("none",)
    config = NoStrategyConfig
