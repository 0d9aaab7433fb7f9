"""KMeans(algorithm="elkan"): bounded iterations give exactly Lloyd's fit."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from _inputs import as_input
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from bigclust import KMeans, _chunk_state, load, save
from bigclust.cluster import _elkan
from bigclust.cluster import _kernels as kern

K = 12


@pytest.fixture(scope="module")
def overlapping():
    # Overlapping blobs: many iterations, rows near the boundaries between centers, so the
    # bounds both skip rows and fail on rows whose label then changes.
    X, _ = make_blobs(n_samples=3000, n_features=4, centers=K, cluster_std=2.5, random_state=1)
    init = X[np.random.default_rng(0).choice(len(X), K, replace=False)]
    return X, init


@pytest.fixture(scope="module")
def grid():
    # Integer grid points and centers on the grid: many rows exactly equidistant from two
    # or more centers, where only computing distances as Lloyd does gives Lloyd's labels.
    rng = np.random.default_rng(2)
    X = rng.integers(0, 7, size=(4000, 3)).astype(np.float64)
    init = rng.integers(0, 7, size=(K, 3)).astype(np.float64) + 0.5 * (np.arange(K) % 2)[:, None]
    return X, init


def labels_of(model):
    labels = model.labels_
    return labels.compute() if isinstance(labels, da.Array) else labels


def fit(X, init, algorithm, **kw):
    fit_kw = kw.pop("fit", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(len(init), init=init, algorithm=algorithm, **kw).fit(X, **fit_kw)


def assert_same_fit(elkan, lloyd):
    np.testing.assert_array_equal(labels_of(elkan), labels_of(lloyd))
    np.testing.assert_allclose(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=1e-10, atol=0)
    assert elkan.n_iter_ == lloyd.n_iter_
    assert elkan.inertia_ == lloyd.inertia_  # the same labels, the same sums: the same bits
    assert elkan.cluster_centers_.dtype == lloyd.cluster_centers_.dtype


def skipped(model) -> float:
    """Share of the row-center distances the bounds saved over the fit."""
    rows = sum(r for r, _, _ in model._bound_history)
    done = sum(c * K + t for _, c, t in model._bound_history)
    return 1 - done / (rows * K)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kind,chunks", [("numpy", None), ("dask", 3000), ("dask", 1000), ("dask", 257), ("zarr", 700)]
)
@pytest.mark.parametrize("data", ["overlapping", "grid"])
def test_elkan_equals_lloyd(data, dtype, kind, chunks, request, tmp_path):
    X, init = request.getfixturevalue(data)
    X = X.astype(dtype)
    inp = as_input(X, kind, chunks, tmp_path)
    lloyd = fit(inp, init, "lloyd")
    elkan = fit(inp, init, "elkan")
    assert_same_fit(elkan, lloyd)
    assert lloyd.n_iter_ >= 5
    assert skipped(elkan) > 0.3  # the bounds did skip work (the test is not Lloyd vs Lloyd)
    assert isinstance(elkan.labels_, np.ndarray if kind == "numpy" else da.Array)


def test_ties_resolve_as_lloyd_in_a_chunk_whose_last_block_is_one_row(grid):
    # 16,385 rows: Lloyd's row blocks of 16,384 leave the last row alone (a 1-row product,
    # which OpenBLAS computes differently in float64).
    X = np.tile(grid[0], (5, 1))[:16385]
    init = grid[1]
    lloyd = fit(da.from_array(X, chunks=(16385, 3)), init, "lloyd", max_iter=6)
    elkan = fit(da.from_array(X, chunks=(16385, 3)), init, "elkan", max_iter=6)
    assert_same_fit(elkan, lloyd)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunks_in_fortran_order(overlapping, dtype, monkeypatch):
    """Lloyd's products read strided rows of such chunks; the unsettled rows are computed the
    same way, not from a C-ordered copy (BLAS may round those differently)."""
    X, init = overlapping
    data = da.from_array(X.astype(dtype), chunks=(700, 4)).map_blocks(np.asfortranarray)
    seen = []
    original = _elkan._assign_failed

    def spy(block, *args):
        seen.append(block.flags.f_contiguous and not block.flags.c_contiguous)
        return original(block, *args)

    monkeypatch.setattr(_elkan, "_assign_failed", spy)
    elkan = fit(data, init, "elkan")
    assert seen and all(seen)
    assert_same_fit(elkan, fit(data, init, "lloyd"))
    assert skipped(elkan) > 0.1


def test_on_every_scheduler(overlapping, scheduler):
    X, init = overlapping
    data = da.from_array(X.astype(np.float32), chunks=(600, 4))
    assert_same_fit(fit(data, init, "elkan"), fit(data, init, "lloyd"))


@pytest.mark.slow
def test_on_worker_processes(overlapping, processes, process_client):
    X, init = overlapping
    data = da.from_array(X.astype(np.float32), chunks=(500, 4))  # chunks read on the workers
    elkan = fit(data, init, "elkan")
    assert_same_fit(elkan, fit(data, init, "lloyd"))
    with dask.config.set(scheduler="sync"):
        in_process = fit(data, init, "elkan")
    # Every chunk's task ran where its bounds were: no pass recomputed more rows than in
    # one process (chunks read on any worker, their kernels sent where the bounds live).
    assert elkan._bound_history == in_process._bound_history
    # ... and are gone from them once the fit is done.
    held = process_client.run(_chunk_state.drop_run, "no such run")
    assert set(held.values()) == {0}
    assert not any(process_client.run(lambda: len(_chunk_state.STORE)).values())


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_with_sample_weight(overlapping, kind):
    X, init = overlapping
    weights = np.random.default_rng(1).uniform(0.1, 3.0, len(X))
    weights[::7] = 0.0
    if kind == "dask":
        X, weights = da.from_array(X, chunks=(500, 4)), da.from_array(weights, chunks=800)
    lloyd = fit(X, init, "lloyd", fit={"sample_weight": weights})
    elkan = fit(X, init, "elkan", fit={"sample_weight": weights})
    assert_same_fit(elkan, lloyd)


def test_several_runs_from_random_init(overlapping):
    X, _ = overlapping
    data = da.from_array(X, chunks=(800, 4))
    kw = {"init": "random", "n_init": 3, "random_state": 5}
    lloyd = KMeans(K, algorithm="lloyd", **kw).fit(data)
    elkan = KMeans(K, algorithm="elkan", **kw).fit(data)
    assert_same_fit(elkan, lloyd)


def test_lost_or_stale_bounds_are_recomputed(overlapping, monkeypatch):
    """A chunk whose bounds vanish (a worker lost) or are from another pass (a retried task)
    is assigned from full distances: the fit is unchanged."""
    X, init = overlapping
    data = da.from_array(X, chunks=(1000, 4))
    reference = fit(data, init, "elkan")
    original = _elkan.BoundedPasses.__call__
    damaged = []

    def damaging(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if self.iteration == 6:
            damaged.append(_chunk_state.STORE.pop((self.run, 0)))  # chunk 0 lost
        if self.iteration == 8:
            _chunk_state.STORE[(self.run, 1000)].iteration -= 1  # chunk 1 from an earlier pass
        return result

    monkeypatch.setattr(_elkan.BoundedPasses, "__call__", damaging)
    damaged_fit = fit(data, init, "elkan")
    assert damaged  # the state was there to lose
    assert_same_fit(damaged_fit, reference)
    computed = [c for _, c, _ in damaged_fit._bound_history]
    normal = [c for _, c, _ in reference._bound_history]
    assert computed[6] >= 1000 > normal[6]
    assert computed[8] >= 1000 > normal[8]
    assert not any(key[0] == damaged_fit._bound_run for key in _chunk_state.STORE)


def test_resumed_fit_equals_an_uninterrupted_one(overlapping, tmp_path, monkeypatch):
    from bigclust._checkpoint import Checkpoint

    X, init = overlapping
    data = da.from_array(X, chunks=(900, 4))
    reference = fit(data, init, "elkan")
    original = Checkpoint.save
    saves = 0

    class Killed(BaseException):
        pass

    def dying(self, state):
        nonlocal saves
        original(self, state)
        saves += 1
        if saves == 4:
            raise Killed

    monkeypatch.setattr(Checkpoint, "save", dying)
    with pytest.raises(Killed):
        fit(data, init, "elkan", checkpoint=str(tmp_path / "ckpt"))
    monkeypatch.setattr(Checkpoint, "save", original)
    resumed = fit(data, init, "elkan", checkpoint=str(tmp_path / "ckpt"))
    assert_same_fit(resumed, reference)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parity_with_sklearn_elkan(dtype):
    X, _ = make_blobs(n_samples=3001, n_features=4, centers=6, cluster_std=1.5, random_state=3)
    X = X.astype(dtype)
    init = X[np.random.default_rng(0).choice(len(X), 6, replace=False)]
    sk = SkKMeans(6, init=init, n_init=1, algorithm="elkan").fit(X)
    ours = KMeans(6, init=init, algorithm="elkan").fit(X)
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=rtol, atol=rtol)
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=rtol)
    assert ours.n_iter_ == sk.n_iter_


def test_unknown_algorithm_is_refused(overlapping):
    with pytest.raises(ValueError, match="algorithm"):
        KMeans(3, algorithm="hamerly").fit(overlapping[0])


def test_model_file_and_cli_keep_the_algorithm(overlapping, tmp_path):
    from bigclust.cli import main

    X, init = overlapping
    model = KMeans(K, init=init, algorithm="elkan").fit(X)
    save(model, tmp_path / "m")
    assert load(tmp_path / "m").get_params()["algorithm"] == "elkan"
    store = as_input(X, "zarr", 500, tmp_path)
    argv = ["fit", "kmeans", "--input", store, "--model", str(tmp_path / "c"),
            "--n-clusters", "4", "--algorithm", "elkan", "--scheduler", "threads"]  # fmt: skip
    assert main(argv) == 0
    assert load(tmp_path / "c").get_params()["algorithm"] == "elkan"


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_chunk_sums_are_lloyds_bits(overlapping, compiled, weighted, monkeypatch):
    """For Lloyd's labels the bounded kernel's sums are Lloyd's own, bit for bit."""
    monkeypatch.setattr(kern, "USE_COMPILED", compiled)
    X, init = overlapping
    X = X.astype(np.float32) + 100.0  # far from the origin: the shifted frame
    centers = init + 100.0
    w = np.random.default_rng(3).uniform(0, 2, len(X)) if weighted else None
    params = kern.LloydParams(centers, with_inertia=True)
    lloyd = kern._lloyd(X, w, params)
    groups = _elkan.group_centers(centers, 2)
    bounded = _elkan.BoundParams(centers, "t", 0, None, groups, _elkan.group_members(groups),
                                 None, True, None)  # fmt: skip
    ours = _elkan._bounded(X, w, bounded, 0)
    _chunk_state.drop_run("t")
    np.testing.assert_array_equal(ours.sums, lloyd.sums)
    np.testing.assert_array_equal(ours.weights, lloyd.weights)
    assert ours.inertia == lloyd.inertia
    assert (ours.rows, ours.computed) == (len(X), len(X))


@pytest.mark.parametrize("centers_per_group", [4, 1])
def test_grouped_bounds_equal_lloyd(overlapping, centers_per_group, monkeypatch):
    """Yinyang's groups of lower bounds, and Elkan's one per center, give Lloyd's fit too."""
    monkeypatch.setattr(_elkan, "CENTERS_PER_GROUP", centers_per_group)
    X, init = overlapping
    data = da.from_array(X.astype(np.float32), chunks=(700, 4))
    elkan = fit(data, init, "elkan")
    assert_same_fit(elkan, fit(data, init, "lloyd"))
    assert skipped(elkan) > 0.3


def test_groups_cover_every_center(monkeypatch):
    monkeypatch.setattr(_elkan, "CENTERS_PER_GROUP", 10)
    centers = np.random.default_rng(0).normal(size=(37, 3))
    groups = _elkan.group_centers(centers, _elkan.n_groups(37))
    start, members = _elkan.group_members(groups)
    assert sorted(members.tolist()) == list(range(37))
    for g in range(len(start) - 1):
        assert (groups[members[start[g] : start[g + 1]]] == g).all()
    assert _elkan.n_groups(5) == 1 and _elkan.n_groups(256) == 26


def test_threaded_scheduler_keeps_no_bounds_after_the_fit(overlapping):
    X, init = overlapping
    with dask.config.set(scheduler="threads"):
        model = fit(da.from_array(X, chunks=(500, 4)), init, "elkan")
    assert not any(key[0] == model._bound_run for key in _chunk_state.STORE)


@pytest.mark.parametrize("margin", [1.0, 0.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bounds_leave_rows_lloyds_rounding_could_flip_to_lloyd(dtype, margin, monkeypatch):
    """Rows almost exactly between two centers far from the origin (where no shift applies):
    which center Lloyd's float computation picks is decided by rounding, and changes when
    the centers move by a few ulps. Bounds that prove a label without a margin for that
    rounding keep the old label (``margin=0``, float32); ours send those rows to Lloyd's own
    computation."""
    monkeypatch.setattr(_elkan, "ROUNDING_MARGIN", margin)
    rng = np.random.default_rng(0)
    n = 4000
    centers = np.array([[1000, 0.5, 0.25, 0.1], [999.9, -0.4, 0.2, -0.3],
                        [-1000, 0.5, 0.25, 0.1], [-999.9, -0.4, 0.2, -0.3]])  # fmt: skip
    assert kern.origin_shift(centers, dtype) is None  # no shift: rounding at |x| ~ 1000
    # Rows on the bisecting planes of the two pairs of centers (up to the cast to dtype).
    pair = np.arange(n) % 2 * 2
    a, b = centers[pair], centers[pair + 1]
    normal = (a - b) / np.linalg.norm(a - b, axis=1, keepdims=True)
    X = (a + b) / 2 + rng.normal(scale=0.5, size=(n, 4))
    X -= ((X - (a + b) / 2) * normal).sum(axis=1, keepdims=True) * normal
    X[::4] += 10 * normal[::4]  # and a quarter of them clearly nearer one center
    X = X.astype(dtype)
    ulp = float(np.spacing(np.asarray(1000, dtype)))
    moved = centers + rng.uniform(1, 3, centers.shape) * ulp
    groups = np.zeros(4, np.int32)
    members = _elkan.group_members(groups)
    drift = np.sqrt(((moved - centers) ** 2).sum(axis=1)) * (1 + 1e-9)
    first = _elkan.BoundParams(centers, "flip", 0, None, groups, members, None, False, None)
    second = _elkan.BoundParams(moved, "flip", 1, drift, groups, members, drift.max(keepdims=True),
                                False, None)  # fmt: skip
    try:
        _elkan._bounded(X, None, first, 0)
        before = _chunk_state.STORE[("flip", 0)].labels.copy()
        stats = _elkan._bounded(X, None, second, 0)
        after = _chunk_state.STORE[("flip", 0)].labels
    finally:
        _chunk_state.drop_run("flip")
    lloyd = kern.labels_block(X, moved)
    np.testing.assert_array_equal(before, kern.labels_block(X, centers))
    assert (lloyd != before).sum() > 20  # rounding did flip labels: the case is there
    if margin == 0:  # what the margin is for
        assert dtype == np.float64 or (after != lloyd).any()
        return
    np.testing.assert_array_equal(after, lloyd)
    assert stats.computed <= n - n // 4  # ... and the bounds still settled the other rows
    lloyd_stats = kern._lloyd(X, None, kern.LloydParams(moved))
    np.testing.assert_array_equal(stats.sums, lloyd_stats.sums)


def test_verbose_reports_lloyds_inertia_every_iteration(overlapping, capsys):
    X, init = overlapping
    data = da.from_array(X, chunks=(1000, 4))

    def iterations(algorithm):
        fit(data, init, algorithm, verbose=1)
        out = capsys.readouterr()
        lines = [line for line in out.out.splitlines() if line.startswith("Iteration")]
        assert len(lines) >= 5
        return lines

    assert iterations("elkan") == iterations("lloyd")


def test_a_nan_row_is_named(overlapping):
    from bigclust.driver import NonFiniteInputError

    X, init = overlapping
    X = X.copy()
    X[1234, 2] = np.nan
    with pytest.raises(NonFiniteInputError, match="1234"):
        KMeans(K, init=init, algorithm="elkan").fit(da.from_array(X, chunks=(1000, 4)))
