"""Model families: each says how to fit one generation and sample from it, nothing more.

Every family module follows one protocol, so the chain (and the distributed layer) can treat
them alike and a unit test can run a whole generation with three calls:

- ``fit(x, config, rng) -> dict[str, np.ndarray]``: fit the model to training rows ``x``
  (float32, (N, d)) under the family's config section; the result is the model's parameters as
  named numpy arrays, arrays only, because they are stored as an ``.npz`` and loaded without
  pickle.
- ``noise_dim(params) -> int`` and ``sample(params, noise) -> np.ndarray``: one float32 row of
  (n, d) per row of standard-normal ``noise`` (n, noise_dim), from fitted parameters (as
  returned by ``fit`` or loaded back from the ``.npz``). A sample is a deterministic function
  of its noise row, as in a flow or a diffusion model's initial noise, so distributed sampling
  reproduces whatever the batching (``collapse.noise``). A discrete choice (a KDE point, a
  mixture component) reads its uniform as Phi(noise[:, 0]).
- ``describe(params) -> dict[str, float]``: metrics that only the fitted model itself knows
  (the gaussian family's ``sigma2`` and ``log_sigma2``); ``{}`` where there are none.

They are pure functions: no Ray, no I/O, and all randomness comes from ``rng`` or the noise, so
a generation is reproducible from its seed wherever it runs. Modules are imported on first use
so that a run of one family does not pay for the imports of the others.
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("gaussian", "kde", "gmm", "rectified_flow", "ddpm", "stable_diffusion")


def get_family(name: str) -> ModuleType:
    if name not in NAMES:
        raise ValueError(f"unknown model family {name!r}; allowed: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")
