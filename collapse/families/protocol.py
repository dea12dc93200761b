"""What a model family is, as abstract base classes: the chain calls nothing else of it.

A family is one object (its module's `FAMILY`), registered with its config section in
`collapse.config.model_section.FAMILIES`. Every family says how to draw a sample from stored
parameters; a closed-form family fits them in the chain's process, a trained one trains a net
on Ray Train and packs its weights. The flags (`trained`, `latent`, `captioned`,
`fits_by_moments`) say which of these a family is, so callers branch on them, never on which
methods an object has.

- Parameters are named numpy arrays, arrays only: they are stored as `model/params.npz` and
  loaded without pickle, so any process (a Ray Data sampling actor on another node included)
  samples from the file alone.
- `noise_dim(params)` and `sample(params, noise)`: one float32 row of (n, d) per row of
  standard-normal `noise` (n, noise_dim). A sample is a deterministic function of its noise
  row, as a flow's or a diffusion model's is of its initial noise, so distributed sampling
  reproduces whatever the batching (`collapse.data.noise`). A discrete choice (a KDE point, a
  mixture component, a caption) reads its uniform as Phi(noise[:, 0]).
- `biased_columns(params)`: the noise columns MAD's sampling bias scales (the continuous
  noise, not the column of a discrete choice).
- `describe(params)`: metrics only the fitted model knows (the gaussian family's `sigma2`).

The methods are pure: no Ray, no I/O, all randomness from `rng` or the noise, so a generation
is reproducible from its seed wherever it runs. A family subclasses one of these classes: their
method bodies are the defaults it inherits, an abstract method one it must define (a family
missing one cannot be made), and callers that need a kind's methods narrow to its class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from collapse.data.space import DataSpace
    from collapse.families.moments import Moments
    from collapse.training.loop import Objective

Params = dict[str, np.ndarray]


class Family(ABC):
    """What every family gives the chain."""

    name: str  # as registered, and as a config's `model.family` names it
    trained: bool  # trains a net on Ray Train (TrainedFamily), else fits in closed form
    latent: bool  # trains on the data's VAE latents (`collapse.engine.latent_cache`)
    captioned: bool  # draws each sample for a caption of the real set

    @abstractmethod
    def noise_dim(self, params: Params) -> int: ...

    @abstractmethod
    def sample(self, params: Params, noise: np.ndarray) -> np.ndarray: ...

    def describe(self, params: Params) -> dict[str, float]:
        return {}

    def biased_columns(self, params: Params) -> slice:
        return slice(None)

    def captions(self, params: Params, noise: np.ndarray) -> list[str] | None:
        """The caption each noise row's sample is drawn for; None where not captioned."""
        return None


class ClosedFormFamily(Family):
    """A model fitted in closed form (or by EM) to the generation's rows, in-process."""

    trained: Literal[False] = False
    latent: Literal[False] = False
    captioned: bool = False
    fits_by_moments: bool = False  # a MomentFamily

    @abstractmethod
    def fit(self, x: np.ndarray, config: Any, rng: np.random.Generator) -> Params:
        """Parameters fitted to training rows `x` (float32, (N, d)) under the family's
        `model:` section; any randomness from `rng`."""


class MomentFamily(ClosedFormFamily):
    """A closed-form family whose fit reads its rows only through mergeable moments
    (`collapse.families.moments`): an accumulate chain merges each generation's samples into a
    running total once, instead of refitting every sample so far at every generation."""

    fits_by_moments: Literal[True] = True

    @abstractmethod
    def moments(self, x: np.ndarray, config: Any) -> Moments:
        """The moments of training rows `x` that the fit needs."""

    @abstractmethod
    def fit_moments(self, moments: Moments, config: Any) -> Params:
        """Parameters fitted to rows with these moments."""

    def fit(self, x: np.ndarray, config: Any, rng: np.random.Generator) -> Params:
        del rng  # a fit from moments is deterministic given its data
        return self.fit_moments(self.moments(x, config), config)


class TrainedFamily(Family):
    """A net trained each generation on Ray Train by the shared loop (`collapse.training`);
    its parameters are the EMA weights (`w.<name>` arrays) plus a JSON `spec` from which any
    process rebuilds the model."""

    trained: Literal[True] = True
    latent: bool = False
    captioned: bool = False

    @abstractmethod
    def build_net(self, config: Any, space: DataSpace) -> torch.nn.Module:
        """The untrained net of the `model:` section for data in `space`."""

    @abstractmethod
    def objective(self, config: Any, space: DataSpace) -> Objective:
        """The loss the training loop minimises (`collapse.training.loop.Objective`)."""

    @abstractmethod
    def weights(self, params: Params) -> dict[str, np.ndarray]:
        """The trained weights in the parameters (a warm start's, or a frozen model's)."""

    @abstractmethod
    def to_params(
        self,
        weights: dict[str, np.ndarray],
        config: Any,
        space: DataSpace,
        steps: int,
        captions: Sequence[str] | None = None,
    ) -> Params:
        """Parameters of trained `weights`, sampled in `steps` steps; a captioned family's
        are drawn for `captions` (the real set's)."""

    @abstractmethod
    def export(self, params: Params) -> tuple[str, dict[str, bytes]]:
        """(format, {path under gen-k/: bytes}): the model in its ecosystem's own format
        (`collapse.families.export`)."""


class DenoisingFamily(TrainedFamily):
    """A trained family that denoises data rows (the `reference` corrector's model)."""

    @abstractmethod
    def sdedit(self, params: Params, x: np.ndarray, level: float, noise: np.ndarray) -> np.ndarray:
        """SDEdit (Meng et al. 2022): rows `x` noised to `level` of the way to the noise
        and integrated back."""


class FlowFamily(DenoisingFamily):
    """Rectified flow: what the reflow strategies and the flow metrics use of it."""

    @abstractmethod
    def sample(self, params: Params, noise: np.ndarray, steps: int | None = None) -> np.ndarray: ...

    @abstractmethod
    def reverse(
        self, params: Params, x: np.ndarray, sde_sigma: float | None, steps: int, seed: int
    ) -> np.ndarray:
        """The noise the model pairs with data rows `x` (reverse ODE, or reverse SDE)."""

    @abstractmethod
    def flow_metrics(
        self,
        params: Params,
        names: Sequence[str],
        noise: np.ndarray,
        real: np.ndarray,
        headline: str | None,
        score: Callable[[np.ndarray], float],
    ) -> dict[str, float]:
        """The flow metrics `names` asks for (`collapse.config.metric_names`)."""
