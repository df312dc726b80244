"""Dependent paths: the historical replay's overlapping windows, and inference that allows for them.

The simulated markets' paths are independent, so :mod:`hedgearena.baselines.metrics` computes
standard errors and bootstraps for independent samples. The historical replay draws its windows
from a few thousand start dates of one history: paths with the same start are the same path, and
windows that start within their span of each other replay some of the same days. Treating them as
independent understates every standard error (by about ``sqrt(paths per stretch of history)``).
:class:`Overlap` records which paths share history; :func:`long_run_se` and
:func:`block_resamples` are the standard error and the bootstrap resamples that allow for it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class Overlap(NamedTuple):
    """Which paths share market history: the historical replay's windows overlap.

    Path ``i`` covers the calendar days ``[start[i], start[i] + span)``: two paths whose starts
    are closer than ``span`` days replay some of the same days (the same paths, for one start),
    so their costs are dependent, and an estimator's spread is that of the number of distinct
    stretches of history, not of paths. :func:`overlap_of` builds it from the paths' dates.

    Attributes:
        start: ``(n,)`` int64, the day of each path's first date (days since 1970-01-01).
        span: days from a path's first date to its last, plus one (the longest path's), >= 1.
    """

    start: NDArray[np.int64]
    span: int

    @property
    def bandwidth(self) -> int:
        """Days of dependence that standard errors and block bootstraps cover: ``3 span``.

        Windows overlap up to ``span - 1`` days apart; the Bartlett weights of
        :func:`long_run_se` give those lags weights of at least two thirds. Measured on
        overlapping sums of i.i.d. daily returns (tests/baselines/test_dependence.py): the
        standard errors are 0.86 to 0.95 of the Monte Carlo spread of the mean and of ``Y``
        and the block bootstrap's about 0.8, where the independent-path formulas give 0.2.
        Dependence through volatility regimes longer than this is not covered.
        """
        return 3 * self.span

    @property
    def stretches(self) -> int:
        """Independent stretches of history the starts cover: ``days // bandwidth``.

        The degrees of freedom of paired tests; fewer than 2 leave the standard errors and
        intervals undefined (NaN).
        """
        days = int(self.start.max() - self.start.min()) + 1
        return days // self.bandwidth


def overlap_of(dates: NDArray[np.datetime64] | None) -> Overlap | None:
    """The :class:`Overlap` of dated paths, ``(n, n_steps + 1)`` dates; None for undated ones.

    Examples:
        >>> dates = np.array([["2008-01-02", "2008-01-09"], ["2008-01-03", "2008-01-10"]],
        ...                  dtype="datetime64[D]")
        >>> overlap = overlap_of(dates)
        >>> overlap.span, overlap.start - overlap.start[0]
        (8, array([0, 1]))
    """
    if dates is None:
        return None
    days = np.asarray(dates, dtype="datetime64[D]").astype(np.int64)
    return Overlap(days[:, 0].copy(), int((days[:, -1] - days[:, 0]).max()) + 1)


def check_overlap(overlap: Overlap | None, n: int) -> None:
    """Raise ``ValueError`` unless ``overlap`` is None or gives each of ``n`` paths a start day.

    The start days must be integers (days) and the span an integer >= 1 (days).
    """
    if overlap is None:
        return
    start = np.asarray(overlap.start)
    if start.shape != (n,):
        raise ValueError(f"overlap.start must give one start day per path, shape ({n},); got "
                         f"{start.shape}")
    if not np.issubdtype(start.dtype, np.integer):
        raise ValueError(f"overlap.start must be integer days (e.g. int64 days since "
                         f"1970-01-01), got dtype {start.dtype}")
    span = overlap.span
    if isinstance(span, bool) or not isinstance(span, (int, np.integer)) or span < 1:
        raise ValueError(f"overlap.span must be an integer >= 1 (days), got {span!r}")


def long_run_se(influence: FloatArray, overlap: Overlap) -> float:
    """Standard error of an estimator from its influence values on dependent paths.

    ``se = sqrt(V) / n`` where ``V`` is Newey and West's (1987, "A simple, positive
    semi-definite, heteroskedasticity and autocorrelation consistent covariance matrix",
    Econometrica 55(3)) long-run variance of ``z_d``, the influence values summed over the paths
    starting on day ``d``: ``V = sum_{|l| < L} (1 - |l| / L) sum_d z_d z_{d+l}`` with ``L`` =
    :attr:`Overlap.bandwidth`. Paths on far-apart days are independent: then ``V`` is the
    sum of squares and ``se`` the independent-sample one. NaN with fewer than two
    :attr:`Overlap.stretches`.

    Args:
        influence: ``(n,)`` the estimator's influence value of each path (for a mean, the
            deviation from it), units of the estimate.
        overlap: the paths' start days and span.

    Examples:
        >>> far = Overlap(np.array([0, 100, 200, 300]), span=1)  # independent paths
        >>> long_run_se(np.array([1.0, -1.0, 1.0, -1.0]), far)  # sqrt(4) / 4
        0.5
        >>> same = Overlap(np.array([0, 0, 200, 200]), span=1)  # two pairs of one path each
        >>> long_run_se(np.array([1.0, 1.0, -1.0, -1.0]), same)  # sqrt(2^2 + 2^2) / 4
        0.7071067811865476
    """
    check_overlap(overlap, influence.size)
    if overlap.stretches < 2:
        return math.nan
    z = np.bincount(overlap.start - overlap.start.min(), weights=influence)
    width = overlap.bandwidth
    total = float(z @ z)
    for lag in range(1, min(width, z.size)):
        total += 2.0 * (1.0 - lag / width) * float(z[:-lag] @ z[lag:])
    return math.sqrt(max(total, 0.0)) / influence.size


def block_resamples(overlap: Overlap, rows: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """``(rows, n)`` path indices of moving-block bootstrap resamples (Kuensch 1989).

    The paths are put in order of their start day; a block is ``b`` consecutive paths in that
    order, ``b = min(n, ceil(n * bandwidth / days))`` (the paths starting within one
    :attr:`Overlap.bandwidth`, on average, over the ``days`` the starts cover). Each resample
    joins ``ceil(n / b)`` blocks with uniformly drawn first paths and keeps its first ``n``
    paths. Kuensch (1989), "The jackknife and the bootstrap for general stationary
    observations", Annals of Statistics 17(3).

    Examples:
        >>> overlap = Overlap(np.array([0, 0, 10, 10, 20, 20, 30, 30]), span=5)  # b = 4
        >>> block_resamples(overlap, 1, np.random.default_rng(0)).shape
        (1, 8)
    """
    n = overlap.start.size
    order = np.argsort(overlap.start, kind="stable")
    days = int(overlap.start.max() - overlap.start.min()) + 1
    block = min(n, math.ceil(n * overlap.bandwidth / days))
    firsts = rng.integers(0, n - block + 1, size=(rows, -(-n // block), 1))
    return order[(firsts + np.arange(block)).reshape(rows, -1)[:, :n]]
