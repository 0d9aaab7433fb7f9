"""K-Means estimators over chunked data, and cluster representatives."""

from bigclust.cluster._kmeans import KMeans
from bigclust.cluster._minibatch import MiniBatchKMeans
from bigclust.cluster._representatives import (
    Representatives,
    propagate_labels,
    representatives,
)

__all__ = ["KMeans", "MiniBatchKMeans", "Representatives", "propagate_labels", "representatives"]
