"""Shared helpers for the benchmarks: timing, peak memory, scratch space and a result table.

Every benchmark runs bigclust and its peer on the same data in one process and prints one
table through :func:`print_table`::

    from benchmarks._common import Row, measure, print_table

    rows = [Row("sum of 1e6 x 8", measure(lambda: ours()).median, measure(peer).median, "s")]
    print_table("title", rows)

- :func:`measure` times a callable: warm-up runs, then the median of ``repeat`` runs;
  :func:`measure_side_by_side` times several in interleaved rounds (fairer ratios).
- :class:`PeakRSS` samples this process's resident memory (and its children's) in a thread.
- :func:`run_command` runs a subprocess and returns its wall time and exact peak RSS
  (GNU ``time``'s ``%M``), plus the peak RSS of its whole process tree by sampling.
- :func:`scratch` gives a fresh folder under ``/tmp/bigclust-bench`` that is deleted on exit.

Timings on a shared machine are noisy: compare numbers measured side by side in one process
and report medians of at least 3 runs (the defaults here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: All benchmark data lives here, never in the repository.
SCRATCH_ROOT = Path(os.environ.get("BIGCLUST_BENCH_DIR", "/tmp/bigclust-bench"))

__all__ = [
    "SCRATCH_ROOT",
    "CommandResult",
    "PeakRSS",
    "PeakRSSPerProcess",
    "Row",
    "Timing",
    "format_bytes",
    "machine_info",
    "measure",
    "measure_side_by_side",
    "print_table",
    "run_command",
    "scratch",
]


@dataclass
class Timing:
    """Wall-clock seconds of each measured run; ``median`` is what tables report."""

    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the runs were."""
        return (max(self.runs) - min(self.runs)) / self.median if self.median else 0.0

    def __str__(self) -> str:
        runs = ", ".join(f"{r:.3g}" for r in self.runs)
        return f"median {self.median:.3g} s of [{runs}]"


def measure(fn: Callable[[], object], *, repeat: int = 3, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    Parameters
    ----------
    fn : callable
        Takes no argument; its result is ignored.
    repeat : int, default=3
        Timed runs (at least 3 for a meaningful median).
    warmup : int, default=1
        Untimed runs first (imports, page cache, worker start-up, JIT-like caches).

    Returns
    -------
    Timing
    """
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return Timing(runs)


def measure_side_by_side(
    fns: dict[str, Callable[[], object]], *, repeat: int = 3, warmup: int = 1
) -> dict[str, Timing]:
    """Time several callables in interleaved rounds (a, b, c, a, b, c, ...).

    On a shared machine, load from other processes then hits every variant alike, so
    their ratios are more trustworthy than those of back-to-back :func:`measure` calls.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    timings = {name: Timing() for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            timings[name].runs.append(time.perf_counter() - start)
    return timings


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class PeakRSS:
    """Context manager: highest resident memory of a process tree, sampled in a thread.

    >>> with PeakRSS() as peak:
    ...     work()
    >>> peak.bytes  # highest sampled RSS of this process plus its children

    ``pid`` selects another process; ``interval`` is the sampling period in seconds (a peak
    shorter than it can be missed: prefer :func:`run_command`'s exact figure for a child).
    """

    def __init__(self, pid: int | None = None, interval: float = 0.02):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.bytes = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.bytes = max(self.bytes, _tree_rss(self.process))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.bytes = _tree_rss(self.process)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class PeakRSSPerProcess:
    """Context manager: the peak RSS of this process and of each child process, separately,
    sampled every ``interval`` seconds (for the workers of a LocalCluster).

    ``peaks`` maps a label ``"<pid> <command>"`` to that process's highest sampled RSS.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for proc in (me, *me.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    label = f"{proc.pid} {' '.join(proc.cmdline()[1:3])[:60]}"
                    self.peaks[label] = max(self.peaks.get(label, 0), proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSSPerProcess:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def spilled_bytes(client) -> int:
    """Bytes every worker of ``client`` has written to its spill directory since it started."""

    def on_worker(dask_worker):
        metrics = getattr(dask_worker.data, "cumulative_metrics", {})
        return int(metrics.get(("disk-write", "bytes"), 0))

    return sum(client.run(on_worker).values())


@dataclass
class CommandResult:
    """What :func:`run_command` measured."""

    seconds: float
    peak_rss: int  # bytes: the command's own high-water mark (see run_command)
    peak_tree_rss: int  # bytes, sampled over the command and its descendants
    returncode: int
    stdout: str
    stderr: str


def _gnu_time() -> str | None:
    path = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if path is None:
        return None
    probe = subprocess.run([path, "-f", "%M", "true"], capture_output=True, text=True)
    return path if probe.returncode == 0 and probe.stderr.strip().isdigit() else None


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_command(
    args: Sequence[str], *, env: dict | None = None, check: bool = True, interval: float = 0.05
) -> CommandResult:
    """Run ``args`` as a subprocess; return its wall time and peak memory.

    ``peak_rss`` is exact where GNU ``time`` exists: its ``%M`` is the kernel's ``ru_maxrss`` of
    the command forked from ``time``. (Spawning directly from this process would not do:
    Linux seeds a child's ``ru_maxrss`` with the high-water mark of the parent it was forked
    or vforked from, so a benchmark that has grown to 1 GB would see every child at 1 GB.)
    Without GNU time it is the command's ``VmHWM`` sampled every ``interval`` seconds.
    ``peak_tree_rss`` samples the command plus its descendants (e.g. dask worker processes).
    """
    env = {**os.environ, **(env or {})}
    gnu_time = _gnu_time()
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "maxrss")
        full = [gnu_time, "-f", "%M", "-o", report, *args] if gnu_time else list(args)
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        out: dict[str, str] = {}

        def drain(name, stream):
            out[name] = stream.read()

        readers = [
            threading.Thread(target=drain, args=(n, s), daemon=True)
            for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        for r in readers:
            r.start()
        hwm = 0
        with PeakRSS(proc.pid, interval) as tree:
            while proc.poll() is None:
                hwm = max(hwm, _vm_hwm(proc.pid))
                time.sleep(interval)
        seconds = time.perf_counter() - start
        for r in readers:
            r.join()
        if gnu_time and os.path.exists(report):
            with open(report) as f:
                lines = f.read().split()
            hwm = int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else hwm
    result = CommandResult(
        seconds, hwm, tree.bytes, proc.returncode, out.get("stdout", ""), out.get("stderr", "")
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{result.stderr}")
    return result


@contextlib.contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A fresh folder ``SCRATCH_ROOT/name``, deleted (with its contents) on exit."""
    path = SCRATCH_ROOT / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # SCRATCH_ROOT itself may be shared: kept


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class Row:
    """One line of a result table: the same quantity measured for bigclust and a peer.

    ``peer`` may be ``None`` (no peer). ``ratio`` is bigclust / peer; whether lower or higher
    is better depends on the unit (seconds and bytes: lower; GB/s: higher).
    """

    name: str
    bigclust: float
    peer: float | None = None
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer is None or self.peer == 0:
            return None
        return self.bigclust / self.peer


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "B":
        return format_bytes(value)
    return f"{value:.3g} {unit}"


def print_table(title: str, rows: Sequence[Row], *, peer_name: str = "peer", file=None) -> None:
    """Print ``rows`` as an aligned table: name / bigclust / peer / ratio / note."""
    file = file or sys.stdout
    header = ("name", "bigclust", peer_name, "ratio", "note")
    cells = [
        (r.name, _fmt(r.bigclust, r.unit), _fmt(r.peer, r.unit),
         "-" if r.ratio is None else f"{r.ratio:.2f}", r.note)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    print(f"\n## {title}", file=file)
    for i, line in enumerate([header, *cells]):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=file)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=file)
    file.flush()


def machine_info() -> str:
    """CPU model, cores and BLAS kernel (threadpoolctl): figures move between machines."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from threadpoolctl import threadpool_info

    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return f"{model}, {os.cpu_count()} cores; BLAS: {'; '.join(blas) or 'none found'}"


def memory_limited_cluster(n_workers: int, memory_limit: str):
    """A LocalCluster of ``n_workers`` single-thread worker processes, each held to
    ``memory_limit`` (the out-of-core benchmarks' cluster: data larger than it)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=None,
    )
