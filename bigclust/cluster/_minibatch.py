"""Mini-batch K-Means over chunked data: scikit-learn's steps, batches streamed from a store."""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import os
import warnings
from typing import ClassVar

import numpy as np

from bigclust import _random
from bigclust._checkpoint import Checkpoint
from bigclust._input import (
    check_n_features,
    read_input,
    read_sample_weight,
    record_features,
)
from bigclust._params import Interval, validate_params
from bigclust._persist import ModelFileMixin
from bigclust._progress import Progress, echo
from bigclust._random import Key
from bigclust._rows import first_nonfinite_row
from bigclust.cluster import _init
from bigclust.cluster import _kernels as kern
from bigclust.cluster import _minibatch_kernels as mbk
from bigclust.cluster._base import CentroidEstimator
from bigclust.driver import (
    NonFiniteInputError,
    active_client,
    compute,
    map_reduce,
    place,
    read_block,
    small_data_blas,
    stream_fold,
    take_rows,
)
from bigclust.io import DEFAULT_CHUNK_BYTES, _open, as_dask_array, check_dtype, is_lazy_input

#: Bytes of one segment, the unit that ``fit`` reads and shuffles (see MiniBatchKMeans).
#: The default Dask chunk of :func:`bigclust.as_dask_array`, so segments of data chunked by
#: default line up with its chunks and every chunk is read once per epoch.
SEGMENT_BYTES = DEFAULT_CHUNK_BYTES


def segment_rows(n_features: int, itemsize: int, n_samples: int, batch_size: int) -> int:
    """Rows per segment: about ``SEGMENT_BYTES``, at least one batch, at most all rows.

    A function of the data's shape and dtype only, never of its chunking.
    """
    rows = max(1, SEGMENT_BYTES // max(1, n_features * itemsize))
    return int(min(n_samples, max(rows, batch_size)))


class MiniBatchKMeans(ModelFileMixin, CentroidEstimator):
    """Mini-batch K-Means: scikit-learn's updates, with batches streamed from chunked data.

    Each step assigns a batch to the nearest centers and moves every center that received
    rows to the weighted mean of its past and new rows, ``(c * W + S_b) / (W + w_b)`` with
    ``W`` its running weight; centers whose running weight falls below
    ``reassignment_ratio`` times the largest are moved to random rows of the batch (Sculley
    2010, as in scikit-learn >= 1.1). Given the same initial centers and the same batches,
    :meth:`partial_fit` gives scikit-learn's centers and weights step for step.

    **How** :meth:`fit` **chooses batches, and why it differs from scikit-learn.**
    scikit-learn draws every batch as ``batch_size`` row indices uniformly (with replacement)
    from the whole data. Each of those batches touches rows all over the data, so a store
    read in chunks would be read almost whole for every batch. Here the rows are split into
    fixed *segments* of about 16 MiB (a function of the shape and dtype only). Each epoch
    visits the segments in a random order and the rows of each segment in a random order;
    the batches are consecutive runs of ``batch_size`` rows of that order (a batch may span
    two segments or two epochs). So every row is used once per epoch (sampling without
    replacement), every segment is read once per epoch, the next segment is read while the
    current one is processed, and the orders come from ``random_state`` and the global row
    positions alone: the same seed gives the same batches for any chunking or scheduler.
    The price: a batch holds rows of one segment (about 16 MiB of the data) rather than of
    the whole data. On data stored in random order this changes nothing; on data stored
    sorted (by time, by class) the centers see one part of the data at a time within an
    epoch, as in a data stream; shuffle such data when writing it, or use several epochs.

    The initialization uses ``init_size`` rows drawn uniformly (with replacement) from the
    whole data, as scikit-learn does; reading them reads the chunks that hold them once.
    ``tol`` is scaled by the mean per-feature variance of those rows (scikit-learn uses all
    rows; this avoids a pass over the data). ``max_iter`` counts epochs.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means||", "k-means++", "random"}, callable or array-like of shape \
            (n_clusters, n_features), default="k-means||"
        Initialization, run on ``init_size`` sampled rows: k-means|| (Bahmani et al. 2012),
        scikit-learn's greedy k-means++, ``n_clusters`` distinct sampled rows, a callable
        ``init(X_sample, n_clusters, random_state)``, or the initial centers themselves.
    max_iter : int, default=100
        Maximum number of epochs (passes over the data) of :meth:`fit`: at most
        ``max_iter * n_samples // batch_size`` steps.
    batch_size : int, default=1024
        Rows per batch in :meth:`fit`.
    verbose : int, default=0
        From 1: print progress after every segment, show a progress bar over the segments
        and log a record per segment on the ``bigclust.progress`` logger. See
        :func:`bigclust.set_progress` to show or hide the bar alone.
    compute_labels : bool, default=True
        At the end of :meth:`fit`, assign every row (one pass over the data) for ``labels_``
        and ``inertia_``. In :meth:`partial_fit`, assign the batch.
    random_state : int, RandomState instance or Generator, default=None
        Seeds the initialization, the batch order and the reassignments.
    tol : float, default=0.0
        Stop when the squared change of the centers in one step is at most ``tol`` times the
        mean per-feature variance. 0 disables this criterion.
    max_no_improvement : int or None, default=10
        Stop after this many consecutive steps without improvement of the smoothed batch
        inertia. ``None`` disables this criterion.
    init_size : int, default=None
        Rows sampled for the initialization; ``None``: ``3 * batch_size``, or
        ``3 * n_clusters`` if that is larger.
    n_init : "auto" or int, default="auto"
        Initializations tried (each on its own sample); the one with the lowest inertia on
        a validation sample is kept. ``"auto"``: 3 for ``"random"`` or a callable, else 1.
    reassignment_ratio : float, default=0.01
        Centers whose running weight is below this fraction of the largest are moved to
        random rows of the batch, every ``10 * n_clusters`` rows. 0 disables reassignment.
    checkpoint : str or PathLike, default=None
        A directory (local path or fsspec URL) where the fit's full state is written
        atomically after every segment (about 16 MiB of rows); the same fit started again
        with the same checkpoint and data resumes from the last one and ends exactly as an
        uninterrupted fit. A checkpoint from other data or parameters is refused
        (:class:`bigclust.CheckpointMismatchError`).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Centers, in the dtype of ``X``.
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Index of each row's center (if ``compute_labels``); lazy for Dask/Zarr input.
    inertia_ : float
        With ``compute_labels``: weighted sum of squared distances of the rows to their
        centers. Without: the smoothed batch inertia times the total weight.
    n_iter_ : int
        Epochs started by :meth:`fit`.
    n_steps_ : int
        Batches processed (by :meth:`fit` and :meth:`partial_fit`).
    n_features_in_ : int
        Number of features.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]])
    >>> km = MiniBatchKMeans(2, init=X[[0, 6]], batch_size=6)
    >>> km = km.partial_fit(X[0:6]).partial_fit(X[6:12])
    >>> km.cluster_centers_.round(3).tolist()
    [[1.5, 1.0], [3.8, 3.6]]
    >>> km.predict([[0, 0], [4, 4]]).tolist()
    [0, 1]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init="k-means||",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state=None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init="auto",
        reassignment_ratio: float = 0.01,
        checkpoint=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.checkpoint = checkpoint

    _parameter_constraints: ClassVar[dict] = {
        **CentroidEstimator._parameter_constraints,
        "batch_size": [Interval(numbers.Integral, 1, None)],
        "compute_labels": ["boolean"],
        "max_no_improvement": [Interval(numbers.Integral, 0, None), None],
        "init_size": [Interval(numbers.Integral, 1, None), None],
        "reassignment_ratio": [Interval(numbers.Real, 0, None)],
        "checkpoint": [str, os.PathLike, None],
    }

    _auto_random_runs = 3

    # -- validation ---------------------------------------------------------------------

    def _check_params(self, n_samples: int, n_features: int) -> None:
        """Validate the parameters, then derive the private values the fit uses."""
        validate_params(self)
        if n_samples < self.n_clusters:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}.")
        self._check_init_array(n_features)
        self._init_array = (
            _init.check_centers(self.init, self.n_clusters, n_features, "init")
            if _init.is_explicit(self.init)
            else None
        )
        self._batch_size = min(self.batch_size, n_samples)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * self._batch_size
            if init_size < self.n_clusters:
                init_size = 3 * self.n_clusters
        elif init_size < self.n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={self.n_clusters}. "
                "Setting it to min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=3,
            )
            init_size = 3 * self.n_clusters
        self._init_size = min(init_size, n_samples)
        self._n_init = self._n_runs()

    # -- initialization -----------------------------------------------------------------

    def _init_from_sample(self, sample, weights, seed: int) -> np.ndarray:
        """Initial centers from in-memory rows (the registry's strategies run on the sample,
        in this process), in the rows' dtype."""
        if self._init_array is not None:
            return self._init_array.astype(sample.dtype)
        w = None if weights is None else np.asarray(weights, np.float64)
        # k-means|| keeps its candidates' reduction on the sample: seeded by greedy k-means++
        # instead, mini-batch runs ended in poor local minima more often than scikit-learn's
        # (2 of 10 seeds 15% above the best inertia on 20,000 rows of 8 blobs; none before).
        centers = _init.initial_centers(
            self.init, sample, self.n_clusters, w, seed, seed_on_data=False
        )
        return centers.astype(sample.dtype)

    def _fit_init(self, data, weights, seed: int, rows_from=None) -> np.ndarray:
        """Best of ``n_init`` initializations, each on ``init_size`` sampled rows (read from
        ``rows_from``, by default ``data``); sets ``self._tol`` from the variance of the
        sampled rows."""
        n = data.shape[0]
        need_sample = self._init_array is None or self.tol > 0
        self._tol = 0.0
        if not need_sample:
            return self._init_array.astype(data.dtype)

        def draw(*key):
            if self._init_size >= n:
                return np.arange(n)
            return _random.generator(seed, *key).integers(0, n, self._init_size)

        runs = [draw(Key.MINIBATCH_INIT_ROWS, r) for r in range(self._n_init)]
        validation = draw(Key.MINIBATCH_VALIDATION) if self._n_init > 1 else np.empty(0, np.int64)
        wanted = np.unique(np.concatenate([*runs, validation]))
        rows = take_rows(data if rows_from is None else rows_from, wanted, dtype=data.dtype)
        row_weights = None
        if isinstance(weights, np.ndarray):
            row_weights = weights[wanted]
        elif weights is not None:
            (row_weights,) = compute(weights[wanted])
        bad = first_nonfinite_row(rows)
        if bad is not None:
            row = int(wanted[bad])
            raise NonFiniteInputError("X", row, (row, row + 1))

        def pick(index):
            at = np.searchsorted(wanted, index)
            return rows[at], (None if row_weights is None else row_weights[at])

        if self.tol > 0:
            self._tol = float(np.mean(np.var(pick(runs[0])[0].astype(np.float64), axis=0)))
            self._tol *= self.tol
        if self._init_array is not None:
            return self._init_array.astype(data.dtype)
        best, best_inertia = None, None
        for r, run_rows in enumerate(runs):
            run_seed = int(_random.generator(seed, Key.MINIBATCH_INIT_RUN, r).integers(2**62))
            centers = self._init_from_sample(*pick(run_rows), run_seed)
            if self._n_init == 1:
                return centers
            _, inertia = mbk.labels_inertia(*pick(validation), centers)
            if self.verbose:
                echo(f"Inertia for init {r + 1}/{self._n_init}: {inertia}")
            if _random.better(inertia, best_inertia, larger=False):
                best, best_inertia = centers, inertia
        return best

    # -- fit ----------------------------------------------------------------------------

    @small_data_blas
    def fit(self, X, y=None, sample_weight=None):
        """Compute the centers by mini-batch steps over batches streamed from ``X``.

        Parameters
        ----------
        X : array-like, np.memmap, str, zarr.Array or dask.array.Array of shape \
                (n_samples, n_features)
            Training data; anything :func:`bigclust.as_dask_array` takes.
        y : Ignored
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Weight of each row in the updates (scikit-learn instead samples rows with
            probability proportional to their weight; the expected update is the same).

        Returns
        -------
        self : MiniBatchKMeans
        """
        inp = read_input(X)
        n, d = inp.shape
        self._check_params(n, d)
        data = place(inp)
        weights = read_sample_weight(sample_weight, inp)
        checkpoint = Checkpoint.of(self, inp, weights)
        saved = checkpoint.load(mbk.FitState, mbk.Rows) if checkpoint else None
        if saved:  # go on from the last segment folded (the initialization is in it)
            seed, self._tol, shift = saved["seed"], saved["tol"], saved["shift"]
            state, done = saved["state"], saved["pieces"]
        else:
            seed = _random.seed_from(self.random_state)
            # The init rows straight from the user's in-memory array when there is one: the
            # same values, without a graph (or a cluster round trip) to gather them.
            source = data if inp.in_memory is None else inp.in_memory
            with Progress("MiniBatchKMeans initialization", self.verbose):
                centers = self._fit_init(data, weights, seed, rows_from=source)
            shift = kern.origin_shift(centers, data.dtype)
            state = mbk.FitState(mbk.shifted(centers, shift), np.zeros(self.n_clusters))
            done = 0

        bs = self._batch_size
        max_steps = (self.max_iter * n) // bs
        seg = segment_rows(d, data.dtype.itemsize, n, bs)
        n_segments = math.ceil(n / seg)
        params = mbk.FitParams(
            seed,
            n,
            bs,
            max_steps,
            float(self.reassignment_ratio),
            self._tol,
            self.max_no_improvement,
            shift,
        )

        def pieces():
            needed = max_steps * bs
            for epoch in itertools.count():
                order = _random.generator(seed, Key.SEGMENT_ORDER, epoch).permutation(n_segments)
                for s in order:
                    lo, hi = int(s) * seg, min(n, (int(s) + 1) * seg)
                    yield mbk.Piece(lo, hi, epoch, int(s))
                    needed -= hi - lo
                    if needed <= 0:
                        return

        def save(state, done):  # after every segment: everything the next one needs
            document = {"seed": seed, "tol": self._tol, "shift": shift, "pieces": done}
            checkpoint.save({**document, "state": state})

        source = data  # in process, on the cluster, or streamed (see driver.place)
        if not isinstance(data, np.ndarray) and inp.in_memory is not None:
            if active_client() is None:  # large in-memory data: sliced here, not by Dask
                source = np.asarray(inp.in_memory, dtype=data.dtype)
        source_w = weights
        remaining = itertools.islice(pieces(), done, None)
        if state.stopped is not None:
            remaining = iter(())  # the saved fit had stopped: nothing left to fold
        folds = stream_fold(
            mbk.fit_segment,
            source,
            remaining,
            state,
            sample_weight=source_w,
            params=params,
            prepare=mbk.shuffle_segment,
            prefetch=3,  # reads run ahead, one thread each (see driver.stream_fold)
        )
        # Segments to fold, about: max_steps * bs rows, n_segments per n rows.
        progress = Progress(
            "MiniBatchKMeans",
            self.verbose,
            total=math.ceil(max_steps * bs * n_segments / n),
            unit="segment",
            rows=seg,
        )
        with contextlib.closing(folds):
            for state in progress.iterate(folds):
                done += 1
                if state.bad_row is not None:
                    lo = state.bad_row // seg * seg
                    raise NonFiniteInputError("X", state.bad_row, (lo, min(n, lo + seg)))
                if checkpoint:
                    save(state, done)
                if self.verbose:
                    echo(
                        f"Minibatch step {state.step}/{max_steps}: mean batch inertia "
                        f"{state.last_batch_inertia / bs}, ewa inertia {state.ewa_inertia}"
                    )
                progress.pass_done(
                    step=state.step,
                    batch_inertia=state.last_batch_inertia / bs,
                    ewa_inertia=state.ewa_inertia,
                )
                if state.stopped is not None:
                    if self.verbose and state.stopped.startswith("converged"):
                        echo(f"Converged ({state.stopped}) at step {state.step}/{max_steps}")
                    break

        self.cluster_centers_ = mbk.unshifted(state.centers, shift)
        self.n_steps_ = state.step
        self.n_iter_ = math.ceil(state.step * bs / n)
        self._set_stream_state(state, seed, data.dtype, shift)
        if self.compute_labels:
            self.labels_, self.inertia_ = self._labels_inertia(inp, data, weights)
        else:
            total = n if weights is None else float(compute(weights.sum())[0])
            ewa = state.ewa_inertia
            if ewa is None:
                ewa = state.last_batch_inertia / bs
            self.inertia_ = float(ewa * total)
        record_features(self, inp)
        return self

    def _labels_inertia(self, inp, data, weights):
        """One pass: labels (lazy for Dask output) and inertia of every row."""
        aligned = () if weights is None else (weights,)
        if inp.numpy_out:
            out = map_reduce(mbk.labels_inertia_chunk, data, *aligned, params=self.cluster_centers_)
            return out.labels(), float(out.inertia)
        labels = self._labels(inp, self.cluster_centers_)
        return labels, self._inertia(data, weights, self.cluster_centers_)

    def _set_stream_state(self, state, seed, dtype, shift):
        """What partial_fit continues from. The steps run on centers shifted by ``shift``
        (data far from the origin, see :func:`origin_shift`); they are kept in that frame
        too, so that updates smaller than the float32 spacing of the data's magnitude still
        add up."""
        self._stream_centers = state.centers
        self._stream_source = self.cluster_centers_  # to notice centers set by hand
        self._counts = state.counts
        self._n_since_last_reassign = state.n_since_last_reassign
        self._seed = seed
        self._dtype = np.dtype(dtype)
        self._shift = shift

    # -- partial_fit --------------------------------------------------------------------

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centers with one batch, as scikit-learn's ``partial_fit``.

        The first call initializes the centers from this batch (``init``; an explicit init
        array is used as given). Each call is atomic: if it raises (different number of
        features or dtype than before, NaN or infinity in the batch), the fitted state is
        left as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a dask.array.Array / Zarr array
            The batch. A chunked input is consumed one row chunk at a time, each chunk one
            batch (one step), read while the previous one updates the centers, in bounded
            memory; ``labels_`` is then lazy (under the final centers) and ``inertia_`` sums
            each chunk's inertia after its own step.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row.

        Returns
        -------
        self : MiniBatchKMeans
        """
        fitted = hasattr(self, "cluster_centers_")
        numpy_in = not is_lazy_input(X)
        if numpy_in:
            batch = self._numpy_batch(X, fitted)
            weights = read_sample_weight(sample_weight, batch, dtype=batch.dtype)
            first = batch
        else:
            inp = read_input(X)
            batch = inp.data
            self._check_against_fitted(batch.shape[1], batch.dtype, fitted)
            weights = read_sample_weight(sample_weight, inp)
            first = None
        n, d = batch.shape

        if fitted:
            centers, counts, shift = self._stream_centers, self._counts, self._shift
            if self.cluster_centers_ is not self._stream_source:  # set by hand: go on from them
                centers = mbk.shifted(np.asarray(self.cluster_centers_, self._dtype), shift)
            n_since, seed, batch_size = self._n_since_last_reassign, self._seed, self._batch_size
            n_steps = getattr(self, "n_steps_", 0)
        else:
            if first is None:  # initialize from the first chunk, as from a first batch
                first = read_block(batch, 0)
            self._check_params(first.shape[0], d)
            bad = first_nonfinite_row(first)
            if bad is not None:
                raise NonFiniteInputError("X", bad, (0, first.shape[0]))
            seed = _random.seed_from(self.random_state)
            init_rows, init_w = first, None
            if weights is not None:
                init_w = weights if numpy_in else read_block(weights, 0)
            if self._init_size < first.shape[0]:
                pick = _random.generator(seed, Key.MINIBATCH_INIT_ROWS).integers(
                    0, first.shape[0], self._init_size
                )
                init_rows = first[pick]
                init_w = None if init_w is None else init_w[pick]
            run_seed = int(_random.generator(seed, Key.MINIBATCH_INIT_RUN, 0).integers(2**62))
            centers = self._init_from_sample(init_rows, init_w, run_seed)
            shift = kern.origin_shift(centers, centers.dtype)
            centers = mbk.shifted(centers, shift)
            counts, n_since, n_steps, batch_size = np.zeros(self.n_clusters), 0, 0, self._batch_size

        params = mbk.PartialParams(
            seed,
            batch_size,
            float(self.reassignment_ratio),
            bool(self.compute_labels),
            shift=shift,
        )
        state = mbk.PartialState(centers, counts, n_steps, n_since)
        if numpy_in:
            # One batch in memory: its rows are split over this machine's cores (as
            # scikit-learn's OpenMP loops do), and labels_ below is the only other pass.
            in_memory = params._replace(compute_labels=False, parallel=True)
            state = mbk.partial_fit_chunk(batch, weights, state, in_memory, mbk.Piece(0, n, 0, 0))
            if state.bad_row is not None:
                raise NonFiniteInputError("X", state.bad_row, (0, n))
        else:
            offsets = np.cumsum((0, *batch.chunks[0]))
            chunks = (
                mbk.Piece(int(a), int(b), 0, i)
                for i, (a, b) in enumerate(itertools.pairwise(offsets))
            )
            with contextlib.closing(
                stream_fold(
                    mbk.partial_fit_chunk,
                    batch,
                    chunks,
                    state,
                    sample_weight=weights,
                    params=params,
                )
            ) as folds:
                for state in folds:
                    if state.bad_row is not None:
                        i = int(np.searchsorted(offsets, state.bad_row, side="right")) - 1
                        raise NonFiniteInputError(
                            "X", state.bad_row, (int(offsets[i]), int(offsets[i + 1]))
                        )

        # Commit: nothing above changed the estimator's fitted state.
        self.cluster_centers_ = mbk.unshifted(state.centers, shift)
        self.n_features_in_ = d
        self.n_steps_ = state.n_steps
        self._set_stream_state(state, seed, batch.dtype, shift)
        self._batch_size = batch_size
        if self.compute_labels:
            if numpy_in:
                # The mini-batch step's rule for the compiled passes, not a Lloyd chunk's: a
                # batch of 10,000 x 32 at k=64 is labelled in 0.70 ms instead of 1.33 ms.
                passes = kern.compiled_passes(
                    "minibatch", batch.dtype, n * self.n_clusters, batch.shape[1]
                )
                self.labels_, self.inertia_ = mbk.labels_inertia(
                    batch, weights, self.cluster_centers_, parallel=True, passes=passes or False
                )
            else:
                self.labels_ = self._labels(inp, self.cluster_centers_)
                self.inertia_ = float(state.inertia)
        return self

    def _check_against_fitted(self, n_features, dtype, fitted):
        if not fitted:
            return
        check_n_features(self, n_features)
        if np.dtype(dtype) != self._dtype:
            raise TypeError(
                f"X has dtype {np.dtype(dtype)} but {type(self).__name__} was fitted on "
                f"{self._dtype} data; convert the batch with X.astype(np.{self._dtype})."
            )

    def _numpy_batch(self, X, fitted) -> np.ndarray:
        """Validate an in-memory batch as the data layer does, without wrapping it in Dask
        (a step costs about 200 us; a Dask array's construction would cost as much)."""
        source = np.asarray(X) if isinstance(X, np.memmap) else _open(X, None, "X")
        if source.ndim != 2 or 0 in source.shape:
            as_dask_array(source)  # raises the data layer's message
        dtype = check_dtype(source.dtype, "X")
        self._check_against_fitted(source.shape[1], dtype, fitted)
        return np.ascontiguousarray(source, dtype=dtype)
