"""`strategy.name: none`: the plain self-consuming loop, with no mitigation."""

from __future__ import annotations

from collapse.config.strategy_section import NoStrategyConfig
from collapse.strategies.protocol import Strategy


class NoStrategy(Strategy):
    config = NoStrategyConfig


STRATEGY = NoStrategy()
