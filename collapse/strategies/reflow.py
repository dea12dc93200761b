"""`strategy.name: reflow`: the self-consuming reflow loop of rectified flow (Liu et al. 2022).

Each generation's samples are stored with the noise they were drawn from, and the next
generation trains on those (noise, sample) pairs instead of fresh independent noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collapse.config.strategy_section import ReflowConfig
from collapse.strategies.protocol import Strategy

if TYPE_CHECKING:
    from collapse.config import ChainConfig

FLOW_FAMILY = "rectified_flow"  # the family whose samples are a deterministic flow of noise


def needs_flow(config: ChainConfig) -> str | None:
    """The reflow strategies pair noise with samples by a flow's ODE: rectified flow only."""
    if config.model.family == FLOW_FAMILY:
        return None
    return f"strategy.name: {config.strategy.name} needs model.family {FLOW_FAMILY}"


class Reflow(Strategy):
    config = ReflowConfig
    keeps_noise = True

    def check(self, config: ChainConfig) -> str | None:
        return needs_flow(config)


STRATEGY = Reflow()
