# dask-gateway-server configuration for bigclust clusters on JupyterHub.
#
# Run beside the hub (`dask-gateway-server -f deploy/gateway/dask_gateway_config.py`), or paste
# the ClusterConfig lines into the dask-gateway Helm chart's `gateway.extraConfig`. Users then do
#     from dask_gateway import Gateway
#     cluster = Gateway().new_cluster(worker_cores=2, worker_memory=8)
# and fit bigclust estimators through `cluster.get_client()`.
#
# Every cluster runs `dask scheduler` / `dask worker` (the gateway's defaults are the hyphenated
# `dask-scheduler`/`dask-worker` scripts, which current distributed no longer installs) from the
# environment the gateway runs in, so install bigclust[s3] there: clients, scheduler and workers
# must run the same bigclust, dask and numpy. The gateway gives each cluster its own TLS
# certificate; clients reach schedulers and dashboards only through the gateway's proxy.
import os

from dask_gateway_server.options import Float, Integer, Options

c = get_config()  # noqa: F821 (traitlets injects it)

c.ClusterConfig.scheduler_cmd = ["dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["dask", "worker"]
# One BLAS thread per Dask thread: bigclust's kernels call BLAS from every worker thread.
c.ClusterConfig.environment = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# A forgotten cluster is shut down after an hour without a client.
c.ClusterConfig.idle_timeout = 3600


def _cluster_options(options):
    # Threads equal cores, and the worker's --memory-limit equals its share of the memory.
    return {
        "worker_cores": options.worker_cores,
        "worker_threads": options.worker_cores,
        "worker_memory": int(options.worker_memory * 2**30),
    }


c.Backend.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=8, label="Worker cores"),
    Float("worker_memory", default=4, min=1, max=64, label="Worker memory (GiB)"),
    handler=_cluster_options,
)

# Run by JupyterHub as a managed service (which sets both variables): users authenticate with
# their hub token.
if os.environ.get("JUPYTERHUB_API_URL") and os.environ.get("JUPYTERHUB_API_TOKEN"):
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
