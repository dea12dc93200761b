"""Mitigations of collapse: one module per strategy, each a `Strategy` (`protocol`), and this
registry, the one list of strategies: the config's `strategy:` union is built from it.

- `none` (none.py): the plain loop.
- `reflow` (reflow.py): rectified flow trained on its own (noise, sample) pairs.
- `rca_reflow` / `ra_reflow` (real_pairing.py): reflow with real rows paired by reverse flow.
- `ocar` / `ora_reflow` (online.py): the same pairs made per mini-batch, nothing stored.
- `self_correct` (self_correct.py): samples moved toward the true distribution by a corrector
  (correctors.py, the correctors' registry; langevin.py, true_draws.py, user_corrector.py).

A new strategy is a module with its config (a `StrategySection` whose `name` is a Literal of
its names) and its `Strategy`, plus one line in `STRATEGIES`.
"""

from __future__ import annotations

from collapse.strategies.none import NoStrategy
from collapse.strategies.online import OnlinePairing
from collapse.strategies.protocol import Strategy
from collapse.strategies.real_pairing import RealPairing
from collapse.strategies.reflow import Reflow
from collapse.strategies.self_correct import SelfCorrection

STRATEGIES: list[Strategy] = [
    NoStrategy(),
    Reflow(),
    RealPairing(),
    OnlinePairing(),
    SelfCorrection(),
]


def names() -> list[str]:
    """Every `strategy.name` a config takes, aliases after their strategy's name."""
    return [name for strategy in STRATEGIES for name in strategy.names]


def get_strategy(name: str) -> Strategy:
    for strategy in STRATEGIES:
        if name in strategy.names:
            return strategy
    raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(map(repr, names()))}")
