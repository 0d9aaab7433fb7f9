"""Progress reporting: log records per pass, bars over passes and chunks, verbose levels."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from typing import ClassVar

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from tqdm.std import tqdm

import bigclust
from bigclust import BayesianGaussianMixture, GaussianMixture, KMeans, MiniBatchKMeans, _progress

N, D, K, CHUNK = 2_000, 3, 3, 250
N_CHUNKS = N // CHUNK


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0]])
    rows = centers[rng.integers(0, K, N)] + rng.normal(size=(N, D))
    return da.from_array(rows, chunks=(CHUNK, D))


@pytest.fixture
def init(X):
    return np.asarray(X[[0, 1, 2]])


class RecordingBar(tqdm):
    """A tqdm bar writing to a buffer, remembering its updates and whether it closed."""

    made: ClassVar[list[RecordingBar]] = []

    def __init__(self, *args, **kwargs):
        kwargs["file"] = io.StringIO()
        super().__init__(*args, **kwargs)
        self.updates, self.was_closed = 0, False
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.updates += n
        return super().update(n)

    def close(self):
        self.was_closed = True
        super().close()


@pytest.fixture
def bars(monkeypatch):
    """The bars opened by the test, by name."""
    RecordingBar.made = []
    monkeypatch.setattr(_progress, "_bar_class", lambda: RecordingBar)
    monkeypatch.delenv(_progress.ENV_VAR, raising=False)

    def by_name(name):
        return [bar for bar in RecordingBar.made if bar.desc == name]

    yield by_name
    assert _progress.Progress.open_bars == 0, "a bar was left open"


@pytest.fixture(params=["threads", "distributed"])
def sched(request):
    if request.param == "distributed":
        client = request.getfixturevalue("distributed_client")
        with client.as_current(), dask.config.set(scheduler=client):
            yield request.param
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


def records(caplog, name, level=logging.INFO):
    return [
        r
        for r in caplog.records
        if r.name == "bigclust.progress"
        and getattr(r, "estimator", None) == name
        and r.levelno == level
        and "iteration" in r.__dict__
    ]


# --- per-pass records and bars, for every estimator -------------------------------------------


def test_kmeans_records_carry_the_figures(X, init, caplog, capsys, bars):
    caplog.set_level(logging.INFO, logger="bigclust")
    km = KMeans(K, init=init, max_iter=6, tol=0, verbose=1).fit(X)
    passes = records(caplog, "KMeans Lloyd")
    assert len(passes) == km.n_iter_
    assert [r.iteration for r in passes] == list(range(km.n_iter_))
    # The inertia of each pass is the one scikit-learn-style verbose output prints.
    printed = [
        float(line.split("inertia ")[1].rstrip("."))
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("Iteration")
    ]
    assert [r.inertia for r in passes] == pytest.approx(printed, rel=1e-12)
    for r in passes:
        assert r.center_shift >= 0 and r.seconds > 0
        assert r.rows_per_second == pytest.approx(N / r.seconds)
        assert r.figures["inertia"] == r.inertia
        assert "inertia" in r.getMessage() and "rows/s" in r.getMessage()
    assert passes[-1].center_shift == 0 or km.n_iter_ == 6


def test_kmeans_bar_advances_once_per_pass_and_closes_complete(X, init, bars):
    km = KMeans(K, init=init, tol=1e-4, verbose=1).fit(X)  # converges well before max_iter
    (bar,) = bars("KMeans Lloyd")
    assert bar.updates == km.n_iter_ < km.max_iter
    assert bar.was_closed and bar.n == bar.total == km.n_iter_


def test_every_estimator_reports_each_pass_on_each_scheduler(X, init, sched, caplog, bars):
    caplog.set_level(logging.INFO, logger="bigclust")

    km = KMeans(K, init=init, max_iter=4, tol=0, verbose=1).fit(X)
    (bar,) = bars("KMeans Lloyd")
    assert bar.updates == len(records(caplog, "KMeans Lloyd")) == km.n_iter_ and bar.was_closed

    gm = GaussianMixture(K, means_init=init, max_iter=4, tol=0, verbose=1)
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    em = records(caplog, "GaussianMixture iterations")
    assert len(em) == gm.n_iter_ == 4
    assert em[-1].lower_bound == gm.lower_bound_
    assert [r.lower_bound for r in em] == gm.lower_bounds_
    (bar,) = bars("GaussianMixture iterations")
    assert bar.updates == 4 and bar.was_closed

    mb = MiniBatchKMeans(
        K, init=init, batch_size=500, max_iter=3, max_no_improvement=None, verbose=1
    ).fit(X)
    segments = records(caplog, "MiniBatchKMeans")
    assert segments and segments[-1].step == mb.n_steps_
    (bar,) = bars("MiniBatchKMeans")
    assert bar.updates == len(segments) and bar.was_closed


def test_bayesian_mixture_reports_through_the_mixture_base(X, caplog, bars):
    caplog.set_level(logging.INFO, logger="bigclust")
    bgm = BayesianGaussianMixture(n_components=K, max_iter=3, tol=0, random_state=0, verbose=1)
    with pytest.warns(ConvergenceWarning):
        bgm.fit(X)
    iterations = records(caplog, "BayesianGaussianMixture iterations")
    assert [r.lower_bound for r in iterations] == bgm.lower_bounds_
    (bar,) = bars("BayesianGaussianMixture iterations")
    assert bar.updates == bgm.n_iter_ == 3 and bar.was_closed


# --- the initialization -------------------------------------------------------------------------


def test_kmeans_parallel_rounds_report(X, caplog, bars, kmeans_parallel_at_any_size):
    caplog.set_level(logging.INFO, logger="bigclust")
    KMeans(K, init="k-means||", init_max_iter=3, max_iter=2, random_state=0, verbose=1).fit(X)
    rounds = records(caplog, "KMeans k-means||")
    assert len(rounds) == 3
    assert [r.candidates for r in rounds] == sorted(r.candidates for r in rounds)
    assert all(r.cost > 0 for r in rounds)
    (bar,) = bars("KMeans k-means||")
    assert bar.updates == 3 and bar.was_closed


def test_greedy_kmeans_plusplus_reports_each_center(X, caplog, bars):
    caplog.set_level(logging.INFO, logger="bigclust")
    KMeans(K, init="k-means++", max_iter=2, random_state=0, verbose=1).fit(X)
    assert [r.centers for r in records(caplog, "KMeans k-means++")] == list(range(1, K + 1))
    (bar,) = bars("KMeans k-means++")
    assert bar.updates == K and bar.was_closed


def test_mixture_initialization_reports_with_the_mixture_verbose(
    X, caplog, bars, kmeans_parallel_at_any_size
):
    """The k-means inside ``init_params="kmeans"`` (verbose=0 itself) reports at the
    mixture's verbose, under the mixture's name."""
    caplog.set_level(logging.INFO, logger="bigclust")
    gm = GaussianMixture(K, init_params="kmeans", max_iter=2, tol=0, random_state=0, verbose=1)
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    lloyd = records(caplog, "GaussianMixture initialization KMeans Lloyd")
    assert lloyd and bars("GaussianMixture initialization KMeans Lloyd")[0].updates == len(lloyd)
    assert records(caplog, "GaussianMixture initialization KMeans k-means||")
    ended = [
        r
        for r in caplog.records
        if getattr(r, "estimator", None) == "GaussianMixture initialization"
        and r.levelno == logging.INFO
    ]
    assert len(ended) == 1 and ended[0].seconds > 0

    caplog.clear()
    with pytest.warns(ConvergenceWarning):
        gm.set_params(init_params="k-means++").fit(X)
    plusplus = records(caplog, "GaussianMixture initialization k-means++")
    assert [r.centers for r in plusplus] == list(range(1, K + 1))


# --- verbose levels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda init: KMeans(K, init=init, max_iter=3, tol=0),
        lambda init: MiniBatchKMeans(K, init=init, batch_size=500, max_iter=2),
        lambda init: GaussianMixture(K, means_init=init, max_iter=3, tol=0),
    ],
    ids=["KMeans", "MiniBatchKMeans", "GaussianMixture"],
)
def test_verbose_0_emits_nothing_above_debug(make, X, init, caplog, capsys, bars):
    caplog.set_level(logging.DEBUG, logger="bigclust")
    estimator = make(init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X)
    mine = [r for r in caplog.records if r.name.startswith("bigclust")]
    assert mine, "the passes are still recorded at DEBUG level"
    assert all(r.levelno == logging.DEBUG for r in mine)
    assert RecordingBar.made == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_verbose_2_adds_a_bar_and_a_record_per_chunk(X, init, sched, caplog, bars):
    caplog.set_level(logging.DEBUG, logger="bigclust")
    km = KMeans(K, init=init, max_iter=3, tol=0, verbose=2).fit(X)
    chunks = [
        r
        for r in caplog.records
        if getattr(r, "estimator", None) == "KMeans Lloyd" and hasattr(r, "chunk")
    ]
    assert len(chunks) == km.n_iter_ * N_CHUNKS
    assert [r.chunk for r in chunks[:N_CHUNKS]] == list(range(1, N_CHUNKS + 1))
    chunk_bars = bars("KMeans Lloyd chunks")
    assert len(chunk_bars) == km.n_iter_
    assert all(bar.updates == N_CHUNKS and bar.was_closed for bar in chunk_bars)
    np.testing.assert_allclose(
        km.cluster_centers_, KMeans(K, init=init, max_iter=3, tol=0).fit(X).cluster_centers_
    )


def test_verbose_1_has_no_chunk_bars(X, init, caplog, bars):
    caplog.set_level(logging.DEBUG, logger="bigclust")
    KMeans(K, init=init, max_iter=2, tol=0, verbose=1).fit(X)
    assert bars("KMeans Lloyd") and not bars("KMeans Lloyd chunks")
    assert not [r for r in caplog.records if hasattr(r, "chunk")]


def test_printed_lines_keep_scikit_learn_wording_beside_the_bar(X, init, capsys, bars):
    KMeans(K, init=init, max_iter=2, tol=0, verbose=1).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Iteration 0, inertia ") and out[1].startswith("Iteration 1, ")


# --- the switch the command line uses ------------------------------------------------------------


def test_set_progress_shows_the_bar_without_log_lines(X, init, caplog, bars):
    caplog.set_level(logging.INFO, logger="bigclust")
    with bigclust.set_progress(True):
        km = KMeans(K, init=init, max_iter=3, tol=0).fit(X)
    (bar,) = bars("KMeans Lloyd")
    assert bar.updates == km.n_iter_ and bar.was_closed
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    # Outside the block, verbose=0 is silent again.
    KMeans(K, init=init, max_iter=3, tol=0).fit(X)
    assert len(bars("KMeans Lloyd")) == 1


def test_set_progress_false_hides_bars_not_records(X, init, caplog, bars):
    caplog.set_level(logging.INFO, logger="bigclust")
    previous = bigclust.set_progress(False)
    try:
        KMeans(K, init=init, max_iter=3, tol=0, verbose=1).fit(X)
    finally:
        previous.__exit__(None, None, None)
    assert RecordingBar.made == []
    assert len(records(caplog, "KMeans Lloyd")) == 3


def test_environment_variable_shows_the_bar(X, init, monkeypatch, bars):
    monkeypatch.setenv(_progress.ENV_VAR, "1")
    KMeans(K, init=init, max_iter=2, tol=0).fit(X)
    assert bars("KMeans Lloyd")[0].updates == 2


def test_set_progress_rejects_other_values():
    with pytest.raises(TypeError, match="show='yes' should be True, False or None"):
        bigclust.set_progress("yes")


def test_echo_clears_an_open_bar_before_printing(monkeypatch, bars):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)

    class StdoutBar(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "file": sys.stdout})

    monkeypatch.setattr(_progress, "_bar_class", lambda: StdoutBar)
    with bigclust.set_progress(True), _progress.Progress("loop", total=3) as progress:
        progress.pass_done()
        _progress.echo("Iteration 0, inertia 1.0.")
    text = out.getvalue()
    assert "Iteration 0, inertia 1.0.\n" in text
    # The bar's line was blanked first, not continued by the message.
    assert text[: text.index("Iteration 0")].rstrip(" ").endswith("\r")
