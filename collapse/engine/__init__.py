"""The chain engine: what one generation computes, apart from where it runs.

- `generation`: `ChainEngine`, the generation loop (plan, train, sample, strategy, evaluate,
  commit), and the manifest record it writes.
- `history`: what a chain reads back from its run (real pool, held-out rows, samples, models).
- `training`: a generation's model: a closed-form fit here, or a trained family's inputs
  handed to the backend's trainer.
- `backend`: the `Backend` and `Trainer` protocols, and `LocalBackend` (this process, no Ray).

`collapse.chain` opens runs and drives an engine on Ray (`collapse.distributed`); nothing here
imports Ray, and `collapse.distributed` imports this package, never the other way round.
"""

from collapse.engine.backend import Backend, LocalBackend, Trainer, TrainingJob
from collapse.engine.generation import ChainEngine

__all__ = ["Backend", "ChainEngine", "LocalBackend", "Trainer", "TrainingJob"]
