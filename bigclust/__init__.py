"""bigclust: clustering for datasets larger than one machine's memory, on Dask."""

from bigclust.cluster import KMeans
from bigclust.io import as_dask_array

__version__ = "0.1.0"

__all__ = ["KMeans", "__version__", "as_dask_array"]
