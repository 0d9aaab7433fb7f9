"""Compiled (numba) loops over per-row distance bounds, for ``KMeans(algorithm="elkan")``.

Each row keeps its label, an upper bound ``u`` on its distance to its center and, per group
of centers, a lower bound on its distance to every other center of that group (one group:
Hamerly 2010; ``k / 10`` groups: the global filter of Yinyang K-Means, Ding et al. 2015;
one group per center: Elkan 2003). Bounds are float32, rounded outwards on every store.

A row may keep its label without any distance computation only when the bounds prove that
Lloyd's own float computation (``||c||^2 - 2 x.c`` by BLAS in the data's dtype, then argmin)
picks that label: the lower bound must exceed the upper bound by more than that
computation's rounding can move a squared distance. With ``N`` a bound on ``||x - s||`` plus
the largest ``||c - s||`` (``s`` the shift the assignment subtracts), the float32 rounding of
the shifted row and centers moves distances by at most ``rho = 2 eps N`` and the product and
sums move squared distances by at most ``E = (2 d + 16) eps N**2`` (``eps`` the unit roundoff
of the data's dtype; the bound for a dot product of ``d`` terms is ``d eps |x| |c|``, doubled
and padded here).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Outward rounding of a stored float32 bound (the cast rounds to nearest: 2**-24 relative).
_UP = 1.0 + 2.0**-20
_DOWN = 1.0 - 2.0**-20


@njit(cache=True, nogil=True, inline="always")
def _proves(upper, lower, n_bound, coef, rho_coef):  # pragma: no cover - compiled
    rho = rho_coef * n_bound
    lo = lower - rho
    hi = upper + rho
    return lo > 0.0 and lo * lo - hi * hi > coef * n_bound * n_bound


@njit(cache=True, nogil=True)
def filter_rows(
    X, centers, labels, upper, lower, drift, group_drift, radius, coef, rho_coef, failed
):  # pragma: no cover - compiled
    """Move every row's bounds by the centers' drifts and keep the rows they settle.

    ``upper[i] += drift[labels[i]]``; ``lower[i, g] -= group_drift[g]``. A row the bounds do
    not settle gets its upper bound tightened to its direct float64 distance to its center
    (``centers`` float64, unshifted) and is tested again. The rows still unsettled are
    written to ``failed``; returns ``(n_failed, n_tightened)``.
    """
    n, d = X.shape
    t = lower.shape[1]
    n_failed = 0
    n_tightened = 0
    for i in range(n):
        a = labels[i]
        u = np.float64(upper[i]) + drift[a]
        low = np.inf
        for g in range(t):
            v = np.float64(lower[i, g]) - group_drift[g]
            if v < 0.0:
                v = 0.0
            v *= _DOWN
            lower[i, g] = v
            low = min(low, np.float64(lower[i, g]))
        if _proves(u, low, u + 2.0 * radius, coef, rho_coef):
            upper[i] = u * _UP
            continue
        acc = 0.0
        for f in range(d):
            diff = np.float64(X[i, f]) - centers[a, f]
            acc += diff * diff
        u = math.sqrt(acc) * (1.0 + 1e-9)
        upper[i] = u * _UP
        n_tightened += 1
        if _proves(u, low, u + 2.0 * radius, coef, rho_coef):
            continue
        failed[n_failed] = i
        n_failed += 1
    return n_failed, n_tightened


@njit(cache=True, nogil=True, fastmath={"nnan", "nsz", "reassoc"}, inline="always")
def _row_min(D, r):  # pragma: no cover - compiled
    # In any order (the reduction vectorizes), assuming no NaN: a row with NaN makes the
    # chunk's sums NaN, an error anyway. Infinities compare as they should.
    m = D[r, 0]
    for j in range(1, D.shape[1]):
        m = min(m, D[r, j])
    return m


@njit(cache=True, nogil=True)
def refresh_rows(
    D, Xs, new_labels, rows, group_start, members, radius, coef, rho_coef, labels, upper, lower
):  # pragma: no cover - compiled
    """Labels and fresh bounds for ``rows`` from their full distance rows ``D`` (``||c||^2 -
    2 x.c`` as the assignment computed them, in the data's dtype) and shifted rows ``Xs``.
    Group ``g`` holds the centers ``members[group_start[g]:group_start[g + 1]]``."""
    t = lower.shape[1]
    for r in range(rows.shape[0]):
        i = rows[r]
        a = new_labels[r]
        labels[i] = a
        xsq = 0.0
        for f in range(Xs.shape[1]):
            v = np.float64(Xs[r, f])
            xsq += v * v
        n_bound = math.sqrt(xsq) * (1.0 + 1e-6) + radius
        err = coef * n_bound * n_bound
        rho = rho_coef * n_bound
        upper[i] = (math.sqrt(max(np.float64(D[r, a]) + xsq + err, 0.0)) + rho) * _UP
        D[r, a] = np.inf  # the other centers only (D is the assignment's scratch)
        if t == 1:  # one group: all of them, in order
            m = _row_min(D, r)
            low = math.sqrt(max(np.float64(m) + xsq - err, 0.0)) - rho
            lower[i, 0] = max(low, 0.0) * _DOWN
            continue
        for g in range(t):
            m = np.inf
            for idx in range(group_start[g], group_start[g + 1]):
                m = min(m, D[r, members[idx]])
            low = math.sqrt(max(np.float64(m) + xsq - err, 0.0)) - rho
            lower[i, g] = max(low, 0.0) * _DOWN
