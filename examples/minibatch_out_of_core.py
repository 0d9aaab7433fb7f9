"""Out-of-core MiniBatchKMeans: ``fit`` over a memory-mapped ``.npy``, ``partial_fit`` over Zarr.

The notebook trains ``MiniBatchKMeans`` on MNIST through an ``np.memmap`` and, for data that
does not even fit a memmap, by feeding batches to ``partial_fit`` in a loop. Both carry over:

- ``fit("blobs.npy")`` streams the file: each epoch visits its ~16 MiB segments in a random
  order and their rows in a random order (see the ``MiniBatchKMeans`` docstring), reading
  each segment once per epoch. The client holds the centers, never the rows.
- ``partial_fit`` of a lazy array takes each of its row chunks as one batch (one step),
  reading the next chunk while the current one updates the centers; calling it once per
  epoch is the notebook's batch loop without the loop. ``as_dask_array(store,
  rows_per_chunk=B)`` makes batches of ``B`` rows (a store passed by its path is read in
  the data layer's ~16 MiB chunks: few, large steps).

The inertia of the whole store after each ``partial_fit`` epoch (``-score``, one pass each)
is drawn against the inertia of a full-batch ``KMeans`` on the same store (the target).

Run::

    python examples/minibatch_out_of_core.py --out figures            # 10,000,000 rows, 80 MB
    python examples/minibatch_out_of_core.py --out figures --small    # 20,000 rows

Figures: ``minibatch_centers.png`` (a sample of rows, the true centers and both
MiniBatchKMeans' centers) and ``minibatch_inertia.png`` (inertia per epoch).
"""

from __future__ import annotations

import _example_kit as kit  # examples/_example_kit.py, beside this script
import dask.array as da
import numpy as np

import bigclust
from bigclust.datasets import make_blobs

N_CLUSTERS = 8


def write_npy(X: da.Array, path) -> str:
    """Write a Dask array to a new ``.npy`` file chunk by chunk, through a memmap."""
    target = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=X.shape)
    da.store(X, target, lock=False)
    target.flush()
    del target
    return str(path)


def stream(model, batches, epochs):
    """``partial_fit`` over every chunk of ``batches`` (one step each), ``epochs`` times;
    the inertia of all rows (one pass) after 1, 2, 4, ... steps and after each epoch."""
    n_chunks = batches.numblocks[0]
    steps, inertias = [], []
    for epoch in range(epochs):
        done = 0
        while done < n_chunks:
            next_power_of_two = 1 << (epoch * n_chunks + done).bit_length()
            upto = min(n_chunks, next_power_of_two - epoch * n_chunks)
            model.partial_fit(batches.blocks[done:upto])
            done = upto
            steps.append(model.n_steps_)
            inertias.append(-model.score(batches))
        print(
            f"partial_fit epoch {epoch + 1}: {model.n_steps_:,} steps, inertia {inertias[-1]:.6g}"
        )
    return steps, inertias


def plot_centers(plt, points, true_centers, fitted, out):
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.plot(points[:, 0], points[:, 1], ".", color="0.6", markersize=2, label="rows (sample)")
    ax.plot(*true_centers.T, "k+", markersize=22, mew=2, label="true centers")
    markers = ("o", "x")
    colors = ("tab:blue", "tab:red")
    for (name, centers), marker, color in zip(fitted.items(), markers, colors, strict=True):
        ax.plot(*centers.T, marker, color=color, markersize=10, mfc="none", mew=2, label=name)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$", rotation=0)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(f"MiniBatchKMeans({N_CLUSTERS}) centers, fitted out of core")
    return kit.save(fig, out, "minibatch_centers.png")


def plot_inertia(plt, steps, inertias, steps_per_epoch, fit_inertia, kmeans_inertia, out):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(steps, inertias, "bo-", label="partial_fit over the Zarr chunks")
    ax.axhline(fit_inertia, color="tab:green", linestyle=":", label="fit over the .npy memmap")
    ax.axhline(kmeans_inertia, color="k", linestyle="--", label="KMeans (full batch)")
    for end in range(steps_per_epoch, steps[-1] + 1, steps_per_epoch):
        ax.axvline(end, color="0.7", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"partial_fit steps (one per chunk; grey lines: epochs of {steps_per_epoch})")
    ax.set_ylabel("inertia of all rows")
    ax.legend(loc="upper right")
    ax.grid(True, axis="y")
    ax.set_title("MiniBatchKMeans: inertia as the batches stream in")
    return kit.save(fig, out, "minibatch_inertia.png")


def main(argv=None) -> dict:
    """Run the example; returns the inertias and the figures."""
    p = kit.parser(__doc__)
    p.add_argument("--n-samples", type=int, default=None, help="rows (default 10,000,000)")
    p.add_argument("--epochs", type=int, default=5, help="partial_fit passes over the store")
    args = p.parse_args(argv)
    n = args.n_samples or (20_000 if args.small else 10_000_000)
    batch = max(1_000, min(65_536, n // 20))  # rows per Zarr chunk: one partial_fit step
    plt = kit.pyplot()

    X, _, true_centers = make_blobs(n, 2, centers=N_CLUSTERS, cluster_std=1.5,
                                    random_state=3, return_centers=True)  # fmt: skip
    with kit.workdir(args.workdir) as tmp:
        npy = write_npy(X, tmp / "blobs.npy")
        store, _ = kit.write_blobs(
            tmp / "blobs.zarr", n, centers=true_centers, cluster_std=1.5, seed=3,
            chunk_rows=batch,
        )  # fmt: skip
        print(f"{n:,} rows x 2 in {npy} and in {store} ({batch:,} rows per chunk)")

        memmap = np.load(npy, mmap_mode="r")  # an np.memmap: read in chunks, never loaded
        fitted = bigclust.MiniBatchKMeans(
            N_CLUSTERS, batch_size=1024, random_state=0, max_iter=10
        ).fit(memmap)
        print(
            f"fit over the memmap: {fitted.n_iter_} epochs, {fitted.n_steps_:,} steps, "
            f"inertia {fitted.inertia_:.6g}"
        )

        batches = bigclust.as_dask_array(store, rows_per_chunk=batch)  # lazy: nothing read
        streamed = bigclust.MiniBatchKMeans(N_CLUSTERS, random_state=0)
        steps, inertias = stream(streamed, batches, args.epochs)

        reference = bigclust.KMeans(N_CLUSTERS, random_state=0).fit(store)
        print(f"KMeans on the store: inertia {reference.inertia_:.6g}")
        rows = kit.sample_rows(n, 5_000, seed=0)
        points = memmap[rows]
        centers = {
            "fit (.npy memmap)": fitted.cluster_centers_,
            "partial_fit (Zarr)": streamed.cluster_centers_,
        }
        figures = [
            plot_centers(plt, points, true_centers, centers, args.out),
            plot_inertia(
                plt,
                steps,
                inertias,
                batches.numblocks[0],
                fitted.inertia_,
                reference.inertia_,
                args.out,
            ),
        ]
        del memmap
    return {
        "true_centers": true_centers,
        "fit_centers": fitted.cluster_centers_,
        "partial_fit_centers": streamed.cluster_centers_,
        "fit_inertia": fitted.inertia_,
        "partial_fit_steps": steps,
        "partial_fit_inertia": inertias,
        "kmeans_inertia": reference.inertia_,
        "figures": figures,
    }


if __name__ == "__main__":
    main()
