"""The ``bigclust`` command line: make-blobs, help and defaults, scheduler selection, and
every error as one line with its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr

import bigclust
from bigclust import cli
from bigclust.cli import _commands, main
from bigclust.datasets import make_blobs, write_zarr

ARGS = ["--n-samples", "3000", "--n-features", "3", "--centers", "4", "--seed", "5"]


def test_make_blobs_writes_the_store(tmp_path, capsys):
    out = tmp_path / "blobs.zarr"
    code = main(["make-blobs", str(out), *ARGS, "--chunk-rows", "700", "--no-progress"])
    assert code == 0
    z = zarr.open_array(str(out), mode="r")
    assert z.shape == (3000, 3) and z.dtype == np.float32 and z.chunks == (700, 3)
    X, _, centers = make_blobs(3000, 3, centers=4, random_state=5, return_centers=True)
    np.testing.assert_array_equal(z[:], X.compute())
    assert z.attrs["seed"] == 5 and np.allclose(z.attrs["centers"], centers)
    # The default codec is "none"; bigclust's stores carry a crc32c checksum.
    assert [type(c).__name__ for c in z.compressors] == ["Crc32cCodec"]
    captured = capsys.readouterr()
    assert f"wrote 3000 x 3 float32 (0.00 GB) to {out}" in captured.out
    assert captured.err == ""


def test_make_blobs_options(tmp_path, capsys):
    out = tmp_path / "blobs.zarr"
    args = ["make-blobs", str(out), *ARGS, "--dtype", "float64", "--codec", "zstd"]
    assert main([*args, "--cluster-std", "0.1"]) == 0
    z = zarr.open_array(str(out), mode="r")
    names = [type(c).__name__ for c in z.compressors]
    assert z.dtype == np.float64 and names == ["ZstdCodec", "Crc32cCodec"]
    assert "written in" in capsys.readouterr().err  # the progress bar is on by default


def test_make_blobs_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "blobs.zarr"
    assert main(["make-blobs", str(out), *ARGS, "--no-progress"]) == 0
    first = zarr.open_array(str(out), mode="r")[:]
    capsys.readouterr()
    code = main(["make-blobs", str(out), "--n-samples", "10", "--seed", "1", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("bigclust make-blobs: error: ") and str(out) in err
    assert "overwrite" in err
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], first)
    code = main(["make-blobs", str(out), "--n-samples", "10", "--overwrite", "--no-progress"])
    assert code == 0 and zarr.open_array(str(out), mode="r").shape == (10, 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-samples", "0"], "n_samples=0"),
        (["--centers", "0"], "centers=0 should be >= 1"),
        (["--cluster-std", "-2"], "cluster_std=-2.0"),
        (["--chunk-rows", "0"], "chunk_rows=0"),
    ],
)
def test_make_blobs_bad_values_return_2(args, message, tmp_path, capsys):
    out = tmp_path / "blobs.zarr"
    assert main(["make-blobs", str(out), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bigclust make-blobs: error: ") and message in err
    assert not out.exists()


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["make-blobs", "out.zarr", "--codec", "gzip"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'gzip'" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_python_dash_m_entry_point(tmp_path):
    out = tmp_path / "m.zarr"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "bigclust", "make-blobs", str(out), "--n-samples", "100",
         "--n-features", "2", "--no-progress"],
        capture_output=True, text=True, cwd=root, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert zarr.open_array(str(out), mode="r").shape == (100, 2)
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["attributes"]["generator"] == "bigclust.datasets.make_blobs"


def test_make_blobs_threads_bound_the_threaded_scheduler(tmp_path, monkeypatch, capsys):
    seen = []

    def spy(*args, **kwargs):
        seen.append(dask.config.get("num_workers", None))
        return write_zarr(*args, **kwargs)

    monkeypatch.setattr(_commands, "write_zarr", spy)
    base = ["make-blobs", *ARGS, "--no-progress"]
    assert main([base[0], str(tmp_path / "a.zarr"), *base[1:], "--threads", "3"]) == 0
    assert main([base[0], str(tmp_path / "b.zarr"), *base[1:]]) == 0
    assert seen == [3, _commands.MAKE_BLOBS_THREADS]
    assert 1 <= _commands.MAKE_BLOBS_THREADS <= 4
    capsys.readouterr()
    assert main([base[0], str(tmp_path / "c.zarr"), *base[1:], "--threads", "0"]) == 2
    assert "--threads=0 should be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "c.zarr").exists()


# -- help, defaults, version ---------------------------------------------------------------


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_every_estimator_option_with_its_default(capsys):
    text = _help(["fit", "kmeans"], capsys)
    for option in ("--n-clusters N_CLUSTERS Number of clusters. (default: 8)", "--max-iter"):
        assert option in text
    assert "--init INIT" in text and "(default: k-means||)" in text
    assert "--tol TOL" in text and "(default: 0.0001)" in text
    assert "--random-state RANDOM_STATE, --seed RANDOM_STATE" in text
    assert "DASK_SCHEDULER_ADDRESS" in text and "'local'" in text
    assert "(default: 10.0)" in text  # --scheduler-timeout
    assert "--checkpoint CHECKPOINT" in text and "after every Lloyd" in text
    text = _help(["fit", "gmm"], capsys)
    assert "--covariance-type {full,tied,diag,spherical}" in text and "(default: full)" in text
    assert "--warm-start" not in text
    text = _help(["fit", "minibatch-kmeans"], capsys)
    assert "--compute-labels, --no-compute-labels" in text and "(default: True)" in text
    assert "make-blobs" in _help([], capsys) and "Exit codes" in _help([], capsys)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"bigclust {bigclust.__version__}\n"


def test_estimator_options_reach_the_estimator(tmp_path, monkeypatch):
    seen = {}

    def spy(self, X, *args, **kwargs):
        seen.update(self.get_params())
        raise RuntimeError("stop here")

    monkeypatch.setattr(bigclust.MiniBatchKMeans, "fit", spy)
    data = _store(tmp_path)
    argv = ["fit", "minibatch-kmeans", "--input", data, "--model", str(tmp_path / "m")]
    argv += ["--n-clusters", "3", "--init", "random", "--max-no-improvement", "none"]
    argv += ["--no-compute-labels", "--tol", "0.5", "--n-init", "4", "--seed", "9"]
    assert main([*argv, "--scheduler", "threads"]) == 1
    assert seen["n_clusters"] == 3 and seen["init"] == "random" and seen["random_state"] == 9
    assert seen["max_no_improvement"] is None and seen["compute_labels"] is False
    assert seen["tol"] == 0.5 and seen["n_init"] == 4 and seen["batch_size"] == 1024


def test_array_options_are_read_from_npy(tmp_path):
    data = _store(tmp_path)
    init = zarr.open_array(data, mode="r")[:3].astype(np.float64)
    np.save(tmp_path / "init.npy", init)
    argv = ["fit", "kmeans", "--input", data, "--model", str(tmp_path / "m"), "--n-clusters"]
    argv += ["3", "--init", str(tmp_path / "init.npy"), "--max-iter", "1", "--n-init", "1"]
    assert main([*argv, "--scheduler", "threads"]) == 0
    np.testing.assert_array_equal(bigclust.load(tmp_path / "m").init, init)


# -- errors: one line, an exit code, no traceback -----------------------------------------


def _store(tmp_path) -> str:
    path = tmp_path / "data.zarr"
    if not path.exists():
        X, _ = make_blobs(400, 3, centers=3, random_state=0)
        write_zarr(X, str(path))
    return str(path)


def _run_error(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("dask: ")]
    assert len(lines) == 1, err
    return code, lines[0]


def test_error_cases(tmp_path, capsys):
    data = _store(tmp_path)
    model = str(tmp_path / "model")
    assert main(["fit", "kmeans", "--input", data, "--model", model, "--n-clusters", "3",
                 "--scheduler", "threads"]) == 0  # fmt: skip
    fit = ["fit", "kmeans", "--input", data, "--scheduler", "threads", "--model"]
    cases = [
        # usage: exit 2
        ([*fit, str(tmp_path / "x"), "--n-clusters", "zero"], 2, "invalid value 'zero'"),
        ([*fit, str(tmp_path / "x"), "--n-clusters", "0"], 2, "n_clusters=0 should be"),
        ([*fit, str(tmp_path / "x"), "--n-clusters", "401"], 2, "n_samples=400 should be >="),
        ([*fit, model, "--n-clusters", "3"], 2, f"--model {model} exists; pass --overwrite"),
        ([*fit, str(tmp_path / "no" / "m")], 2, f"the directory {tmp_path / 'no'} does not"),
        ([*fit, str(tmp_path / "x"), "--storage-option", "anon"], 2, "should be KEY=VALUE"),
        ([*fit, str(tmp_path / "x"), "--labels-output", str(tmp_path / "x")], 2, "same path"),
        (["fit", "gmm", "--input", data, "--model", "m", "--covariance-type", "round"], 2,
         "expected 'full' or 'tied' or 'diag' or 'spherical'"),
        (["fit", "gmm", "--input", data, "--model", "m", "--save-labels"], 2, "has no labels_"),
        (["fit", "minibatch-kmeans", "--input", data, "--model", "m", "--no-compute-labels",
          "--labels-output", "l.zarr"], 2, "drop --no-compute-labels"),
        (["predict", "--model", model, "--input", data], 2, "nothing to write"),
        (["predict", "--model", model, "--input", data, "--proba-output", "p.zarr"], 2,
         "KMeans has no predict_proba()"),
        (["predict", "--model", model, "--input", data, "--output", data], 2,
         "exists; pass --overwrite"),
        ([*fit, str(tmp_path / "x"), "--scheduler", "nowhere"], 2, "--scheduler='nowhere'"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        # data and runtime: exit 1
        (["fit", "gmm", "--input", str(tmp_path / "missing.zarr"), "--model", "m"], 1,
         "no Zarr array or .npy file at"),
        (["predict", "--model", str(tmp_path / "nomodel"), "--input", data, "--output",
          str(tmp_path / "l.zarr")], 1, "no bigclust-model directory"),
        (["info", "--model", data], 1, "model.json: missing"),
    ]  # fmt: skip
    for argv, code, message in cases:
        got_code, line = _run_error(argv, capsys)
        assert (got_code, message in line) == (code, True), (argv, line)
        assert line.startswith("bigclust")
    assert not (tmp_path / "x").exists() and not (tmp_path / "l.zarr").exists()


def test_checkpoint_round_trip_and_mismatch(tmp_path, capsys):
    data = _store(tmp_path)
    ckpt = str(tmp_path / "ckpt")
    fit = ["fit", "kmeans", "--input", data, "--scheduler", "threads", "--checkpoint", ckpt]
    assert main([*fit, "--model", str(tmp_path / "a"), "--n-clusters", "3"]) == 0
    assert (tmp_path / "ckpt" / "state.json").is_file()
    assert main([*fit, "--model", str(tmp_path / "b"), "--n-clusters", "3"]) == 0  # resumed
    from bigclust import load

    a, b = load(str(tmp_path / "a")), load(str(tmp_path / "b"))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    capsys.readouterr()
    code, line = _run_error([*fit, "--model", str(tmp_path / "c"), "--n-clusters", "4"], capsys)
    assert code == 1 and "belongs to another fit" in line, line


def test_wrong_number_of_features_is_a_data_error(tmp_path, capsys):
    data = _store(tmp_path)
    other = str(tmp_path / "other.zarr")
    write_zarr(make_blobs(100, 5, random_state=0)[0], other)
    assert main(["fit", "kmeans", "--input", data, "--model", str(tmp_path / "m"),
                 "--n-clusters", "2", "--scheduler", "threads"]) == 0  # fmt: skip
    code, line = _run_error(["predict", "--model", str(tmp_path / "m"), "--input", other,
                             "--output", str(tmp_path / "l.zarr")], capsys)  # fmt: skip
    assert code == 1 and "has 5 features, but the model was fitted on 3" in line


def test_outputs_are_checked_before_the_fit(tmp_path, monkeypatch, capsys):
    data = _store(tmp_path)
    (tmp_path / "labels.zarr").mkdir()

    def never(*args, **kwargs):
        raise AssertionError("fit ran")

    monkeypatch.setattr(bigclust.KMeans, "fit", never)
    argv = ["fit", "kmeans", "--input", data, "--model", str(tmp_path / "m")]
    code, line = _run_error([*argv, "--labels-output", str(tmp_path / "labels.zarr")], capsys)
    assert code == 2 and "--labels-output" in line and "exists" in line


def test_an_unwritable_output_directory(tmp_path, capsys, monkeypatch):
    data = _store(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: let os.access answer as for a user
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, m: access(p, m) and str(p) != str(locked))
    try:
        argv = ["fit", "kmeans", "--input", data, "--model", str(locked / "m")]
        code, line = _run_error(argv, capsys)
    finally:
        locked.chmod(0o700)
    assert code == 2 and f"cannot write in {locked} (permission denied)" in line


def test_a_permission_error_while_writing_is_one_line(tmp_path, monkeypatch, capsys):
    from bigclust import _persist

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "model/cluster_centers_.npy")

    monkeypatch.setattr(_persist, "write_arrays", denied)
    argv = ["fit", "kmeans", "--input", _store(tmp_path), "--model", str(tmp_path / "m")]
    code, line = _run_error([*argv, "--n-clusters", "2", "--scheduler", "threads"], capsys)
    assert code == 1 and "Permission denied" in line
    assert os.listdir(tmp_path) == ["data.zarr"]


def test_a_missing_s3fs_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # import s3fs -> ImportError
    argv = ["fit", "kmeans", "--input", "s3://bucket/data.zarr", "--model", str(tmp_path / "m")]
    code, line = _run_error([*argv, "--scheduler", "threads"], capsys)
    assert code == 1 and 'pip install "bigclust[s3]"' in line


def test_debug_shows_the_traceback(tmp_path):
    argv = ["fit", "kmeans", "--input", str(tmp_path / "nope.zarr"), "--model", "m"]
    with pytest.raises(FileNotFoundError, match=r"nope\.zarr"):
        main([*argv, "--scheduler", "threads", "--debug"])


# -- where the work runs --------------------------------------------------------------------


def test_an_unreachable_scheduler_fails_within_the_timeout(tmp_path, capsys, monkeypatch):
    data = _store(tmp_path)
    argv = ["fit", "kmeans", "--input", data, "--model", str(tmp_path / "m")]
    start = time.monotonic()
    code, line = _run_error([*argv, "--scheduler-address", "tcp://127.0.0.1:9",
                             "--scheduler-timeout", "0.5"], capsys)  # fmt: skip
    assert code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 0.5 s" in line
    # DASK_SCHEDULER_ADDRESS (Dask's scheduler-address setting) is the default ...
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:7")
    dask.config.refresh()
    try:
        code, line = _run_error([*argv, "--scheduler-timeout", "0.5"], capsys)
        assert code == 1 and "tcp://127.0.0.1:7" in line
        # ... unless the command names another: a scheduler file that never appears
        code, line = _run_error([*argv, "--scheduler-file", str(tmp_path / "s.json"),
                                 "--scheduler-timeout", "0.3"], capsys)  # fmt: skip
        assert code == 1 and "no scheduler file" in line
    finally:
        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
        dask.config.refresh()
    assert time.monotonic() - start < 30
    assert not (tmp_path / "m").exists()


def test_the_installed_entry_point_reports_errors_in_one_line(tmp_path):
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "bigclust", "fit", "gmm", "--input", str(tmp_path / "no.zarr"),
         "--model", str(tmp_path / "m"), "--scheduler", "threads"],
        capture_output=True, text=True, cwd=root, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("bigclust fit gmm: error: ") and done.stderr.count("\n") == 1


def test_a_failed_write_leaves_no_output_and_no_temporary(tmp_path, monkeypatch, capsys):
    from bigclust.cli import _outputs

    data = _store(tmp_path)
    model = str(tmp_path / "m")
    assert main(["fit", "kmeans", "--input", data, "--model", model, "--n-clusters", "2",
                 "--scheduler", "threads"]) == 0  # fmt: skip

    def crash(*args, **kwargs):
        raise OSError("worker lost")

    monkeypatch.setattr(_outputs.dask, "compute", crash)
    argv = ["predict", "--model", model, "--input", data, "--output", str(tmp_path / "l.zarr")]
    code, line = _run_error([*argv, "--transform-output", str(tmp_path / "d.zarr"),
                             "--scheduler", "threads"], capsys)  # fmt: skip
    assert code == 1 and "worker lost" in line
    monkeypatch.setattr(_commands, "write_zarr", crash)
    code, line = _run_error(["make-blobs", str(tmp_path / "b.zarr"), "--no-progress"], capsys)
    assert code == 1 and "worker lost" in line
    assert sorted(os.listdir(tmp_path)) == ["data.zarr", "m"]


def test_progress_bars_on_a_terminal_only(monkeypatch):
    import argparse

    from bigclust import _progress

    monkeypatch.delenv(_progress.ENV_VAR, raising=False)
    for tty, flag, shown in [(True, False, True), (False, False, False), (True, True, False)]:
        monkeypatch.setattr(sys.stderr, "isatty", lambda tty=tty: tty)
        with cli._progress_bars(argparse.Namespace(no_progress=flag)):
            assert _progress._bars_setting() is shown
    monkeypatch.setenv(_progress.ENV_VAR, "0")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with cli._progress_bars(argparse.Namespace()):
        assert _progress._bars_setting() is False  # the environment wins
