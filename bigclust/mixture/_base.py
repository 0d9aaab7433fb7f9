"""The template of every mixture: the EM / variational loop over chunked data.

:class:`BaseMixture` owns what all mixtures share, as scikit-learn's ``BaseMixture`` does:
parameter constraints, the input, ``n_init`` and ``warm_start``, the initial
responsibilities (``init_params``), the loop and its convergence test, warnings, verbose
output, and the per-row outputs (``predict``, ``predict_proba``, ``score_samples``,
``score``) and ``sample``. Every iteration is **one pass** over the data: the E-step kernel
(:func:`bigclust.mixture._kernels.e_step_stats`) returns the sufficient statistics of the
responsibilities, tree-reduced by the driver; everything else runs on the client.

A model supplies the hooks:

- ``_check_parameters(n_features)``: its own parameters (initial values, priors), before
  any pass over the data,
- ``_check_data_parameters(X)``: parameters whose defaults need the data (a variational
  mixture's priors: one pass), once per ``fit``; nothing by default,
- ``_initialize(stats, shift, n_samples)``: parameters from the initial responsibilities'
  statistics (or from given initial values),
- ``_estimate_log_weights()`` and ``_estimate_log_prob_terms()``: what the E-step adds to
  each component's Gaussian log density (see :func:`_kernels.make_model`),
- ``_m_step(stats)`` and ``_compute_lower_bound(stats)``,
- ``_get_parameters()``, ``_set_parameters(params)``, ``_gaussian()`` (weights, means and
  precision Cholesky factors for per-row outputs) and ``_n_parameters()``.
"""

from __future__ import annotations

import numbers
import os
import warnings
from abc import ABCMeta, abstractmethod
from time import time
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from bigclust import _random
from bigclust._checkpoint import Checkpoint
from bigclust._input import (
    MIXTURE_LABELS,
    Input,
    check_features,
    check_min_samples,
    read_input,
    record_features,
)
from bigclust._params import Interval, Options, validate_params
from bigclust._progress import Progress, echo
from bigclust._random import Key
from bigclust.cluster import _init
from bigclust.driver import map_reduce, map_rows, place, small_data_blas, take_rows
from bigclust.mixture import _kernels
from bigclust.mixture._covariance import COVARIANCE_TYPES, CovarianceType, covariance_type
from bigclust.mixture._kernels import GaussianStats, InitResp, Model

__all__ = ["BaseMixture"]

#: The named ``init_params``; an array of initial responsibilities is accepted too.
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


class BaseMixture(DensityMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of mixture models fitted over chunked data, one pass per iteration.

    See the module docstring for the hooks a model implements.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(numbers.Integral, 1, None)],
        "tol": [Interval(numbers.Real, 0.0, None)],
        "reg_covar": [Interval(numbers.Real, 0.0, None)],
        "max_iter": [Interval(numbers.Integral, 0, None)],
        "n_init": [Interval(numbers.Integral, 1, None)],
        "init_params": [Options(*INIT_PARAMS), "array-like"],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": [Interval(numbers.Integral, 0, None), "boolean"],
        "verbose_interval": [Interval(numbers.Integral, 1, None)],
        "covariance_type": [Options(*COVARIANCE_TYPES)],
        "checkpoint": [str, os.PathLike, None],
    }

    def __init__(
        self,
        n_components,
        tol,
        reg_covar,
        max_iter,
        n_init,
        init_params,
        random_state,
        warm_start,
        verbose,
        verbose_interval,
    ):
        self.n_components = n_components
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # -- fitting ------------------------------------------------------------------------------

    @small_data_blas
    def fit(self, X, y=None):
        """Estimate the model parameters, ``n_init`` times, keeping the best.

        Each iteration is one pass over ``X``; iterations stop when the change of the lower
        bound (per sample) is below ``tol`` or after ``max_iter``, in which case a
        ``ConvergenceWarning`` is raised.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)
            Training data: in memory, a Dask array, a Zarr array or the path/URL of one.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted mixture.
        """
        validate_params(self)
        inp = read_input(X)
        check_min_samples(inp, 2)
        if inp.shape[0] < self.n_components:  # scikit-learn's message
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {inp.shape[0]}"
            )
        self._dtype = inp.data.dtype
        self._ctype = covariance_type(self.covariance_type)
        self._check_parameters(inp.shape[1])
        given_resp = self._given_responsibilities(inp)
        data = place(inp)
        self._check_data_parameters(data)
        checkpoint = Checkpoint.of(self, inp)
        self._fit_loop(data, given_resp, checkpoint)
        record_features(self, inp)
        return self

    def fit_predict(self, X, y=None):
        """Fit the model and return the most probable component of every sample of ``X``.

        Equivalent to ``fit(X).predict(X)``.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
            NumPy for in-memory input, a lazy Dask array otherwise.
        """
        return self.fit(X).predict(X)

    def _fit_loop(self, X, given_resp, checkpoint=None):
        """``n_init`` runs of the loop; the fitted attributes are set only at the end.

        With a :class:`~bigclust._checkpoint.Checkpoint`, the state after every iteration is
        saved, and a saved state is resumed from (the run under way, its parameters, the
        best run so far, the seed)."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        saved = checkpoint.load() if checkpoint else None
        seed = saved["seed"] if saved else _random.seed_from(self.random_state)
        best = saved["best"] if saved else None  # (lower bound, params, n_iter, bounds, conv.)
        # The origin of the E-steps: the data's mean from the first initialization pass (see
        # _e_step), or None until one has run.
        self._fit_shift = saved.get("shift") if saved else None

        def save(init, state):  # this run's state and the best so far, read when called
            document = {"seed": seed, "init": init, "best": best, "shift": self._fit_shift}
            checkpoint.save({**document, **state})

        for init in Progress(type(self).__name__, self.verbose).iterate(
            range(saved["init"] if saved else 0, n_init)
        ):
            self._print_verbose_msg_init_beg(init)
            if saved and saved["init"] == init and saved["params"] is not None:
                self._restore_parameters(saved["params"])  # this run was under way
                lower_bound, lower_bounds = saved["lower_bound"], list(saved["lower_bounds"])
                converged, n_iter = saved["converged"], saved["n_iter"]
            else:
                if do_init:
                    with Progress("initialization"):
                        self._initialize_parameters(X, seed, init, given_resp)
                lower_bound = -np.inf if do_init else self.lower_bound_
                lower_bounds, converged, n_iter = [], False, 0
            progress = Progress("iterations", total=self.max_iter, rows=X.shape[0])
            iterations = range(n_iter + 1, 0 if converged else self.max_iter + 1)
            for n_iter in progress.iterate(iterations):
                prev_lower_bound = lower_bound
                stats = self._e_step(X)
                self._m_step(stats)
                lower_bound = self._compute_lower_bound(stats)
                lower_bounds.append(lower_bound)
                change = lower_bound - prev_lower_bound
                progress.pass_done(n_iter, lower_bound=lower_bound, change=change)
                self._print_verbose_msg_iter_end(n_iter, change)
                converged = abs(change) < self.tol
                if checkpoint:
                    state = {"params": self._get_parameters(), "n_iter": n_iter,
                             "lower_bound": lower_bound, "lower_bounds": lower_bounds,
                             "converged": converged}  # fmt: skip
                    save(init, state)
                if converged:
                    break
            if self.max_iter > 0:
                self._print_verbose_msg_init_end(lower_bound, converged)
            run = (lower_bound, self._get_parameters(), n_iter, lower_bounds, converged)
            if best is None or _random.better(lower_bound, best[0]):
                best = run
            if checkpoint:  # this run is done: the next one starts from its initialization
                save(init + 1, {"params": None})
        lower_bound, params, n_iter, lower_bounds, converged = best
        lower_bounds = list(lower_bounds)
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_parameters(params)
        self.converged_ = converged
        self.n_iter_ = n_iter
        self.lower_bound_ = lower_bound
        self.lower_bounds_ = lower_bounds

    def _e_step(self, X) -> GaussianStats:
        """One pass: the responsibilities' statistics under the current parameters.

        Computed around the data's mean (``_fit_shift``) when the fit has had an
        initialization pass, else around the current mixture mean: either lies inside the
        data, so data far from the origin keep their digits. The data's mean depends on the
        data alone, so mixtures fitted together on the same data take their features around
        the same point and share them (:func:`bigclust._together.e_step_together`)."""
        self._last_model = self._e_step_model(shift=self._fit_shift)
        return map_reduce(_kernels.e_step_stats, X, params=self._last_model)

    def _e_step_model(self, with_entropy: bool = False, shift=None) -> Model:
        weights, means, precisions_chol = self._gaussian()
        return _kernels.make_model(
            self._ctype.name,
            weights,
            means,
            precisions_chol,
            shift,
            log_weights=self._estimate_log_weights(),
            log_prob_offset=self._estimate_log_prob_terms(),
            with_entropy=with_entropy or self._needs_entropy,
        )

    #: Whether the lower bound needs ``sum r log r`` from the E-step.
    _needs_entropy = False

    # -- initial responsibilities -------------------------------------------------------------

    def _given_responsibilities(self, inp: Input):
        """``init_params`` given as an (n_samples, n_components) array, checked, or None."""
        if isinstance(self.init_params, str):
            return None
        resp = self.init_params
        shape = getattr(resp, "shape", None)
        if shape is None:
            resp = np.asarray(resp, dtype=np.float64)
            shape = resp.shape
        expected = (inp.shape[0], self.n_components)
        if tuple(shape) != expected:
            raise ValueError(
                f"init_params given as an array has shape {tuple(shape)}; expected "
                f"(n_samples, n_components)={expected}."
            )
        return resp

    def _initialize_parameters(self, X, seed: int, init: int, given_resp=None):
        """Initial parameters: from given values, or from one pass over initial
        responsibilities (scikit-learn's ``_initialize_parameters``)."""
        stats = shift = None
        if self._needs_initial_statistics():
            shift = take_rows(X, [0])[0]  # a point in the data
            spec = InitResp("rows", self._ctype.name, self.n_components, shift)
            if given_resp is not None:
                aligned, spec = (given_resp,), spec._replace(kind="given")
            else:
                aligned, spec = (), self._initial_responsibilities(X, seed, init, spec)
            stats, moments = map_reduce(_kernels.init_stats_and_moments, X, *aligned, params=spec)
            self._fit_shift = moments.mean
        self._initialize(stats, shift, X.shape[0])

    def _needs_initial_statistics(self) -> bool:
        return True

    def _initial_responsibilities(self, X, seed: int, init: int, spec: InitResp) -> InitResp:
        """How the initial responsibilities are generated inside each chunk."""
        k, n_samples = self.n_components, X.shape[0]
        if self.init_params == "kmeans":
            from bigclust.cluster import KMeans

            km_seed = int(_random.generator(seed, Key.MIXTURE_KMEANS, init).integers(2**62))
            km = KMeans(n_clusters=k, init="k-means||", n_init=1, random_state=km_seed)
            centers = np.asarray(km.fit(X).cluster_centers_, dtype=np.float64)
            return spec._replace(kind="centers", centers=centers)
        if self.init_params == "random":
            return spec._replace(kind="random", seed=seed, key=(Key.MIXTURE_RANDOM, init))
        if self.init_params == "random_from_data":
            rng = _random.generator(seed, Key.MIXTURE_FROM_DATA, init)
            rows = rng.choice(n_samples, size=k, replace=False)
        else:  # "k-means++"
            km_seed = int(_random.generator(seed, Key.MIXTURE_KMEANSPP, init).integers(2**62))
            rows = _init.kmeans_plusplus_greedy(X, k, None, km_seed, return_rows=True).rows
        order = np.argsort(rows)
        return spec._replace(rows=rows[order], components=np.arange(k)[order])

    # -- per-row outputs ----------------------------------------------------------------------

    def _model(self) -> Model:
        check_is_fitted(self)
        return self._e_step_model()

    def _rowwise(self, X, kernel, params, dtype, n_columns):
        check_is_fitted(self)
        inp = read_input(X)
        check_features(self, inp)
        return map_rows(
            kernel,
            inp.data,
            params=params,
            dtype=dtype,
            n_columns=n_columns,
            numpy_out=inp.numpy_out,
            in_memory=inp.in_memory,
        )

    def predict(self, X):
        """Most probable component of every sample.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,), int64
            NumPy for in-memory input, a lazy Dask array otherwise.
        """
        return self._rowwise(X, _kernels.predict_block, self._model(), MIXTURE_LABELS, None)

    def predict_proba(self, X):
        """Posterior probability of each component for every sample.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray or dask.array.Array of shape (n_samples, n_components)
        """
        params = (self._model(), self._dtype)
        return self._rowwise(
            X, _kernels.predict_proba_block, params, self._dtype, self.n_components
        )

    def score_samples(self, X):
        """Log-likelihood of every sample under the model.

        For a Zarr or Dask input the result is a lazy Dask array: a density threshold (e.g.
        the 2nd percentile for anomaly detection) can be computed from it without bringing
        the scores to the client, exactly, with :func:`bigclust.percentile`
        (``np.percentile`` of a lazy array is approximate across chunks).

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray or dask.array.Array of shape (n_samples,)
        """
        params = (self._model(), self._dtype)
        return self._rowwise(X, _kernels.score_samples_block, params, self._dtype, None)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the samples of ``X`` (one pass; no per-row output kept).

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
        """
        check_is_fitted(self)
        inp = read_input(X)
        check_features(self, inp)
        # Where fit's passes run: small in-memory data in this process, without a graph.
        total = map_reduce(_kernels.log_prob_sum, place(inp), params=self._model())
        return total / inp.shape[0]

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Draws come from a stream derived from ``random_state``: the same integer gives the
        same samples.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), float64
        y : ndarray of shape (n_samples,), int64
            Component of each sample, in increasing order as in scikit-learn.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
                "least one sample."
            )
        weights, means, precisions_chol = self._gaussian()
        rng = _random.generator(_random.seed_from(self.random_state), Key.MIXTURE_SAMPLE)
        counts = rng.multinomial(n_samples, weights / weights.sum())
        parts = [
            self._ctype.sample(rng, means[k], precisions_chol, k, count)
            for k, count in enumerate(counts)
        ]
        X = np.vstack(parts)
        y = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        return X, y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # -- verbose output -----------------------------------------------------------------------

    def _print_verbose_msg_init_beg(self, n_init):
        if self.verbose >= 1:
            echo(f"Initialization {n_init}")
            self._init_prev_time = self._iter_prev_time = time()

    def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
        if n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                echo(f"  Iteration {n_iter}")
            elif self.verbose >= 2:
                now = time()
                echo(
                    f"  Iteration {n_iter}\t time lapse {now - self._iter_prev_time:.5f}s\t "
                    f"ll change {diff_ll:.5f}"
                )
                self._iter_prev_time = now

    def _print_verbose_msg_init_end(self, lb, converged):
        message = "converged" if converged else "did not converge"
        if self.verbose == 1:
            echo(f"Initialization {message}.")
        elif self.verbose >= 2:
            lapse = time() - self._init_prev_time
            echo(f"Initialization {message}. time lapse {lapse:.5f}s\t lower bound {lb:.5f}.")

    # -- what a model supplies ----------------------------------------------------------------

    @property
    def _eps(self) -> float:
        return float(np.finfo(self._dtype).eps)

    @property
    def _float32(self) -> bool:
        return self._dtype == np.float32

    @abstractmethod
    def _check_parameters(self, n_features: int) -> None: ...

    def _check_data_parameters(self, X) -> None:
        """Parameters whose defaults come from the data; run once per fit, before the first
        initialisation (nothing here)."""

    @abstractmethod
    def _initialize(self, stats: GaussianStats | None, shift, n_samples: int) -> None: ...

    @abstractmethod
    def _estimate_log_weights(self) -> np.ndarray: ...

    def _estimate_log_prob_terms(self) -> np.ndarray | None:
        """Added to each component's Gaussian log density in the E-step (none here)."""
        return None

    @abstractmethod
    def _m_step(self, stats: GaussianStats) -> None: ...

    @abstractmethod
    def _compute_lower_bound(self, stats: GaussianStats) -> float: ...

    @abstractmethod
    def _gaussian(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _get_parameters(self) -> Any: ...

    def _restore_parameters(self, params: Any) -> None:
        """Go on from parameters saved in a checkpoint (no fitted attribute is set)."""
        self._params = params

    @abstractmethod
    def _set_parameters(self, params: Any) -> None: ...


def ctype_of(estimator) -> CovarianceType:
    """The covariance-type object of a fitted or unfitted mixture."""
    return covariance_type(estimator.covariance_type)
