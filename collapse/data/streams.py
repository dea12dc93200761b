"""The chain's random streams: every draw a chain makes comes from a stream keyed by its seed,
a purpose and (where it differs per generation) the generation, so a resumed chain replays the
uninterrupted one bit for bit, whatever ran where. Listing them in one place keeps two
purposes from ever sharing a stream.

Row streams (`collapse.data.noise`: one row's draws a function of (seed, stream, row id)):
a generation's samples use the generation number itself; the others sit far above any
generation number and add the generation to their base.

Generator streams (numpy's `default_rng([seed, stream, ...])`): a closed-form fit, a user
corrector's `rng`, the training feed's epoch permutations.
"""

from __future__ import annotations

import numpy as np

# row streams (`row_normals` / `row_uniforms`); "+ g": the base plus the generation
GRID = (1 << 63) + 1  # the fixed noise of an image generation's sample grid
CHOICE = 1 << 62  # + g: which samples the self-correction corrects
LANGEVIN = 3 << 61  # + g: the ideal and reference correctors' noise
ACCEPT = 5 << 60  # + g: the ideal corrector's Metropolis decisions
TRUE_DRAW = 7 << 60  # + g: the exact corrector's draws of the true distribution

# generator streams (`default_rng([seed, stream, ...])`)
FIT = 2  # a closed-form family's fit: (seed, FIT, generation)
USER_CORRECTOR = 5  # the `rng` a user's corrector gets: (seed, USER_CORRECTOR, generation)
SHUFFLE = 0x5EED  # the training feed's epoch permutations: (seed, SHUFFLE, epoch, ...)

_GENERATIONS = 100_003  # a prime above any chain length the config allows a trained chain


def training_seed(seed: int, generation: int) -> int:
    """The seed a trained generation's feed, initial weights and noise/time draws are keyed by
    (`collapse.training.loop`, `collapse.data.feed`)."""
    return seed * _GENERATIONS + generation


def generator(seed: int, stream: int, generation: int) -> np.random.Generator:
    """numpy's generator of one purpose of one generation."""
    return np.random.default_rng([seed, stream, generation])
