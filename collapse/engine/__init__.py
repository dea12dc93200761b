"""The chain engine: what one generation computes, apart from where it runs.

- `generation`: `ChainEngine`, the generation loop (plan, train, sample, strategy, evaluate,
  commit), and the manifest record it writes.
- `history`: what a chain reads back from its run (real pool, held-out rows, samples, models).
- `fit`: a generation's model: a closed-form fit here, or a trained family's inputs handed to
  the backend's trainer (`FitContext`: what fitting reads).
- `sampling` (`SampleJob`), `evaluation` (`Evaluator`), `latent_cache` (a latent family's VAE
  latents), `pictures` (samples.png and sample sheets).
- `backend`: the `Backend` and `Trainer` protocols, and `LocalBackend` (this process, no Ray).
- `preflight`: the checks of a config that need code (strategies, metrics, a dataset's index).
- `run_opening`: a run created or resumed and made ready for its next generation.
- `measurement`: a stored generation measured again (`collapse evaluate`).

Nothing here imports Ray: `collapse.distributed` imports this package (its Ray backend runs
this same engine), never the other way round.
"""

from collapse.engine.backend import Backend, LocalBackend, Trainer, TrainingJob
from collapse.engine.generation import ChainEngine

__all__ = ["Backend", "ChainEngine", "LocalBackend", "Trainer", "TrainingJob"]
