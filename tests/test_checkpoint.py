"""Checkpoints: a fit killed at any point and started again ends exactly as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from bigclust import GaussianMixture, KMeans, MiniBatchKMeans
from bigclust._checkpoint import Checkpoint, CheckpointMismatchError
from bigclust.datasets import write_zarr

MAKERS = {
    "kmeans": lambda **kw: KMeans(6, init="random", n_init=3, tol=0, random_state=0, **kw),
    "minibatch": lambda **kw: MiniBatchKMeans(
        6, batch_size=100, max_iter=5, max_no_improvement=None, random_state=0, **kw
    ),
    "gmm": lambda **kw: GaussianMixture(4, n_init=2, tol=1e-6, random_state=0, **kw),
}


@pytest.fixture(scope="module")
def data():
    X, _ = make_blobs(4000, 3, centers=6, cluster_std=2.5, random_state=0)
    return X


def _fitted(est):
    names = ("cluster_centers_", "means_", "covariances_", "weights_", "inertia_", "n_iter_",
             "lower_bound_", "converged_", "n_steps_")  # fmt: skip
    return {n: getattr(est, n) for n in names if hasattr(est, n)}


def _assert_identical(a, b):
    fa, fb = _fitted(a), _fitted(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)


def _fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


class _Killed(BaseException):
    """Stands for the process dying right after a checkpoint was written."""


@pytest.mark.parametrize("name", MAKERS)
def test_resumed_fit_equals_an_uninterrupted_one(name, data, tmp_path, monkeypatch):
    X = da.from_array(data, chunks=(900, 3))
    reference = _fit(MAKERS[name](), X)
    path = tmp_path / "ckpt"
    with_checkpoint = _fit(MAKERS[name](checkpoint=str(path)), X)
    _assert_identical(with_checkpoint, reference)  # checkpointing changes nothing

    original = Checkpoint.save
    total = 0

    def counting(self, state):
        nonlocal total
        total += 1
        original(self, state)

    monkeypatch.setattr(Checkpoint, "save", counting)
    _fit(MAKERS[name](checkpoint=str(tmp_path / "count")), X)
    assert total >= 4
    for stop_after in sorted({1, 2, total // 2, total - 1}):
        saves = 0

        def dying(self, state, stop_after=stop_after):
            nonlocal saves
            original(self, state)
            saves += 1
            if saves == stop_after:
                raise _Killed

        run_path = tmp_path / f"run-{stop_after}"
        monkeypatch.setattr(Checkpoint, "save", dying)
        with pytest.raises(_Killed):
            _fit(MAKERS[name](checkpoint=str(run_path)), X)
        monkeypatch.setattr(Checkpoint, "save", original)
        resumed = _fit(MAKERS[name](checkpoint=str(run_path)), X)
        _assert_identical(resumed, reference)


def test_a_checkpoint_of_another_fit_is_refused(data, tmp_path):
    X = da.from_array(data, chunks=(900, 3))
    path = str(tmp_path / "ckpt")
    _fit(MAKERS["kmeans"](checkpoint=path), X)
    with pytest.raises(CheckpointMismatchError, match=r"params \(n_clusters\)"):
        _fit(KMeans(5, init="random", n_init=3, tol=0, random_state=0, checkpoint=path), X)
    with pytest.raises(CheckpointMismatchError, match=r"data \(chunks\)"):
        _fit(MAKERS["kmeans"](checkpoint=path), da.from_array(data, chunks=(1000, 3)))
    other = data.copy()
    other[0, 0] += 1
    _fit(MAKERS["kmeans"](checkpoint=str(tmp_path / "mem")), data)
    with pytest.raises(CheckpointMismatchError, match=r"data \(values\)"):
        _fit(MAKERS["kmeans"](checkpoint=str(tmp_path / "mem")), other)
    with pytest.raises(CheckpointMismatchError, match="estimator"):
        _fit(MAKERS["gmm"](checkpoint=path), X)
    # A different verbosity is the same fit.
    _fit(KMeans(6, init="random", n_init=3, tol=0, random_state=0, verbose=0, checkpoint=path), X)


_CHILD = textwrap.dedent(
    """
    import sys, warnings
    import bigclust
    warnings.simplefilter("ignore")
    name, store, path = sys.argv[1:]
    makers = {
        "kmeans": lambda: bigclust.KMeans(8, init="random", n_init=4, tol=0, random_state=1,
                                          checkpoint=path),
        "gmm": lambda: bigclust.GaussianMixture(8, n_init=3, tol=1e-9, max_iter=60,
                                                random_state=1, checkpoint=path),
    }
    makers[name]().fit(store)
    print("finished")
    """
)


def _progress(path) -> int:
    try:
        with open(os.path.join(path, "state.json")) as f:
            state = json.load(f)["document"]["state"]["dict"]
    except (OSError, ValueError, KeyError):
        return -1
    run = state.get("run", state.get("init"))
    step = state.get("iteration", state.get("n_iter", 0))
    return 1000 * run + (step if isinstance(step, int) else 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kmeans", "gmm"])
def test_sigkill_of_the_client_mid_fit_then_rerun(name, tmp_path):
    X, _ = make_blobs(60_000, 4, centers=8, cluster_std=3.0, random_state=2)
    store = str(tmp_path / "data.zarr")
    write_zarr(da.from_array(X.astype(np.float32), chunks=(7500, 4)), store)
    path = str(tmp_path / "ckpt")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, name, store, path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _progress(path) < 1002 and time.monotonic() < deadline:  # run 1, iteration 2
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        assert child.poll() is None, "the fit ended before the kill"
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    killed_at = _progress(path)
    assert killed_at >= 1002
    maker = {
        "kmeans": lambda **kw: KMeans(8, init="random", n_init=4, tol=0, random_state=1, **kw),
        "gmm": lambda **kw: GaussianMixture(8, n_init=3, tol=1e-9, max_iter=60,
                                            random_state=1, **kw),
    }[name]  # fmt: skip
    resumed = _fit(maker(checkpoint=path), store)
    _assert_identical(resumed, _fit(maker(), store))
