"""The Heston surface's lookup pinned, bit for bit, to the plain formula written out here.

:meth:`HestonSurface.implied_vol` on numpy arrays and :func:`multilinear` take an optimised path
(a cell's pair of table values read as one complex item: one gather instead of two) that must
give the same float64 / float32 values as the straightforward formula: the expected average
variance of Heston (1993) ``theta + (v - theta) (1 - e^{-kappa tau}) / (kappa tau)``,
``z = ln(K / F) / sqrt(average * tau)``, the cells on the axes ``tau**(1/4)``, ``v**(1/4)`` and
``z`` and the multilinear sum over the cell's corners ``sum (w_tau w_v) (low + w_z (high -
low))``, in that order of floating-point operations. A future change that moves a single bit
(another order of the weights' products, an FMA, a skipped clip) fails here.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.vol_table import _pair_view, cell, multilinear

SURFACE = HestonSurface(kappa=2.0, theta=0.04, xi=0.5, rho=-0.7)  # OptionBook-v0's market


def _reference_cell(x: Any, span: float, n: int) -> tuple[Any, Any]:
    """The cell of ``x`` on ``n`` nodes over ``[0, span]``, as :func:`cell` documents it."""
    kind = x.dtype.type
    position = np.clip(x, kind(0.0), kind(span)) * ((n - 1) / span)
    index = np.minimum(np.floor(np.where(np.isnan(position), 0.0, position)), n - 2)
    return index.astype(np.intp), position - index


def _reference_implied_vol(surface: HestonSurface, spot: Any, strike: Any, tau: Any, level: Any,
                           rate: float, dividend: float) -> Any:
    """Heston's tabulated vol by the plain formula: whole-array numpy, no in-place operation."""
    grid, kappa, theta = surface.grid, surface.kappa, surface.theta
    kind = spot.dtype.type
    tiny = np.finfo(spot.dtype).tiny
    t = np.clip(tau, kind(0.0), kind(grid.max_tau))
    v = np.clip(level, kind(0.0), None)
    x = kappa * t
    small = x < 1e-8
    xs = np.where(small, kind(1.0), x)
    average = theta + (v - theta) * np.where(small, 1.0 - 0.5 * x, -np.expm1(-xs) / xs)
    spread = np.sqrt(np.maximum(average * t, tiny))
    forward = spot * np.exp((rate - dividend) * t)
    positive = spread > 0.0
    z = np.where(positive, np.log(strike / forward) / np.where(positive, spread, 1.0), 0.0)
    table = surface.table().astype(spot.dtype)
    n_tau, n_vol, n_z = table.shape
    i0, w0 = _reference_cell(np.sqrt(np.sqrt(np.maximum(t, tiny))), grid.max_tau**0.25, n_tau)
    i1, w1 = _reference_cell(np.sqrt(np.sqrt(np.maximum(v, tiny))), math.sqrt(grid.max_vol),
                             n_vol)
    i2, w2 = _reference_cell(z + grid.max_z, 2.0 * grid.max_z, n_z)
    out = 0.0
    for d0, d1 in itertools.product((0, 1), repeat=2):
        low, high = table[i0 + d0, i1 + d1, i2], table[i0 + d0, i1 + d1, i2 + 1]
        weight = (w0 if d0 else 1.0 - w0) * (w1 if d1 else 1.0 - w1)
        out = out + weight * (low + w2 * (high - low))
    at_expiry = np.minimum(np.sqrt(np.maximum(v, tiny)), grid.max_vol)
    return np.where(t == 0.0, at_expiry, out)


def _reference_multilinear(table: Any, cells: list[tuple[Any, Any]]) -> Any:
    """The multilinear sum over the corners of the leading axes, by n-d indexing of ``table``."""
    *outer, (last_index, last) = cells
    out = 0.0
    for corner in itertools.product((0, 1), repeat=len(outer)):
        at = tuple(index + d for (index, _), d in zip(outer, corner, strict=True))
        weight = None
        for (_, w), d in zip(outer, corner, strict=True):
            side = w if d else 1.0 - w
            weight = side if weight is None else weight * side
        low, high = table[(*at, last_index)], table[(*at, last_index + 1)]
        pair = low + last * (high - low)
        out = out + (pair if weight is None else weight * pair)
    return out


def _assert_same_bits(got: Any, want: Any) -> None:
    """Same shape, dtype, NaNs and bits elsewhere (the sign of zero included)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    bits = np.dtype(f"i{got.dtype.itemsize}")
    differ = (got.view(bits) != want.view(bits)) & ~nan
    assert not differ.any(), (f"{int(differ.sum())} of {differ.size} values differ, e.g. "
                              f"{got[differ][:3]} against {want[differ][:3]}")


def _inputs(n: int, seed: int) -> tuple[Any, Any, Any, Any]:
    """Random options at OptionBook's scale, with the edge cases sprinkled in."""
    rng = np.random.default_rng(seed)
    spot = 100.0 * np.exp(rng.normal(0.0, 0.2, n))
    strike = 100.0 * np.exp(rng.normal(0.0, 0.4, n))
    tau = np.where(rng.random(n) < 0.5, rng.uniform(-0.1, 2.5, n), rng.integers(0, 90, n) / 252)
    level = np.where(rng.random(n) < 0.8, 0.04 * np.exp(rng.normal(0.0, 1.0, n)),
                     rng.uniform(-0.01, 1.5, n))

    def some(share: float) -> Any:
        return rng.integers(0, n, max(1, int(n * share)))

    tau[some(0.05)] = 0.0  # at expiry: sqrt(v)
    tau[some(0.01)] = -0.0
    tau[some(0.01)] = 5.0  # beyond max_tau
    # kappa tau < 1e-8: the series branch of the average variance (1 ulp from the ratio)
    series = some(0.02)
    tau[series] = rng.uniform(1e-13, 4e-9, series.size)
    level[some(0.02)] = 0.0
    level[some(0.01)] = -0.0
    level[some(0.01)] = 4.0  # beyond max_vol**2
    strike[some(0.02)] *= 50.0  # |z| > max_z
    strike[some(0.01)] = 0.0  # z = -inf: the edge
    spot[some(0.005)] = np.inf
    for values in (spot, strike, tau, level):
        values[some(0.01)] = np.nan
    return spot, strike, tau, level


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("rate", "dividend"), [(0.0, 0.0), (0.03, 0.01), (0.02, 0.02)])
def test_heston_implied_vol_is_the_plain_formula_bit_for_bit(dtype, rate, dividend):
    spot, strike, tau, level = (a.astype(dtype) for a in _inputs(200_000, seed=1))
    with np.errstate(all="ignore"):
        got = SURFACE.implied_vol(spot, strike, tau, level, 100.0, rate, dividend)
        want = _reference_implied_vol(SURFACE, spot, strike, tau, level, rate, dividend)
    assert np.isnan(want).mean() > 0.01  # the NaN inputs are there
    assert (want[np.isfinite(want)] > 0.0).all()
    _assert_same_bits(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_heston_implied_vol_broadcast_and_scalar_inputs(dtype):
    """The env's at-the-money marks: ``(steps, paths)`` spots against ``(steps, 1)`` expiries;
    scalars for some inputs; a 0-d call (the plain path's, in float64)."""
    spot, strike, tau, level = (a.astype(dtype) for a in _inputs(61 * 500, seed=2))
    spot, level = spot.reshape(61, 500), level.reshape(61, 500)
    cases = [
        (spot, spot, tau[:61, None], level),
        (spot[:, :1], strike[:500], tau[:61, None], level[:1]),
        (dtype(100.0), strike[:500], dtype(0.3), dtype(0.04)),
        (dtype(100.0), strike[:500], dtype(0.0), level[:500]),
        (dtype(100.0), dtype(105.0), dtype(0.3), dtype(0.04)),
        (np.zeros(0, dtype), np.zeros(0, dtype), np.zeros(0, dtype), np.zeros(0, dtype)),
    ]
    with np.errstate(all="ignore"):
        for case in cases:
            got = SURFACE.implied_vol(*case, 100.0, 0.01, 0.0)
            # numpy scalars count as Python numbers: all of them make float64
            kind = dtype if any(isinstance(a, np.ndarray) for a in case) else np.float64
            arrays = [np.asarray(a, dtype=kind) for a in case]
            _assert_same_bits(got, _reference_implied_vol(SURFACE, *arrays, 0.01, 0.0))


def test_numpy_tables_read_pairs_and_torch_agrees_with_its_gradients():
    """numpy float tables read pairs (one gather a cell); torch tensors, with their gradients,
    read two and agree with numpy to rounding (torch's own log and expm1)."""
    assert _pair_view(SURFACE.table().reshape(-1)) is not None
    spot, strike, tau, level = _inputs(5_000, seed=3)
    keep = np.isfinite(spot) & np.isfinite(strike) & np.isfinite(tau) & np.isfinite(level)
    keep &= (strike > 0.0) & (tau > 0.01) & (tau < 1.9) & (level > 0.001) & (level < 0.9)
    values = [a[keep] for a in (spot, strike, tau, level)]
    inputs = [torch.tensor(a, requires_grad=True) for a in values]
    vols = SURFACE.implied_vol(*inputs, 100.0, 0.01, 0.0)
    vols.sum().backward()
    np.testing.assert_allclose(vols.detach().numpy(),
                               SURFACE.implied_vol(*values, 100.0, 0.01, 0.0), rtol=1e-12)
    # the slope in the variance against a central difference of the numpy path (within a cell)
    h = 1e-7
    up = SURFACE.implied_vol(*values[:3], values[3] + h, 100.0, 0.01, 0.0)
    down = SURFACE.implied_vol(*values[:3], values[3] - h, 100.0, 0.01, 0.0)
    slope = inputs[3].grad.numpy()
    assert np.isfinite(slope).all()
    assert np.median(np.abs(slope - (up - down) / (2 * h))) < 1e-5 * np.median(np.abs(slope))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(9,), (5, 9), (4, 6, 8), (3, 4, 5, 6)])
def test_multilinear_is_the_corner_sum_bit_for_bit(dtype, shape):
    """Any table (negative values and -0.0 too: the sum's ``0.0 +`` maps an all -0.0 sum to
    +0.0), any number of axes (Merton's surface uses two), broadcast cells, NaN positions."""
    rng = np.random.default_rng(sum(shape))
    table = rng.normal(0.0, 1.0, shape).astype(dtype)
    table[rng.random(shape) < 0.2] = -0.0
    n = 20_000
    xs = [rng.uniform(-0.5, size + 0.5, n).astype(dtype) for size in shape]
    for x, size in zip(xs, shape, strict=True):
        x[rng.integers(0, n, 200)] = np.nan
        x[rng.integers(0, n, 4000)] = rng.integers(0, size, 4000)  # on nodes: offsets +0.0
    cells = [cell(np, x, size - 1.0, size) for x, size in zip(xs, shape, strict=True)]
    if len(shape) > 1:  # the leading axis' cells broadcast against the others'
        cells[0] = cell(np, xs[0][:1].reshape(1, 1), shape[0] - 1.0, shape[0])
    flat = np.ascontiguousarray(table).reshape(-1)
    with np.errstate(invalid="ignore"):
        got = multilinear(np, flat, cells, shape)
        want = _reference_multilinear(table, cells)
    _assert_same_bits(got, want)
    # the plain path (torch) gives the same bits: IEEE sums and products, no fused ones
    tensors = [(torch.from_numpy(np.asarray(i)), torch.from_numpy(np.asarray(w)))
               for i, w in cells]
    _assert_same_bits(multilinear(torch, torch.from_numpy(flat), tensors, shape).numpy(), want)


def test_multilinear_of_0d_cells_gives_a_scalar():
    """All-0-d cells (a single point) give a scalar, one 1-d axis a 1-d answer."""
    grid = np.arange(6.0).reshape(2, 3)  # 3 i + j: exact
    cells = [(np.array(0), np.array(0.5)), (np.array(1), np.array(0.5))]
    assert multilinear(np, grid.reshape(-1), cells, grid.shape) == 3.0
    cells[1] = (np.array([1]), np.array([0.5]))
    np.testing.assert_array_equal(multilinear(np, grid.reshape(-1), cells, grid.shape), [3.0])
