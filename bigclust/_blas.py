"""One BLAS thread per task while our own threads (or Dask's) already use every core."""

from __future__ import annotations

import contextlib
import functools


@functools.cache
def _controller():
    # Introspecting the loaded BLAS libraries costs milliseconds: do it once per process.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_blas_thread():
    """Limit BLAS to one thread for the duration (about 15 us to set and restore).

    Used as a context manager, the limiter also gives up threadpoolctl's control of OpenBLAS
    on exit: since threadpoolctl 3.8, only the first thread to set OpenBLAS's (process-wide)
    limit may change it until it does, and other threads' limits silently do nothing.
    """
    with _controller().limit(limits=1, user_api="blas"):
        yield
