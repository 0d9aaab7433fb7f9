"""Model files: save/load round trips, to_sklearn() agreement, and every corruption refused."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import bigclust
from bigclust import (
    BayesianGaussianMixture,
    GaussianMixture,
    KMeans,
    MiniBatchKMeans,
    ModelFileError,
    load,
    save,
)
from bigclust._persist import ESTIMATORS, data_fingerprint
from bigclust._state import StateFileNotFoundError, read_state, write_state


def blobs(n=600, d=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6, size=(4, d))
    return (centers[rng.integers(0, 4, n)] + rng.normal(size=(n, d))).astype(dtype)


X = blobs()
X_NEW = blobs(n=200, seed=1)

FITTED = {
    "kmeans": lambda: KMeans(4, random_state=0),
    "minibatch": lambda: MiniBatchKMeans(4, batch_size=100, random_state=0),
    "gmm-full": lambda: GaussianMixture(3, covariance_type="full", random_state=0),
    "gmm-tied": lambda: GaussianMixture(3, covariance_type="tied", random_state=0),
    "gmm-diag": lambda: GaussianMixture(3, covariance_type="diag", random_state=0),
    "gmm-spherical": lambda: GaussianMixture(3, covariance_type="spherical", random_state=0),
}
BGMM_PRIORS = {"dp": "dirichlet_process", "dd": "dirichlet_distribution"}
for _ctype in ("full", "tied", "diag", "spherical"):
    for _short, _prior in BGMM_PRIORS.items():
        FITTED[f"bgmm-{_ctype}-{_short}"] = lambda c=_ctype, p=_prior: BayesianGaussianMixture(
            n_components=3,
            covariance_type=c,
            weight_concentration_prior_type=p,
            max_iter=5,
            random_state=0,
        )


def outputs(model, data):
    """Every per-row output of the model on ``data``."""
    names = ("predict", "transform", "predict_proba", "score_samples")
    return {name: getattr(model, name)(data) for name in names if hasattr(model, name)}


@pytest.fixture(scope="module")
def fitted():
    cache = {}

    def get(name, dtype=np.float64):
        if (name, dtype) not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[name, dtype] = FITTED[name]().fit(X.astype(dtype))
        return cache[name, dtype]

    return get


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(FITTED))
def test_loaded_model_predicts_exactly_as_saved(name, dtype, fitted, tmp_path):
    model = fitted(name, dtype)
    path = tmp_path / "model"
    bigclust.save(model, path)
    loaded = load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    data = X_NEW.astype(dtype)
    for method, expected in outputs(model, data).items():
        np.testing.assert_array_equal(outputs(loaded, data)[method], expected, err_msg=method)
    assert loaded.score(data) == model.score(data)
    for name_, _ in ESTIMATORS[type(model).__name__].arrays.items():
        got, want = getattr(loaded, name_), getattr(model, name_)
        assert type(got) is type(want), name_  # e.g. a tuple stays a tuple
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got, want)
    for name_ in ESTIMATORS[type(model).__name__].scalars:
        assert getattr(loaded, name_) == getattr(model, name_)
    if hasattr(model, "labels_"):  # in-memory fit: NumPy labels are saved
        np.testing.assert_array_equal(loaded.labels_, model.labels_)


@pytest.mark.parametrize("name", ["kmeans", "gmm-diag"])
def test_fsspec_url_round_trip(name, fitted):
    model = fitted(name)
    url = f"memory://models/{uuid.uuid4().hex}/model"
    model.save(url)
    loaded = load(url)
    np.testing.assert_array_equal(loaded.predict(X_NEW), model.predict(X_NEW))


def test_loaded_minibatch_continues_partial_fit_as_the_saved_one(fitted, tmp_path):
    model = fitted("minibatch")
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    import copy

    original = copy.deepcopy(model)
    batch = blobs(n=150, seed=7)
    original.partial_fit(batch)
    loaded.partial_fit(batch)
    np.testing.assert_array_equal(loaded.cluster_centers_, original.cluster_centers_)
    assert loaded.n_steps_ == original.n_steps_


def test_loaded_bgmm_with_given_priors_continues_a_warm_start_fit_as_the_saved_one(tmp_path):
    import copy

    data = X.astype(np.float32)
    model = BayesianGaussianMixture(
        n_components=3,
        covariance_type="diag",
        mean_prior=np.zeros(3),
        covariance_prior=np.full(3, 2.0),
        max_iter=3,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data)
    save(model, tmp_path / "m")
    assert (tmp_path / "m" / "param.covariance_prior.npy").exists()
    loaded = load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.covariance_prior, model.covariance_prior)
    original = copy.deepcopy(model)
    for m in (original, loaded):
        m.set_params(warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(data)
    np.testing.assert_array_equal(loaded.means_, original.means_)
    assert loaded.lower_bound_ == original.lower_bound_


def test_array_parameters_are_saved_as_npy(tmp_path):
    init = X[:4].copy()
    model = KMeans(4, init=init, n_init=1).fit(X)
    save(model, tmp_path / "m")
    assert (tmp_path / "m" / "param.init.npy").exists()
    np.testing.assert_array_equal(load(tmp_path / "m").init, init)


def test_unsafe_parameters_are_not_saved_and_load_as_default(tmp_path):
    model = KMeans(2, random_state=np.random.RandomState(0)).fit(X)
    with pytest.warns(UserWarning, match="random_state=RandomState cannot be saved"):
        save(model, tmp_path / "m")
    assert load(tmp_path / "m").random_state is None


def test_lazy_labels_are_absent_unless_saved_as_zarr(tmp_path):
    Xd = da.from_array(X, chunks=150)
    model = KMeans(4, random_state=0).fit(Xd)
    save(model, tmp_path / "plain")
    assert not hasattr(load(tmp_path / "plain"), "labels_")
    assert "labels_" not in os.listdir(tmp_path / "plain")
    save(model, tmp_path / "zarr", labels="zarr")
    labels = load(tmp_path / "zarr").labels_
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), model.labels_.compute())
    url = f"memory://lazy/{uuid.uuid4().hex}"
    save(model, url, labels="zarr")
    np.testing.assert_array_equal(load(url).labels_.compute(), model.labels_.compute())


def test_fingerprint_and_versions_are_recorded(tmp_path):
    import zarr

    store = tmp_path / "x.zarr"
    zarr.create_array(str(store), shape=X.shape, dtype=X.dtype, chunks=(250, 3))[:] = X
    fingerprint = data_fingerprint(str(store))
    assert fingerprint == {
        "shape": [600, 3],
        "dtype": "float64",
        "chunks": fingerprint["chunks"],
        "store": str(store),
    }
    assert sum(size * count for size, count in fingerprint["chunks"]) == 600
    model = KMeans(2, random_state=0).fit(X)
    save(model, tmp_path / "m", fingerprint=fingerprint)
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert doc["format"] == "bigclust-model" and doc["format_version"] == 1
    assert doc["document"]["data"] == fingerprint
    assert doc["document"]["versions"]["numpy"] == np.__version__
    assert doc["document"]["scalars"]["inertia_"] == model.inertia_


def test_save_checks(tmp_path, fitted):
    with pytest.raises(NotFittedError):
        save(KMeans(2), tmp_path / "unfitted")
    with pytest.raises(TypeError, match="no bigclust model file format"):
        save(object(), tmp_path / "x")
    model = fitted("kmeans")
    save(model, tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite"):
        save(model, tmp_path / "m")
    save(fitted("gmm-diag"), tmp_path / "m", overwrite=True)
    assert isinstance(load(tmp_path / "m"), GaussianMixture)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("irreplaceable")
    with pytest.raises(FileExistsError, match=r"holds no model\.json"):
        save(model, tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "irreplaceable"


def test_a_failed_save_leaves_nothing(tmp_path, fitted, monkeypatch):
    from bigclust import _persist

    def fail(*args, **kwargs):
        raise OSError("disk full")

    save(fitted("kmeans"), tmp_path / "m")
    before = (tmp_path / "m" / "model.json").read_bytes()
    monkeypatch.setattr(_persist, "write_index", fail)
    with pytest.raises(OSError, match="disk full"):
        save(fitted("kmeans"), tmp_path / "new")
    with pytest.raises(OSError, match="disk full"):
        save(fitted("gmm-full"), tmp_path / "m", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary directory left behind
    assert (tmp_path / "m" / "model.json").read_bytes() == before


# -- to_sklearn ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FITTED))
def test_to_sklearn_agrees(name, fitted):
    import sklearn.cluster
    import sklearn.mixture

    model = fitted(name)
    sk = model.to_sklearn()
    expected_class = {
        "KMeans": sklearn.cluster.KMeans,
        "MiniBatchKMeans": sklearn.cluster.MiniBatchKMeans,
        "GaussianMixture": sklearn.mixture.GaussianMixture,
        "BayesianGaussianMixture": sklearn.mixture.BayesianGaussianMixture,
    }[type(model).__name__]
    assert type(sk) is expected_class
    ours, theirs = outputs(model, X_NEW), outputs(sk, X_NEW)
    assert ours.keys() == theirs.keys()
    np.testing.assert_array_equal(theirs.pop("predict"), ours.pop("predict"))
    for method, values in theirs.items():
        np.testing.assert_allclose(values, ours[method], rtol=1e-10, atol=1e-10, err_msg=method)
    np.testing.assert_allclose(sk.score(X_NEW), model.score(X_NEW), rtol=1e-10)
    if hasattr(model, "labels_"):
        np.testing.assert_array_equal(sk.labels_, model.labels_)
    if isinstance(model, KMeans):
        assert sk.init == "k-means++" and sk.random_state == 0


def test_bgmm_to_sklearn_has_its_fitted_attributes(fitted):
    model = fitted("bgmm-full-dp")
    sk = model.to_sklearn()
    assert isinstance(sk.weight_concentration_, tuple)
    for a, b in zip(sk.weight_concentration_, model.weight_concentration_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sk.weight_concentration_prior_type == "dirichlet_process"
    np.testing.assert_array_equal(sk.mean_prior_, model.mean_prior_)
    assert sk.get_params()["random_state"] == 0 and sk.max_iter == 5


def test_to_sklearn_without_lazy_labels():
    model = KMeans(3, random_state=0).fit(da.from_array(X, chunks=200))
    sk = model.to_sklearn()
    assert not hasattr(sk, "labels_")
    np.testing.assert_array_equal(sk.predict(X_NEW), model.predict(X_NEW))


# -- corruption ----------------------------------------------------------------------------


def _rewrite_index(path, change):
    index = path / "model.json"
    content = json.loads(index.read_text())
    change(content)
    index.write_text(json.dumps(content))


def _replace_array(path, name, array):
    """An attacker who also updates the checksum in model.json."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    (path / f"{name}.npy").write_bytes(data)

    def change(content):
        entry = content["arrays"][name]
        entry.update(shape=list(array.shape), dtype=array.dtype.str)
        entry["sha256"] = hashlib.sha256(data).hexdigest()

    _rewrite_index(path, change)


def _truncate(path, name):
    file = path / name
    file.write_bytes(file.read_bytes()[:-7])


def _flip_byte(path, name):
    file = path / name
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))


CORRUPTIONS = {
    "missing array": (lambda p: os.remove(p / "means_.npy"), "means_.npy", "missing"),
    "truncated array": (lambda p: _truncate(p, "means_.npy"), "means_.npy", "checksum"),
    "modified array": (lambda p: _flip_byte(p, "weights_.npy"), "weights_.npy", "checksum"),
    "wrong shape": (
        lambda p: _replace_array(p, "means_", np.zeros((2, 3))),
        "means_.npy",
        r"shape \(2, 3\) float64; a GaussianMixture with n_components=3",
    ),
    "wrong dtype": (
        lambda p: _replace_array(p, "weights_", np.zeros(3, np.float32)),
        "weights_.npy",
        "needs",
    ),
    "state of the wrong shape": (
        lambda p: _replace_array(p, "state.params_means", np.zeros((3, 4))),
        "state.params_means.npy",
        "needs",
    ),
    "missing index": (lambda p: os.remove(p / "model.json"), "model.json", "missing"),
    "truncated index": (lambda p: _truncate(p, "model.json"), "model.json", "not valid JSON"),
    "unknown format version": (
        lambda p: _rewrite_index(p, lambda c: c.update(format_version=2)),
        "model.json",
        "format version 2 is not supported",
    ),
    "other format": (
        lambda p: _rewrite_index(p, lambda c: c.update(format="pickle")),
        "model.json",
        "expected 'bigclust-model'",
    ),
    "unknown estimator": (
        lambda p: _rewrite_index(p, lambda c: c["document"].update(estimator="os.system")),
        "model.json",
        "unknown estimator 'os.system'",
    ),
    "unknown parameter": (
        lambda p: _rewrite_index(p, lambda c: c["document"]["params"].update(evil=1)),
        "model.json",
        "'evil' is not a parameter",
    ),
    "components changed": (
        lambda p: _rewrite_index(p, lambda c: c["document"]["params"].update(n_components=5)),
        "weights_.npy",
        "n_components=5",
    ),
    "array file renamed": (
        lambda p: _rewrite_index(p, lambda c: c["arrays"]["means_"].update(file="../../x.npy")),
        "means_.npy",
        "malformed",
    ),
    "bad scalar": (
        lambda p: _rewrite_index(p, lambda c: c["document"]["scalars"].update(n_iter_="many")),
        "model.json",
        "n_iter_ = 'many' should be of type int",
    ),
}


def test_bgmm_concentration_of_the_wrong_prior_type_is_refused(fitted, tmp_path):
    # A stick-breaking model needs (a, b) per component: one (k,) array is the other prior's.
    path = tmp_path / "model"
    save(fitted("bgmm-diag-dp"), path)
    _replace_array(path, "weight_concentration_", np.ones(3))
    with pytest.raises(ModelFileError, match=r"needs \(2, 3\) float64") as info:
        load(path)
    assert str(path / "weight_concentration_.npy") in str(info.value)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupted_model_files_are_refused_naming_the_file(case, fitted, tmp_path):
    path = tmp_path / "model"
    save(fitted("gmm-full"), path)
    damage, file, message = CORRUPTIONS[case]
    damage(path)
    with pytest.raises(ModelFileError, match=message) as info:
        load(path)
    assert str(path / file) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_pickle_in_a_model_file_is_never_executed(fitted, tmp_path):
    path = tmp_path / "model"
    save(fitted("kmeans"), path)
    witness = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(witness), "w"))

    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
    data = buffer.getvalue()
    assert b"executed" in data and pickle.PROTO in data
    (path / "cluster_centers_.npy").write_bytes(data)

    def change(content):  # a consistent index: only the loader stands in the way
        entry = content["arrays"]["cluster_centers_"]
        entry.update(shape=[1], dtype="|O", sha256=hashlib.sha256(data).hexdigest())

    _rewrite_index(path, change)
    with pytest.raises(ModelFileError, match=r"not a readable \.npy file"):
        load(path)
    assert not witness.exists()


def test_missing_directory_and_missing_labels_store(fitted, tmp_path):
    with pytest.raises(StateFileNotFoundError, match="no bigclust-model directory") as info:
        load(tmp_path / "nothing")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ModelFileError)
    model = KMeans(3, random_state=0).fit(da.from_array(X, chunks=200))
    save(model, tmp_path / "m", labels="zarr")
    import shutil

    shutil.rmtree(tmp_path / "m" / "labels_.zarr")
    with pytest.raises(ModelFileError, match=r"labels_\.zarr"):
        load(tmp_path / "m")


# -- the state format that checkpoints reuse -----------------------------------------------


@pytest.mark.parametrize("where", ["local", "memory"])
def test_write_state_read_state_round_trip_and_replace(where, tmp_path):
    path = str(tmp_path / "ckpt") if where == "local" else f"memory://ckpt/{uuid.uuid4().hex}"
    arrays = {"centers": np.arange(6.0).reshape(2, 3), "counts": np.array([3, 4])}
    write_state(path, {"iteration": 1}, arrays, format="test-ckpt", version=1)
    write_state(
        path, {"iteration": 2}, {"centers": arrays["centers"] + 1}, format="test-ckpt", version=1
    )
    document, got = read_state(path, format="test-ckpt", versions=(1,))
    assert document == {"iteration": 2} and list(got) == ["centers"]
    np.testing.assert_array_equal(got["centers"], arrays["centers"] + 1)
    with pytest.raises(ModelFileError, match="format version 1 is not supported"):
        read_state(path, format="test-ckpt", versions=(2,))
    with pytest.raises(ValueError, match="array name"):
        write_state(path, {}, {"../x": np.zeros(1)}, format="test-ckpt", version=1)


def test_feature_names_survive_the_round_trip(tmp_path):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(X, columns=["a", "b", "c"])
    model = GaussianMixture(2, random_state=0).fit(frame)
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(frame.rename(columns={"a": "z"}))
