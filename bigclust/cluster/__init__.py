"""K-Means estimators over chunked data."""

from bigclust.cluster._kmeans import KMeans

__all__ = ["KMeans"]
