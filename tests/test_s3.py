"""Object storage: fitting from ``s3://`` and writing labels there, against moto's S3 server on
loopback (``s3_server`` in conftest.py), with credentials given through ``storage_options``
and through the AWS_* environment variables of the client and the workers."""

from __future__ import annotations

import os
import sys
import uuid

import dask
import numpy as np
import pytest
import zarr
from conftest import ProcessCluster

from bigclust import KMeans, as_dask_array
from bigclust.datasets import make_blobs, write_zarr
from bigclust.io import StoreAccessError, StoreNotFoundError

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(20_000, 4, centers=3, random_state=1, dtype=np.float64, chunk_rows=2500)
    return X


@pytest.fixture(scope="module")
def s3_store(s3_server, blobs):
    """Blobs written by bigclust to ``s3://bigclust/...`` (crc32c, marked complete)."""
    url = f"s3://{s3_server['bucket']}/blobs-{uuid.uuid4().hex[:8]}.zarr"
    with dask.config.set(scheduler="threads"):
        write_zarr(blobs, url, storage_options=s3_server["storage_options"])
    return url


def _kmeans():
    return KMeans(3, n_init=1, random_state=0, max_iter=10, tol=0)


@pytest.fixture(scope="module")
def local_fit(blobs):
    with dask.config.set(scheduler="threads"):
        km = _kmeans().fit(blobs.compute())
    return km.cluster_centers_, km.labels_


def test_write_read_round_trip_and_marker(s3_server, s3_store, blobs):
    z = zarr.open_array(s3_store, mode="r", storage_options=s3_server["storage_options"])
    assert z.attrs["bigclust"] == {"complete": True}
    assert [type(c).__name__ for c in z.compressors] == ["Crc32cCodec"]
    X = as_dask_array(s3_store, storage_options=s3_server["storage_options"])
    np.testing.assert_array_equal(X.compute(scheduler="threads"), blobs.compute())


@pytest.mark.parametrize("where", ["threads", "process-cluster"])
def test_fit_from_s3_and_write_labels_to_s3_with_storage_options(
    where, s3_server, s3_store, local_fit, request
):
    options = s3_server["storage_options"]
    labels_url = f"s3://{s3_server['bucket']}/labels-{uuid.uuid4().hex[:8]}.zarr"
    if where == "threads":
        context = dask.config.set(scheduler="threads")
    else:
        request.getfixturevalue("on_process_cluster")  # the session cluster, no AWS_* env
        context = dask.config.set({})
    with context:
        km = _kmeans().fit(as_dask_array(s3_store, storage_options=options))
        write_zarr(km.labels_, labels_url, storage_options=options)
    centers, labels = local_fit
    np.testing.assert_allclose(km.cluster_centers_, centers, rtol=1e-9)
    written = zarr.open_array(labels_url, mode="r", storage_options=options)
    np.testing.assert_array_equal(written[:], labels)
    assert written.attrs["bigclust"] == {"complete": True}


@pytest.fixture
def aws_env(s3_server, monkeypatch):
    """The client's credentials from the environment only (as a worker's are)."""
    for name, value in s3_server["env"].items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server["env"]
    s3fs.S3FileSystem.clear_instance_cache()


def test_credentials_from_environment_variables_on_the_workers(
    s3_server, s3_store, local_fit, aws_env, tmp_path
):
    """Workers started with AWS_* variables read and write ``s3://`` URLs given without any
    storage_options: the graph carries no credentials."""
    cluster = ProcessCluster(tmp_path / "cluster")
    try:
        cluster.start(n_workers=2, env=dict(os.environ))
        client = cluster.client
        labels_url = f"s3://{s3_server['bucket']}/labels-env-{uuid.uuid4().hex[:8]}.zarr"
        with client.as_current(), dask.config.set(scheduler=client):
            km = _kmeans().fit(s3_store)
            write_zarr(km.labels_, labels_url)
            # The workers (not only this process) hold the credentials:
            seen = client.run(lambda: os.environ.get("AWS_ACCESS_KEY_ID"))
            assert set(seen.values()) == {s3_server["key"]}
    finally:
        cluster.close()
    centers, labels = local_fit
    np.testing.assert_allclose(km.cluster_centers_, centers, rtol=1e-9)
    np.testing.assert_array_equal(zarr.open_array(labels_url, mode="r")[:], labels)


@pytest.mark.parametrize(
    "what, url, error, message",
    [
        ("missing bucket", "s3://no-such-bucket/x.zarr", StoreNotFoundError, "no-such-bucket"),
        ("missing key", "s3://bigclust/no-such-array.zarr", StoreNotFoundError,
         "no-such-array"),
    ],
)  # fmt: skip
def test_missing_bucket_or_key_is_one_clear_error_before_any_work(
    what, url, error, message, s3_server
):
    with pytest.raises(error, match=message):
        KMeans(3).fit(as_dask_array(url, storage_options=s3_server["storage_options"]))


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_one_clear_error_naming_the_url(wrong, s3_server, s3_store):
    options = dict(s3_server["storage_options"], **{wrong: "wrong-" + wrong})
    with pytest.raises(StoreAccessError, match=f"{s3_store}.*access denied") as info:
        as_dask_array(s3_store, storage_options=options)
    assert isinstance(info.value, PermissionError) and isinstance(info.value, ValueError)
    labels = as_dask_array(np.zeros((10, 2)))  # writing with them is refused up front too
    with pytest.raises(StoreAccessError, match="access denied"):
        write_zarr(labels, f"s3://bigclust/{uuid.uuid4().hex}.zarr", storage_options=options)


def test_writing_to_a_missing_bucket_is_one_clear_error(s3_server):
    with pytest.raises(StoreNotFoundError, match="no-such-bucket"):
        write_zarr(as_dask_array(np.zeros((10, 2))), "s3://no-such-bucket/labels.zarr",
                   storage_options=s3_server["storage_options"])  # fmt: skip


def test_without_s3fs_the_error_says_which_extra_to_install(monkeypatch):
    import fsspec.registry  # noqa: F401 - loads the module looked up below

    registry = sys.modules["fsspec.registry"]._registry  # `fsspec.registry` is a read-only view
    monkeypatch.setitem(sys.modules, "s3fs", None)  # `import s3fs` raises ImportError
    monkeypatch.delitem(registry, "s3", raising=False)
    hint = r'pip install "bigclust\[s3\]"'
    with pytest.raises(ImportError, match=hint):
        KMeans(2).fit("s3://bucket/data.zarr")
    with pytest.raises(ImportError, match=hint):
        write_zarr(as_dask_array(np.zeros((10, 2))), "s3://bucket/labels.zarr")
