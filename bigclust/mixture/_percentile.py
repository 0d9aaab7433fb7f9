"""Kept so that ``bigclust.mixture._percentile.percentile`` still imports; the implementation
lives in :mod:`bigclust._percentile` (it is not specific to mixtures)."""

from bigclust._percentile import percentile

__all__ = ["percentile"]
