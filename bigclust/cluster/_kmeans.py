"""Full-batch K-Means (Lloyd) over chunked data, with scikit-learn's API and answers."""

from __future__ import annotations

import numbers
import os
from typing import ClassVar

import numpy as np

from bigclust import _random
from bigclust._checkpoint import Checkpoint
from bigclust._input import check_min_samples, read_input, read_sample_weight, record_features
from bigclust._params import Interval, Options, validate_params
from bigclust._persist import ModelFileMixin
from bigclust._progress import Progress, echo
from bigclust._random import Key
from bigclust.cluster import _elkan, _init
from bigclust.cluster import _kernels as kern
from bigclust.cluster._base import CentroidEstimator
from bigclust.driver import map_reduce, place, small_data_blas

__all__ = ["KMeans"]


class KMeans(ModelFileMixin, CentroidEstimator):
    """K-Means clustering by Lloyd's algorithm, one pass over chunked data per iteration.

    Gives scikit-learn's ``KMeans(algorithm="lloyd")`` answer for the same data and initial
    centers (centers, labels, inertia, ``n_iter_``) while streaming data of any size from
    NumPy, ``np.memmap``/``.npy``, Zarr or Dask inputs, on whatever Dask scheduler is active.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means||", "k-means++", "random"}, callable or array-like of shape \
            (n_clusters, n_features), default="k-means||"
        - ``"k-means||"``: scalable k-means++ (Bahmani et al. 2012): ``init_max_iter`` passes
          sampling about ``oversampling_factor * n_clusters`` candidates each, one pass to
          weight them, then weighted k-means++ and Lloyd over the candidates on the client.
          On at most 10,000 rows (or no more rows than it would sample), greedy k-means++
          on the rows themselves: the same centers as ``"k-means++"``.
        - ``"k-means++"``: scikit-learn's greedy k-means++; one pass over the data per
          center, so slow for large ``n_clusters``.
        - ``"random"``: ``n_clusters`` distinct rows (drawn by ``sample_weight``).
        - an array: the initial centers.
        - a callable ``init(X, n_clusters, random_state)`` returning the centers, where ``X``
          is the row-chunked Dask array.
    n_init : "auto" or int, default="auto"
        Runs from different initializations; the lowest inertia wins. ``"auto"``: 10 for
        ``init="random"`` or a callable, else 1.
    max_iter : int, default=300
        Maximum Lloyd iterations per run.
    tol : float, default=1e-4
        Convergence when the squared center shift summed over centers is at most
        ``tol`` times the mean per-feature variance of ``X`` (as in scikit-learn).
    verbose : int, default=0
        From 1: print the inertia of each iteration (as scikit-learn does), show a progress
        bar over the passes (initialization rounds, then iterations) and log a record per
        pass on the ``bigclust.progress`` logger; from 2, also a bar over the chunks of each
        pass. See :func:`bigclust.set_progress` to show or hide the bars alone.
    random_state : int, RandomState instance or Generator, default=None
        Seeds every random choice. The same int gives the same centers for any chunking,
        scheduler or worker count.
    oversampling_factor : float, default=2.0
        k-means|| candidates per round, as a multiple of ``n_clusters``.
    init_max_iter : int, default=None
        k-means|| rounds (passes over the data); ``None`` means 5.
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        Every distance from every row to every center each iteration (lloyd), or the same
        iterations skipping the distances that per-row bounds rule out (elkan), with the
        same results: labels, centers, ``n_iter_`` and ``inertia_`` equal Lloyd's, as
        scikit-learn's ``algorithm="elkan"`` gives its Lloyd's answers. The bounds are
        Hamerly's (2010: an upper bound and one lower bound per row, 12 bytes per row):
        measured here, fits with them took less time than with Yinyang's per-group or
        Elkan's per-center bounds at 64 and 256 clusters (``bigclust.cluster._elkan``;
        Elkan's need ``k`` floats per row, 2 GB for 2M rows and k=256). A bound test
        leaves a margin for the rounding of Lloyd's computation, and the rows it cannot
        settle are computed exactly as Lloyd computes them, so ties resolve the same. The
        bounds stay with each chunk in the memory of the process that runs its task (a
        Dask worker on a cluster: each chunk's task is sent back there), one pass to the
        next; a chunk whose bounds were lost is assigned from full distances.
    checkpoint : str or PathLike, default=None
        A directory (local path or fsspec URL) where the fit's full state is written
        atomically after every Lloyd iteration; the same fit started again with the same checkpoint
        and data resumes from the last one and ends exactly as an uninterrupted fit. A
        checkpoint from other data or parameters is refused
        (:class:`bigclust.CheckpointMismatchError`).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Centers, in the dtype of ``X`` (float32 stays float32).
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Index of each row's center; lazy for Dask/Zarr input.
    inertia_ : float
        Weighted sum of squared distances of rows to their centers.
    n_iter_ : int
        Lloyd iterations of the best run.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> km.predict([[0, 0], [12, 3]]).tolist() == [km.labels_[0], km.labels_[3]]
    True
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init="k-means||",
        n_init="auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state=None,
        oversampling_factor: float = 2.0,
        init_max_iter: int | None = None,
        checkpoint=None,
        algorithm: str = "lloyd",
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.oversampling_factor = oversampling_factor
        self.init_max_iter = init_max_iter
        self.checkpoint = checkpoint
        self.algorithm = algorithm

    _parameter_constraints: ClassVar[dict] = {
        **CentroidEstimator._parameter_constraints,
        "oversampling_factor": [Interval(numbers.Real, 0, None, closed="neither")],
        "init_max_iter": [Interval(numbers.Integral, 1, None), None],
        "checkpoint": [str, os.PathLike, None],
        "algorithm": [Options("lloyd", "elkan")],
    }

    # -- fit ----------------------------------------------------------------------------

    @small_data_blas
    def fit(self, X, y=None, sample_weight=None):
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like, np.memmap, str, zarr.Array or dask.array.Array of shape \
                (n_samples, n_features)
            Training data; anything :func:`bigclust.as_dask_array` takes.
        y : Ignored
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Non-negative weight of each row.

        Returns
        -------
        self : KMeans
        """
        validate_params(self)
        inp = read_input(X)
        check_min_samples(inp, self.n_clusters, "n_clusters", self.n_clusters)
        self._check_init_array(inp.shape[1])
        data = place(inp)
        weights = read_sample_weight(sample_weight, inp)
        checkpoint = Checkpoint.of(self, inp, weights)
        saved = checkpoint.load() if checkpoint else None
        seed = saved["seed"] if saved else _random.seed_from(self.random_state)

        best = saved["best"] if saved else None  # (inertia, centers, n_iter)
        # The variance-scaled tol, computed by the first pass of the first run.
        self._tol = saved["tol"] if saved else None
        runs = range(saved["run"] if saved else 0, self._n_runs())
        for run in Progress("KMeans", self.verbose).iterate(runs):

            def save(state, run=run):  # this run's state and the best so far, read when called
                document = {"seed": seed, "tol": self._tol, "best": best, "run": run}  # noqa: B023
                checkpoint.save({**document, **state})

            if saved and saved["run"] == run and saved["centers"] is not None:
                resume = saved  # this run was under way: go on from its last iteration
            else:
                run_seed = int(_random.generator(seed, Key.KMEANS_RUNS, run).integers(2**62))
                centers = self._initial_centers(data, weights, run_seed)
                resume = {"centers": centers, "iteration": 0, "converged": False}
            centers, inertia, n_iter = self._lloyd(
                data, weights, resume, save if checkpoint else None
            )
            if best is None or _random.better(inertia, best[0], larger=False):
                best = (inertia, centers, n_iter)
            if checkpoint:  # this run is done: the next one starts from its initialization
                save({"centers": None, "iteration": 0, "converged": False}, run=run + 1)
        inertia, centers, n_iter = best

        _init.warn_if_few_distinct(centers, self.n_clusters)
        self.cluster_centers_ = centers.astype(data.dtype)
        self.inertia_ = float(inertia)
        self.n_iter_ = n_iter
        # The final assignment uses the float64 centers that the inertia was computed with.
        self.labels_ = self._labels(inp, centers)
        record_features(self, inp)
        return self

    def _initial_centers(self, X, weights, seed) -> np.ndarray:
        """float64 centers from the registry; starting from what a float32 init would be for
        float32 data (centers stay float64 between iterations whatever the data dtype:
        float32 centers far from the origin cannot even represent the mean to the data's
        precision)."""
        centers = _init.initial_centers(
            self.init,
            X,
            self.n_clusters,
            weights,
            seed,
            oversampling_factor=self.oversampling_factor,
            n_rounds=self.init_max_iter,
        )
        if X.dtype == np.float32:
            centers = centers.astype(np.float32).astype(np.float64)
        return centers

    def _lloyd(self, X, weights, start, save=None):
        """One run of Lloyd's algorithm from ``start`` (``centers`` after ``iteration``
        iterations, and whether they had ``converged``); ``save(state)`` after every
        iteration. Returns (centers, inertia, n_iter)."""
        aligned = () if weights is None else (weights,)
        bounded = _elkan.BoundedPasses(self.n_clusters) if self.algorithm == "elkan" else None
        try:
            centers, n_iter = self._iterate(X, weights, aligned, start, save, bounded)
            if bounded is None:
                inertia = self._inertia(X, weights, centers)
            else:  # the same pass with the bounds: the same labels, the same inertia
                inertia = bounded(X, aligned, centers, True, update_centers=False).inertia
        finally:
            if bounded is not None:
                bounded.close()
                self._bound_run, self._bound_history = bounded.run, bounded.history
        return centers, inertia, n_iter

    def _iterate(self, X, weights, aligned, start, save, bounded):
        progress = Progress("Lloyd", total=self.max_iter, rows=X.shape[0])
        centers, i = start["centers"], start["iteration"] - 1
        for i in progress.iterate(
            range(start["iteration"], 0 if start["converged"] else self.max_iter)
        ):
            params = kern.LloydParams(centers, with_inertia=bool(self.verbose))
            if self._tol is None:
                stats, moments = _lloyd_pass(X, aligned, params, True, bounded)
                self._tol = float(np.mean(moments.variance()) * self.tol) if self.tol else 0.0
            else:
                stats = _lloyd_pass(X, aligned, params, False, bounded)
            if self.verbose:
                echo(f"Iteration {i}, inertia {stats.inertia}.")
            new_centers = self._new_centers(stats, centers, X, aligned)
            center_shift = float(((new_centers - centers) ** 2).sum())
            centers = new_centers
            progress.pass_done(
                i, inertia=stats.inertia if params.with_inertia else None, center_shift=center_shift
            )
            if save is not None:
                converged = center_shift == 0 or center_shift <= self._tol
                save({"centers": centers, "iteration": i + 1, "converged": converged})
            if center_shift == 0:  # labels unchanged: scikit-learn's strict convergence
                if self.verbose:
                    echo(f"Converged at iteration {i}: strict convergence.")
                break
            if center_shift <= self._tol:
                if self.verbose:
                    echo(
                        f"Converged at iteration {i}: center shift {center_shift} within "
                        f"tolerance {self._tol}."
                    )
                break
        return centers, i + 1

    def _new_centers(self, stats, centers, X, aligned) -> np.ndarray:
        """Average the sums; relocate empty clusters as scikit-learn does: each empty cluster
        takes one of the rows farthest from their (previous) centers."""
        if stats.weights.all():  # no empty cluster: the common case, in one division
            return stats.sums / stats.weights[:, None]
        sums, weights = stats.sums.copy(), stats.weights.copy()
        empty = np.flatnonzero(weights == 0)
        if empty.size:
            far = map_reduce(kern.farthest_chunk, X, *aligned, params=(centers, len(empty)))
            if far.distances.max() > 0:
                for cluster, label, w, point in zip(
                    empty, far.labels, far.weights, far.points, strict=False
                ):
                    sums[label] -= point * w
                    sums[cluster] = point * w
                    weights[cluster] = w
                    weights[label] -= w
        new = np.empty_like(sums)
        filled = weights > 0
        new[filled] = sums[filled] / weights[filled, None]
        # Clusters still empty (all rows on their centers): at the largest cluster, not at 0.
        new[~filled] = new[np.argmax(weights)]
        return new


def _lloyd_pass(X, aligned, params, moments: bool, bounded):
    """One Lloyd step's statistics over ``X`` (and the column moments, with ``moments``):
    every distance, or through ``bounded``'s bounds."""
    if bounded is not None:
        return bounded(X, aligned, params.centers, params.with_inertia, moments)
    if moments:
        return map_reduce(kern.lloyd_and_moments_chunk, X, *aligned, params=params)
    chunk_kernel = kern.lloyd_chunk_weighted if aligned else kern.lloyd_chunk
    return map_reduce(chunk_kernel, X, *aligned, params=params)
