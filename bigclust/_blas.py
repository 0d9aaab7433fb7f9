"""One BLAS thread per task while our own threads (or Dask's) already use every core."""

from __future__ import annotations

import contextlib
import functools
import threading

_limited = threading.local()  # .depth: how many single_blas_thread blocks this thread is in


@functools.cache
def _controller():
    # Introspecting the loaded BLAS libraries costs milliseconds: do it once per process.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_thread_everywhere():
    """Limit BLAS and OpenMP (scikit-learn's Cython loops) to one thread for the duration.

    For scikit-learn called on a few hundred points: its OpenMP loops sum per-thread partial
    results in the order the threads finish (bits that vary between runs and machines), and
    waking threads costs more than such a problem.
    """
    return _controller().limit(limits=1)


@contextlib.contextmanager
def single_blas_thread():
    """Limit BLAS to one thread for the duration (about 15 us to set and restore).

    Used as a context manager, the limiter also gives up threadpoolctl's control of OpenBLAS
    on exit: since threadpoolctl 3.8, only the first thread to set OpenBLAS's (process-wide)
    limit may change it until it does, and other threads' limits silently do nothing.
    Nested blocks in one thread leave the limit to the outermost: a pass run in this process
    nests three, and on small data each limit costs as much as the kernel.
    """
    depth = getattr(_limited, "depth", 0)
    if depth:
        _limited.depth = depth + 1
        try:
            yield
        finally:
            _limited.depth = depth
        return
    with _controller().limit(limits=1, user_api="blas"):
        _limited.depth = 1
        try:
            yield
        finally:
            _limited.depth = 0
