"""Driver additions for per-row outputs with aligned arrays and for labels kept on a cluster."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigclust._errors import NonFiniteRow
from bigclust.driver import (
    NonFiniteInputError,
    active_client,
    keep_aligned_in_memory,
    map_reduce,
    map_rows_aligned,
)


def weighted_rows(block, labels, weights, params):
    if not np.isfinite(block).all():
        raise NonFiniteRow(int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0]))
    return block.sum(axis=1) * params + labels * weights


def two_columns(block, labels, params):
    return np.stack([labels, labels + block[:, 0]], axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(103, 3)), rng.integers(0, 5, 103), rng.uniform(size=103)


@pytest.mark.parametrize("chunks", [103, 10, (1, 50, 2, 50)])
def test_map_rows_aligned_equals_numpy(scheduler, chunks, data):
    X, labels, weights = data
    Xd = da.from_array(X, chunks=(chunks, 3))
    lazy_labels = da.from_array(labels, chunks=17)  # other chunks than X: rechunked
    got = map_rows_aligned(weighted_rows, Xd, lazy_labels, weights, params=2.0, dtype=float)
    assert got.chunks == (Xd.chunks[0],)
    np.testing.assert_allclose(got.compute(), X.sum(axis=1) * 2.0 + labels * weights)
    wide = map_rows_aligned(two_columns, Xd, labels, dtype=float, n_columns=2)
    np.testing.assert_allclose(wide.compute(), np.stack([labels, labels + X[:, 0]], axis=1))


def test_map_rows_aligned_errors(data):
    X, labels, weights = data
    bad = X.copy()
    bad[57, 1] = np.nan
    Xd = da.from_array(bad, chunks=(20, 3))
    with pytest.raises(NonFiniteInputError, match="row 57"):
        map_rows_aligned(weighted_rows, Xd, labels, weights, params=1.0, dtype=float).compute()
    with pytest.raises(ValueError, match="not aligned with 103 rows"):
        map_rows_aligned(two_columns, Xd, labels[:-1], dtype=float)


def test_keep_aligned_in_memory(scheduler, data):
    X, labels, _ = data
    Xd = da.from_array(X, chunks=(25, 3))
    kept = keep_aligned_in_memory(labels, Xd)
    if active_client() is None:
        assert kept is labels
        return
    assert isinstance(kept, da.Array) and kept.chunks == (Xd.chunks[0],)
    # Many passes in a row over the same labels: the scattered copies stay.
    for _ in range(10):
        assert map_reduce(lambda b, lab, p, s: int(lab.sum()), Xd, kept) == labels.sum()
        kept_again = keep_aligned_in_memory(labels, Xd)
        assert map_reduce(lambda b, lab, p, s: int(lab.sum()), Xd, kept_again) == labels.sum()
