"""Benchmark the data layer and the driver.

(a) ``bigclust make-blobs`` of 10,000,000 x 32 float32 (1.28 GB) into Zarr, as a subprocess:
    wall time and peak RSS (must stay under 600 MB), for each codec and chunk size;
(b) one full pass over each store through the data layer
    (``as_dask_array(path).sum().compute()``, threaded scheduler) next to a plain read of the
    same chunk files (``open``/``readinto``, one thread), warm page cache;
(c) driver overhead: one trivial ``map_reduce`` pass over 1,000 chunks on
    ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)``, next to
    ``dask.array``'s own ``X.sum(axis=0)`` over the same chunks;
(d) the cost of the crc32c checksum bigclust's stores carry: a pass over a checksummed store
    next to the same store without it (``--parts checksum``).

Run from the repository root::

    python -m benchmarks.bench_io                  # everything, about 5 minutes on 2 cores
    python -m benchmarks.bench_io --parts driver   # one part: make, read, driver, checksum
    python -m benchmarks.bench_io --n-samples 1000000 --codecs none --chunk-mib 64  # quick

Data goes to ``/tmp/bigclust-bench`` (``BIGCLUST_BENCH_DIR``) and is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from benchmarks._common import (
    Row,
    format_bytes,
    measure_side_by_side,
    print_table,
    run_command,
    scratch,
)

RSS_LIMIT = 600 * 2**20


def make_store(path: Path, n_samples: int, n_features: int, codec=None, chunk_mib=None):
    """Write blobs with the CLI in a subprocess; return its CommandResult.

    ``codec`` and ``chunk_mib`` of ``None`` leave the CLI's defaults.
    """
    args = [
        sys.executable, "-m", "bigclust", "make-blobs", str(path), "--n-samples", str(n_samples),
        "--n-features", str(n_features), "--seed", "0", "--no-progress",
    ]  # fmt: skip
    if codec is not None:
        args += ["--codec", codec]
    if chunk_mib is not None:
        args += ["--chunk-rows", str(chunk_mib * 2**20 // (n_features * 4))]
    return run_command(args)


def make_row(name: str, path: Path, result, n_bytes: int) -> list[Row]:
    stored = sum(f.stat().st_size for f in chunk_files(path))
    ok = "OK" if result.peak_rss < RSS_LIMIT else "OVER 600 MB"
    note = f"{n_bytes / 1e9 / result.seconds:.2f} GB/s, ratio {n_bytes / stored:.2f}x, {ok}"
    return [
        Row(f"{name}: peak RSS", result.peak_rss, None, "B", note),
        Row(f"{name}: time", result.seconds, None, "s"),
    ]


def chunk_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "c").rglob("*") if p.is_file())


def plain_read(files: list[Path], buffer: bytearray) -> int:
    """Read every file into ``buffer`` (one thread, Python's open/readinto); bytes read."""
    view = memoryview(buffer)
    total = 0
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            total += fh.readinto(view)
    return total


def plain_read_and_sum(files: list[Path], buffer: bytearray, dtype) -> float:
    """Plain read plus NumPy's sum of each (uncompressed) chunk: the same work as the pass."""
    view = memoryview(buffer)
    total = 0.0
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            n = fh.readinto(view)
        total += float(np.frombuffer(buffer, dtype=dtype, count=n // dtype.itemsize).sum())
    return total


def bench_make(args, root: Path):
    """Yield (rows, path, codec, chunk MiB) for each store written; the first uses defaults."""
    n_bytes = args.n_samples * args.n_features * 4
    path = root / "blobs-defaults.zarr"
    result = make_store(path, args.n_samples, args.n_features)
    yield make_row("make-blobs (defaults)", path, result, n_bytes), path, None, None
    for codec in args.codecs:
        for mib in args.chunk_mib:
            path = root / f"blobs-{codec}-{mib}.zarr"
            result = make_store(path, args.n_samples, args.n_features, codec, mib)
            yield make_row(f"make-blobs {codec} {mib} MiB", path, result, n_bytes), path, codec, mib


def bench_read(path: Path, codec: str, mib: int, repeat: int, task_sizes=()) -> list[Row]:
    """One pass (``.sum()``) through the data layer and through zarr, next to a plain read."""
    import zarr

    from bigclust.io import as_dask_array

    files = chunk_files(path)
    z = zarr.open_array(str(path), mode="r")
    gb = z.nbytes / 1e9
    buffer = bytearray(max(f.stat().st_size for f in files))
    zarr_chunks = (z.chunks[0], z.shape[1])

    def threaded_sum(make):
        return lambda: make().sum().compute(scheduler="threads")

    variants = {
        "as_dask_array(path).sum()": threaded_sum(lambda: as_dask_array(str(path))),
        # zarr's own read path, for comparison: what the data layer did before.
        "da.from_zarr(path).sum()": threaded_sum(
            lambda: da.from_zarr(str(path), chunks=zarr_chunks)
        ),
    }
    for task_mib in task_sizes:
        variants[f"as_dask_array(path, chunk_bytes={task_mib} MiB).sum()"] = threaded_sum(
            lambda task_mib=task_mib: as_dask_array(str(path), chunk_bytes=task_mib * 2**20)
        )
    if codec == "none":
        variants["plain read + np.sum (1 thread)"] = lambda: plain_read_and_sum(
            files, buffer, z.dtype
        )
    # Interleaved rounds: load from other processes hits every variant alike.
    timings = measure_side_by_side(
        {"plain": lambda: plain_read(files, buffer), **variants}, repeat=repeat
    )
    plain = timings.pop("plain")
    return [
        Row(f"{codec} {mib} MiB: {name}", gb / t.median, gb / plain.median, "GB/s",
            f"{t}; plain {plain}")
        for name, t in timings.items()
    ]  # fmt: skip


def bench_checksum(args, root: Path) -> list[Row]:
    """The cost of verifying crc32c: one pass over a store bigclust wrote (``bytes`` then
    ``crc32c``, every chunk read whole and checked) next to the same data written without the
    checksum, both read by ZarrChunkFiles, threaded scheduler, warm cache."""
    import zarr

    from bigclust.datasets import make_blobs, write_zarr
    from bigclust.io import ZarrChunkFiles, as_dask_array

    X, _ = make_blobs(args.n_samples, args.n_features, random_state=0)
    checked, plain = root / "crc32c.zarr", root / "plain.zarr"
    with dask.config.set(scheduler="threads"):
        write_zarr(X, checked)
        z = zarr.create_array(str(plain), shape=X.shape, dtype=X.dtype,
                              chunks=(X.chunks[0][0], X.shape[1]), compressors=None)  # fmt: skip
        da.store(X, z, lock=False)
    for path, expected in ((checked, True), (plain, False)):
        raw = ZarrChunkFiles.from_zarr(zarr.open_array(str(path), mode="r"))
        assert raw is not None and raw.checksum is expected, path
    timings = measure_side_by_side(
        {
            "crc32c": lambda: as_dask_array(str(checked)).sum().compute(scheduler="threads"),
            "plain": lambda: as_dask_array(str(plain)).sum().compute(scheduler="threads"),
        },
        repeat=args.repeat,
    )
    gb = X.nbytes / 1e9
    ours, peer = timings["crc32c"], timings["plain"]
    return [Row(f"pass over {gb:.2f} GB, crc32c verified", gb / ours.median, gb / peer.median,
                "GB/s", f"crc32c {ours}; plain {peer}")]  # fmt: skip


def trivial_kernel(block, params, start):
    return block.sum(axis=0)


def bench_driver(n_chunks: int, repeat: int) -> list[Row]:
    from distributed import Client, LocalCluster

    from bigclust.driver import map_reduce

    X = da.ones((n_chunks, 4), chunks=(1, 4))
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.wait_for_workers(2)
        timings = measure_side_by_side(
            {"ours": lambda: map_reduce(trivial_kernel, X),
             "dask": lambda: X.sum(axis=0).compute()},
            repeat=repeat,
        )  # fmt: skip
        ours, peer = timings["ours"], timings["dask"]
        assert np.array_equal(map_reduce(trivial_kernel, X), X.sum(axis=0).compute())
    with dask.config.set(scheduler="synchronous"):  # the client's share: build + run inline
        local = measure_side_by_side(
            {"ours": lambda: map_reduce(trivial_kernel, X),
             "dask": lambda: X.sum(axis=0).compute()},
            repeat=repeat,
        )  # fmt: skip
    rows = []
    for where, (a, b) in {
        "2 worker processes": (ours, peer),
        "synchronous scheduler": (local["ours"], local["dask"]),
    }.items():
        per_chunk = a.median / n_chunks * 1e6
        rows.append(Row(f"map_reduce, {n_chunks} chunks, {where}", a.median, b.median, "s",
                        f"{per_chunk:.0f} us per chunk; ours {a}; dask {b}"))  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="make,read,driver")
    parser.add_argument("--n-samples", type=int, default=10_000_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--codecs", default="none,zstd,lz4")
    parser.add_argument("--chunk-mib", default="16,64,128")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--task-mib",
        default="16,64",
        help="uncompressed stores: also time as_dask_array with these chunk_bytes (MiB)",
    )
    parser.add_argument("--n-chunks", type=int, default=1000)
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    args.codecs = args.codecs.split(",")
    args.chunk_mib = [int(m) for m in args.chunk_mib.split(",")]
    args.task_mib = [int(m) for m in args.task_mib.split(",") if m]
    print(f"# bench_io on {os.cpu_count()} cores, numpy {np.__version__}, dask {dask.__version__}")

    make_rows, read_rows = [], []
    if parts & {"make", "read"}:
        with scratch("bench_io") as root:
            for rows, path, codec, mib in bench_make(args, root):
                make_rows += rows
                if "read" in parts and codec is not None:
                    start = time.perf_counter()
                    tasks = args.task_mib if codec == "none" else ()
                    read_rows += bench_read(path, codec, mib, args.repeat, tasks)
                    print(f"  read {path.name}: {time.perf_counter() - start:.0f} s", flush=True)
                for f in path.rglob("*"):  # free the disk and page cache before the next store
                    if f.is_file():
                        f.unlink()
        if "make" in parts:
            shape = f"{args.n_samples:,} x {args.n_features} float32"
            print_table(f"(a) bigclust make-blobs {shape} (subprocess)", make_rows)
        if read_rows:
            print_table("(b) one pass over the store, warm cache", read_rows,
                        peer_name="plain read")  # fmt: skip
    if "checksum" in parts:
        with scratch("bench_io") as root:
            rows = bench_checksum(args, root)
        print_table("(d) checksum verification, warm cache", rows, peer_name="no checksum")
    if "driver" in parts:
        print_table("(c) driver overhead", bench_driver(args.n_chunks, args.repeat),
                    peer_name="dask X.sum()")  # fmt: skip
    # The bound is a promise of the default command; other settings are for information.
    over = [r.name for r in make_rows[:1] if r.bigclust >= RSS_LIMIT]
    if over:
        print(f"\nFAIL: peak RSS of {over[0]} over {format_bytes(RSS_LIMIT)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
