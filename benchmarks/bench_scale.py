"""The costs that set the pace of one pass at scale: scheduler per task, client per chunk.

A pass over n chunks costs the client the graph's construction and the scheduler about two
tasks per chunk (the kernel and its share of the reduction tree, plus the chunk's read where
it is a task of its own); workers spend the rest on I/O and arithmetic. Measured here:

1. client: building one pass's graph (``map_reduce`` up to ``compute``) for 62,500 chunks (a
   1 TB store in 16 MiB chunks), on an array that is never allocated;
2. scheduler: one pass of a trivial kernel over 2,000 tiny chunks on a LocalCluster of
   worker processes, per task (the scheduler, not the work, is all that is timed);
3. the model: for a store of S bytes in chunks of C bytes on W workers each reading at R
   bytes/s, a pass takes about max(tasks x scheduler cost, S / (W x R)).

    python -m benchmarks.bench_scale
"""

from __future__ import annotations

import argparse
import statistics
import time

import dask
import dask.array as da
import numpy as np

from benchmarks._common import machine_info
from bigclust import driver


def _tiny_kernel(block, params, start):
    return float(block.shape[0])


def client_cost_per_chunk(n_chunks: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds per chunk to build a pass's graph (no compute): the first pass over an array
    (which optimizes the array's graph once) and every later pass (the pass's own layer)."""
    X = da.zeros((n_chunks * 1000, 32), chunks=(1000, 32), dtype=np.float32)  # never computed
    shared = driver._broadcast(None)
    offsets = driver._row_offsets(X.chunks[0])
    start = time.perf_counter()
    chunks = driver._chunks_of(X)
    driver._tree_graph(_tiny_kernel, False, chunks, [], shared, offsets, 8)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        driver._tree_graph(_tiny_kernel, False, driver._chunks_of(X), [], shared, offsets, 8)
        times.append(time.perf_counter() - start)
    return first / n_chunks, statistics.median(times) / n_chunks


def scheduler_cost_per_task(n_chunks: int, repeats: int = 3) -> tuple[float, int]:
    """Seconds per task of one pass over ``n_chunks`` tiny chunks on 2 worker processes."""
    from distributed import Client, LocalCluster

    X = da.ones((n_chunks * 10, 2), chunks=(10, 2))
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     worker_dashboard_address=None) as cluster,
        Client(cluster) as client,
        dask.config.set(scheduler=client),
    ):  # fmt: skip
        X = client.persist(X)  # the read is not timed: only the pass's own tasks
        driver.map_reduce(_tiny_kernel, X, check_finite=False)  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            driver.map_reduce(_tiny_kernel, X, check_finite=False)
            times.append(time.perf_counter() - start)
    tasks = n_chunks + sum(-(-n_chunks // 8**i) for i in range(1, 8) if n_chunks > 8 ** (i - 1))
    return statistics.median(times) / tasks, tasks


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph-chunks", type=int, default=62_500)
    parser.add_argument("--tasks-chunks", type=int, default=2_000)
    args = parser.parse_args(argv)
    print(f"# bench_scale on {machine_info()}")
    first, later = client_cost_per_chunk(args.graph_chunks)
    n = args.graph_chunks
    print(
        f"client: a pass over {n:,} chunks: first {first * 1e6:.1f} us per chunk "
        f"({first * n:.2f} s), later passes {later * 1e6:.1f} us per chunk ({later * n:.2f} s)"
    )
    per_task, tasks = scheduler_cost_per_task(args.tasks_chunks)
    print(f"scheduler: {tasks:,} tasks per pass over {args.tasks_chunks:,} chunks: "
          f"{per_task * 1e6:.0f} us per task ({1 / per_task:,.0f} tasks/s)")  # fmt: skip
    for label, store, chunk, workers, rate in [
        ("1 TB, 16 MiB chunks, 100 workers at 200 MB/s", 1e12, 16 * 2**20, 100, 2e8),
        ("1 TB, 256 MiB chunks, 100 workers at 200 MB/s", 1e12, 256 * 2**20, 100, 2e8),
    ]:
        n = store / chunk
        sched = 2 * n * per_task
        io = store / (workers * rate)
        print(f"model: {label}: {n:,.0f} chunks; scheduler {sched:.0f} s vs workers {io:.0f} s "
              f"per pass -> {'scheduler' if sched > io else 'workers'} set the pace")  # fmt: skip


if __name__ == "__main__":
    main()
