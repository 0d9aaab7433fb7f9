"""Many models of one kind fitted in shared passes: choosing k at the cost of one fit's reads.

An elbow curve over k = 1..15, or a BIC/AIC table over k = 1..10 and four covariance types,
fits every model on the same data. :func:`fit_together` runs the fits side by side so that
each pass reads every chunk once and runs every model's kernel on it
(:func:`bigclust.driver.run_together`); each model converges on its own schedule and leaves
the passes when it is done. Every model ends exactly as it would alone (same statistics,
combined in the same order). :func:`sweep` builds the models from a parameter grid and
returns a :class:`Sweep`: the fitted models and their figures, as rows ready for a table or
a plot.

Example
-------
>>> import numpy as np
>>> from bigclust import KMeans
>>> from bigclust.model_selection import sweep
>>> X = np.random.default_rng(0).normal(size=(300, 2))
>>> result = sweep(KMeans(random_state=0), {"n_clusters": range(1, 4)}, X)
>>> [row["n_clusters"] for row in result.rows]
[1, 2, 3]
>>> result.rows[0]["inertia"] > result.rows[2]["inertia"]
True
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sklearn.base import clone

from bigclust import _together  # noqa: F401 - registers the kernels' together forms
from bigclust._input import Input, read_input
from bigclust.driver import place, run_together

__all__ = ["Sweep", "fit_together", "sweep"]


def _shared_input(X, storage_options=None) -> Input:
    """Read and place the data once for every model (one scatter on a cluster, not one per
    model: the models' passes must read the same chunks to be shared)."""
    inp = read_input(X, storage_options=storage_options)
    return Input(place(inp), inp.numpy_out, inp.source, placed=True)


def fit_together(estimators: Sequence[Any], X, *, sample_weight=None) -> list[Any]:
    """Fit ``estimators`` on ``X`` with shared passes over the data.

    Parameters
    ----------
    estimators : sequence of bigclust estimators
        Each is fitted in place (as ``estimator.fit(X)``); any mix of kinds works, and
        passes are shared between the models that read the same data.
    X : array-like, np.memmap, str, zarr.Array or dask.array.Array
        Anything :func:`bigclust.as_dask_array` takes.
    sample_weight : array-like, optional
        Passed to the fits that take one (K-Means).

    Returns
    -------
    list
        The fitted estimators, in order. If a fit raised, its exception is raised here after
        the other fits have finished.
    """
    inp = _shared_input(X)

    def fit(estimator):
        if sample_weight is not None:
            return lambda: estimator.fit(inp, sample_weight=sample_weight)
        return lambda: estimator.fit(inp)

    _, errors, _ = run_together([fit(e) for e in estimators])
    for error in errors:
        if error is not None:
            raise error
    return list(estimators)


@dataclass
class Sweep:
    """Models fitted over a parameter grid, and their figures.

    Attributes
    ----------
    models : list
        The fitted estimators, one per grid point, in grid order.
    rows : list of dict
        One per model: the grid's parameters, then ``n_iter`` and the figures of its kind:
        ``inertia`` (K-Means), or ``lower_bound``, ``converged``, ``bic`` and ``aic``
        (mixtures).
    """

    models: list = field(default_factory=list)
    rows: list = field(default_factory=list)

    def to_frame(self):
        """The rows as a pandas DataFrame (pandas is optional): ``sweep(...).to_frame().plot(
        x="n_clusters", y="inertia")`` draws the elbow curve in one line."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def plot(self, path: str | os.PathLike, x: str | None = None):
        """Write the curves (elbow, BIC/AIC) against ``x`` (default: the first grid
        parameter) as a PNG; needs matplotlib (``pip install "bigclust[plot]"``).

        Returns the matplotlib ``Figure``.
        """
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError('Sweep.plot needs matplotlib: pip install "bigclust[plot]"') from None
        x = x or next(iter(self.rows[0]))
        figures = [n for n in ("inertia", "silhouette", "bic", "aic") if n in self.rows[0]]
        groups: dict = {}
        for row in self.rows:  # one curve per value of the other grid parameters
            key = tuple((k, v) for k, v in row.items() if k in self._grid_keys and k != x)
            groups.setdefault(key, []).append(row)
        fig, axes = plt.subplots(1, len(figures), figsize=(5 * len(figures), 4), squeeze=False)
        for ax, name in zip(axes[0], figures, strict=True):
            for key, rows in groups.items():
                label = ", ".join(f"{k}={v}" for k, v in key) or None
                ax.plot([r[x] for r in rows], [r[name] for r in rows], "o-", label=label)
            ax.set_xlabel(x)
            ax.set_ylabel(name)
            titles = {"inertia": "Elbow: inertia", "silhouette": "Silhouette", "bic": "BIC",
                      "aic": "AIC"}  # fmt: skip
            ax.set_title(titles[name])
            if len(groups) > 1:
                ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        return fig

    _grid_keys: tuple = ()


def _silhouettes(models, inp: Input, metric, sample_size, random_state) -> list[float]:
    """Every model's silhouette, their passes shared; NaN where it is undefined (k = 1)."""
    from bigclust.metrics import silhouette_score

    def score(model):
        if model.cluster_centers_.shape[0] < 2:
            return lambda: math.nan
        return lambda: silhouette_score(
            inp, model.labels_, metric=metric, sample_size=sample_size, random_state=random_state
        )

    scores, errors, _ = run_together([score(m) for m in models])
    for error in errors:
        if error is not None:
            raise error
    return [float(s) for s in scores]


def _grid(param_grid: Mapping[str, Iterable]) -> list[dict]:
    keys = list(param_grid)
    return [dict(zip(keys, values, strict=True)) for values in
            itertools.product(*(list(param_grid[k]) for k in keys))]  # fmt: skip


def sweep(
    estimator,
    param_grid: Mapping[str, Iterable],
    X,
    *,
    sample_weight=None,
    silhouette: str | None = "sqeuclidean",
    silhouette_sample_size: int | None = None,
    random_state=None,
) -> Sweep:
    """Fit a clone of ``estimator`` for every point of ``param_grid``, in shared passes.

    Parameters
    ----------
    estimator : bigclust estimator
        The template, e.g. ``KMeans(random_state=0)`` or ``GaussianMixture(random_state=0)``.
    param_grid : mapping of str to iterable
        E.g. ``{"n_clusters": range(1, 16)}`` or ``{"n_components": range(1, 11),
        "covariance_type": ["full", "tied", "diag", "spherical"]}``; the grid is their
        product.
    X : array-like, np.memmap, str, zarr.Array or dask.array.Array
    sample_weight : array-like, optional
        For K-Means.
    silhouette : {"sqeuclidean", "euclidean"} or None, default="sqeuclidean"
        For K-Means models, the silhouette of their labels by
        :func:`bigclust.metrics.silhouette_score` with this metric (``"sqeuclidean"``: exact
        over all rows in two more shared passes; ``"euclidean"``: exact for small data, else
        give ``silhouette_sample_size``); ``None`` skips it. NaN for a single cluster.
    silhouette_sample_size : int, optional
        Rows sampled for a Euclidean silhouette (each scored against all rows).
    random_state : int, optional
        Seeds the silhouette's sample.

    Returns
    -------
    Sweep
        The fitted models and one row of figures per model. Mixtures' ``bic``/``aic`` take
        one more (shared) pass.
    """
    points = _grid(param_grid)
    models = [clone(estimator).set_params(**point) for point in points]
    inp = _shared_input(X)
    fit_together(models, inp, sample_weight=sample_weight)
    rows = [dict(point) for point in points]
    if hasattr(models[0], "bic"):
        scores, errors, _ = run_together([lambda m=m: m.score(inp) for m in models])
        for error in errors:
            if error is not None:
                raise error
        n = inp.shape[0]
        for row, model, score in zip(rows, models, scores, strict=True):
            row.update(
                n_iter=model.n_iter_,
                lower_bound=model.lower_bound_,
                converged=model.converged_,
                bic=-2 * score * n + model._n_parameters() * math.log(n),
                aic=-2 * score * n + 2 * model._n_parameters(),
            )
    else:
        for row, model in zip(rows, models, strict=True):
            row.update(n_iter=model.n_iter_, inertia=model.inertia_)
        if silhouette is not None and hasattr(models[0], "labels_"):
            for row, score in zip(rows, _silhouettes(models, inp, silhouette,
                                                     silhouette_sample_size, random_state),
                                  strict=True):  # fmt: skip
                row["silhouette"] = score
    result = Sweep(models, rows)
    result._grid_keys = tuple(param_grid)
    return result
