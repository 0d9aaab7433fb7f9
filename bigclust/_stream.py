"""Sequential folds over row ranges, with the next range read while the current one folds.

The sibling of :func:`bigclust.driver.map_reduce` for algorithms whose steps depend on each
other (mini-batch K-Means): ``state = kernel(block, weights, state, params, piece)`` for each
``piece`` (a row range ``[piece.lo, piece.hi)``) in order. Where it runs:

- with a ``distributed.Client`` active, the cluster reads each range (``client.compute``) and
  runs the kernel on the worker that holds it; only the small state travels between the
  client and the workers. The read of the next range is in flight while the current range
  folds, and a range is released as soon as it is folded, so every worker holds at most a
  few ranges whatever the size of the data;
- otherwise the ranges are read (by the active local scheduler, or by slicing an in-memory
  array) in a background thread while the calling thread folds the previous one, with one
  BLAS thread so that the reader keeps the other cores.

Either way the caller sees the state after every piece and may stop early.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da
import numpy as np

from bigclust.driver import active_client

__all__ = ["stream_fold"]


def stream_fold(
    kernel: Callable[..., Any],
    X: da.Array | np.ndarray,
    pieces: Iterable[Any],
    state: Any,
    *,
    sample_weight: da.Array | np.ndarray | None = None,
    params: Any = None,
    prefetch: int = 1,
) -> Iterator[Any]:
    """Fold ``kernel`` over the row ranges ``pieces`` of ``X``; yield the state after each.

    Parameters
    ----------
    kernel : callable
        ``kernel(block, weights, state, params, piece) -> state``, with ``block`` the NumPy
        rows ``X[piece.lo:piece.hi]`` and ``weights`` the matching sample weights or
        ``None``. Module-level (picklable) for process-based clusters.
    X : dask.array.Array or ndarray
        The data. A NumPy array is sliced directly when no distributed client is active.
    pieces : iterable
        Objects with ``lo`` and ``hi`` attributes; consumed lazily, ``prefetch`` ahead.
    state : object
        The initial state (small: it is shipped with every task on a cluster).
    sample_weight : dask.array.Array or ndarray, optional
        Aligned with the rows of ``X``.
    params : object, optional
        Constant parameters, shipped once.
    prefetch : int, default=1
        Ranges read ahead of the one being folded.

    Yields
    ------
    state
        After each piece. Close the generator (or stop iterating it) to stop early; reads
        in flight are then cancelled.
    """
    client = active_client()
    if client is not None:
        return _fold_distributed(client, kernel, X, pieces, state, sample_weight, params, prefetch)
    return _fold_local(kernel, X, pieces, state, sample_weight, params, prefetch)


def _read_local(X, w, piece):
    parts = [X[piece.lo : piece.hi]] + ([] if w is None else [w[piece.lo : piece.hi]])
    lazy = [p for p in parts if isinstance(p, da.Array)]
    if lazy:
        computed = iter(dask.compute(*lazy))
        parts = [next(computed) if isinstance(p, da.Array) else p for p in parts]
    block = np.asarray(parts[0])
    return block, (np.asarray(parts[1]) if w is not None else None)


def _fold_local(kernel, X, pieces, state, w, params, prefetch):
    from threadpoolctl import threadpool_limits

    pieces = iter(pieces)
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(1, thread_name_prefix="bigclust-prefetch") as pool:
        try:

            def refill(n):
                while len(pending) < n:
                    piece = next(pieces, None)
                    if piece is None:
                        return
                    pending.append((piece, pool.submit(_read_local, X, w, piece)))

            refill(1)
            while pending:
                piece, future = pending.popleft()
                refill(prefetch)  # queued behind the current read
                block, weights = future.result()
                with threadpool_limits(1, user_api="blas"):
                    state = kernel(block, weights, state, params, piece)
                del block, weights
                yield state
        finally:
            for _, future in pending:
                future.cancel()


def _fold_distributed(client, kernel, X, pieces, state, w, params, prefetch):
    if not isinstance(X, da.Array):
        X = da.from_array(X, chunks=(max(1, X.shape[0]), *X.shape[1:]))
    if w is not None and not isinstance(w, da.Array):
        w = da.from_array(np.asarray(w), chunks=X.chunks[0])
    params_future = (
        client.scatter(params, broadcast=False, hash=False) if params is not None else None
    )
    pieces = iter(pieces)
    pending: collections.deque = collections.deque()

    def refill(n):
        while len(pending) < n:
            piece = next(pieces, None)
            if piece is None:
                return
            block = client.compute(X[piece.lo : piece.hi])
            weights = None if w is None else client.compute(w[piece.lo : piece.hi])
            pending.append((piece, block, weights))

    try:
        refill(1)
        while pending:
            piece, block, weights = pending.popleft()
            folded = client.submit(
                _limited, kernel, block, weights, state, params_future, piece, pure=False
            )
            refill(prefetch)  # the next read is in flight while this piece folds
            state = folded.result()
            del block, weights, folded
            yield state
    finally:
        for _, block, weights in pending:
            block.cancel()
            if weights is not None:
                weights.cancel()


def _limited(kernel, block, weights, state, params, piece):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return kernel(block, weights, state, params, piece)
