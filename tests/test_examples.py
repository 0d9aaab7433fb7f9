"""The examples run at their small size, write real figures and find what they claim."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load(name):
    """Import ``examples/NAME.py`` (the scripts import the ``_example_kit`` module beside them)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name, tmp_path, *args):
    return load(name).main(
        ["--small", "--out", str(tmp_path / "figures"), "--workdir", str(tmp_path / "data"), *args]
    )


def check_figures(result, tmp_path, names):
    """Each figure is a PNG in the output directory, and not a blank canvas."""
    import matplotlib.image

    assert sorted(p.name for p in result["figures"]) == sorted(names)
    for path in result["figures"]:
        assert path.parent == tmp_path / "figures"
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 300, (path, image.shape)
        assert image[..., :3].std() > 0.05, f"{path} is blank"


def read_store(tmp_path, name):
    return zarr.open_array(str(tmp_path / "data" / name), mode="r")[:]


def test_kmeans_blobs(tmp_path):
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import adjusted_rand_score

    result = run("kmeans_blobs", tmp_path)
    check_figures(result, tmp_path, ["kmeans_decision_boundaries.png", "kmeans_elbow.png"])
    assert result["n_samples"] == 2000
    inertia = list(result["inertia"].values())
    assert list(result["inertia"]) == list(range(1, 11))
    assert all(a > b for a, b in itertools.pairwise(inertia)), inertia
    assert result["center_error"] < 0.1  # every one of the five blobs has its center
    assert adjusted_rand_score(result["sample_truth"], result["sample_labels"]) > 0.9
    X = read_store(tmp_path, "blobs.zarr")
    reference = SkKMeans(5, n_init=10, random_state=0).fit(X).inertia_
    assert result["inertia"][5] == pytest.approx(reference, rel=1e-4)


def test_kmeans_silhouette(tmp_path):
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import silhouette_score

    result = run("kmeans_silhouette", tmp_path, "--sample-size", "1000")
    check_figures(result, tmp_path, ["kmeans_silhouette.png", "kmeans_silhouette_diagrams.png"])
    scores = result["silhouette"]
    assert list(scores) == list(range(2, 11))
    # As in the notebook: k = 4 highest (two small blobs pass for one), k = 5 a close second.
    ranking = sorted(scores, key=scores.get, reverse=True)
    assert result["best_k"] == 4 and ranking[:2] == [4, 5], scores
    X = read_store(tmp_path, "blobs.zarr")
    for k in (4, 5):  # the estimate from 1,000 rows is within a few standard errors of all rows'
        labels = SkKMeans(k, n_init=10, random_state=0).fit_predict(X)
        std = result["std_error"][k]
        assert 0 < std < 0.01
        assert scores[k] == pytest.approx(silhouette_score(X, labels), abs=4 * std + 1e-3)


def test_minibatch_out_of_core(tmp_path):
    result = run("minibatch_out_of_core", tmp_path, "--epochs", "3")
    check_figures(result, tmp_path, ["minibatch_centers.png", "minibatch_inertia.png"])
    steps, inertia = result["partial_fit_steps"], result["partial_fit_inertia"]
    assert steps[0] == 1 and steps[-1] == 3 * 20  # 20 chunks of 1,000 rows, three epochs
    assert all(a < b for a, b in itertools.pairwise(steps))
    assert inertia[-1] < inertia[0]
    target = result["kmeans_inertia"]
    assert inertia[-1] == pytest.approx(target, rel=0.01)
    assert result["fit_inertia"] == pytest.approx(target, rel=0.01)
    true = result["true_centers"]
    for name in ("fit_centers", "partial_fit_centers"):
        distances = np.linalg.norm(true[:, None] - result[name], axis=2)
        assert distances.min(axis=1).max() < 1.0, name  # every blob found


def test_semi_supervised_digits(tmp_path):
    module = load("semi_supervised_digits")
    result = module.main(["--out", str(tmp_path / "figures"), "--workdir", str(tmp_path / "d")])
    check_figures(result, tmp_path, ["digits_representatives.png"])
    assert len(set(result["representatives"].tolist())) == 50
    assert result["propagated_label_accuracy"] > 0.9
    assert result["representatives_accuracy"] > result["random_accuracy"] + 0.03
    assert result["propagated_accuracy"] > result["random_accuracy"] + 0.08
    # Partial propagation: the 20% of each cluster nearest its center, labelled more reliably.
    assert 0.18 * 1400 <= result["n_partial"] <= 0.25 * 1400
    assert result["partial_label_accuracy"] > result["propagated_label_accuracy"]
    assert result["partial_accuracy"] > result["random_accuracy"] + 0.05


def test_gmm_anomalies(tmp_path):
    result = run("gmm_anomalies", tmp_path)
    check_figures(result, tmp_path, ["gmm_anomalies.png", "gmm_bic_aic.png"])
    assert result["best_bic"] == 3
    assert list(result["bic"]) == list(range(1, 11))
    X = read_store(tmp_path, "mixture.zarr")
    densities = result["model"].score_samples(X)
    assert result["threshold"] == pytest.approx(np.percentile(densities, 2), rel=1e-12)
    flagged = densities < result["threshold"]
    assert result["n_anomalies"] == flagged.sum() == pytest.approx(0.02 * len(X), abs=1)
    np.testing.assert_array_equal(result["anomalies"], X[flagged])


@pytest.mark.slow
def test_kmeans_out_of_core_example():
    agreement = load("kmeans_out_of_core").main(
        ["--n-samples", "40000", "--n-features", "4", "--n-clusters", "4", "--workers", "1"]
    )
    assert agreement > 0.99
