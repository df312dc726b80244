"""Normal cdf, allocator setting, delta-vega and dependent-path inference: mutation survivors.

A hand-made mutation round on :mod:`hedgearena.envs.normal`, :mod:`hedgearena.envs.memory`,
:mod:`hedgearena.baselines.delta_gamma` and :mod:`hedgearena.baselines.dependence` left these
behaviours untested. Expected numbers come from independent sources: scipy's ``ndtr`` (Cephes),
glibc's ``malloc.h`` and ``mallopt(3)``, the Black-Scholes vega ``S n(d1) sqrt(T)`` (Hull,
*Options, Futures and Other Derivatives*, "Vega") and hand arithmetic written out in each test.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from hedgearena.baselines import DeltaVega
from hedgearena.baselines.delta_gamma import vega_neutral_units
from hedgearena.baselines.dependence import Overlap, block_resamples, check_overlap, long_run_se
from hedgearena.envs import memory
from hedgearena.envs.normal import normal_cdf, one_thread
from hedgearena.envs.vector_env import VecHedgingEnv

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


# ----------------------------------------------------------------------------------- normal
@pytest.fixture
def two_torch_threads() -> Iterator[None]:
    """Torch on two intra-op threads for the test (the caller's count restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("two_torch_threads")
def test_one_thread_runs_torch_on_one_thread_and_restores_the_callers_count() -> None:
    """Inside the block torch has 1 thread; after it (also after an error) the caller's 2."""
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(KeyError), one_thread():
        raise KeyError("inside")
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("two_torch_threads")
def test_normal_cdf_evaluates_its_erfc_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy path's erfc runs single-threaded (the module's documented speed-up)."""
    seen: list[int] = []
    erfc = torch.special.erfc

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return erfc(*args, **kwargs)

    monkeypatch.setattr(torch.special, "erfc", spy)
    x = np.linspace(-5.0, 5.0, 1001)
    np.testing.assert_allclose(normal_cdf(x), ndtr(x), rtol=1e-12)
    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_normal_cdf_of_float32_and_integer_arrays_is_float64() -> None:
    """Documented: float64 for numpy input, whatever its dtype, to 1e-12 of scipy's ndtr.

    ``N(-30) = 4.9e-198`` is far below float32's smallest number: a float32 evaluation gives 0.
    """
    x32 = np.linspace(-30.0, 8.0, 1001, dtype=np.float32)
    out = normal_cdf(x32)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ndtr(x32.astype(np.float64)), rtol=1e-12, atol=0)
    assert out[0] == pytest.approx(4.906713927148187e-198, rel=1e-12)  # mpmath.ncdf(-30), 30 digits
    ints = np.array([-3, 0, 2])
    assert normal_cdf(ints).dtype == np.float64
    np.testing.assert_allclose(normal_cdf(ints), ndtr(ints.astype(np.float64)), rtol=1e-14)


# ----------------------------------------------------------------------------------- memory
# Builds three 24 MiB arrays (touched), frees them, and counts the page faults of doing it
# again. 24 MiB lies between 16 MiB and the module's 32 MiB mmap threshold: from the heap, the
# second build reuses the first's pages; mmapped, it faults them in again: 18,432 pages of 4 KiB,
# or as few as 36 if every fault maps a 2 MiB transparent huge page (numpy asks for them).
BIG_FAULTS = """
import resource, numpy as np
import hedgearena.envs
def build():
    arrays = [np.ones(3 * 2**20) for _ in range(3)]
    del arrays
build()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
build()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not GLIBC, reason="the setting applies to glibc's allocator only")
def test_arrays_up_to_the_32_mib_threshold_reuse_freed_pages() -> None:
    """Documented: allocations of up to 32 MiB come from the heap.

    Measured: 0 faults (3 runs); 1,572 with a 16 MiB threshold, 1,423 with glibc's own
    settings (``HEDGEARENA_MALLOC=system``; this machine's huge pages are on madvise).
    """
    env = {k: v for k, v in os.environ.items() if k != "HEDGEARENA_MALLOC"}
    result = subprocess.run([sys.executable, "-c", BIG_FAULTS], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 10


def test_mmap_threshold_is_within_mallopts_documented_maximum() -> None:
    """mallopt(3), M_MMAP_THRESHOLD: at most ``4 * 1024 * 1024 * sizeof(long)`` (32 MiB on 64-bit).

    Older glibc releases refuse a larger value (mallopt returns 0: the setting is not applied);
    the test above pins it from below (>= 24 MiB).
    """
    threshold = memory.MMAP_THRESHOLD
    assert threshold <= 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)


class FakeLibc:
    """A C library whose ``mallopt`` records its calls and returns the given results."""

    def __init__(self, results: dict[int, int]) -> None:
        self.results = results
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.results[param]


def _fake_platform(monkeypatch: pytest.MonkeyPatch, system: str, libc: tuple[str, str]) -> None:
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "libc_ver", lambda *args, **kwargs: libc)


@pytest.mark.parametrize(("system", "libc"), [("Linux", ("musl", "1.2.4")),
                                              ("Darwin", ("", "")), ("Windows", ("", ""))])
def test_keep_freed_memory_changes_nothing_off_glibc(
    monkeypatch: pytest.MonkeyPatch, system: str, libc: tuple[str, str],
) -> None:
    """Documented: False, changing nothing, where the C library is not glibc (musl too)."""
    loaded: list[str] = []

    def load(name: str) -> FakeLibc:
        loaded.append(name)
        return FakeLibc({})

    monkeypatch.setattr(ctypes, "CDLL", load)
    _fake_platform(monkeypatch, system, libc)
    assert memory.keep_freed_memory() is False
    assert loaded == []


def test_keep_freed_memory_is_false_when_libc_cannot_be_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    _fake_platform(monkeypatch, "Linux", ("glibc", "2.36"))
    assert memory.keep_freed_memory() is False


@pytest.mark.parametrize(("results", "applied"), [
    ({-3: 1, -1: 1}, True), ({-3: 0, -1: 1}, False), ({-3: 1, -1: 0}, False)])
def test_keep_freed_memory_reports_whether_glibc_took_both_settings(
    monkeypatch: pytest.MonkeyPatch, results: dict[int, int], applied: bool,
) -> None:
    """glibc's malloc.h: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3; mallopt returns 0 on error.

    True only if both thresholds were taken: 32 MiB for mmap, 2^30 bytes for the trim.
    """
    libc = FakeLibc(results)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    _fake_platform(monkeypatch, "Linux", ("glibc", "2.36"))
    assert memory.keep_freed_memory() is applied
    want = [(-3, 32 * 1024 * 1024), (-1, 1024**3)]
    assert libc.calls == (want if applied else want[:len(libc.calls)])


# ------------------------------------------------------------------------------ delta-vega
def test_vega_neutral_units_sell_the_option_against_a_long_books_vega_within_the_cap() -> None:
    """Hull's vega neutral ``n = -V_book / V_opt``: ``-1200 / 24 = -50``; ``-+5e4 / 24`` is
    ``-+2083`` units, clipped to ``-+1000``."""
    units = vega_neutral_units(np.array([1200.0, 5e4, -5e4]), np.full(3, 24.0),
                               np.ones(3, dtype=bool), cap=1000.0)
    np.testing.assert_array_equal(units, [-50.0, -1000.0, 1000.0])
    # without a cap (the default, +inf) nothing is clipped: -5e4 / 1e-3 = -5e7 units
    assert vega_neutral_units(np.array([5e4]), np.array([1e-3]), np.array([True]))[0] == -5e7


def _delta_vega_env() -> tuple[VecHedgingEnv, DeltaVega]:
    """ShortCall (20 steps of 0.004 years, notional 100) with the default hedging option
    (expiring at step 90); the cap on the option is 10 notionals, 1,000 units."""
    env = VecHedgingEnv(num_envs=3, preset="ShortCall", hedge_option=True)
    env.reset(seed=0)
    hedger = DeltaVega()
    hedger.reset(env)
    return env, hedger


def test_delta_vega_positions_of_long_and_short_vega_books_within_the_cap() -> None:
    """Book vegas ``+400, +3e4, -3e4`` against an option vega of 20: ``n = -20, -1500, +1500``,
    the last two clipped to ``-+1000``; the hedge ``h = -(Delta_book + n Delta_opt)`` with
    ``Delta_book = -50``, ``Delta_opt = 0.55``: ``61, 600, -500``. The option is usable:
    ``20 / (100 sqrt(70 * 0.004 + 0.04)) = 0.35 > 1e-4``.
    """
    env, hedger = _delta_vega_env()
    state = {**env.state, "spot": np.full(3, 100.0), "tau": np.full(3, 0.04),
             "option_vega": np.full(3, 20.0), "option_delta": np.full(3, 0.55),
             "book_vega": np.array([400.0, 3e4, -3e4]), "book_delta": np.full(3, -50.0)}
    positions = hedger.positions(state, np.zeros((3, 1), np.float32))
    np.testing.assert_allclose(positions[:, 1], [-20.0, -1000.0, 1000.0], rtol=1e-12)
    np.testing.assert_allclose(positions[:, 0], [61.0, 600.0, -500.0], rtol=1e-12)


def test_delta_vega_usability_near_the_threshold_uses_the_options_remaining_life() -> None:
    """One step before the book's end (book tau 0.004) the option has ``T = (90 - 20) * 0.004 +
    0.004 = 0.284`` years left. At S = 64.5, K = 100, sigma 20%, r = q = 0 (Hull):
    ``d1 = ln(0.645) / (0.2 sqrt T) + 0.1 sqrt T = -4.061``, ``n(d1) = 1.05e-4`` just above the
    env's 1e-4, so the option is used: ``n = -V_book / V_opt`` with ``V_opt = S n(d1) sqrt(T)``.
    Measuring it at ``90 * 0.004 + 0.004 = 0.364`` (forgetting the 20 steps gone) would put it
    at 0.93e-4, below, and hold no option.
    """
    env, hedger = _delta_vega_env()
    spot, big_t, sigma = 64.5, 70 * 0.004 + 0.004, 0.2
    d1 = math.log(spot / 100.0) / (sigma * math.sqrt(big_t)) + 0.5 * sigma * math.sqrt(big_t)
    density = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    assert 1e-4 < density < 1e-4 * math.sqrt(0.364 / big_t)  # the case between the two
    vega, delta = spot * density * math.sqrt(big_t), 0.5 * math.erfc(-d1 / math.sqrt(2.0))
    state = {**env.state, "spot": np.full(3, spot), "tau": np.full(3, 0.004),
             "option_vega": np.full(3, vega), "option_delta": np.full(3, delta),
             "book_vega": np.full(3, -0.36), "book_delta": np.full(3, -2.0)}
    positions = hedger.positions(state, np.zeros((3, 1), np.float32))
    units = 0.36 / vega  # about 100
    assert 90.0 < units < 110.0
    np.testing.assert_allclose(positions[:, 1], units, rtol=1e-12)
    np.testing.assert_allclose(positions[:, 0], 2.0 - units * delta, rtol=1e-12)


# ------------------------------------------------------------------------------- dependence
def _days(*offsets: int) -> np.ndarray:
    """Start days in 2008 (days since 1970-01-01, as :func:`overlap_of` gives them)."""
    first = int(np.datetime64("2008-01-02", "D").astype(np.int64))  # 13,880
    return first + np.array(offsets, dtype=np.int64)


def test_stretches_count_the_days_the_starts_cover_not_the_days_since_1970() -> None:
    """Span 10, bandwidth 30: starts 59 days apart cover 60 days, 2 stretches (a standard
    error ``sqrt(1^2 + 1^2) / 2``: no lag below 30 links them); 58 apart cover 59, 1 (NaN)."""
    two = Overlap(_days(0, 59), span=10)
    assert two.stretches == 2
    assert long_run_se(np.array([1.0, -1.0]), two) == pytest.approx(math.sqrt(2.0) / 2.0,
                                                                     rel=1e-12)
    one = Overlap(_days(0, 58), span=10)
    assert one.stretches == 1
    assert math.isnan(long_run_se(np.array([1.0, -1.0]), one))


@pytest.mark.parametrize(("overlap", "match"), [
    (Overlap(np.zeros((3, 1), dtype=np.int64), 1), r"one start day per path, shape \(3,\)"),
    (Overlap(np.arange(3, dtype=np.int64), True), r"overlap\.span must be an integer >= 1"),
    (Overlap(np.arange(3, dtype=np.int64), 10.0), r"overlap\.span must be an integer >= 1"),
    (Overlap(np.arange(3, dtype=np.int64), 2.5), r"got 2\.5"),
])
def test_check_overlap_names_a_bad_start_shape_or_span(overlap: Overlap, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_overlap(overlap, 3)


def test_check_overlap_takes_any_integer_days_and_numpy_integer_spans() -> None:
    """Unsigned start days and a numpy integer span are integers (days): the same SE."""
    start = _days(0, 0, 40, 45, 90, 200)
    x = np.array([0.5, -1.0, 2.0, -0.5, 0.25, -1.25])
    signed = long_run_se(x, Overlap(start, 10))
    check_overlap(Overlap(start.astype(np.uint32), np.int64(10)), 6)
    unsigned = long_run_se(x, Overlap(start.astype(np.uint32), np.int64(10)))
    assert unsigned == pytest.approx(signed, rel=1e-15)
    # by hand, bandwidth 30: z = 0.5 - 1 = -0.5 on day 0, 2 on day 40, -0.5 on day 45 (lag 5,
    # weight 1 - 5/30), 0.25 and -1.25 alone: V = 0.25 + 4 + 0.25 + 0.0625 + 1.5625
    # + 2 (25/30) (2)(-0.5) = 4.458333...
    v = 0.25 + 4.0 + 0.25 + 0.0625 + 1.5625 + 2.0 * (25.0 / 30.0) * 2.0 * (-0.5)
    assert signed == pytest.approx(math.sqrt(v) / 6.0, rel=1e-12)


def test_block_length_comes_from_the_days_the_starts_cover() -> None:
    """Starts in 2008 on days 0, 0, 5, 5, span 1 (bandwidth 3): the starts cover 6 days, so
    ``b = ceil(4 * 3 / 6) = 2``; two blocks whose first paths are uniform on 0, 1, 2 (Kuensch
    1989). 3,000 resamples: each share 1/3 within 0.03 (3.5 standard errors of 0.0086)."""
    index = block_resamples(Overlap(_days(0, 0, 5, 5), span=1), 3000, np.random.default_rng(4))
    assert index.shape == (3000, 4)
    np.testing.assert_array_equal(index[:, 1] - index[:, 0], 1)  # one block: paths 0-1
    np.testing.assert_array_equal(index[:, 3] - index[:, 2], 1)  # the next: paths 2-3
    for first in (index[:, 0], index[:, 2]):
        share = np.bincount(first, minlength=3) / first.size
        assert share.size == 3
        np.testing.assert_allclose(share, 1.0 / 3.0, atol=0.03)


def test_block_resamples_keep_n_paths_when_blocks_do_not_divide_them() -> None:
    """8 paths, span 3 (bandwidth 9) over 31 days: ``b = ceil(8 * 9 / 31) = 3``, so
    ``ceil(8 / 3) = 3`` blocks joined (9 paths) and the first 8 kept: runs 0-2, 3-5, 6-7."""
    overlap = Overlap(np.array([0, 0, 10, 10, 20, 20, 30, 30], dtype=np.int64), span=3)
    index = block_resamples(overlap, 500, np.random.default_rng(5))
    assert index.shape == (500, 8)
    for run in ((0, 1, 2), (3, 4, 5), (6, 7)):
        np.testing.assert_array_equal(np.diff(index[:, run], axis=1), 1)
    assert set(np.unique(index[:, [0, 3, 6]])) == {0, 1, 2, 3, 4, 5}  # first paths 0 .. n - b


def test_a_block_longer_than_the_paths_is_all_of_them_in_start_order() -> None:
    """Starts on 2 days, bandwidth 15: ``ceil(4 * 15 / 2) = 30`` paths a block, capped at the 4
    paths: every resample is the sample itself, in start order, ties in path order (a stable
    sort: numpy's default one, a SIMD sort on this machine, orders ``[1, 1, 0, 0]`` as
    ``3, 2, 1, 0``, and its tie order depends on the kernel it dispatches to)."""
    overlap = Overlap(np.array([1, 1, 0, 0], dtype=np.int64), span=5)
    index = block_resamples(overlap, 10, np.random.default_rng(6))
    np.testing.assert_array_equal(index, np.tile([2, 3, 0, 1], (10, 1)))
