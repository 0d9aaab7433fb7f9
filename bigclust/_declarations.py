"""What model files, ``to_sklearn()`` and ``bigclust fit`` know about each estimator.

One :class:`Declaration` per estimator in :data:`ESTIMATORS`: its fitted arrays with their
shapes (in terms of ``n_features_in_`` ``d``, the number of clusters or components ``k`` and
the parameters, e.g. ``covariance_type``) and dtypes, its fitted scalars, the private state
that predict and ``partial_fit`` continue from, and how to build the equivalent fitted
scikit-learn estimator. A new estimator joins with one row.
Only classes listed here are ever instantiated from a model file.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ESTIMATORS", "FLOAT", "Declaration", "declaration"]

Shape = Callable[[Mapping[str, Any], int, int], tuple]  # (params, k, d) -> shape
#: dtype rule of an array: "float" is the model's float dtype (float32 or float64, that of
#: the training data); anything else is the exact NumPy dtype.
FLOAT = "float"


@dataclass(frozen=True)
class Declaration:
    """What model files, ``to_sklearn()`` and the CLI need to know about one estimator."""

    command: str  # name under ``bigclust fit``
    estimator: Callable[[], type]  # imported on use
    k_param: str  # the parameter that counts clusters or components
    dtype_from: str  # the fitted array whose dtype is the model's float dtype
    arrays: Mapping[str, tuple[Shape, str]]
    scalars: Mapping[str, type]  # fitted scalars and lists: float, int, bool, list
    sklearn: Callable[[Any], Any]  # model -> fitted scikit-learn estimator
    has_labels: bool = True
    #: Private state that predict / partial_fit continue from: arrays with their shapes,
    #: scalars with their types (all optional), and how to get and set them.
    state_arrays: Mapping[str, tuple[Shape, str]] = field(default_factory=dict)
    state_scalars: Mapping[str, type] = field(default_factory=dict)
    get_state: Callable[[Any], dict] = lambda model: {}
    set_state: Callable[[Any, dict], None] = lambda model, state: None


def _kd(params, k, d):
    return (k, d)


def _k(params, k, d):
    return (k,)


def _d(params, k, d):
    return (d,)


def _covariance_shape(params, k, d):
    return {
        "full": (k, d, d),
        "tied": (d, d),
        "diag": (k, d),
        "spherical": (k,),
    }[params["covariance_type"]]


def _covariance_prior_shape(params, k, d):
    # The Wishart scale prior: a matrix for "full" and "tied", variances for "diag", one
    # variance for "spherical" (saved as a 0-d array).
    return {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}[
        params["covariance_type"]
    ]


def _dof_shape(params, k, d):
    return () if params["covariance_type"] == "tied" else (k,)


def _weight_concentration_shape(params, k, d):
    # The stick-breaking prior's (a, b) Beta parameters are saved stacked as one (2, k) array.
    return (2, k) if params["weight_concentration_prior_type"] == "dirichlet_process" else (k,)


# -- private state -------------------------------------------------------------------------

_MBK_STATE = {  # MiniBatchKMeans: where partial_fit goes on from
    "stream_centers": "_stream_centers",
    "counts": "_counts",
    "shift": "_shift",
    "n_since_last_reassign": "_n_since_last_reassign",
    "seed": "_seed",
    "batch_size": "_batch_size",
    "numpy_out": "_numpy_out",
    "dtype": "_dtype",
}


def _get_attrs(names):
    def get(model):
        state = {key: getattr(model, attr, None) for key, attr in names.items()}
        if "dtype" in state and state["dtype"] is not None:
            state["dtype"] = np.dtype(state["dtype"]).name
        return {key: value for key, value in state.items() if value is not None}

    return get


def _set_mbk_state(model, state):
    for key, attr in _MBK_STATE.items():
        value = state.get(key)
        setattr(model, attr, np.dtype(value) if key == "dtype" and value else value)
    model._stream_source = model.cluster_centers_  # partial_fit: the centers were not edited


_GMM_PARAMS = ("weights", "means", "covariances", "precisions_cholesky")


def _get_gmm_state(model):
    # The float64 parameters that predict and score use (the public ones are in the data's
    # dtype): saved so that a loaded float32 model predicts exactly as the saved one.
    params = getattr(model, "_params", None)
    if params is None:
        return {}
    state = {
        f"params_{name}": np.asarray(p, np.float64)
        for name, p in zip(_GMM_PARAMS, params, strict=True)
    }
    state["dtype"] = np.dtype(model._dtype).name
    return state


def _set_gmm_state(model, state):
    from bigclust.mixture._covariance import covariance_type

    dtype = state.get("dtype", model.means_.dtype.name)
    model._dtype = np.dtype(dtype)
    model._ctype = covariance_type(model.covariance_type)
    if all(f"params_{name}" in state for name in _GMM_PARAMS):
        model._params = tuple(state[f"params_{name}"] for name in _GMM_PARAMS)
    else:
        model._params = tuple(
            np.asarray(getattr(model, f"{name}_"), np.float64) for name in _GMM_PARAMS
        )


_BGMM_PARAMS = (  # BayesianGaussianMixture._params, in order
    "weight_concentration",
    "mean_precision",
    "means",
    "degrees_of_freedom",
    "covariances",
    "precisions_cholesky",
)
#: The members of ``_params`` whose public attributes are in the data's dtype (the others
#: are the float64 arrays themselves): saved as state so a float32 model predicts exactly.
_BGMM_STATE = ("means", "covariances", "precisions_cholesky")


def _get_bgmm_state(model):
    params = getattr(model, "_params", None)
    if params is None:
        return {}
    state = {
        f"params_{name}": np.asarray(p, np.float64)
        for name, p in zip(_BGMM_PARAMS, params, strict=True)
        if name in _BGMM_STATE
    }
    state["dtype"] = np.dtype(model._dtype).name
    return state


def _set_bgmm_state(model, state):
    from bigclust.mixture._bayesian_mixture import _WEIGHT_PRIORS
    from bigclust.mixture._covariance import covariance_type

    # Back to the types fit gives: the Beta parameters as a tuple, 0-d arrays as scalars.
    concentration = model.weight_concentration_
    if model.weight_concentration_prior_type == "dirichlet_process":
        concentration = (concentration[0].copy(), concentration[1].copy())
    model.weight_concentration_ = concentration
    if model.covariance_type == "tied":
        model.degrees_of_freedom_ = np.float64(model.degrees_of_freedom_)
    if model.covariance_type == "spherical":
        model.covariance_prior_ = float(model.covariance_prior_)
    model._dtype = np.dtype(state.get("dtype", model.means_.dtype.name))
    model._ctype = covariance_type(model.covariance_type)
    model._weight_prior = _WEIGHT_PRIORS[model.weight_concentration_prior_type]
    # weight_concentration_, mean_precision_ and degrees_of_freedom_ are _params' own
    # float64 values; the others come from the state (or, without it, from the public ones).
    model._params = tuple(
        state.get(f"params_{name}", np.asarray(getattr(model, f"{name}_"), np.float64))
        if name in _BGMM_STATE
        else getattr(model, f"{name}_")
        for name in _BGMM_PARAMS
    )


# -- scikit-learn equivalents --------------------------------------------------------------


def _sklearn_params(model, sk_class) -> dict:
    """Our parameters that scikit-learn's class also has; k-means|| becomes k-means++
    (scikit-learn's nearest initialization)."""
    accepted = sk_class().get_params()
    params = {k: v for k, v in model.get_params().items() if k in accepted}
    if isinstance(params.get("init"), str) and params["init"] == "k-means||":
        params["init"] = "k-means++"
    return params


def _fitted_like(sk, model, names) -> None:
    for name in names:
        if hasattr(model, name):
            value = getattr(model, name)
            setattr(sk, name, value.copy() if isinstance(value, np.ndarray) else value)
    if hasattr(model, "feature_names_in_"):
        sk.feature_names_in_ = np.asarray(model.feature_names_in_, dtype=object)


def _quietly_fit(sk, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)


def _sklearn_centroids(sk_class_name):
    def build(model):
        import sklearn.cluster

        sk_class = getattr(sklearn.cluster, sk_class_name)
        centers = np.asarray(model.cluster_centers_)
        # scikit-learn's own fit (one step from the centers, on the centers) sets its private
        # state; the public fitted attributes are then ours.
        sk = sk_class(n_clusters=centers.shape[0], init=centers, n_init=1, max_iter=1)
        _quietly_fit(sk, centers)
        sk.set_params(**_sklearn_params(model, sk_class))
        _fitted_like(sk, model, ("cluster_centers_", "inertia_", "n_iter_", "n_steps_"))
        labels = getattr(model, "labels_", None)
        if isinstance(labels, np.ndarray):
            sk.labels_ = labels.copy()
        else:  # lazy or absent: not computed here; the centers' own labels would mislead
            del sk.labels_
        return sk

    return build


def _sklearn_gaussian_mixture(model):
    from sklearn.mixture import GaussianMixture

    k = model.n_components
    sk = GaussianMixture(
        n_components=k,
        covariance_type=model.covariance_type,
        reg_covar=model.reg_covar,
        weights_init=model.weights_,
        means_init=model.means_,
        precisions_init=model.precisions_,
        max_iter=1,
    )
    _quietly_fit(sk, np.vstack([model.means_, model.means_]))  # >= 2 rows, as it requires
    sk.set_params(**_sklearn_params(model, GaussianMixture))
    _fitted_like(
        sk,
        model,
        (
            "weights_",
            "means_",
            "covariances_",
            "precisions_",
            "precisions_cholesky_",
            "converged_",
            "n_iter_",
            "lower_bound_",
            "lower_bounds_",
        ),
    )
    return sk


_BGMM_FITTED = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "weight_concentration_",
    "mean_precision_",
    "degrees_of_freedom_",
    "mean_prior_",
    "covariance_prior_",
    "degrees_of_freedom_prior_",
    "mean_precision_prior_",
    "weight_concentration_prior_",
    "converged_",
    "n_iter_",
    "lower_bound_",
    "lower_bounds_",
)


def _sklearn_bayesian_mixture(model):
    from sklearn.mixture import BayesianGaussianMixture

    # Its per-row outputs need only the fitted attributes (no fit): they are ours, copied.
    params = _sklearn_params(model, BayesianGaussianMixture)
    if not isinstance(params.get("init_params"), str):  # responsibilities scikit-learn lacks
        params.pop("init_params", None)
    sk = BayesianGaussianMixture(**params)
    _fitted_like(sk, model, _BGMM_FITTED)
    if isinstance(sk.weight_concentration_, tuple):
        sk.weight_concentration_ = tuple(a.copy() for a in sk.weight_concentration_)
    sk.n_features_in_ = model.n_features_in_
    return sk


def _import(module, name):
    def get():
        return getattr(importlib.import_module(module), name)

    return get


_MBK_STATE_ARRAYS = {
    "stream_centers": (_kd, FLOAT),
    "counts": (_k, "float64"),
    "shift": (_d, FLOAT),
}
_MBK_STATE_SCALARS = {
    "n_since_last_reassign": int,
    "seed": int,
    "batch_size": int,
    "numpy_out": bool,
    "dtype": str,
}
_GMM_ARRAYS = {
    "weights_": (_k, FLOAT),
    "means_": (_kd, FLOAT),
    "covariances_": (_covariance_shape, FLOAT),
    "precisions_": (_covariance_shape, FLOAT),
    "precisions_cholesky_": (_covariance_shape, FLOAT),
}

#: Every estimator that model files, ``to_sklearn()`` and ``bigclust fit`` know, by class name.
ESTIMATORS: dict[str, Declaration] = {
    "KMeans": Declaration(
        command="kmeans",
        estimator=_import("bigclust.cluster", "KMeans"),
        k_param="n_clusters",
        dtype_from="cluster_centers_",
        arrays={"cluster_centers_": (_kd, FLOAT)},
        scalars={"inertia_": float, "n_iter_": int},
        sklearn=_sklearn_centroids("KMeans"),
    ),
    "MiniBatchKMeans": Declaration(
        command="minibatch-kmeans",
        estimator=_import("bigclust.cluster", "MiniBatchKMeans"),
        k_param="n_clusters",
        dtype_from="cluster_centers_",
        arrays={"cluster_centers_": (_kd, FLOAT)},
        scalars={"inertia_": float, "n_iter_": int, "n_steps_": int},
        sklearn=_sklearn_centroids("MiniBatchKMeans"),
        state_arrays=_MBK_STATE_ARRAYS,
        state_scalars=_MBK_STATE_SCALARS,
        get_state=_get_attrs(_MBK_STATE),
        set_state=_set_mbk_state,
    ),
    "GaussianMixture": Declaration(
        command="gmm",
        estimator=_import("bigclust.mixture", "GaussianMixture"),
        k_param="n_components",
        dtype_from="means_",
        arrays=_GMM_ARRAYS,
        scalars={"converged_": bool, "n_iter_": int, "lower_bound_": float, "lower_bounds_": list},
        sklearn=_sklearn_gaussian_mixture,
        has_labels=False,
        state_arrays={
            f"params_{name}": (_GMM_ARRAYS[f"{name}_"][0], "float64") for name in _GMM_PARAMS
        },
        state_scalars={"dtype": str},
        get_state=_get_gmm_state,
        set_state=_set_gmm_state,
    ),
    "BayesianGaussianMixture": Declaration(
        command="bgmm",
        estimator=_import("bigclust.mixture", "BayesianGaussianMixture"),
        k_param="n_components",
        dtype_from="means_",
        arrays={
            **_GMM_ARRAYS,
            "weight_concentration_": (_weight_concentration_shape, "float64"),
            "mean_precision_": (_k, "float64"),
            "degrees_of_freedom_": (_dof_shape, "float64"),
            "mean_prior_": (_d, "float64"),
            "covariance_prior_": (_covariance_prior_shape, "float64"),
        },
        scalars={
            "converged_": bool,
            "n_iter_": int,
            "lower_bound_": float,
            "lower_bounds_": list,
            "degrees_of_freedom_prior_": float,
            "mean_precision_prior_": float,
            "weight_concentration_prior_": float,
        },
        sklearn=_sklearn_bayesian_mixture,
        has_labels=False,
        state_arrays={
            f"params_{name}": (_GMM_ARRAYS[f"{name}_"][0], "float64") for name in _BGMM_STATE
        },
        state_scalars={"dtype": str},
        get_state=_get_bgmm_state,
        set_state=_set_bgmm_state,
    ),
}


def declaration(model_or_class) -> Declaration:
    """The table row of an estimator (instance or class); ``TypeError`` if it has none."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    row = ESTIMATORS.get(cls.__name__)
    if row is None or row.estimator() is not cls:
        valid = ", ".join(ESTIMATORS)
        raise TypeError(f"{cls.__name__} has no bigclust model file format; valid: {valid}.")
    return row
