"""Gaussian mixture models fitted by distributed EM."""

from bigclust.mixture._gaussian_mixture import BaseMixture, GaussianMixture
from bigclust.mixture._percentile import percentile

__all__ = ["BaseMixture", "GaussianMixture", "percentile"]
