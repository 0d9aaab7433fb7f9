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
        # Both workers registered, and the client's cached scheduler_info() showing them: on
        # a slow machine the second worker can register after the client connected.
        client.wait_for_workers(2)
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
        client.wait_for_workers(2)  # as above
        yield client


@pytest.fixture
def kmeans_parallel_at_any_size(monkeypatch):
    """k-means|| samples candidates even on data small enough for greedy k-means++ on every
    row (``bigclust.cluster._init.seeds_on_data``): for tests of k-means|| itself."""
    from bigclust.cluster import _init

    monkeypatch.setattr(_init, "SEED_ON_DATA_ROWS", 0)


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


# --- a real cluster: `dask scheduler` and `dask worker` as separate OS processes -------------


def _die_with_parent():
    """In the child before exec: on Linux, get SIGKILL when the test process dies, so that
    not even a killed pytest leaves a cluster behind (teardown kills it otherwise)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessCluster:
    """A scheduler and workers started with the production commands, on loopback only.

    ``dask scheduler --scheduler-file F`` and ``dask worker --scheduler-file F --nthreads 1
    --memory-limit ...``, each in its own process group (so that a nanny's worker process goes
    down with it), from the ``dask`` script of this interpreter's environment. Their output goes
    to log files in ``directory`` (the scheduler's log shows its warnings). :meth:`close` kills
    every process by its own group id, whatever state the tests left it in.
    """

    STARTUP_TIMEOUT = 60

    def __init__(self, directory, memory_limit="1GiB"):
        import pathlib

        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = self.directory / "scheduler.json"
        self.memory_limit = memory_limit
        self.processes = []  # every Popen started, for teardown
        self.workers = {}  # name -> Popen of `dask worker` (the nanny, or the worker itself)
        self._count = 0
        self.scheduler = None
        self.client = None

    def _dask(self, *args, log, env=None):
        import os
        import subprocess
        import sys

        dask_script = os.path.join(os.path.dirname(sys.executable), "dask")
        environ = dict(os.environ if env is None else env)
        # Workers import the bigclust the tests import (a worktree, or the installed one),
        # and the test modules, for the functions that tests run on them.
        tests = os.path.dirname(os.path.abspath(__file__))
        paths = (os.path.dirname(tests), tests, environ.get("PYTHONPATH"))
        environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        with open(self.directory / log, "ab") as out:
            process = subprocess.Popen(
                [dask_script, *args],
                cwd=self.directory,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one at teardown
                preexec_fn=_die_with_parent,
            )
        self.processes.append(process)
        return process

    def start(self, n_workers=2, **worker_options):
        import time

        from distributed import Client

        self.scheduler_file.unlink(missing_ok=True)  # a stale one names a dead scheduler
        self.scheduler = self._dask(
            "scheduler", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
            "--port", "0", "--no-dashboard", log="scheduler.log",
        )  # fmt: skip
        deadline = time.monotonic() + self.STARTUP_TIMEOUT
        while not self.scheduler_file.exists():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start:\n{self.log('scheduler')}")
            time.sleep(0.05)
        for _ in range(n_workers):
            self.add_worker(wait=False, **worker_options)
        # The scheduler is up (it wrote its file): connecting takes milliseconds. The timeout
        # also bounds how long the client tries to reconnect once a test kills the scheduler.
        self.client = Client(
            scheduler_file=str(self.scheduler_file), timeout=10, set_as_default=False
        )
        self.wait_for_workers()
        return self

    def add_worker(self, *, nanny=True, env=None, wait=True):
        """Start one more ``dask worker`` (``--no-nanny`` if not ``nanny``); return its name."""
        name = f"w{self._count}"
        self._count += 1
        self.workers[name] = self._dask(
            "worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
            "--nthreads", "1", "--memory-limit", self.memory_limit, "--no-dashboard",
            "--name", name, "--local-directory", str(self.directory / "work"),
            "--death-timeout", "60", "--nanny" if nanny else "--no-nanny",
            log=f"{name}.log", env=env,
        )  # fmt: skip
        if wait:
            self.wait_for_workers()
        return name

    def alive_workers(self):
        return {n: p for n, p in self.workers.items() if p.poll() is None}

    def wait_for_workers(self, names=None):
        """Wait (bounded) until the scheduler lists every live worker started (or ``names``)."""
        import time

        names = set(self.alive_workers() if names is None else names)
        deadline = time.monotonic() + self.STARTUP_TIMEOUT
        while not names <= set(self.addresses()):
            dead = [n for n in names if self.workers[n].poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(self.log(n) for n in names)
                raise RuntimeError(f"workers {sorted(names)} did not connect:\n{logs}")
            time.sleep(0.05)

    def addresses(self):
        """Worker name -> address, as the scheduler sees them now."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {w["name"]: address for address, w in info.items()}

    def worker_pid(self, name):
        """The pid of the process that runs ``name``'s tasks (the nanny's child, if any)."""
        import os

        address = self.addresses()[name]
        return self.client.run(os.getpid, workers=[address])[address]

    def kill_when_busy(self, name, how, match=("map-",), timeout=60.0):
        """SIGKILL worker ``name`` as soon as it is running one of the fit's tasks.

        Runs in a background thread (returned, started); ``thread.killed_at`` is the
        ``time.monotonic()`` of the kill, or ``None`` if the worker ran no task whose key
        contains one of ``match`` within ``timeout``. ``how``: ``"worker"`` kills the worker
        process under its nanny (which starts a new one), ``"process"`` kills the ``dask
        worker`` process group (nanny and worker, or a ``--no-nanny`` worker).
        """
        import os
        import signal
        import threading
        import time

        address = self.addresses()[name]
        target = self.worker_pid(name) if how == "worker" else self.workers[name].pid

        def watch():
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                keys = self.client.processing(workers=[address]).get(address, ())
                if any(m in str(key) for key in keys for m in match):
                    if how == "worker":
                        os.kill(target, signal.SIGKILL)
                    else:
                        os.killpg(target, signal.SIGKILL)
                    thread.killed_at = time.monotonic()
                    return
                time.sleep(0.005)

        thread = threading.Thread(target=watch, daemon=True, name=f"kill-{name}")
        thread.killed_at, thread.pid = None, target
        thread.start()
        return thread

    def log(self, name):
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self):
        import os
        import signal

        if self.client is not None:
            self.client.close(timeout=5)
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone with its group
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def process_cluster(tmp_path_factory):
    """A scheduler and two nanny workers as separate OS processes, shared by the session.

    Tests that kill processes start clusters of their own.
    """
    cluster = ProcessCluster(tmp_path_factory.mktemp("process-cluster"))
    try:
        yield cluster.start(n_workers=2)
    finally:
        cluster.close()


@pytest.fixture
def on_process_cluster(process_cluster):
    """Run the test body with the process cluster's client as the active scheduler."""
    client = process_cluster.client
    with client.as_current(), dask.config.set(scheduler=client):
        yield process_cluster


# --- object storage: moto's S3 server on loopback -------------------------------------------


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server (``moto[server]``) as a subprocess on 127.0.0.1, with real checks.

    Authentication is enforced after the first three requests, which create an IAM user with
    an access key allowed everything: requests signed with any other key are refused, as on
    S3. Yields the endpoint, the key pair, the bucket ``bigclust`` and ``storage_options``
    for s3fs. The server is killed by its process group at the end of the session.
    """
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    port = _free_port()
    directory = tmp_path_factory.mktemp("moto")
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    with open(directory / "moto.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((directory / "moto.log").read_text()) from None
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"
        anyone = dict(endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="setup", aws_secret_access_key="setup")  # fmt: skip
        iam = boto3.client("iam", **anyone)
        iam.create_user(UserName="bigclust")
        key = iam.create_access_key(UserName="bigclust")["AccessKey"]
        iam.put_user_policy(
            UserName="bigclust", PolicyName="everything",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
        )  # fmt: skip
        key_id, secret = key["AccessKeyId"], key["SecretAccessKey"]
        s3 = boto3.client(
            "s3", **dict(anyone, aws_access_key_id=key_id, aws_secret_access_key=secret)
        )
        s3.create_bucket(Bucket="bigclust")
        yield {
            "endpoint": endpoint,
            "key": key_id,
            "secret": secret,
            "bucket": "bigclust",
            "storage_options": {
                "key": key_id,
                "secret": secret,
                "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            },
            "env": {
                "AWS_ACCESS_KEY_ID": key_id,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        }
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
