"""Where the work runs, chosen the Dask way, the same for every subcommand.

In order: ``--scheduler-address``, ``--scheduler-file``, an address given as ``--scheduler``,
Dask's ``scheduler-address`` setting (the ``DASK_SCHEDULER_ADDRESS`` environment variable,
which the Dask operator sets in a DaskJob), else ``--scheduler``: ``local`` (a LocalCluster of
worker processes on this machine, the default), ``threads`` or ``synchronous`` (no cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import time

import dask

from bigclust.cli._outputs import UsageError

LOCAL_KINDS = ("local", "threads", "synchronous")


class SchedulerUnreachableError(ConnectionError):
    """The scheduler did not answer within ``--scheduler-timeout``."""


def add_scheduler_arguments(parser: argparse.ArgumentParser, default: str = "local") -> None:
    group = parser.add_argument_group("where to run (the same for every subcommand)")
    group.add_argument(
        "--scheduler-address",
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://scheduler:8786",
    )
    group.add_argument(
        "--scheduler-file",
        metavar="FILE",
        help="the file written by `dask scheduler --scheduler-file`",
    )
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="{local,threads,synchronous}",
        help=f"without an address: 'local' (a LocalCluster of worker processes), 'threads' or "
        f"'synchronous' (no cluster); default: DASK_SCHEDULER_ADDRESS if set, else {default!r}",
    )
    parser.set_defaults(scheduler_default=default)
    group.add_argument("--workers", type=int, default=2, help="workers of a local cluster")
    group.add_argument(
        "--threads-per-worker", type=int, default=1, help="threads of each local worker"
    )
    group.add_argument(
        "--memory-limit", default="auto", help="memory limit of each local worker, e.g. 2GiB"
    )
    group.add_argument(
        "--scheduler-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting to a scheduler after this long",
    )


def describe_choice(args) -> tuple[str, str | None]:
    """``(kind, address_or_file)``: kind is 'address', 'file' or one of LOCAL_KINDS."""
    if args.scheduler_address:
        return "address", args.scheduler_address
    if args.scheduler_file:
        return "file", args.scheduler_file
    chosen = args.scheduler
    if chosen is not None and chosen not in LOCAL_KINDS:
        if "://" not in chosen and ":" not in chosen:
            valid = ", ".join(map(repr, LOCAL_KINDS))
            raise UsageError(f"--scheduler={chosen!r}; valid: {valid} or an address.")
        return "address", chosen
    if chosen is None:
        address = dask.config.get("scheduler-address", None)
        if address:
            return "address", address
        chosen = args.scheduler_default
    return chosen, None


def _say(message: str) -> None:
    print(f"dask: {message}", file=sys.stderr)


def _dashboard(client) -> str | None:
    try:
        info = client.scheduler_info()
        if "dashboard" not in info.get("services", {}):
            return None
        return client.dashboard_link
    except Exception:  # a link is a convenience, never a reason to fail
        return None


def _wait_for_file(path: str, timeout: float) -> None:
    """A job may start with its scheduler: wait for the scheduler file, but not forever
    (distributed's Client would)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SchedulerUnreachableError(
                f"no scheduler file {path} after {timeout:g} s (--scheduler-timeout)."
            )
        time.sleep(0.05)


@contextlib.contextmanager
def connect(args, *, quiet: bool = False):
    """Yield a ``distributed.Client`` (None for 'threads'/'synchronous'), set as default."""
    kind, where = describe_choice(args)
    if kind in ("threads", "synchronous"):
        threads = getattr(args, "threads", None)
        if threads is not None and threads < 1:
            raise UsageError(f"--threads={threads} should be >= 1.")
        settings = {"scheduler": kind}
        if threads:
            settings["num_workers"] = threads
        with dask.config.set(settings):
            yield None
        return

    from distributed import Client, LocalCluster

    timeout = args.scheduler_timeout
    if kind == "local":
        for name in ("workers", "threads_per_worker"):
            if getattr(args, name) < 1:
                raise UsageError(
                    f"--{name.replace('_', '-')}={getattr(args, name)} should be >= 1."
                )
        # Loopback only, on a free port: the dashboard is never public, and the default
        # port 8787 is often taken.
        dashboard = "127.0.0.1:0"
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=args.threads_per_worker,
                processes=True,
                dashboard_address=dashboard,
                memory_limit=args.memory_limit,
            ) as cluster,
            Client(cluster) as client,
        ):
            if not quiet:
                # Without bokeh the scheduler serves no dashboard pages, only its HTTP API.
                link = _dashboard(client) if importlib.util.find_spec("bokeh") else None
                _say(
                    f"local cluster of {args.workers} workers x {args.threads_per_worker} "
                    f"thread(s)" + (f", dashboard {link}" if link else "")
                )
            yield client
        return

    target = {"address": where} if kind == "address" else {"scheduler_file": where}
    if kind == "file":
        _wait_for_file(where, timeout)
    try:
        client = Client(**target, timeout=timeout)
    except (OSError, TimeoutError) as err:
        what = f"at {where}" if kind == "address" else f"of scheduler file {where}"
        raise SchedulerUnreachableError(
            f"cannot reach the Dask scheduler {what} within {timeout:g} s "
            f"(--scheduler-timeout): {err}"
        ) from None
    with client:
        if not quiet:
            link = _dashboard(client)
            n = len(client.scheduler_info().get("workers", {}))
            _say(
                f"connected to {client.scheduler.address} ({n} workers)"
                + (f", dashboard {link}" if link else "")
            )
        yield client
