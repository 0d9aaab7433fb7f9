"""bigclust: clustering for datasets larger than one machine's memory, on Dask."""

from bigclust._progress import set_progress
from bigclust.cluster import KMeans, MiniBatchKMeans
from bigclust.io import as_dask_array
from bigclust.mixture import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "KMeans",
    "MiniBatchKMeans",
    "__version__",
    "as_dask_array",
    "set_progress",
]
