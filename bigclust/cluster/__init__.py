"""K-Means estimators over chunked data."""

from bigclust.cluster._kmeans import KMeans
from bigclust.cluster._minibatch import MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans"]
