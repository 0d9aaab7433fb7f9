"""Mixture models over chunked data: one pass per EM (or variational) iteration."""

from bigclust.mixture._base import BaseMixture
from bigclust.mixture._bayesian_mixture import BayesianGaussianMixture
from bigclust.mixture._gaussian_mixture import GaussianMixture
from bigclust.mixture._percentile import percentile

__all__ = ["BaseMixture", "BayesianGaussianMixture", "GaussianMixture", "percentile"]
