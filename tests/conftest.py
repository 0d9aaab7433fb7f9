"""Shared fixtures: every scheduler the estimators must run on."""

from __future__ import annotations

import dask
import pytest


@pytest.fixture(scope="session")
def distributed_client():
    """An in-process distributed cluster (threads), shared by the whole session."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def process_client():
    """A LocalCluster of two single-thread worker processes (the deployment shape)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(params=["synchronous", "threads", "distributed"])
def scheduler(request):
    """Run the test body under each scheduler in turn; yields the scheduler's name."""
    if request.param == "distributed":
        client = request.getfixturevalue("distributed_client")
        with client.as_current(), dask.config.set(scheduler=client):
            yield request.param
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.fixture
def processes(process_client):
    """Run the test body on the multi-process LocalCluster."""
    with process_client.as_current(), dask.config.set(scheduler=process_client):
        yield "processes"
