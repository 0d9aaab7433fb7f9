"""The ``bigclust`` command line, end to end in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr

from bigclust import cli
from bigclust.cli import main
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
    assert list(z.compressors) == []  # the default codec is "none"
    captured = capsys.readouterr()
    assert f"wrote 3000 x 3 float32 (0.00 GB) to {out}" in captured.out
    assert captured.err == ""


def test_make_blobs_options(tmp_path, capsys):
    out = tmp_path / "blobs.zarr"
    args = ["make-blobs", str(out), *ARGS, "--dtype", "float64", "--codec", "zstd"]
    assert main([*args, "--cluster-std", "0.1"]) == 0
    z = zarr.open_array(str(out), mode="r")
    assert z.dtype == np.float64 and [type(c).__name__ for c in z.compressors] == ["ZstdCodec"]
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
    assert info.value.code == 2 and "invalid choice: 'gzip'" in capsys.readouterr().err
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

    monkeypatch.setattr(cli, "write_zarr", spy)
    base = ["make-blobs", *ARGS, "--no-progress"]
    assert main([base[0], str(tmp_path / "a.zarr"), *base[1:], "--threads", "3"]) == 0
    assert main([base[0], str(tmp_path / "b.zarr"), *base[1:]]) == 0
    assert seen == [3, cli.MAKE_BLOBS_THREADS]
    assert 1 <= cli.MAKE_BLOBS_THREADS <= 4
    capsys.readouterr()
    assert main([base[0], str(tmp_path / "c.zarr"), *base[1:], "--threads", "0"]) == 2
    assert "--threads=0 should be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "c.zarr").exists()
