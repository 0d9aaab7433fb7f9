"""bigclust: clustering for datasets larger than one machine's memory, on Dask."""

from bigclust import metrics, model_selection
from bigclust._checkpoint import CheckpointMismatchError
from bigclust._percentile import percentile
from bigclust._persist import ModelFileError, load, save, to_sklearn
from bigclust._progress import set_progress
from bigclust.cluster import KMeans, MiniBatchKMeans
from bigclust.datasets import write_zarr
from bigclust.io import as_dask_array
from bigclust.mixture import BayesianGaussianMixture, GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "BayesianGaussianMixture",
    "CheckpointMismatchError",
    "GaussianMixture",
    "KMeans",
    "MiniBatchKMeans",
    "ModelFileError",
    "__version__",
    "as_dask_array",
    "load",
    "metrics",
    "model_selection",
    "percentile",
    "save",
    "set_progress",
    "to_sklearn",
    "write_zarr",
]
