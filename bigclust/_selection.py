"""The rows with the smallest keys in each cluster, as a statistic that merges as a tree.

Used for cluster representatives (key: distance to the center) and stratified samples (key:
a uniform random number per row). Pure NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TopPerCluster"]


class TopPerCluster:
    """For each cluster, the rows with the smallest keys (at most ``limit[c]`` of them),
    ties broken by global row so that the choice ignores the chunking."""

    __slots__ = ("cluster", "finite", "index", "keys", "limit", "rows")

    def __init__(self, limit, keys, index, cluster, rows, finite=True):
        self.limit = limit  # (K,) int
        self.keys = keys  # (r,) float64
        self.index = index  # (r,) int64 global rows
        self.cluster = cluster  # (r,) intp
        self.rows = rows  # (r, d)
        # False when a key of a row not kept was NaN (the driver then names the row).
        self.finite = finite

    @classmethod
    def select(cls, limit, keys, index, cluster, rows_of, finite=True) -> TopPerCluster:
        """Keep the smallest keys per cluster; ``rows_of(positions)`` gives their rows."""
        finite = finite and bool(np.isfinite(keys).all())
        order = np.lexsort((index, keys, cluster))
        sorted_cluster = cluster[order]
        first = np.searchsorted(sorted_cluster, sorted_cluster, side="left")
        keep = order[(np.arange(len(order)) - first) < limit[sorted_cluster]]
        return cls(limit, keys[keep], index[keep], cluster[keep], rows_of(keep), finite)

    def combine(self, other: TopPerCluster) -> TopPerCluster:
        rows = np.concatenate([self.rows, other.rows])
        return TopPerCluster.select(
            self.limit,
            np.concatenate([self.keys, other.keys]),
            np.concatenate([self.index, other.index]),
            np.concatenate([self.cluster, other.cluster]),
            lambda keep: rows[keep],
            self.finite and other.finite,
        )

    def all_finite(self) -> bool:
        return self.finite and bool(np.isfinite(self.rows).all())
