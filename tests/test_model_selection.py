"""Many models in shared passes: every model as it is alone, with fewer reads of the data."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from bigclust import GaussianMixture, KMeans, MiniBatchKMeans, driver
from bigclust.model_selection import fit_together, sweep


@pytest.fixture(scope="module")
def data():
    X, _ = make_blobs(1500, 3, centers=4, cluster_std=1.5, random_state=0)
    return X


def _count_passes(monkeypatch):
    calls = []
    original = driver._map_reduce_now

    def counted(*args):
        calls.append(args[0])
        return original(*args)

    monkeypatch.setattr(driver, "_map_reduce_now", counted)
    return calls


def _same(a, b):
    for name in ("cluster_centers_", "means_", "covariances_", "weights_"):
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("inertia_", "n_iter_", "lower_bound_", "converged_"):
        if hasattr(a, name):
            assert getattr(a, name) == getattr(b, name), name


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "template,grid",
    [
        (KMeans(random_state=0), {"n_clusters": range(1, 5)}),
        (
            GaussianMixture(random_state=0, max_iter=10, init_params="k-means++"),
            {"n_components": [1, 3], "covariance_type": ["full", "diag"]},
        ),
    ],
    ids=["kmeans", "gmm"],
)
def test_shared_passes_give_every_model_its_own_result(
    scheduler, data, template, grid, monkeypatch, kmeans_parallel_at_any_size
):
    X = da.from_array(data, chunks=(400, 3))
    calls = _count_passes(monkeypatch)
    result = sweep(template, grid, X)
    shared = len(calls)
    calls.clear()
    alone = [template.__class__(**m.get_params()).fit(X) for m in result.models]
    separate = len(calls)
    for together, single in zip(result.models, alone, strict=True):
        _same(together, single)
    assert shared < separate / 2  # the same passes, each read once for all models
    assert len(result.rows) == len(result.models)
    if "n_clusters" in grid:
        inertia = [row["inertia"] for row in result.rows]
        assert inertia == sorted(inertia, reverse=True)
        from bigclust.metrics import silhouette_score

        assert np.isnan(result.rows[0]["silhouette"])  # one cluster
        for row, model in zip(result.rows[1:], result.models[1:], strict=True):
            alone_score = silhouette_score(X, model.labels_, metric="sqeuclidean")
            assert row["silhouette"] == pytest.approx(alone_score, rel=1e-12)
    else:
        for row, model in zip(result.rows, result.models, strict=True):
            assert row["bic"] == pytest.approx(model.bic(X), rel=1e-12)
            assert row["aic"] == pytest.approx(model.aic(X), rel=1e-12)


def test_models_of_different_kinds_and_a_failure(data):
    X = da.from_array(data, chunks=(500, 3))
    models = [KMeans(3, random_state=0), GaussianMixture(2, random_state=0)]
    fit_together(models, X)
    _same(models[0], KMeans(3, random_state=0).fit(X))
    _same(models[1], GaussianMixture(2, random_state=0).fit(X))
    bad = [KMeans(3, random_state=0), KMeans(5000, random_state=0)]
    with pytest.raises(ValueError, match="n_samples=1500 should be >= n_clusters=5000"):
        fit_together(bad, X)
    assert hasattr(bad[0], "cluster_centers_")  # the others still finished


def test_in_memory_input_and_plot(data, tmp_path):
    pytest.importorskip("matplotlib", reason="Sweep.plot needs the plot extra")
    result = sweep(MiniBatchKMeans(random_state=0, batch_size=256), {"n_clusters": [2, 4]}, data)
    assert [row["n_clusters"] for row in result.rows] == [2, 4]
    assert isinstance(result.models[0].labels_, np.ndarray)  # outputs still follow inputs
    frame = result.to_frame()
    assert list(frame["n_clusters"]) == [2, 4]
    path = tmp_path / "elbow.png"
    result.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
