"""Counter-based random bits: a pure function of (seed, episode, stream, attempt, index).

Vectorised environments must draw layouts for thousands of sub-environments without a Python
loop, yet sub-environment ``i`` must replay a single environment seeded with ``seed + i``. A
stateful generator per sub-environment cannot do both; a hash of counters can. We use the
SplitMix64 finaliser (Steele et al., 2014), a bijective mixer with full avalanche, chained over
the counters.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def episode_bits(seed: np.ndarray, episode: np.ndarray, stream: int,
                 attempt: int | np.ndarray, count: int) -> np.ndarray:
    """Random 64-bit words, ``(len(seed), count)``, one row per (seed, episode) pair.

    Args:
        seed: ``(R,)`` uint64 seeds.
        episode: ``(R,)`` uint64 episode indices.
        stream: which quantity is drawn (layout, task, ...), so streams never overlap.
        attempt: a further counter (redraws for rejection sampling, or a time step), one
            for all rows or ``(R,)``.
        count: words per row.
    """
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(seed, dtype=np.uint64) * _GOLDEN + np.uint64(stream))
        h = _mix(h ^ (np.asarray(episode, dtype=np.uint64) * _M1))
        h = _mix(h + np.asarray(attempt, dtype=np.uint64) * _M2)
        idx = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
        return _mix(h[:, None] ^ idx[None, :])
