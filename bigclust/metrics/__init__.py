"""Clustering metrics over chunked data: exact where scikit-learn's are, any input size.

- :func:`silhouette_score`, :func:`silhouette_samples`: exact for squared Euclidean
  distances on any number of rows (from per-cluster aggregates), exact for Euclidean
  distances on small data, and a stratified-sample estimate with its standard error;
- :func:`calinski_harabasz_score` (one pass) and :func:`davies_bouldin_score` (two passes).

Inputs are anything :func:`bigclust.as_dask_array` takes, with labels as a NumPy or lazy Dask
array aligned with the rows; per-row outputs follow the input (NumPy or lazy Dask).
"""

from bigclust.metrics._scores import calinski_harabasz_score, davies_bouldin_score
from bigclust.metrics._silhouette import silhouette_samples, silhouette_score

__all__ = [
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "silhouette_samples",
    "silhouette_score",
]
