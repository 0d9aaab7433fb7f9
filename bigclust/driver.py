"""The map-reduce driver: the one place (with the data layer) that builds Dask graphs.

:func:`map_reduce` runs a per-chunk NumPy kernel over every row chunk of a Dask array with
small broadcast parameters, combines the partial results as a tree, and returns one small
result from one ``compute``. It works with whatever scheduler is active: synchronous, the
threaded default, an in-process ``distributed.Client`` or a remote cluster.

Kernels are plain functions ``kernel(block, *aligned_blocks, params, start)``:

- ``block`` is the chunk as a NumPy array (never written to),
- ``aligned_blocks`` are the matching row blocks of 1-D arrays aligned with ``X``'s rows
  (e.g. ``sample_weight``),
- ``params`` is the broadcast object (shipped once per call, not once per task),
- ``start`` is the chunk's global row offset, for row-keyed random streams,

and return statistics that combine by addition: numbers, arrays, tuples / NamedTuples of
those, or objects with their own ``combine(other)`` method.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import math
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask._task_spec import Alias, Task, TaskRef
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from bigclust import _progress
from bigclust._blas import single_blas_thread
from bigclust._errors import NonFiniteInputError, NonFiniteRow
from bigclust._rows import first_nonfinite_row

__all__ = [
    "NonFiniteInputError",
    "SchedulerLostError",
    "active_client",
    "combine",
    "keep_aligned_in_memory",
    "keep_in_memory",
    "place",
    "chunk_totals",
    "compute",
    "map_blocks_lazy",
    "map_rows_aligned",
    "map_reduce",
    "map_rows",
    "read_block",
    "run_together",
    "take_rows",
    "together_form",
    "stream_fold",
]

#: Children per node of the reduction tree.
SPLIT_EVERY = 8


def combine(a: Any, b: Any) -> Any:
    """Combine two partial statistics: elementwise for tuples, ``a.combine(b)`` where defined,
    addition otherwise. ``None`` stands for "nothing" on either side."""
    if a is None:
        return b
    if b is None:
        return a
    if hasattr(a, "combine"):
        return a.combine(b)
    if isinstance(a, tuple):
        parts = [combine(x, y) for x, y in zip(a, b, strict=True)]
        return type(a)(*parts) if hasattr(a, "_fields") else tuple(parts)
    return a + b


class _Partial:
    """A kernel's statistics plus the first non-finite row seen, if any."""

    __slots__ = ("bad", "stats")

    def __init__(self, stats: Any, bad: tuple[int, int, int] | None):
        self.stats, self.bad = stats, bad

    def combine(self, other: _Partial) -> _Partial:
        bads = [b for b in (self.bad, other.bad) if b is not None]
        return _Partial(combine(self.stats, other.stats), min(bads) if bads else None)


def _all_finite(stats: Any) -> bool:
    # Statistics that say which of their fields tell (most NamedTuples of the kernels) first:
    # checking all their fields costs more than some kernels on small data.
    check = getattr(stats, "all_finite", None)
    if check is not None:
        return check()
    if isinstance(stats, tuple):
        return all(_all_finite(s) for s in stats)
    if isinstance(stats, (float, np.floating)):
        return math.isfinite(stats)
    if isinstance(stats, np.ndarray) and stats.dtype.kind == "f":
        return bool(np.isfinite(stats).all())
    return True


def _run_kernel(kernel, check_finite: bool, block, *rest):
    *aligned, params, start = rest
    block = _element_aligned(block)  # e.g. fetched from another worker
    # NaN/inf are reported below with their row; numpy's warnings about them are noise.
    with np.errstate(invalid="ignore", over="ignore"), _task_blas():
        stats = kernel(block, *aligned, params, start)
    bad = None
    # Cheap detection: NaN/inf in the data makes the kernel's float statistics non-finite,
    # so the block is scanned only when they are, never on a clean pass.
    if check_finite and not _all_finite(stats):
        row = first_nonfinite_row(block)
        if row is not None:
            bad = (start + row, start, start + block.shape[0])
    return _Partial(stats, bad)


def _combine_many(*parts: _Partial) -> _Partial:
    return functools.reduce(lambda a, b: a.combine(b), parts)


def _row_offsets(chunks: Sequence[int]) -> list[int]:
    return [0, *np.cumsum(chunks).tolist()]


class _Chunks:
    """An array's optimized graph and its chunks' keys, in row order.

    Optimizing a graph costs the client tens of microseconds per chunk (seconds for a pass
    over 62,500 chunks, ``benchmarks/bench_scale.py``), and every iteration passes over the
    same array: it is done once per array and kept on the array object itself, so it lives
    exactly as long as the array (never keeping the futures of a persisted one alive).
    """

    __slots__ = ("graph", "keys", "name")

    def __init__(self, X: da.Array):
        keys = list(dask.core.flatten(X.__dask_keys__()))
        optimized = X.__dask_optimize__(X.__dask_graph__(), keys)
        self.name = f"chunks-{X.name}"
        if not isinstance(optimized, HighLevelGraph):
            optimized = HighLevelGraph.from_collections(self.name, dict(optimized))
        self.graph, self.keys = optimized, keys


def _chunks_of(X: da.Array) -> _Chunks:
    found = getattr(X, "_bigclust_chunks", None)
    if found is None or found.name != f"chunks-{X.name}":
        found = _Chunks(X)
        X._bigclust_chunks = found
    return found


def _aligned_blocks(X: da.Array, aligned: Sequence[da.Array]) -> list[_Chunks]:
    blocks = []
    for a in aligned:
        if not isinstance(a, da.Array):
            a = da.asarray(a)  # e.g. a NumPy sample_weight
        if a.ndim == 0 or a.shape[0] != X.shape[0]:
            raise ValueError(f"array of shape {a.shape} is not aligned with {X.shape[0]} rows.")
        # Row chunks as X's and one chunk along every other axis: exactly one block per chunk.
        target = {0: X.chunks[0], **{axis: -1 for axis in range(1, a.ndim)}}
        if a.chunks[0] != X.chunks[0] or any(len(c) > 1 for c in a.chunks[1:]):
            a = a.rechunk(target)
        blocks.append(_chunks_of(a))
    return blocks


def _tree_graph(
    kernel, check_finite, data, aligned_data, shared, offsets, split_every, workers=None
):
    """One graph layer: a kernel task per block, then a tree of combine tasks.

    Built as one dict rather than one ``dask.delayed`` call per block: a delayed call
    tokenizes (pickles) the kernel and builds a graph every time, which cost about 0.5 ms
    per chunk on the client, more than the task itself for small chunks. Blocks are
    referenced by key through ``TaskRef`` (not as bare key tuples), so that a chunk held as
    a future on a distributed cluster (a persisted or scattered array) reaches the kernel
    as its data.
    """
    # A fresh name per call: with deterministic names, calling the same reduction again right
    # after the last one let a distributed scheduler hand back keys it was still forgetting
    # ("Couldn't gather keys ... 'forgotten'" logged as an ERROR).
    name = f"map-reduce-{uuid.uuid4().hex}"
    layer: dict = {}
    keys = []
    params_ref = TaskRef(shared.key)
    for i, block in enumerate(data.keys):
        key = (name, 0, i)
        layer[key] = Task(
            key,
            _run_kernel,
            kernel,
            check_finite,
            TaskRef(block),
            *(TaskRef(a.keys[i]) for a in aligned_data),
            params_ref,
            offsets[i],
        )
        keys.append(key)
    level = 0
    while len(keys) > 1:
        level += 1
        groups = [keys[i : i + split_every] for i in range(0, len(keys), split_every)]
        keys = []
        for j, group in enumerate(groups):
            key = (name, level, j)
            layer[key] = Task(key, _combine_many, *(TaskRef(k) for k in group))
            keys.append(key)
    graph = HighLevelGraph.merge(
        data.graph, *(a.graph for a in aligned_data), shared.__dask_graph__()
    )
    layers = {**graph.layers, name: _placed(layer, name, workers)}
    dependencies = {**graph.dependencies, name: set(graph.layers)}
    return Delayed(keys[0], HighLevelGraph(layers, dependencies), layer=name)


def _placed(layer: dict, name: str, workers: Sequence[str | None] | None):
    """The layer, with the kernel task of chunk ``i`` asked to run on ``workers[i]`` where
    given (a loose restriction: any worker if that one is gone)."""
    if not workers or not any(workers):
        return layer

    def where(key):
        if key[1] == 0 and key[2] < len(workers) and workers[key[2]]:
            return [workers[key[2]]]
        return None

    def loose(key):
        return True if where(key) else None

    return MaterializedLayer(layer, annotations={"workers": where, "allow_other_workers": loose})


def _broadcast(params: Any):
    # One key for the parameters: every task depends on it, so a distributed scheduler
    # ships it once per worker instead of embedding a copy in every task.
    return dask.delayed(params, name="params-" + tokenize(params), traverse=False)


def map_reduce(
    kernel: Callable[..., Any],
    X: da.Array,
    *aligned: da.Array,
    params: Any = None,
    check_finite: bool = True,
    what: str = "X",
    split_every: int = SPLIT_EVERY,
    workers: Sequence[str | None] | None = None,
) -> Any:
    """Apply ``kernel`` to every row chunk of ``X`` and combine the results as a tree.

    Parameters
    ----------
    kernel : callable
        ``kernel(block, *aligned_blocks, params, start) -> stats``; see the module docstring.
        It must be picklable (a module-level function or a ``functools.partial`` of one) for
        process-based schedulers.
    X : dask.array.Array or ndarray of shape (n_samples, n_features)
        Chunked along rows only (see :func:`bigclust.io.as_dask_array`). An in-memory
        NumPy array (a sample) is one chunk, reduced in this process without a graph.
    *aligned : array-like of shape (n_samples,) or (n_samples, ...)
        Arrays aligned with the rows of ``X`` (Dask arrays, or NumPy arrays wrapped as one);
        rechunked to match ``X``'s row chunks, one chunk along any other axis.
    params : object, optional
        Small parameters broadcast to every task (centers, seeds, ...).
    check_finite : bool, default=True
        Raise :class:`NonFiniteInputError` naming the first NaN/inf row. Detection costs
        nothing on clean data: a chunk is scanned only if its statistics came out non-finite.
    what : str, default="X"
        Name of the data in error messages.
    split_every : int, default=8
        Fan-in of the reduction tree.
    workers : sequence of str or None, optional
        On a distributed cluster, the worker that should run each chunk's kernel (``None``:
        any), e.g. where the chunk's state from the previous pass lives; a loose
        restriction, so a lost worker's chunks run elsewhere. Ignored by other schedulers
        and in shared passes.

    Returns
    -------
    object
        The combined statistics.
    """
    if split_every < 2:
        raise ValueError(f"split_every={split_every} should be >= 2.")
    if isinstance(X, np.ndarray):
        return _reduce_in_process(kernel, X, aligned, params, check_finite, what)
    if X.ndim != 2 or len(X.chunks[1]) != 1:
        raise ValueError("map_reduce needs a 2-D array with all columns in one chunk.")
    shared = getattr(_thread, "shared_passes", None)
    if shared is not None:  # inside run_together: this pass joins the others' next pass
        return shared.submit(_Request(kernel, X, aligned, params, check_finite, what, split_every))
    return _map_reduce_now(kernel, X, aligned, params, check_finite, what, split_every, workers)


def _map_reduce_now(kernel, X, aligned, params, check_finite, what, split_every, workers=None):
    offsets = _row_offsets(X.chunks[0])
    aligned_data = _aligned_blocks(X, aligned)
    shared = _broadcast(params)
    total = _tree_graph(
        kernel, check_finite, _chunks_of(X), aligned_data, shared, offsets, split_every, workers
    )
    with _blas_limited(), scheduler_errors(active_client()):
        result = _compute_tree(total, len(offsets) - 1)
    if result.bad is not None:
        row, lo, hi = result.bad
        raise NonFiniteInputError(what, row, (lo, hi))
    return result.stats


def _compute_tree(total: Delayed, n_chunks: int) -> Any:
    """Compute a pass's tree; with chunk-level progress on (``verbose>=2``), report each
    kernel task (level 0 of the tree) as it ends: through a dask callback on the local
    schedulers, through futures of the kernel tasks on a distributed client (submitted with
    the root as one graph: the tree is the same, the scheduler only keeps the kernels' small
    results until the pass ends)."""
    watch = _progress.watch_chunks(n_chunks)
    if watch is None:
        (result,) = dask.compute(total)
        return result
    name = total.key[0]
    try:
        client = active_client()
        if client is None:
            with watch.local(lambda key: isinstance(key, tuple) and key[:2] == (name, 0)):
                (result,) = dask.compute(total)
            return result
        kernels = [Delayed((name, 0, i), total.dask, layer=name) for i in range(n_chunks)]
        root, *futures = client.compute([total, *kernels])
        watch.follow(futures)
        return root.result()
    finally:
        watch.close()


# --- shared passes ---------------------------------------------------------------------------
#
# Several fits over the same data can share their passes: each fit runs in its own thread,
# unchanged; its map_reduce calls wait at a barrier until every fit still running is waiting
# too, and then the waiting requests over the same array run as ONE pass whose task per chunk
# applies every request's kernel to the chunk in turn. Each request's statistics are combined
# in the same tree as alone, so every fit's result is bitwise the one it gets alone; a fit that
# has converged has left, so the others' passes go on without it. Requests of a kernel with a
# together form (together_form; bigclust/_together.py) are served by one call of it per chunk.

_thread = threading.local()


class _Request:
    __slots__ = (
        "X",
        "aligned",
        "check_finite",
        "done",
        "error",
        "kernel",
        "params",
        "result",
        "split_every",
        "what",
    )  # fmt: skip

    def __init__(self, kernel, X, aligned, params, check_finite, what, split_every):
        self.kernel, self.X, self.aligned, self.params = kernel, X, tuple(aligned), params
        self.check_finite, self.what, self.split_every = check_finite, what, split_every
        self.result = self.error = None
        self.done = threading.Event()

    def group(self) -> tuple:
        """Requests with the same key read the same chunks: one pass serves them all."""
        names = tuple(getattr(a, "name", id(a)) for a in self.aligned)
        return (self.X.name, self.X.chunks, names, self.split_every)


class _SharedPasses:
    def __init__(self, n_fits: int):
        self.changed = threading.Condition()
        self.running = n_fits  # fits not finished
        self.waiting: list[_Request] = []
        self.passes = 0  # shared passes run (for tests and benchmarks)

    def submit(self, request: _Request):
        with self.changed:
            self.waiting.append(request)
            self.changed.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def finished(self) -> None:
        with self.changed:
            self.running -= 1
            self.changed.notify_all()

    def serve(self) -> None:
        """Run shared passes until every fit has finished (on the calling thread)."""
        while True:
            with self.changed:
                self.changed.wait_for(lambda: len(self.waiting) >= self.running)
                if self.running == 0 and not self.waiting:
                    return
                batch, self.waiting = self.waiting, []
            groups: dict = {}
            for request in batch:
                groups.setdefault(request.group(), []).append(request)
            for requests in groups.values():
                self.passes += 1
                _run_shared_pass(requests)


#: ``kernel -> together``: kernels with a form that serves several requests on one chunk
#: faster than calling the kernel once per request, ``together(block, *aligned_blocks,
#: params_list, start) -> list of stats``, each exactly (bitwise) the statistics the kernel
#: gives for those params alone. Filled by :func:`together_form`.
_TOGETHER: dict[Callable[..., Any], Callable[..., list]] = {}


def together_form(kernel: Callable[..., Any]):
    """Register the decorated function as the form of ``kernel`` that shared passes use for
    two or more requests of it (see :data:`_TOGETHER`); it must give every request the very
    bits ``kernel`` gives it alone (same operations in the same order): only the work that
    does not depend on the request (casts, norms, reading the chunk) is done once."""

    def register(together: Callable[..., list]) -> Callable[..., list]:
        _TOGETHER[kernel] = together
        return together

    return register


def _run_together_form(together, checks, block, *rest):
    """A together form over one chunk: one :class:`_Partial` per request (as _run_kernel)."""
    *aligned, params_list, start = rest
    with np.errstate(invalid="ignore", over="ignore"), _task_blas():
        stats_list = together(block, *aligned, list(params_list), start)
    suspect = [c and not _all_finite(s) for c, s in zip(checks, stats_list, strict=True)]
    row = first_nonfinite_row(block) if any(suspect) else None  # one scan for all requests
    bad = None if row is None else (start + row, start, start + block.shape[0])
    return [_Partial(s, bad if f else None) for s, f in zip(stats_list, suspect, strict=True)]


def _run_many(block, *rest):
    """One chunk, every request's kernel: a tuple of their partial statistics.

    A spec is ``(kernel, check_finite, params)`` for one request, or ``(together form,
    checks, params_list)`` for several requests of one kernel (:func:`_shared_specs`)."""
    *aligned, specs, start = rest
    out = []
    for fn, check, params in specs:
        if isinstance(check, tuple):
            out.extend(_run_together_form(fn, check, block, *aligned, params, start))
        else:
            out.append(_run_kernel(fn, check, block, *aligned, params, start))
    return tuple(out)


def _shared_specs(requests: list[_Request]) -> tuple[tuple, list[_Request]]:
    """The specs of one shared pass and the requests in the order of its results: requests
    of a kernel with a together form run through it (two or more of them), the others one by
    one."""
    by_kernel: dict = {}
    for request in requests:
        by_kernel.setdefault(request.kernel, []).append(request)
    specs, order = [], []
    for kernel, group in by_kernel.items():
        together = _TOGETHER.get(kernel)
        if together is not None and len(group) > 1:
            checks = tuple(r.check_finite for r in group)
            specs.append((together, checks, tuple(r.params for r in group)))
        else:
            specs.extend((kernel, r.check_finite, r.params) for r in group)
        order.extend(group)
    return tuple(specs), order


def _run_shared_pass(requests: list[_Request]) -> None:
    first = requests[0]
    specs, requests = _shared_specs(requests)
    try:
        partials = _map_reduce_now(
            _run_many, first.X, first.aligned, specs, False, first.what, first.split_every
        )
    except BaseException as error:
        for request in requests:
            request.error = error
            request.done.set()
        return
    for request, partial in zip(requests, partials, strict=True):
        if partial.bad is not None:
            row, lo, hi = partial.bad
            request.error = NonFiniteInputError(request.what, row, (lo, hi))
        else:
            request.result = partial.stats
        request.done.set()


def run_together(
    tasks: Sequence[Callable[[], Any]],
) -> tuple[list[Any], list[BaseException | None], int]:
    """Run ``tasks`` (e.g. several estimators' ``fit`` on the same data), sharing their passes.

    Each task runs in its own thread; its :func:`map_reduce` passes over the same Dask array
    run together, one read of every chunk per shared pass (see the comment above). Passes
    over in-memory data, per-row outputs and small reads run on their own.

    Returns
    -------
    results : list
        What each task returned (``None`` where it raised).
    errors : list
        The exception each task raised, or ``None``.
    passes : int
        Shared passes run.
    """
    shared = _SharedPasses(len(tasks))
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException | None] = [None] * len(tasks)

    def run(i):
        _thread.shared_passes = shared
        try:
            results[i] = tasks[i]()
        except BaseException as error:
            errors[i] = error
        finally:
            _thread.shared_passes = None
            shared.finished()

    threads = [threading.Thread(target=run, args=(i,), name=f"bigclust-fit-{i}", daemon=True)
               for i in range(len(tasks))]  # fmt: skip
    for thread in threads:
        thread.start()
    shared.serve()
    for thread in threads:
        thread.join()
    return results, errors, shared.passes


def _reduce_in_process(kernel, X, aligned, params, check_finite, what):
    """An in-memory sample is one chunk, reduced here: no graph, no scheduler."""
    aligned = [np.asarray(a) for a in aligned]
    for a in aligned:
        if a.ndim == 0 or a.shape[0] != X.shape[0]:
            raise ValueError(f"array of shape {a.shape} is not aligned with {X.shape[0]} rows.")
    # One BLAS thread: a small pass gains nothing from BLAS threads, which cost far more than
    # they save when the machine is busy (measured: 2 blocks of 16k rows 40 ms vs 1 ms).
    with single_blas_thread():
        result = _run_kernel(kernel, check_finite, X, *aligned, params, 0)
    if result.bad is not None:
        row, lo, hi = result.bad
        raise NonFiniteInputError(what, row, (lo, hi))
    return result.stats


@functools.cache
def _rows_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="bigclust-map-rows")


def _run_rowwise(block, params, kernel, what, start):
    try:
        with _task_blas():  # in the task, as in _run_kernel
            return kernel(block, params)
    except NonFiniteRow as bad:
        raise NonFiniteInputError(
            what, start + bad.local_row, (start, start + len(block))
        ) from None


def _rowwise_task(block, params, kernel, what, block_info=None):
    ((start, _), *_) = block_info[0]["array-location"]
    return _run_rowwise(block, params, kernel, what, start)


def map_rows(
    kernel: Callable[..., np.ndarray],
    X: da.Array,
    *,
    params: Any = None,
    dtype: np.dtype,
    n_columns: int | None = None,
    numpy_out: bool = False,
    in_memory: np.ndarray | None = None,
    what: str = "X",
) -> np.ndarray | da.Array:
    """Apply a row-wise kernel, ``kernel(block, params) -> array``, to every chunk of ``X``.

    The one rule for per-row outputs (labels, distances, densities): the result has one row
    per input row, 1-D (``n_columns=None``) or with ``n_columns`` columns, and is

    - lazy (a Dask array over ``X``'s chunks) unless ``numpy_out``,
    - with ``numpy_out``, a NumPy array: computed in this process chunk by chunk straight from
      ``in_memory`` (the user's array, when there is one: no graph, no round trip to a
      cluster), else by the active scheduler.

    A kernel that meets a non-finite row raises ``bigclust._errors.NonFiniteRow(local_row)``;
    the user sees :class:`NonFiniteInputError` naming the global row.
    """
    if isinstance(X, np.ndarray):  # placed in process (see place)
        out = _run_rowwise(X, params, kernel, what, 0)
        return out if numpy_out else da.from_array(out, chunks=out.shape)
    if numpy_out and in_memory is not None:
        ranges = list(itertools.pairwise(_row_offsets(X.chunks[0])))

        def run(lo_hi):
            lo, hi = lo_hi
            block = np.asarray(in_memory[lo:hi], dtype=X.dtype)
            return _run_rowwise(block, params, kernel, what, lo)

        if len(ranges) == 1:
            return run(ranges[0])
        # The chunks on a thread per core (the kernels release the GIL), one BLAS thread each;
        # results, and the first error, in row order.
        with single_blas_thread():
            return np.concatenate(list(_rows_pool().map(run, ranges)))
    shared = _broadcast(params)
    if n_columns is None:
        lazy = da.map_blocks(
            _rowwise_task, X, shared, kernel, what, dtype=dtype, drop_axis=1, chunks=(X.chunks[0],)
        )
    else:
        lazy = da.map_blocks(
            _rowwise_task, X, shared, kernel, what, dtype=dtype, chunks=(X.chunks[0], (n_columns,))
        )
    if not numpy_out:
        return lazy
    (out,) = _compute(lazy)
    return out


def map_blocks_lazy(kernel, X, *, params=None, dtype, n_columns=None, what="X") -> da.Array:
    """Lazy :func:`map_rows` (kept for callers that always want a Dask array)."""
    return map_rows(kernel, X, params=params, dtype=dtype, n_columns=n_columns, what=what)


def compute(*lazy: Any) -> tuple:
    """Compute a few small lazy results in one go (with one BLAS thread per task)."""
    return _compute(*lazy)


def _compute(*lazy: Any) -> tuple:
    # Every compute of the driver: a lost scheduler is one SchedulerLostError.
    with _blas_limited(), scheduler_errors(active_client()):
        return dask.compute(*lazy)


def take_rows(X: da.Array, rows: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Rows of ``X`` by global index, in the order given, reading only the chunks that hold
    them."""
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(X, np.ndarray):
        return np.asarray(X[rows], dtype=dtype)
    order = np.argsort(rows, kind="stable")
    (picked,) = _compute(X[rows[order]])
    out = np.empty((len(rows), X.shape[1]), dtype=dtype)
    out[order] = picked
    return out


def chunk_totals(values: da.Array) -> np.ndarray:
    """The sum of every chunk of a 1-D array, one number per chunk, in float64."""
    totals = da.map_blocks(
        lambda b: np.array([b.sum(dtype=np.float64)]),
        values,
        chunks=((1,) * values.numblocks[0],),
        dtype=np.float64,
    )
    (out,) = _compute(totals)
    return np.asarray(out)


def read_block(values: da.Array, index: int) -> np.ndarray:
    """One chunk of a Dask array as NumPy."""
    (out,) = _compute(values.blocks[index])
    return np.asarray(out)


def _rows_aligned(block, aligned, params, kernel, what, start):
    try:
        return kernel(block, *aligned, params)
    except NonFiniteRow as bad:
        raise NonFiniteInputError(
            what, start + bad.local_row, (start, start + len(block))
        ) from None


def _rows_aligned_task(block, *rest, n_aligned, kernel, what, block_info=None):
    # Aligned arrays arrive as (rows, 1) blocks (see map_rows_aligned); the kernel gets 1-D.
    aligned = [a[:, 0] for a in rest[:n_aligned]]
    ((start, _), *_) = block_info[0]["array-location"]
    return _rows_aligned(block, aligned, rest[n_aligned], kernel, what, start)


def map_rows_aligned(
    kernel: Callable[..., np.ndarray],
    X: da.Array | np.ndarray,
    *aligned: da.Array | np.ndarray,
    params: Any = None,
    dtype: np.dtype,
    n_columns: int | None = None,
    numpy_out: bool = False,
    what: str = "X",
) -> np.ndarray | da.Array:
    """:func:`map_rows` with 1-D arrays aligned with ``X``'s rows (e.g. labels):
    ``kernel(block, *aligned_blocks, params) -> array`` on every row chunk.

    Each aligned array (Dask, or NumPy) is rechunked to ``X``'s row chunks, as
    :func:`map_reduce` does. The result has one row per input row, 1-D (``n_columns=None``)
    or with ``n_columns`` columns; lazy unless ``numpy_out``. An in-memory ``X`` (placed in
    process, see :func:`place`) is one chunk, run here. A kernel that meets a non-finite row
    raises ``bigclust._errors.NonFiniteRow(local_row)``; the user sees
    :class:`NonFiniteInputError` naming the global row.
    """
    arrays = []
    for a in aligned:
        if not isinstance(a, da.Array):
            a = np.asarray(a)
        if a.ndim != 1 or a.shape[0] != X.shape[0]:
            raise ValueError(f"array of shape {a.shape} is not aligned with {X.shape[0]} rows.")
        arrays.append(a)
    if isinstance(X, np.ndarray):
        blocks = [np.asarray(a) for a in compute(*arrays)] if arrays else []
        with single_blas_thread():
            out = _rows_aligned(X, blocks, params, kernel, what, 0)
        return out if numpy_out else da.from_array(out, chunks=out.shape)
    columns = []
    for a in arrays:
        if not isinstance(a, da.Array):
            a = da.from_array(a, chunks=(X.chunks[0],))
        if a.chunks[0] != X.chunks[0]:
            a = a.rechunk((X.chunks[0],))
        columns.append(a[:, None])  # 2-D, so that blocks pair with X's by position
    shared = _broadcast(params)
    options = {"n_aligned": len(columns), "kernel": kernel, "what": what, "dtype": dtype}
    if n_columns is None:
        lazy = da.map_blocks(
            _rows_aligned_task, X, *columns, shared, **options, drop_axis=1, chunks=(X.chunks[0],)
        )
    else:
        lazy = da.map_blocks(
            _rows_aligned_task, X, *columns, shared, **options, chunks=(X.chunks[0], (n_columns,))
        )
    if not numpy_out:
        return lazy
    (out,) = compute(lazy)
    return out


class SchedulerLostError(ConnectionError):
    """The distributed scheduler went away before or during a pass.

    Raised instead of distributed's ``FutureCancelledError ... scheduler-connection-lost`` or a
    connection timeout, with the scheduler's address. The estimator is left as it was: fitted
    attributes are set only once a fit completes.
    """


#: The scheduler address each client last had: a client that gives up reconnecting (10 s
#: after its scheduler died, by default) drops its ``scheduler``, and the errors raised after
#: that must still name the address.
_known_addresses: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scheduler_address(client) -> str:
    try:
        address = str(client.scheduler.address)
    except AttributeError:  # a client that never connected, or closed after losing it
        return _known_addresses.get(client, "(unknown address)")
    _known_addresses[client] = address
    return address


def _is_connection_loss(client, err: BaseException) -> bool:
    # A task's own OSError (a missing chunk file, say) reaches the client while it is still
    # connected: only errors met with the connection gone are the scheduler's.
    return "scheduler-connection-lost" in str(err) or client.status != "running"


@contextlib.contextmanager
def scheduler_errors(client):
    """Turn the ways a lost scheduler shows up into one :class:`SchedulerLostError`.

    Fails at once when the client already knows its scheduler is gone (instead of waiting for
    it to come back, 30 s by default), and within about a second when it goes mid-pass (the
    client sees the connection close and cancels every future).
    """
    if client is None:
        yield
        return
    from concurrent.futures import CancelledError

    address = _scheduler_address(client)
    if client.status in ("connecting", "closing", "closed"):
        raise SchedulerLostError(
            f"The Dask scheduler at {address} is not reachable (client status "
            f"{client.status!r}); nothing was computed. Restart the cluster and run again."
        )
    try:
        yield
    except (CancelledError, OSError, TimeoutError) as err:
        if not _is_connection_loss(client, err):
            raise
        raise SchedulerLostError(
            f"Lost the connection to the Dask scheduler at {address} during a pass "
            f"({type(err).__name__}: {err}). The work was abandoned and the estimator left "
            "unchanged; restart the cluster and run again."
        ) from err


def active_client():
    """The ``distributed.Client`` that ``compute`` would use now, or ``None``."""
    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a hard dependency
        return None
    return owner if isinstance(owner, Client) else None


#: Scattered in-memory data is cut into this many chunks per worker thread (or more, to keep
#: each under SCATTER_MAX_CHUNK_BYTES): nothing is read from a store, so the only cost of a
#: chunk is its task's scheduling, about 3.5 ms on a LocalCluster. Measured, a Lloyd pass over
#: 256 MB on 2 worker processes took 0.25 s in 8 chunks, 0.31 s in 16 and 0.41 s in 32.
SCATTER_CHUNKS_PER_THREAD = 4
SCATTER_MAX_CHUNK_BYTES = 128 * 2**20


#: In-memory data up to this size run every pass in this process, as one chunk, without a
#: Dask graph (and without a round trip to a cluster when a client is active): below it, a
#: pass's scheduling costs more than its arithmetic (benchmarks/bench_small.py). Above it
#: the threaded scheduler's cores pay: 60,000 x 784 float64 (376 MB) in process took 1.28x
#: the threaded time for a whole KMeans(10) fit, 1.07x for MiniBatchKMeans(10), 0.91x for
#: GaussianMixture(10, "diag") (busy 2-core machine).
SMALL_DATA_BYTES = 8 * 2**20


#: A store or lazy Dask array is kept in the workers' memory for a fit (read once, by the
#: first pass) when it takes at most this share of their memory limits together; larger, every
#: pass reads it again (from the page cache, the disk or object storage). A quarter leaves room
#: for an uneven spread of the chunks (all of them on one of two workers is half its limit,
#: under distributed's spill threshold of 70%) and for the passes' own memory.
KEEP_IN_MEMORY_FRACTION = 0.25

#: The dask configuration key that overrides the rule: ``"auto"`` (the rule), ``True``
#: (always keep in worker memory) or ``False`` (always re-read).
KEEP_IN_MEMORY_CONFIG = "bigclust.keep-in-memory"


def place(inp) -> da.Array | np.ndarray:
    """Where a fit's passes run, for a :class:`bigclust._input.Input`.

    - Small in-memory data: in this process (the NumPy array itself, one chunk: the same
      kernels, the same result as a one-chunk Dask array).
    - Other in-memory data with a distributed client active: scattered to the workers once
      (:func:`keep_in_memory`).
    - A store, memmap or lazy Dask array with a distributed client active: kept in the
      workers' memory when it fits there with room to spare
      (:func:`keeps_in_worker_memory`), else read again by every pass.
    - Without a client: over the data as they are (a store is streamed; the page cache is
      what keeps it in memory).
    """
    X, in_memory = inp.data, inp.in_memory
    if inp.placed:
        return X
    if in_memory is not None and X.nbytes <= SMALL_DATA_BYTES:
        return np.ascontiguousarray(in_memory, dtype=X.dtype)
    client = active_client()
    if client is None:
        return X
    if in_memory is not None:
        return keep_in_memory(X, in_memory)
    if _is_persisted(X) or not keeps_in_worker_memory(X.nbytes, _memory_limits(client)):
        return X
    with scheduler_errors(client):
        return client.persist(_renamed(X))


def _renamed(X: da.Array) -> da.Array:
    """``X`` under fresh keys, one alias per chunk.

    Persisted under its own keys, the same store fitted twice in a row would hand the
    scheduler keys it is still forgetting from the first fit, and the second fit waits
    forever for them; fresh keys are never shared (as ``hash=False`` in :func:`keep_in_memory`).
    """
    name = f"kept-{uuid.uuid4().hex}"
    layer = {
        (name, i, 0): Alias((name, i, 0), key)
        for i, key in enumerate(dask.core.flatten(X.__dask_keys__()))
    }
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[X])
    return da.Array(graph, name, X.chunks, meta=X._meta)


def keeps_in_worker_memory(nbytes: int, memory_limits: Sequence[int | None]) -> bool:
    """Whether data of ``nbytes`` are kept in the memory of workers with these limits.

    The rule (:data:`KEEP_IN_MEMORY_FRACTION`), unless the dask configuration key
    ``bigclust.keep-in-memory`` says ``True`` or ``False``. Workers without a memory limit
    (``None`` or 0) give no measure of what fits: the data are re-read.
    """
    setting = dask.config.get(KEEP_IN_MEMORY_CONFIG, "auto")
    if setting is True or setting is False:
        return setting
    if setting != "auto":
        raise ValueError(
            f"dask config {KEEP_IN_MEMORY_CONFIG}={setting!r} should be 'auto', True or False."
        )
    if not memory_limits or any(not limit for limit in memory_limits):
        return False
    return nbytes <= KEEP_IN_MEMORY_FRACTION * sum(memory_limits)


def _memory_limits(client) -> list[int | None]:
    with scheduler_errors(client):
        workers = client.scheduler_info(n_workers=-1)["workers"]
    return [w.get("memory_limit") for w in workers.values()]


def _is_persisted(X: da.Array) -> bool:
    """Whether every chunk of ``X`` is already held by the cluster (persisted, scattered)."""
    from distributed import Future

    graph = X.__dask_graph__()
    return all(isinstance(graph[key], Future) for key in dask.core.flatten(X.__dask_keys__()))


def runs_here(X: Any) -> bool:
    """Whether :func:`place` will keep ``X`` in this process: an in-memory NumPy array (not a
    memmap) of at most ``SMALL_DATA_BYTES`` once float (integers become float64)."""
    if not isinstance(X, np.ndarray) or isinstance(X, np.memmap) or X.dtype.kind not in "biuf":
        return False
    itemsize = 4 if X.dtype == np.float32 else 8
    return X.size * itemsize <= SMALL_DATA_BYTES


def small_data_blas(fit: Callable) -> Callable:
    """Decorate an estimator's ``fit(self, X, ...)``: when ``X`` runs in this process
    (:func:`runs_here`), one BLAS thread for the whole fit rather than per pass.

    Every pass in this process limits BLAS to one thread anyway; setting and restoring the
    limit around each pass costs 15 us on a quiet machine and milliseconds on a busy one
    (OpenBLAS wakes its threads to change their number), and the small products between
    passes (center updates, M-steps) gain nothing from a second thread either.
    """

    @functools.wraps(fit)
    def wrapper(self, X, *args, **kwargs):
        if not runs_here(X):
            return fit(self, X, *args, **kwargs)
        with single_blas_thread():
            return fit(self, X, *args, **kwargs)

    return wrapper


def keep_in_memory(X: da.Array, source: Any) -> da.Array:
    """Scatter an in-memory NumPy input to the workers of an active distributed client, once,
    so iterations do not ship the array inside every graph."""
    client = active_client()
    is_in_memory = isinstance(source, np.ndarray) and not isinstance(source, np.memmap)
    if client is None or not is_in_memory:
        return X
    threads = max(1, sum(client.nthreads().values()))
    row_bytes = X.shape[1] * X.dtype.itemsize
    n_chunks = max(
        SCATTER_CHUNKS_PER_THREAD * threads, -(-X.shape[0] * row_bytes // SCATTER_MAX_CHUNK_BYTES)
    )
    rows = max(1, -(-X.shape[0] // n_chunks))
    blocks = [
        np.asarray(source[lo : lo + rows], dtype=X.dtype) for lo in range(0, X.shape[0], rows)
    ]
    # hash=False: content-named keys would be shared with an earlier scatter of the same data
    # still being released, and the scheduler would drop them under this array ("lost
    # dependencies" when several calls scatter the same NumPy input in a row).
    with scheduler_errors(client):
        futures = client.scatter(blocks, hash=False)
        futures = client.map(_element_aligned, futures, pure=False)
    # Chunk i of the array is future i: one alias task per chunk, not a from_delayed and a
    # concatenate task each (measured: a Lloyd pass on 2 worker processes 12% faster).
    name = "scattered-" + uuid.uuid4().hex
    graph = {(name, i, 0): future for i, future in enumerate(futures)}
    chunks = (tuple(len(block) for block in blocks), (X.shape[1],))
    return da.Array(graph, name, chunks, dtype=X.dtype)


def _element_aligned(block: np.ndarray) -> np.ndarray:
    """``block``, or a copy of it if it does not start at a multiple of its item size.

    A scattered array is deserialized where its frame fell in the message, often at an odd
    address (the first array of each message, after the header). NumPy's ``matmul`` does not
    hand such an array to BLAS: a Lloyd pass over such a chunk took twice the CPU time of
    the others (2 worker processes, 2M x 32 float32, k=64). Kept arrays are copied once by
    the worker that holds them; a chunk that reaches a kernel misaligned anyway (fetched from
    another worker) is copied by the task.
    """
    return block if block.flags.aligned else block.copy()


def keep_aligned_in_memory(a: Any, X: da.Array) -> Any:
    """Scatter an in-memory 1-D array aligned with ``X``'s rows (labels, weights) to the
    workers of an active distributed client, once, in ``X``'s row chunks.

    Each pass then refers to the workers' copies instead of shipping the array in its graph.
    Without a client, for a Dask array ``a``, or for data placed in this process (an ``X``
    that is a NumPy array, see :func:`place`), ``a`` is returned as it is.
    """
    client = active_client()
    if client is None or isinstance(a, da.Array) or isinstance(X, np.ndarray):
        return a
    a = np.asarray(a)
    if a.ndim != 1 or a.shape[0] != X.shape[0]:
        raise ValueError(f"array of shape {a.shape} is not aligned with {X.shape[0]} rows.")
    offsets = _row_offsets(X.chunks[0])
    blocks = [a[lo:hi] for lo, hi in itertools.pairwise(offsets)]
    with scheduler_errors(client):
        futures = client.scatter(blocks, hash=False)
    name = "scattered-" + uuid.uuid4().hex
    graph = {(name, i): future for i, future in enumerate(futures)}
    return da.Array(graph, name, (X.chunks[0],), dtype=a.dtype)


_synchronous = threading.local()  # .active: this thread runs a synchronous compute


@contextlib.contextmanager
def _blas_limited():
    """One BLAS thread per task while tasks run on threads of this process.

    The threaded scheduler (and an in-process distributed cluster) already runs one task per
    core; letting BLAS spawn its own threads on top oversubscribes the cores. Tasks set the same
    limit themselves (:func:`_task_blas`; threadpoolctl lets only one thread of a process change
    OpenBLAS's process-wide limit: here, this one), which is what reaches worker processes. The
    synchronous scheduler runs one task at a time in this thread: BLAS keeps its threads.
    """
    if dask.base.get_scheduler() is dask.local.get_sync:
        before = getattr(_synchronous, "active", False)
        _synchronous.active = True
        try:
            yield
        finally:
            _synchronous.active = before
    else:
        with single_blas_thread():
            yield


def _task_blas():
    """In a task, whatever process runs it: one BLAS thread (a worker started without a nanny
    has no OMP/OPENBLAS_NUM_THREADS=1), except on the synchronous scheduler's thread."""
    if getattr(_synchronous, "active", False):
        return contextlib.nullcontext()
    return single_blas_thread()


# --- sequential folds ---------------------------------------------------------------------
#
# Sequential folds over row ranges, with the next range read while the current one folds.
#
# The sibling of :func:`bigclust.driver.map_reduce` for algorithms whose steps depend on each
# other (mini-batch K-Means): ``state = kernel(block, weights, state, params, piece)`` for each
# ``piece`` (a row range ``[piece.lo, piece.hi)``) in order. Where it runs:
#
# - with a ``distributed.Client`` active, the cluster reads each range (``client.compute``) and
#   runs the kernel on the worker that holds it; only the small state travels between the
#   workers (and back to the client). The fold of a range is submitted with the *future* of
#   the previous state, so consecutive folds follow each other on the cluster without a round
#   trip through the client; the reads of the next ranges are in flight while the current
#   range folds, and a range is released as soon as it is folded, so every worker holds at
#   most a few ranges whatever the size of the data;
# - otherwise the ranges are read (by the active local scheduler, or by slicing an in-memory
#   array) in a background thread while the calling thread folds the previous one, with one
#   BLAS thread so that the reader keeps the other cores.
#
# Either way the caller sees the state after every piece and may stop early.


def stream_fold(
    kernel: Callable[..., Any],
    X: da.Array | np.ndarray,
    pieces: Iterable[Any],
    state: Any,
    *,
    sample_weight: da.Array | np.ndarray | None = None,
    params: Any = None,
    prefetch: int = 1,
    prepare: Callable[..., tuple[Any, Any]] | None = None,
) -> Iterator[Any]:
    """Fold ``kernel`` over the row ranges ``pieces`` of ``X``; yield the state after each.

    Parameters
    ----------
    kernel : callable
        ``kernel(block, weights, state, params, piece) -> state``, with ``block`` the NumPy
        rows ``X[piece.lo:piece.hi]`` and ``weights`` the matching sample weights or
        ``None``. Module-level (picklable) for process-based clusters.
    X : dask.array.Array or ndarray
        The data. An in-memory NumPy array (not a memmap) is folded in this process, whatever
        the scheduler.
    pieces : iterable
        Objects with ``lo`` and ``hi`` attributes; consumed lazily, ``prefetch`` ahead.
    state : object
        The initial state (small: it is shipped with every task on a cluster).
    sample_weight : dask.array.Array or ndarray, optional
        Aligned with the rows of ``X``.
    params : object, optional
        Constant parameters, shipped once.
    prefetch : int, default=1
        Ranges read ahead of the one being folded. Without a client, each is read on a
        thread of its own: one read at a time left the fold waiting on a cold disk (a
        mini-batch epoch over 2M x 32 float32 from Zarr: the steps waited 0.33 s of 0.8 s).
    prepare : callable, optional
        ``prepare(block, weights, params, piece) -> (block, weights)``: work on a piece that
        does not depend on the state, done where and when the piece is read (on the reading
        thread, or in a task on the worker that read it), so it overlaps the fold of the
        previous piece. The kernel then receives what it returns.

    Yields
    ------
    state
        After each piece. Close the generator (or stop iterating it) to stop early; reads
        in flight are then cancelled.
    """
    if _in_this_process(X, sample_weight):
        return _fold_here(kernel, X, pieces, state, sample_weight, params, prepare)
    client = active_client()
    if client is not None:
        return _fold_distributed(
            client, kernel, X, pieces, state, sample_weight, params, prefetch, prepare
        )
    return _fold_local(kernel, X, pieces, state, sample_weight, params, prefetch, prepare)


def _in_this_process(X, sample_weight) -> bool:
    # An in-memory array (what place() keeps in this process) is sliced where it is: there
    # is no read to overlap, and a cluster round trip per piece would cost more than the fold.
    def in_memory(a):
        return isinstance(a, np.ndarray) and not isinstance(a, np.memmap)

    return in_memory(X) and (sample_weight is None or in_memory(sample_weight))


def _fold_here(kernel, X, pieces, state, w, params, prepare):
    """Fold in the calling thread, one BLAS thread (as on the other paths)."""
    for piece in pieces:
        block, weights = _read_local(X, w, piece, params, prepare)
        with single_blas_thread():
            state = kernel(block, weights, state, params, piece)
        del block, weights
        yield state


def _read_local(X, w, piece, params=None, prepare=None):
    parts = [X[piece.lo : piece.hi]] + ([] if w is None else [w[piece.lo : piece.hi]])
    lazy = [p for p in parts if isinstance(p, da.Array)]
    if lazy:
        computed = iter(dask.compute(*lazy))
        parts = [next(computed) if isinstance(p, da.Array) else p for p in parts]
    block = np.asarray(parts[0])
    weights = np.asarray(parts[1]) if w is not None else None
    return (block, weights) if prepare is None else prepare(block, weights, params, piece)


def _fold_local(kernel, X, pieces, state, w, params, prefetch, prepare):
    pieces = iter(pieces)
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(max(1, prefetch), thread_name_prefix="bigclust-prefetch") as pool:
        try:

            def refill(n):
                while len(pending) < n:
                    piece = next(pieces, None)
                    if piece is None:
                        return
                    read = pool.submit(_read_local, X, w, piece, params, prepare)
                    pending.append((piece, read))

            refill(1)
            while pending:
                piece, future = pending.popleft()
                # The next reads start once this one is in: the first piece, which every
                # fold waits for, then has the disk to itself.
                block, weights = future.result()
                refill(prefetch)
                with single_blas_thread():
                    state = kernel(block, weights, state, params, piece)
                del block, weights
                yield state
        finally:
            for _, future in pending:
                future.cancel()


#: The distributed priority of a fold's tasks (higher runs first; distributed's default is 0).
FOLD_PRIORITY = 1


def _fold_distributed(client, kernel, X, pieces, state, w, params, prefetch, prepare):
    if not isinstance(X, da.Array):
        X = da.from_array(X, chunks=(max(1, X.shape[0]), *X.shape[1:]))
    if w is not None and not isinstance(w, da.Array):
        w = da.from_array(np.asarray(w), chunks=X.chunks[0])
    with scheduler_errors(client):
        # Submitted, not scattered: a submission goes out on the client's open stream and is
        # cancelled at once if the scheduler is lost, where a scatter is a call that reconnects
        # (for up to 30 s) to a scheduler that is gone.
        params_future = client.submit(_identity, params, pure=False) if params is not None else None
    pieces = iter(pieces)
    pending: collections.deque = collections.deque()  # submitted, not yet yielded
    last = state  # the newest state submitted: a value, then a future

    def submit(n):
        nonlocal last
        while len(pending) < n:
            piece = next(pieces, None)
            if piece is None:
                return
            # Ahead of any other work of the fit's: the data may still be on their way into
            # the workers' memory (driver.place persists them), and a fold can start on the
            # first piece in rather than after the last.
            ahead = {"priority": FOLD_PRIORITY}
            reads = [client.compute(X[piece.lo : piece.hi], **ahead)]
            if w is not None:
                reads.append(client.compute(w[piece.lo : piece.hi], **ahead))
            if prepare is None:  # the kernel's task gets the futures' data, no task between
                data = (*reads, None)[:2]
            else:
                data = client.submit(
                    _prepared, prepare, *reads, params_future, piece, pure=False, **ahead
                )
            last = client.submit(
                _fold_task, kernel, data, last, params_future, piece, pure=False, **ahead
            )
            pending.append((last, [*reads] if prepare is None else [data, *reads]))

    try:
        with scheduler_errors(client):
            submit(1 + prefetch)
        while pending:
            folded, inputs = pending.popleft()
            with scheduler_errors(client):
                state = folded.result()
                del folded, inputs
                submit(1 + prefetch)  # keeps the next pieces read and queued as this one folds
            yield state
    finally:
        if client.status == "running":  # cancelling is a call to the scheduler: none if lost
            client.cancel([f for folded, inputs in pending for f in (folded, *inputs)])


def _identity(value):
    return value


def _prepared(prepare, block, *rest):
    """``prepare(block, weights, params, piece)`` on the worker that read the piece."""
    *weights, params, piece = rest
    return prepare(block, weights[0] if weights else None, params, piece)


def _fold_task(kernel, data, state, params, piece):
    block, weights = data
    with single_blas_thread():
        return kernel(block, weights, state, params, piece)
