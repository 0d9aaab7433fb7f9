"""What the example scripts share: the command line, figure files and the notebook's data.

Each example is a script (``python examples/NAME.py --help``) whose ``main(argv)`` returns
its figures as a dict, so that ``tests/test_examples.py`` runs it at ``--small`` size and
checks them. Figures are PNG files written with matplotlib's Agg backend (no display
needed): install the ``plot`` extra, ``pip install "bigclust[plot]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import numpy as np

from bigclust.datasets import make_blobs, write_zarr

#: The five blobs of the "Hands-On Machine Learning" clustering notebook (chapter 9).
BLOB_CENTERS = np.array([[0.2, 2.3], [-1.5, 2.3], [-2.8, 1.8], [-2.8, 2.8], [-2.8, 1.3]])
BLOB_STD = np.array([0.4, 0.3, 0.1, 0.1, 0.1])


def parser(doc: str, *, small: bool = True) -> argparse.ArgumentParser:
    """The options every example takes: ``--out``, ``--workdir`` and (for examples whose
    size can change) ``--small``."""
    p = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="figures", help="directory for the PNG figures")
    if small:
        p.add_argument(
            "--small", action="store_true", help="a few thousand rows: seconds, as the tests run it"
        )
    p.add_argument(
        "--workdir",
        default=None,
        help="keep the data stores the example writes in this directory (else a temporary "
        "one, deleted at the end)",
    )
    return p


@contextlib.contextmanager
def workdir(path: str | None) -> Iterator[Path]:
    """``path`` (created if missing), or a temporary directory removed on exit."""
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="bigclust-example-") as tmp:
        yield Path(tmp)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only), with a clear error if missing."""
    try:
        import matplotlib
    except ImportError as error:
        raise SystemExit(
            'The examples draw their figures with matplotlib: pip install "bigclust[plot]"'
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: str | Path, name: str) -> Path:
    """Write ``fig`` to ``out/name`` as PNG, close it and return the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"figure: {path}")
    return path


def write_blobs(
    path: Path,
    n_samples: int,
    *,
    centers=BLOB_CENTERS,
    cluster_std=BLOB_STD,
    seed: int = 7,
    chunk_rows: int | None = None,
) -> tuple[str, da.Array]:
    """Write Gaussian blobs (by default the notebook's five) to a Zarr store, chunk by chunk.

    Returns the store's path and the lazy true labels (recomputed from the seed, never
    stored). ``chunk_rows`` defaults to an eighth of the rows, at most 1,000,000.
    """
    X, y = make_blobs(n_samples, np.shape(centers)[1], centers=centers,
                      cluster_std=cluster_std, random_state=seed)  # fmt: skip
    rows = chunk_rows or min(1_000_000, max(1, -(-n_samples // 8)))
    write_zarr(X, path, chunk_rows=rows)
    return str(path), y


def sample_rows(n_samples: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct row indices drawn uniformly, sorted (so that each chunk holding
    sampled rows is read once)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_samples, size=min(size, n_samples), replace=False))
