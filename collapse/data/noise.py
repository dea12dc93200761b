"""Per-row noise that depends only on (seed, row id), never on batching or on which worker draws it.

Distributed sampling splits a generation's rows over any number of actors and batch sizes; a
sample must still be a function of the run's seed and the row alone, or a resumed or re-scaled
run would not reproduce. A counter-based generator gives that: row `id` of stream `stream`
gets the SplitMix64 sequence seeded by hash(seed, stream, id) (Steele et al. 2014, the
generator Java's SplittableRandom uses), turned into standard normals by Box-Muller. It is
vectorised over rows, so it costs about what numpy's own generator does.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that scrambles every input bit."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def row_uniforms(seed: int, ids: np.ndarray, k: int, stream: int = 0) -> np.ndarray:
    """(len(ids), k) uniforms in [0, 1), row i a function of (seed, stream, ids[i]) only."""
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed], dtype=np.uint64) * _GOLDEN + np.uint64(stream))
        state = _mix(np.asarray(ids, dtype=np.uint64) ^ key)[:, None]
        steps = np.arange(1, k + 1, dtype=np.uint64)[None, :] * _GOLDEN
        bits = _mix(state + steps)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def row_normals(seed: int, ids: np.ndarray, k: int, stream: int = 0) -> np.ndarray:
    """(len(ids), k) standard normals, row i a function of (seed, stream, ids[i]) only."""
    pairs = (k + 1) // 2
    u = row_uniforms(seed, ids, 2 * pairs, stream)
    radius = np.sqrt(-2.0 * np.log1p(-u[:, :pairs]))  # 1 - u is in (0, 1]: log is finite
    angle = 2.0 * np.pi * u[:, pairs:]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :k]
