"""`bigclust kmeans` end to end on a Zarr store."""

from __future__ import annotations

import numpy as np
import zarr
from sklearn.cluster import KMeans as SkKMeans

from bigclust.cli import main


def test_kmeans_command_writes_centers_and_labels(tmp_path, capsys):
    data = str(tmp_path / "data.zarr")
    assert (
        main(
            [
                "make-blobs",
                data,
                "--n-samples",
                "5000",
                "--n-features",
                "3",
                "--centers",
                "3",
                "--seed",
                "1",
                "--chunk-rows",
                "700",
                "--no-progress",
            ]
        )
        == 0
    )
    centers, labels = tmp_path / "centers.npy", str(tmp_path / "labels.zarr")
    assert (
        main(
            [
                "kmeans",
                data,
                "--n-clusters",
                "3",
                "--scheduler",
                "threads",
                "--centers-out",
                str(centers),
                "--labels-out",
                labels,
            ]
        )
        == 0
    )
    assert "inertia" in capsys.readouterr().out
    X = zarr.open_array(data, mode="r")[:]
    ours_centers, ours_labels = np.load(centers), zarr.open_array(labels, mode="r")[:]
    sk = SkKMeans(3, init=ours_centers, n_init=1, max_iter=1).fit(X)
    np.testing.assert_array_equal(ours_labels, sk.predict(X))
    np.testing.assert_allclose(sk.cluster_centers_, ours_centers, rtol=1e-4)


def test_kmeans_command_reports_a_missing_store(tmp_path, capsys):
    missing = str(tmp_path / "nope.zarr")
    assert main(["kmeans", missing, "--scheduler", "threads"]) == 2
    assert missing in capsys.readouterr().err
