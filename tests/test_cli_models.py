"""`bigclust fit / predict / score / info` end to end on Zarr stores, for every estimator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from sklearn.cluster import KMeans as SkKMeans

import bigclust
from bigclust._declarations import declaration
from bigclust.cli import main

ESTIMATORS = {
    "kmeans": ["--n-clusters", "3", "--random-state", "0"],
    "minibatch-kmeans": ["--n-clusters", "3", "--batch-size", "200", "--random-state", "0"],
    "gmm": ["--n-components", "3", "--covariance-type", "diag", "--random-state", "0"],
    "bgmm": [
        *("--n-components", "4", "--covariance-type", "full", "--max-iter", "10", "--seed", "0"),
        *("--weight-concentration-prior-type", "dirichlet_distribution"),
        *("--weight-concentration-prior", "0.5"),
    ],
}
MIXTURES = ("gmm", "bgmm")
THREADS = ["--scheduler", "threads"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "data.zarr")
    args = ["--n-samples", "3000", "--n-features", "3", "--centers", "3", "--seed", "1"]
    assert main(["make-blobs", path, *args, "--chunk-rows", "700", "--no-progress"]) == 0
    return path


def read(path):
    return zarr.open_array(path, mode="r")[:]


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_fit_then_predict_round_trip(estimator, store, tmp_path, capsys):
    model_dir = str(tmp_path / "model")
    fit = ["fit", estimator, "--input", store, "--model", model_dir, *ESTIMATORS[estimator]]
    assert main([*fit, *THREADS]) == 0
    out = capsys.readouterr().out
    assert f"model saved to {model_dir}" in out
    model = bigclust.load(model_dir)
    assert model.random_state == 0 and model.n_features_in_ == 3
    assert declaration(model).command == estimator
    X = read(store)

    outputs = {"--output": tmp_path / "labels.zarr"}
    if estimator in MIXTURES:
        outputs["--proba-output"] = tmp_path / "proba.zarr"
        outputs["--score-samples-output"] = tmp_path / "density.zarr"
    else:
        outputs["--transform-output"] = tmp_path / "distances.zarr"
    flags = [str(x) for pair in outputs.items() for x in pair]
    assert main(["predict", "--model", model_dir, "--input", store, *flags, *THREADS]) == 0
    np.testing.assert_array_equal(read(outputs["--output"]), model.predict(X))
    methods = {
        "--proba-output": "predict_proba",
        "--score-samples-output": "score_samples",
        "--transform-output": "transform",
    }
    for option, method in methods.items():
        if option in outputs:
            np.testing.assert_array_equal(read(outputs[option]), getattr(model, method)(X))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries

    capsys.readouterr()
    if estimator == "bgmm":  # the generated options reached the estimator
        assert model.weight_concentration_prior_type == "dirichlet_distribution"
        assert model.weight_concentration_prior_ == 0.5
    assert main(["score", "--model", model_dir, "--input", store, "--json", *THREADS]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["score"] == pytest.approx(model.score(X), rel=1e-12)
    if estimator == "gmm":
        assert figures["bic"] == pytest.approx(model.bic(X), rel=1e-12)
        assert figures["aic"] == pytest.approx(model.aic(X), rel=1e-12)


def test_fit_records_the_data_and_info_shows_it(store, tmp_path, capsys):
    model_dir = str(tmp_path / "model")
    fit = ["fit", "gmm", "--input", store, "--model", model_dir, "--n-components", "2"]
    assert main([*fit, "--max-iter", "7", "--tol", "1e-5", *THREADS]) == 0
    capsys.readouterr()
    assert main(["info", "--model", model_dir]) == 0
    text = capsys.readouterr().out
    assert text.startswith("GaussianMixture (bigclust-model v1, float32)")
    assert "max_iter=7" in text and "tol=1e-05" in text and "lower_bound_" in text
    assert f"data: {store}, 3000 x 3 float32" in text
    assert f"scikit-learn {__import__('sklearn').__version__}" in text
    assert main(["info", "--model", model_dir, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["data"]["shape"] == [3000, 3] and doc["data"]["store"] == store
    assert doc["params"]["max_iter"] == 7 and doc["arrays"]["means_"]["shape"] == [2, 3]


def test_fit_writes_labels_to_zarr_and_into_the_model(store, tmp_path):
    model_dir, labels = str(tmp_path / "model"), str(tmp_path / "labels.zarr")
    fit = ["fit", "kmeans", "--input", store, "--model", model_dir, "--n-clusters", "3"]
    assert main([*fit, "--labels-output", labels, "--save-labels", *THREADS]) == 0
    model = bigclust.load(model_dir)
    np.testing.assert_array_equal(read(labels), model.labels_.compute())
    np.testing.assert_array_equal(read(labels), model.predict(read(store)))


def test_on_a_distributed_scheduler_by_address(store, tmp_path, process_client, capsys):
    model_dir, labels = str(tmp_path / "model"), str(tmp_path / "labels.zarr")
    address = ["--scheduler-address", process_client.scheduler.address]
    fit = ["fit", "kmeans", "--input", store, "--model", model_dir, "--n-clusters", "3"]
    fit += ["--init", "random", "--n-init", "1", "--random-state", "0"]  # few passes
    assert main([*fit, *address]) == 0
    assert f"dask: connected to {process_client.scheduler.address} (2 workers)" in (
        capsys.readouterr().err
    )
    predict = ["predict", "--model", model_dir, "--input", store, "--output", labels]
    assert main([*predict, *address]) == 0
    model = bigclust.load(model_dir)
    np.testing.assert_array_equal(read(labels), model.predict(read(store)))
    fit[5] = str(tmp_path / "threads")
    assert main([*fit, *THREADS]) == 0
    threaded = bigclust.load(tmp_path / "threads")
    np.testing.assert_allclose(threaded.cluster_centers_, model.cluster_centers_, rtol=1e-6)


def test_legacy_kmeans_command_writes_centers_and_labels(store, tmp_path, capsys):
    centers, labels = tmp_path / "centers.npy", str(tmp_path / "labels.zarr")
    args = ["kmeans", store, "--n-clusters", "3", "--seed", "2", *THREADS]
    assert main([*args, "--centers-out", str(centers), "--labels-out", labels]) == 0
    assert "inertia" in capsys.readouterr().out
    X = read(store)
    ours_centers, ours_labels = np.load(centers), read(labels)
    sk = SkKMeans(3, init=ours_centers, n_init=1, max_iter=1).fit(X)
    np.testing.assert_array_equal(ours_labels, sk.predict(X))
    np.testing.assert_allclose(sk.cluster_centers_, ours_centers, rtol=1e-4)


def test_legacy_kmeans_command_reports_a_missing_store(tmp_path, capsys):
    missing = str(tmp_path / "nope.zarr")
    assert main(["kmeans", missing, *THREADS]) == 1
    err = capsys.readouterr().err
    assert missing in err and err.count("\n") == 1
