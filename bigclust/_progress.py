"""Progress of a fit: a log record per pass, a bar over the passes, a bar over chunks.

Every loop of a fit (Lloyd iterations, EM iterations, mini-batch segments, k-means||
rounds, greedy k-means++ centers) reports through a :class:`Progress`::

    progress = Progress("KMeans", self.verbose, total=self.max_iter, rows=n)
    for i in progress.iterate(range(self.max_iter)):
        ...
        progress.pass_done(i, inertia=inertia, center_shift=shift)

(``with progress:`` around a block does the same as ``progress.iterate`` around a loop.)

What ``verbose`` shows, as scikit-learn users expect:

- ``0``: nothing. The per-pass records are still made, at DEBUG level, for a user who
  configured the ``bigclust`` logger that low.
- ``1``: a bar over the passes (tqdm on stderr: text in a terminal, a widget in a notebook)
  and one INFO record per pass on the logger ``bigclust.progress``, carrying the figures as
  attributes (``iteration``, ``inertia`` or ``lower_bound``, ``center_shift``, ``seconds``,
  ``rows_per_second``, ... and all of them as the dict ``figures``).
- ``2`` and more: also a bar over the chunks of every pass and a DEBUG record per chunk.

The estimators' scikit-learn-style messages (``Iteration 3, inertia ...``) go to stdout
through :func:`echo`, which keeps an open bar intact. Log records are the user's logging
configuration's business: a handler writing to the terminal's stderr breaks the bar's line
unless the fit runs inside ``tqdm.contrib.logging.logging_redirect_tqdm()``.

A :class:`Progress` opened inside another one (the initialization inside a fit, the
k-means of a mixture's ``init_params="kmeans"``) reports at the larger of its own and its
parent's ``verbose``, and names itself after its parent (``KMeans k-means||``).
:func:`set_progress` (or the environment variable ``BIGCLUST_PROGRESS=1``/``0``) shows or
hides the bars whatever ``verbose`` says: the command line shows them on a terminal.

Nothing here waits on the cluster: a pass's figures are the client-side numbers the loop
has anyway, and the bar over passes is drawn on the client between passes. Only the bar
over chunks (``verbose>=2``) watches tasks: a local scheduler's per-task callback, or on a
distributed client the futures of the pass's kernel tasks as they complete.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Progress", "echo", "set_progress"]

logger = logging.getLogger("bigclust.progress")

#: Environment variable read at the start of each fit when :func:`set_progress` was not
#: called: ``1`` shows the bars, ``0`` hides them.
ENV_VAR = "BIGCLUST_PROGRESS"

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

#: What :func:`set_progress` said last (None: as ``verbose`` and the environment say).
_override: bool | None = None

#: The innermost open Progress of this thread (or task): its children inherit from it.
_current: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "bigclust_progress", default=None
)


def _bar_class():
    """tqdm's bar for where we run: text in a terminal, a widget in a notebook."""
    from tqdm.auto import tqdm

    return tqdm


class set_progress:
    """Show or hide the progress bars of every fit, whatever the estimators' ``verbose``.

    Call it once (``bigclust.set_progress(True)``), or use it as a context manager to
    change the setting for a block only (``with bigclust.set_progress(False): ...``).
    Log records are not affected: they follow ``verbose`` and the logging configuration.

    Parameters
    ----------
    show : bool or None
        ``True``: a bar over the passes of every fit (and over chunks where
        ``verbose>=2``); ``False``: never a bar; ``None``: as ``verbose`` says (a bar from
        ``verbose=1``), unless the environment variable ``BIGCLUST_PROGRESS`` is ``1`` or
        ``0``.

    Examples
    --------
    >>> import bigclust
    >>> with bigclust.set_progress(False):
    ...     pass  # fits here show no bar, even with verbose=1
    """

    def __init__(self, show: bool | None):
        global _override
        if show is not None and not isinstance(show, bool):
            raise TypeError(f"show={show!r} should be True, False or None.")
        self._previous = _override
        _override = show

    def __enter__(self) -> set_progress:
        return self

    def __exit__(self, *exc) -> None:
        global _override
        _override = self._previous


def _bars_setting() -> bool | None:
    if _override is not None:
        return _override
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def echo(message: str) -> None:
    """Print a scikit-learn-style verbose line to stdout, around any open bar."""
    if Progress.open_bars:
        _bar_class().write(message, file=sys.stdout)
    else:
        print(message)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith("s") else "s")


class Progress:
    """Progress of one loop: a log record and a bar step per pass.

    Parameters
    ----------
    name : str
        What runs (``"KMeans"``, ``"k-means||"``); prefixed by the enclosing Progress's name.
    verbose : int or bool, default=None
        The estimator's ``verbose``; ``None`` takes the enclosing Progress's (0 outside any).
    total : int, default=None
        Passes expected, for a bar; ``None``: no bar (a scope whose children report at its
        ``verbose``, and whose end is logged with its duration).
    unit : str, default="pass"
        What one step of the bar is.
    rows : int, default=None
        Rows read by one pass, for ``rows_per_second``.
    """

    #: Bars open in this process (so that :func:`echo` writes around them).
    open_bars = 0

    def __init__(
        self,
        name: str,
        verbose: int | bool | None = None,
        *,
        total: int | None = None,
        unit: str = "pass",
        rows: int | None = None,
    ):
        parent = _current.get()
        inherited = parent.verbose if parent is not None else 0
        self.verbose = max(int(verbose or 0), inherited)
        self.name = name if parent is None else f"{parent.name} {name}"
        self.total, self.unit, self.rows = total, unit, rows
        self.passes = 0
        self._level = logging.INFO if self.verbose >= 1 else logging.DEBUG
        setting = _bars_setting()
        self.shows_bars = self.verbose >= 1 if setting is None else setting
        self._bar = None
        self._token = None

    # -- the loop's calls ------------------------------------------------------------------

    def iterate(self, iterable: Iterable) -> Iterator:
        """The items of ``iterable``, with this Progress open while the loop runs: its bar
        is shown from the first item, and closed (complete) when the loop ends or breaks."""
        with self:
            yield from iterable

    def __enter__(self) -> Progress:
        self._token = _current.set(self)
        self._start = self._last = time.perf_counter()
        if self.total is not None and self.shows_bars:
            self._bar = self._open_bar(self.name, self.total, self.unit)
        return self

    def pass_done(self, iteration: int | None = None, *, rows: int | None = None, **figures):
        """One pass (iteration, round, segment) ended; ``figures`` are its numbers
        (``inertia=``, ``center_shift=``, ...; ``None`` values are left out)."""
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.passes += 1
        figures = {key: value for key, value in figures.items() if value is not None}
        if self._bar is not None:
            self._bar.set_postfix(figures, refresh=False)
            self._bar.update(1)
        if not logger.isEnabledFor(self._level):
            return
        rows = self.rows if rows is None else rows
        record = {"iteration": self.passes if iteration is None else iteration, **figures}
        record["seconds"] = seconds
        if rows:
            record["rows_per_second"] = rows / seconds if seconds > 0 else float("inf")
        shown = figures if iteration in (None, self.passes) else {"iteration": iteration, **figures}
        told = ", ".join(f"{key.replace('_', ' ')} {_format(v)}" for key, v in shown.items())
        rate = f", {record['rows_per_second']:.3g} rows/s" if rows else ""
        of = f"/{self.total}" if self.total is not None else ""
        logger.log(
            self._level,
            "%s %s %s%s%s (%.3g s%s)",
            self.name,
            self.unit,
            self.passes,
            of,
            f": {told}" if told else "",
            seconds,
            rate,
            extra={"estimator": self.name, "figures": record, **record},
        )

    def __exit__(self, exc_type, exc, tb) -> None:
        # GeneratorExit: the loop around iterate() stopped early (converged).
        ended = exc_type is None or exc_type is GeneratorExit
        if self._bar is not None:
            if ended and self._bar.total != self._bar.n:  # converged early
                self._bar.total = self._bar.n
                self._bar.refresh()
            self._close_bar(self._bar)
            self._bar = None
        _current.reset(self._token)
        if ended and logger.isEnabledFor(self._level):
            seconds = time.perf_counter() - self._start
            passes = f"{self.passes} {_plural(self.unit)} in " if self.passes else ""
            logger.log(
                self._level,
                "%s: %s%.3g s",
                self.name,
                passes,
                seconds,
                extra={"estimator": self.name, "passes": self.passes, "seconds": seconds},
            )

    # -- bars --------------------------------------------------------------------------------

    @staticmethod
    def _open_bar(name: str, total: int | None, unit: str):
        """A tqdm bar; the outermost bar stays on screen, inner ones vanish when done."""
        bar = _bar_class()(
            total=total, desc=name, unit=unit, leave=Progress.open_bars == 0, dynamic_ncols=True
        )
        Progress.open_bars += 1
        return bar

    @staticmethod
    def _close_bar(bar) -> None:
        bar.close()
        Progress.open_bars -= 1


# -- bars over the chunks of one pass (verbose >= 2) -------------------------------------------


class ChunkWatch:
    """A bar and a DEBUG record per kernel task of one pass."""

    def __init__(self, progress: Progress, n_chunks: int):
        self._progress, self.n_chunks, self.done = progress, n_chunks, 0
        self._bar = None
        if progress.shows_bars:
            self._bar = Progress._open_bar(f"{progress.name} chunks", n_chunks, "chunk")

    def chunk_done(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        logger.debug(
            "%s chunk %d/%d done",
            self._progress.name,
            self.done,
            self.n_chunks,
            extra={"estimator": self._progress.name, "chunk": self.done},
        )

    def close(self) -> None:
        if self._bar is not None:
            Progress._close_bar(self._bar)
            self._bar = None

    def local(self, is_chunk: Callable[[Any], bool]):
        """A dask callback for the local schedulers: ``chunk_done`` after each task whose key
        ``is_chunk``. Enter it around ``dask.compute``."""
        from dask.callbacks import Callback

        watch = self

        class _Posttask(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if is_chunk(key):
                    watch.chunk_done()

        return _Posttask()

    def follow(self, futures: Iterable) -> None:
        """``chunk_done`` as each future of a distributed client completes (or errs)."""
        from distributed import as_completed

        for _ in as_completed(futures):
            self.chunk_done()


def watch_chunks(n_chunks: int) -> ChunkWatch | None:
    """A :class:`ChunkWatch` for the pass about to run, when the innermost open Progress
    has ``verbose>=2``; else ``None`` (the pass runs as if there were no reporting)."""
    progress = _current.get()
    if progress is None or progress.verbose < 2:
        return None
    return ChunkWatch(progress, n_chunks)
