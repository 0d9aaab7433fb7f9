"""bigclust: clustering for datasets larger than one machine's memory, on Dask."""

from bigclust._persist import ModelFileError, load, save, to_sklearn
from bigclust.cluster import KMeans, MiniBatchKMeans
from bigclust.datasets import write_zarr
from bigclust.io import as_dask_array
from bigclust.mixture import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "KMeans",
    "MiniBatchKMeans",
    "ModelFileError",
    "__version__",
    "as_dask_array",
    "load",
    "save",
    "to_sklearn",
    "write_zarr",
]
