"""Cluster a Zarr store chunk by chunk and write the labels back to Zarr, on a local cluster.

    python examples/kmeans_out_of_core.py                 # 2,000,000 x 16 float32 (128 MB)
    python examples/kmeans_out_of_core.py --n-samples 50000 --workers 1

The client never holds the data or the labels: the workers read the store every pass and write
the labels. Swap the LocalCluster for Client("tcp://...") to run the same code on a cluster, and
the paths for s3:// URLs to read from object storage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from distributed import Client, LocalCluster

import bigclust
from bigclust.datasets import make_blobs, write_zarr


def run(n_samples: int, n_features: int, n_clusters: int, workers: int, workdir: Path) -> float:
    X, y = make_blobs(n_samples, n_features, centers=n_clusters, random_state=0)
    store = write_zarr(X, workdir / "features.zarr")
    print(f"wrote {store.shape} {store.dtype} to {workdir / 'features.zarr'}")

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        start = time.perf_counter()
        km = bigclust.KMeans(n_clusters, random_state=0).fit(str(workdir / "features.zarr"))
        print(
            f"fit in {time.perf_counter() - start:.1f} s: {km.n_iter_} iterations, "
            f"inertia {km.inertia_:.5g}"
        )
        km.labels_.to_zarr(str(workdir / "labels.zarr"))

    labels = zarr.open_array(str(workdir / "labels.zarr"), mode="r")
    sizes = np.bincount(labels[:], minlength=n_clusters)
    print(f"labels written to {workdir / 'labels.zarr'}; cluster sizes {sizes.tolist()}")
    from sklearn.metrics import adjusted_rand_score

    agreement = adjusted_rand_score(y.compute(), labels[:])
    print(f"adjusted Rand index against the generating blobs: {agreement:.4f}")
    return agreement


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-clusters", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        return run(args.n_samples, args.n_features, args.n_clusters, args.workers, Path(tmp))


if __name__ == "__main__":
    main()
