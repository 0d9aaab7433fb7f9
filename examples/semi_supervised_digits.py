"""Semi-supervised labelling with cluster representatives, on scikit-learn's digits in Zarr.

The notebook's recipe, for when labels are expensive: cluster the unlabelled rows into 50
clusters, label only the row nearest each center (50 labels instead of 1,400), then give
every row of a cluster its representative's label, and train a classifier on the result.
Compared with a ``LogisticRegression`` trained on 50 random labelled rows.

At scale, the training rows live in a Zarr store and nothing per-row comes to the client
except what the classifier needs:

- ``bigclust.cluster.representatives(store, km)`` finds the row nearest each center in one
  pass (a tree-reduced top-1 per cluster, ties broken by row number) and returns the rows;
- ``propagate_labels(store, km, labels)`` gives every row its cluster's label, lazily (write it
  with ``.to_zarr`` for a store of any size); with ``percentile=20``, only the 20% of each
  cluster closest to its center (the notebook's partial propagation), by exact per-cluster
  percentiles of the distances.

The digits (1,797 8x8 images, shipped with scikit-learn: no download) are small; the code
is the same for a store of a billion rows. The first 1,400 rows train, the rest test.

Run::

    python examples/semi_supervised_digits.py --out figures

Figure: ``digits_representatives.png`` (the 50 representative images, each titled with
its label: the only 50 labels the propagated classifier is given).
"""

from __future__ import annotations

import _example_kit as kit  # examples/_example_kit.py, beside this script
import dask
import dask.array as da
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import bigclust
from bigclust.cluster import propagate_labels, representatives
from bigclust.datasets import write_zarr

N_TRAIN = 1400
#: Partial propagation: only the rows of each cluster this close to its center (percentile of
#: the cluster's distances), as in the notebook.
PERCENTILE_CLOSEST = 20


def accuracy(X_train, y_train, X_test, y_test) -> float:
    classifier = LogisticRegression(max_iter=10_000)
    return float(classifier.fit(X_train, y_train).score(X_test, y_test))


def plot_representatives(plt, images, labels, out):
    k = len(images)
    columns = 10
    fig, axes = plt.subplots(-(-k // columns), columns, figsize=(8, 0.9 * -(-k // columns) + 0.6))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, label in zip(axes.ravel(), images, labels, strict=False):
        ax.imshow(image.reshape(8, 8), cmap="binary", interpolation="bilinear")
        ax.set_title(str(label), fontsize=10)
    fig.suptitle(f"The {k} representative digits (nearest each center) and their labels")
    return kit.save(fig, out, "digits_representatives.png")


def main(argv=None) -> dict:
    """Run the example; returns the accuracies and the figure."""
    p = kit.parser(__doc__, small=False)  # the digits are small already
    p.add_argument("--n-clusters", type=int, default=50, help="clusters = labels paid for")
    args = p.parse_args(argv)
    k = args.n_clusters
    plt = kit.pyplot()

    X_digits, y_digits = load_digits(return_X_y=True)
    X_train, y_train = X_digits[:N_TRAIN], y_digits[:N_TRAIN]
    X_test, y_test = X_digits[N_TRAIN:], y_digits[N_TRAIN:]

    with kit.workdir(args.workdir) as tmp:
        store = str(tmp / "digits_train.zarr")
        write_zarr(da.from_array(X_train.astype(np.float32), chunks=(200, 64)), store)

        baseline = accuracy(X_train[:k], y_train[:k], X_test, y_test)
        print(f"LogisticRegression on {k} random labelled rows: accuracy {baseline:.4f}")

        km = bigclust.KMeans(n_clusters=k, random_state=42).fit(store)
        nearest = representatives(store, km)  # one pass: the row nearest each center
        rows, images = nearest.indices[:, 0], nearest.rows[:, 0]
        # "Labelling by hand": the 50 true labels. Everything after uses only these.
        y_representatives = y_train[rows]
        figure = plot_representatives(plt, images, y_representatives, args.out)
        with_representatives = accuracy(images, y_representatives, X_test, y_test)
        print(f"LogisticRegression on the {k} representatives: accuracy {with_representatives:.4f}")

        # Lazy for a store: .to_zarr(...) writes them for a store of any size.
        everyone = propagate_labels(store, km, y_representatives)
        closest = propagate_labels(store, km, y_representatives, percentile=PERCENTILE_CLOSEST)
        y_propagated, y_partial = dask.compute(everyone, closest)
        label_accuracy = float(np.mean(y_propagated == y_train))
        print(f"propagated labels equal the true labels on {label_accuracy:.1%} of the rows")
        with_propagation = accuracy(X_train, y_propagated, X_test, y_test)
        print(
            f"LogisticRegression on all {N_TRAIN} propagated labels: "
            f"accuracy {with_propagation:.4f}"
        )
        kept = y_partial >= 0
        partial_label_accuracy = float(np.mean(y_partial[kept] == y_train[kept]))
        with_partial = accuracy(X_train[kept], y_partial[kept], X_test, y_test)
        print(
            f"LogisticRegression on the {kept.sum():,} rows within each cluster's "
            f"{PERCENTILE_CLOSEST}th distance percentile ({partial_label_accuracy:.1%} "
            f"correct labels): accuracy {with_partial:.4f}"
        )

    return {
        "random_accuracy": baseline,
        "representatives_accuracy": with_representatives,
        "propagated_accuracy": with_propagation,
        "propagated_label_accuracy": label_accuracy,
        "partial_accuracy": with_partial,
        "partial_label_accuracy": partial_label_accuracy,
        "n_partial": int(kept.sum()),
        "representatives": rows,
        "figures": [figure],
    }


if __name__ == "__main__":
    main()
