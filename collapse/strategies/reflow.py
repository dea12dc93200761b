"""`strategy.name: reflow`: the self-consuming reflow loop of rectified flow (Liu et al. 2022).

Each generation's samples are stored with the noise they were drawn from, and the next
generation trains on those (noise, sample) pairs instead of fresh independent noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from collapse.strategies.protocol import Strategy, StrategySection

if TYPE_CHECKING:
    from collapse.config import ChainConfig

FLOW_FAMILY = "rectified_flow"  # the family whose samples are a deterministic flow of noise


class ReflowConfig(StrategySection):
    """`reflow` (rectified_flow only): each generation's samples keep their noise, and the
    next generation trains on those (noise, sample) pairs instead of fresh independent noise:
    the self-consuming reflow loop of Zhu et al. (arXiv 2412.08175) that collapses."""

    name: Literal["reflow"] = "reflow"


def needs_flow(config: ChainConfig) -> str | None:
    """The reflow strategies pair noise with samples by a flow's ODE: rectified flow only."""
    if config.model.family == FLOW_FAMILY:
        return None
    return f"strategy.name: {config.strategy.name} needs model.family {FLOW_FAMILY}"


class Reflow(Strategy):
    names = ("reflow",)
    config = ReflowConfig
    keeps_noise = True

    def check(self, config: ChainConfig) -> str | None:
        return needs_flow(config)
