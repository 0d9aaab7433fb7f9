"""Per-chunk state that a run keeps between its passes: a cache in the memory of the process
that ran the chunk's task, never a source of truth.

Some passes save work by keeping something per row from one pass to the next: the distance
bounds of ``KMeans(algorithm="elkan")`` (:mod:`bigclust.cluster._elkan`), each row's distance to
the nearest center chosen so far in greedy k-means++ (:func:`bigclust.cluster._kernels.
plusplus_step`). Each chunk's state stays where its task ran: this process for in-memory data
and the local schedulers, the worker for a distributed cluster (where the next pass sends the
chunk's task back, through :func:`worker_address`). A task that finds no state for its chunk,
or state that is not from the pass before (a lost or restarted worker, a task that moved, a
retried task), recomputes it from the pass's parameters, with the same bits: the results never
depend on where state was kept or lost.

Entries are keyed by ``(run, first row of the chunk)``, ``run`` a fresh string per fit or
seeding. A task takes its chunk's entry out while it works (a duplicate task meanwhile finds
none and recomputes) and puts it back when done; the run forgets them all at its end
(:func:`forget_everywhere`).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = [
    "STORE",
    "chunk_workers",
    "drop_run",
    "forget_everywhere",
    "put",
    "take",
    "worker_address",
]

#: This process's entries, by (run, first row of the chunk).
STORE: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def take(run: str, start: int) -> Any | None:
    """Remove and return the state of the chunk starting at row ``start``, or ``None``."""
    with _LOCK:
        return STORE.pop((run, start), None)


def put(run: str, start: int, state: Any) -> None:
    """Keep ``state`` for the chunk starting at row ``start`` until the next pass takes it."""
    with _LOCK:
        STORE[(run, start)] = state


def drop_run(run: str) -> int:
    """Forget the state of ``run`` in this process; returns how many chunks were held."""
    with _LOCK:
        keys = [key for key in STORE if key[0] == run]
        for key in keys:
            del STORE[key]
    return len(keys)


def forget_everywhere(run: str, on_workers: bool = True) -> None:
    """Forget the state of ``run`` here and, ``on_workers`` (the run's passes ran as tasks),
    on the workers of the active distributed client: a round trip to every worker, which a
    run whose passes all ran in this process (small in-memory data) must not pay."""
    drop_run(run)
    if not on_workers:
        return
    from bigclust.driver import active_client

    client = active_client()
    if client is None:
        return
    try:
        client.run(drop_run, run)
    except Exception:  # a lost cluster took the state with it
        pass


def worker_address() -> str | None:
    """The address of the distributed worker running this task, if any."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def chunk_workers(X, where: dict) -> list[str | None] | None:
    """For :func:`~bigclust.driver.map_reduce`'s ``workers=``: the worker keeping each
    chunk's state, from ``where`` (first row of a chunk -> worker address, as the last pass
    reported it), or ``None`` when no state is on a worker (in-memory data, local
    schedulers)."""
    if isinstance(X, np.ndarray) or not any(where.values()):
        return None
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).tolist()
    return [where.get(start) for start in starts]
