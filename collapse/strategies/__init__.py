"""Mitigations of collapse: one module per strategy, each defining `STRATEGY`, a `Strategy`
(`protocol`), registered with its config arm in `collapse.config.strategy_section.STRATEGIES`,
the one list of strategies, which names each module by path.

- `none` (none.py): the plain loop.
- `reflow` (reflow.py): rectified flow trained on its own (noise, sample) pairs.
- `rca_reflow` / `ra_reflow` (real_pairing.py): reflow with real rows paired by reverse flow.
- `ocar` / `ora_reflow` (online_pairing.py): the same pairs made per mini-batch, nothing stored.
- `self_correct` (self_correct.py): samples moved toward the true distribution by a corrector
  (correctors.py, the correctors' registry; langevin.py, true_draws.py, user_corrector.py).

A strategy's module is imported on first use, so a chain loads only its own strategy's code.
"""

from __future__ import annotations

import importlib

from collapse.config.strategy_section import registration
from collapse.strategies.protocol import Strategy


def get_strategy(name: str) -> Strategy:
    """The registered strategy `name` (a name or an alias; its module imported now)."""
    strategy: Strategy = importlib.import_module(registration(name).module).STRATEGY
    return strategy
