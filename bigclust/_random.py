"""Random streams keyed by global row position, so results never depend on the chunking.

A fit's ``random_state`` is turned once into an integer seed (:func:`seed_from`). Every
random quantity attached to rows (k-means|| sampling, mini-batch order, synthetic data) is
drawn per fixed block of ``BLOCK_ROWS`` global rows from
``SeedSequence(seed, spawn_key=(purpose, ..., block))``. A chunk covering rows
``[start, stop)`` regenerates the blocks it overlaps and slices them, so any chunking, worker
count or task order gives the same numbers.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Callable

import numpy as np


class Key(enum.IntEnum):
    """The one table of stream purposes: the first element of every spawn key.

    Numbers are never reused (a stream's numbers must not change under a user's seed when
    another purpose is added); add new purposes at the end of their group.
    """

    # make_blobs (bigclust.datasets)
    BLOBS_CENTERS = 0
    BLOBS_LABELS = 1
    BLOBS_NOISE = 2
    # K-Means seeding (bigclust.cluster._init and its kernels)
    PARALLEL_ROUND = 11
    PLUSPLUS = 12
    FIRST_CENTER = 21
    REDUCE = 22
    RANDOM_ROWS = 23
    FILL = 24
    KMEANS_RUNS = 31
    # mini-batch K-Means
    SEGMENT_ORDER = 41
    ROW_ORDER = 42
    REASSIGN = 43
    MINIBATCH_INIT_ROWS = 51
    MINIBATCH_INIT_RUN = 52
    MINIBATCH_VALIDATION = 53
    # mixtures
    MIXTURE_RANDOM = 61
    MIXTURE_FROM_DATA = 62
    MIXTURE_KMEANSPP = 63
    MIXTURE_KMEANS = 64
    MIXTURE_SAMPLE = 65
    # clustering metrics
    SILHOUETTE_SAMPLE = 71


#: Relative difference below which two runs' objectives count as equal (summation order,
#: hence the chunking, moves the last digits of a sum over millions of rows).
TIE_RTOL = 1e-9


def better(candidate: float, best: float | None, *, larger: bool = True) -> bool:
    """Whether ``candidate`` beats ``best`` by more than rounding (``TIE_RTOL``).

    Choosing the best of ``n_init`` runs this way ignores differences in the last digits, so
    runs that reach the same optimum keep the earliest whatever the chunking.
    """
    if best is None:
        return True
    if math.isinf(best) or math.isinf(candidate):
        return candidate > best if larger else candidate < best
    margin = TIE_RTOL * max(abs(candidate), abs(best))
    return candidate > best + margin if larger else candidate < best - margin


#: Rows per random block. Chunks are aligned to it where we choose them (make_blobs).
BLOCK_ROWS = 1 << 16


def seed_from(random_state) -> int:
    """Turn ``None``, an int, a ``RandomState`` or a ``Generator`` into a 63-bit integer seed.

    ``None`` draws fresh entropy, as scikit-learn's ``None`` does; an int is used as is, so
    the same int always gives the same streams.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(2, np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state={random_state} should be >= 0.")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**62, dtype=np.int64))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**62))
    raise TypeError(
        f"random_state={random_state!r} should be None, an int, a numpy RandomState or a "
        "numpy Generator."
    )


def generator(seed: int, *key: int) -> np.random.Generator:
    """A Generator for one purpose, independent of every other key under the same seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def rows_random(
    seed: int,
    key: tuple[int, ...],
    start: int,
    stop: int,
    draw: Callable[[np.random.Generator, int], np.ndarray],
    block_rows: int = BLOCK_ROWS,
) -> np.ndarray:
    """Random values for global rows ``[start, stop)``, identical for any chunking.

    Parameters
    ----------
    seed : int
        From :func:`seed_from`.
    key : tuple of int
        Identifies the purpose (and e.g. the round) of these numbers.
    start, stop : int
        Global row range.
    draw : callable
        ``draw(rng, n)`` returns an array whose first axis has ``n`` rows. It must draw rows
        in order, so a block's first ``m`` rows do not depend on how many are drawn.
    block_rows : int
        Rows per random block.

    Returns
    -------
    ndarray
        ``draw``'s rows for ``[start, stop)``.
    """
    first, last = start // block_rows, (stop - 1) // block_rows
    parts = []
    for block in range(first, last + 1):
        lo, hi = block * block_rows, (block + 1) * block_rows
        # Draw only up to the last row needed: a block prefix is stable under `draw`'s contract.
        values = draw(generator(seed, *key, block), min(hi, stop) - lo)
        parts.append(values[max(start, lo) - lo :])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
