"""Per-thread scratch objects for kernels called many times: buffers that are not page-faulted
anew at every call.

Fresh allocations of a few hundred KiB or more are page-faulted on first touch, and wherever
glibc returns them to the system at once they are faulted again at every call: in Dask worker
processes it does, because the nanny sets ``MALLOC_TRIM_THRESHOLD_``, which also turns off
glibc's adaptive mmap threshold. There a Lloyd pass ran 2x slower and a GaussianMixture E-step
1.6x slower than in the client's process. Threads also fault under one process-wide lock,
which kept two threads from running two halves of a batch faster than one.
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()

#: Objects a thread keeps in :func:`thread_cached` (a few scratch arrays of at most a few MiB
#: each), and arrays it keeps in :func:`scratch_array`.
MAX_CACHED_PER_THREAD = 8


def thread_cached(key: tuple, make):
    """This thread's object for ``key``, made by ``make()`` at first use.

    A caller must be done with the object before its thread asks for the same key again.
    """
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    found = cache.get(key)
    if found is None:
        if len(cache) >= MAX_CACHED_PER_THREAD:
            cache.clear()
        found = cache[key] = make()
    return found


def scratch_array(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """This thread's uninitialised array ``name`` of ``shape`` and ``dtype``, valid until the
    thread next asks for the same name, shape and dtype."""
    arrays = thread_cached(("arrays",), dict)
    key = (name, shape, np.dtype(dtype))
    found = arrays.get(key)
    if found is None:
        if len(arrays) >= MAX_CACHED_PER_THREAD:
            arrays.clear()
        found = arrays[key] = np.empty(shape, dtype)
    return found
