"""KMeans on the notebook's five blobs, read from a Zarr store: decision boundaries and the elbow.

The "Hands-On Machine Learning" clustering notebook (chapter 9) fits ``KMeans(5)`` to 2,000
points in memory. Here the same five blobs are written to a Zarr store (2,000,000 rows by
default, chunk by chunk, never whole in memory) and every fit reads them from the store, one
pass per iteration; the ten models of the elbow curve are fitted together
(``bigclust.model_selection.sweep``), each pass reading the store once for all of them. What
stays small stays NumPy: ``predict`` on a grid of points in memory
returns NumPy labels (the decision boundaries), while ``labels_`` of the store is lazy.

Run::

    python examples/kmeans_blobs.py --out figures            # 2,000,000 rows
    python examples/kmeans_blobs.py --out figures --small    # 2,000 rows, as the notebook

Figures: ``kmeans_decision_boundaries.png`` (the Voronoi cells of the five centers over a
sample of the rows) and ``kmeans_elbow.png`` (inertia for k = 1..10).
"""

from __future__ import annotations

import _example_kit as kit  # examples/_example_kit.py, beside this script
import dask
import numpy as np

import bigclust
from bigclust.model_selection import sweep

K_RANGE = range(1, 11)


def plot_decision_boundaries(plt, km, points, out, resolution=500):
    """Colour the plane by ``km.predict`` on a grid; the sampled rows and the centers on top."""
    low = points.min(axis=0) - 0.1
    high = points.max(axis=0) + 0.1
    xx, yy = np.meshgrid(
        np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    )
    grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
    Z = km.predict(grid).reshape(xx.shape)  # NumPy in, NumPy out: no graph, no pass

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.contourf(xx, yy, Z, levels=np.arange(km.n_clusters + 1) - 0.5, cmap="Pastel2")
    ax.contour(xx, yy, Z, levels=np.arange(km.n_clusters + 1) - 0.5, colors="k", linewidths=1)
    dense = len(points) > 5_000
    ax.plot(
        points[:, 0], points[:, 1], "k.", markersize=1 if dense else 2, alpha=0.4 if dense else 1
    )
    c = km.cluster_centers_
    ax.scatter(c[:, 0], c[:, 1], marker="o", s=35, linewidths=8, color="w", zorder=10, alpha=0.9)
    ax.scatter(c[:, 0], c[:, 1], marker="x", s=8, linewidths=12, color="k", zorder=11)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$", rotation=0)
    ax.set_title(
        f"KMeans(n_clusters={km.n_clusters}) decision boundaries ({len(points):,} rows shown)"
    )
    return kit.save(fig, out, "kmeans_decision_boundaries.png")


def plot_elbow(plt, ks, inertias, out):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(ks, inertias, "bo-")
    ax.set_xlabel("$k$ (n_clusters)")
    ax.set_ylabel("inertia")
    ax.set_xticks(list(ks))
    ax.set_title("Elbow curve: inertia of KMeans(k) fitted to the Zarr store")
    ax.grid(True)
    return kit.save(fig, out, "kmeans_elbow.png")


def main(argv=None) -> dict:
    """Run the example; returns its figures (see the module docstring)."""
    p = kit.parser(__doc__)
    p.add_argument("--n-samples", type=int, default=None, help="rows (default 2,000,000)")
    args = p.parse_args(argv)
    n = args.n_samples or (2_000 if args.small else 2_000_000)
    plt = kit.pyplot()

    with kit.workdir(args.workdir) as tmp:
        store, y_true = kit.write_blobs(tmp / "blobs.zarr", n)
        X = bigclust.as_dask_array(store)  # lazy, read-only, row-chunked
        print(f"{n:,} rows x 2 in {store} ({X.numblocks[0]} chunks)")

        # On a few thousand rows k-means|| is greedy k-means++ on the rows (nothing to shrink),
        # which can land in a local minimum as scikit-learn's does: the notebook keeps the best
        # of 10 runs. On millions of rows one k-means|| run is enough.
        n_init = 10 if n <= 10_000 else 1
        km = bigclust.KMeans(n_clusters=5, n_init=n_init, random_state=42).fit(store)
        print(f"KMeans(5): {km.n_iter_} iterations, inertia {km.inertia_:.6g}")
        print("centers:\n", np.round(km.cluster_centers_, 3))

        # The lazy labels and the rows to draw, in one compute: one read of the sampled chunks.
        rows = kit.sample_rows(n, 20_000, seed=0)
        points, labels, truth = dask.compute(X[rows], km.labels_[rows], y_true[rows])
        sizes = np.bincount(labels, minlength=5)
        print(f"cluster sizes in a sample of {len(rows):,} rows: {sizes.tolist()}")
        # How far each generating center is from the nearest fitted one.
        offsets = np.linalg.norm(kit.BLOB_CENTERS[:, None] - km.cluster_centers_, axis=2)
        center_error = float(offsets.min(axis=1).max())
        print(
            f"largest distance from a true center to its nearest fitted center: {center_error:.3f}"
        )
        boundaries = plot_decision_boundaries(plt, km, points, args.out)

        # Ten models in shared passes: each pass reads every chunk once for all of them.
        models = sweep(
            bigclust.KMeans(n_init=n_init, random_state=42),
            {"n_clusters": K_RANGE},
            store,
            silhouette=None,
        )  # silhouette=None: the elbow needs the inertias only (kmeans_silhouette.py)
        inertias = [row["inertia"] for row in models.rows]
        print(" k     inertia  iterations")
        for row in models.rows:
            print(f"{row['n_clusters']:2d} {row['inertia']:11.6g} {row['n_iter']:11d}")
        elbow = plot_elbow(plt, list(K_RANGE), inertias, args.out)

    return {
        "n_samples": n,
        "centers": km.cluster_centers_,
        "center_error": center_error,
        "inertia": dict(zip(K_RANGE, inertias, strict=True)),
        "sample_labels": labels,
        "sample_truth": truth,
        "figures": [boundaries, elbow],
    }


if __name__ == "__main__":
    main()
