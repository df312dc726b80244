"""Tests written against the mutants that survived a mutation round over ``implied_vol.py``,
``vol_surface.py`` and ``vol_table.py``.

Every expected number comes from an independent source: Black-Scholes-Merton prices computed here
with scipy's normal CDF (Black & Scholes 1973, Merton 1973), QuantLib, the closed form of Heston's
expected average variance, or a hand computation written out in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)
from scipy.integrate import quad
from scipy.stats import norm

from hedgearena.envs.implied_vol import (
    ABOVE_UPPER_BOUND,
    BELOW_INTRINSIC,
    EXPIRED,
    NOT_FINITE,
    OK,
    NoImpliedVolWarning,
    implied_vol_status,
    implied_volatility,
)
from hedgearena.envs.vol_surface import (
    HestonTermVol,
    SABRSurface,
    SmileSurface,
    heston_average_variance,
)
from hedgearena.envs.vol_table import (
    VolGrid,
    cell,
    check_table,
    fill_wings,
    finish_table,
    multilinear,
    otm_implied_vols,
    refine,
    safe_power,
)


def _bsm(spot, strike, tau, vol, rate, dividend, is_call):
    """Black-Scholes-Merton price with scipy's normal CDF (the reference, not the code)."""
    spot, strike, tau, vol = (np.asarray(v, dtype=float) for v in (spot, strike, tau, vol))
    sd = vol * np.sqrt(tau)
    d1 = (np.log(spot / strike) + (rate - dividend) * tau) / sd + 0.5 * sd
    d2 = d1 - sd
    fwd = spot * np.exp(-dividend * tau)
    disc = strike * np.exp(-rate * tau)
    call = fwd * norm.cdf(d1) - disc * norm.cdf(d2)
    put = disc * norm.cdf(-d2) - fwd * norm.cdf(-d1)
    return np.where(is_call, call, put)


# ----------------------------------------------------------------------------- implied_vol.py


def test_inversion_recovers_vols_to_1e12_on_both_sides_with_carry():
    """ITM and OTM calls and puts, r = 5%, q = 2%: the vol that priced them, to 1e-12."""
    strike = np.array([60.0, 80.0, 95.0, 100.0, 105.0, 125.0, 160.0])[:, None, None]
    tau = np.array([0.05, 0.5, 3.0])[None, :, None]
    vol = np.array([0.08, 0.25, 0.9])[None, None, :]
    for is_call in (True, False):
        price = _bsm(100.0, strike, tau, vol, 0.05, 0.02, is_call)
        # deep ITM or far OTM: the time value (the OTM side's price) is lost to rounding
        resolvable = np.minimum(_bsm(100.0, strike, tau, vol, 0.05, 0.02, True),
                                _bsm(100.0, strike, tau, vol, 0.05, 0.02, False)) > 1e-4
        got = implied_volatility(price, 100.0, strike, tau, 0.05, 0.02, is_call, errors="raise")
        want = np.broadcast_to(vol, got.shape)
        np.testing.assert_allclose(got[resolvable], want[resolvable], rtol=1e-10)
        assert resolvable.sum() > 40, resolvable.sum()


def test_inversion_matches_quantlib_black_formula_implied_std_dev():
    """QuantLib's blackFormulaImpliedStdDev on the forward (accuracy 1e-12) agrees."""
    spot, rate, dividend, tau = 100.0, 0.03, 0.01, 0.75
    forward = spot * math.exp((rate - dividend) * tau)
    discount = math.exp(-rate * tau)
    for strike, price, is_call in [(90.0, 14.2, True), (120.0, 1.3, True), (85.0, 0.9, False),
                                   (110.0, 12.5, False)]:
        kind = ql.Option.Call if is_call else ql.Option.Put
        std = ql.blackFormulaImpliedStdDev(kind, strike, forward, price, discount, 0.0,
                                           ql.nullDouble(), 1e-12, 1000)
        got = float(implied_volatility(price, spot, strike, tau, rate, dividend, is_call))
        assert got == pytest.approx(std / math.sqrt(tau), rel=1e-9)


def test_far_wing_long_expiry_vol_above_old_bracket():
    """25 years, vol 4.4, strike 6 standard deviations out: total vol 22 > a fixed bracket of 20."""
    tau, vol = 25.0, 4.4
    strike = 100.0 * math.exp(6.0 * vol * math.sqrt(tau))
    price = float(_bsm(100.0, strike, tau, vol, 0.0, 0.0, True))
    assert 100.0 - price > 1e-9  # float64 tells it from the upper bound
    assert float(implied_volatility(price, 100.0, strike, tau)) == pytest.approx(vol, rel=1e-6)


def test_status_of_every_bound_for_calls_and_puts_with_carry():
    """No-arbitrage interval ``max(w (S e^{-qT} - K e^{-rT}), 0) <= price < upper`` by hand."""
    s, k, t, r, q = 100.0, 90.0, 2.0, 0.05, 0.03
    spot_df, strike_df = s * math.exp(-q * t), k * math.exp(-r * t)  # 94.176, 81.435
    call_intrinsic, put_intrinsic = spot_df - strike_df, 0.0
    cases = [
        (spot_df, True, ABOVE_UPPER_BOUND),  # exactly the call's upper bound
        (spot_df * (1 - 1e-9), True, OK),
        (strike_df, False, ABOVE_UPPER_BOUND),  # the put's upper bound is K e^{-rT}, not S e^{-qT}
        (strike_df * (1 - 1e-9), False, OK),
        (spot_df - 1.0, False, ABOVE_UPPER_BOUND),  # above K e^{-rT}, below S e^{-qT}
        (call_intrinsic - 1e-6, True, BELOW_INTRINSIC),
        (call_intrinsic, True, OK),
        (put_intrinsic, False, OK),
        (-1e-6, False, BELOW_INTRINSIC),
    ]
    for price, is_call, want in cases:
        got = int(implied_vol_status(price, s, k, t, r, q, is_call))
        assert got == want, (price, is_call)
    # an ITM put: intrinsic K e^{-rT} - S e^{-qT} with the put's sign (the call's would be < 0)
    k2 = 120.0
    put_itm = k2 * math.exp(-r * t) - spot_df  # 12.275
    assert int(implied_vol_status(put_itm - 1e-6, s, k2, t, r, q, False)) == BELOW_INTRINSIC
    assert float(implied_volatility(put_itm, s, k2, t, r, q, False)) == 0.0
    assert float(implied_volatility(call_intrinsic, s, k, t, r, q, True)) == 0.0


def test_status_of_bad_inputs_and_expiry():
    price = [1.0, 1.0, 1.0, np.nan, 1.0, 10.0, 0.0, 10.0]
    spot = [100.0, 0.0, 100.0, 100.0, 100.0, 110.0, 90.0, 100.0]
    strike = [100.0, 100.0, 0.0, 100.0, -5.0, 100.0, 100.0, 100.0]
    tau = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    got = implied_vol_status(price, spot, strike, tau).tolist()
    assert got == [OK, NOT_FINITE, NOT_FINITE, NOT_FINITE, NOT_FINITE, OK, OK, EXPIRED]
    vols = implied_volatility(price, spot, strike, tau, errors="nan")
    assert np.isnan(vols[[1, 2, 3, 4, 7]]).all()
    assert vols[5] == 0.0  # at the intrinsic value at expiry
    assert vols[6] == 0.0


def test_errors_modes_and_rate_checks():
    with pytest.raises(ValueError, match="no implied volatility for 1 of 2 prices"):
        implied_volatility([5.0, 150.0], 100.0, 100.0, 1.0, errors="raise")
    with pytest.warns(NoImpliedVolWarning, match="price at or above the upper bound"):
        implied_volatility([5.0, 150.0], 100.0, 100.0, 1.0)
    with pytest.raises(ValueError, match="errors must be"):
        implied_volatility(5.0, 100.0, 100.0, 1.0, errors="ignore")
    with pytest.raises(ValueError, match="rate must be a finite number"):
        implied_volatility(5.0, 100.0, 100.0, 1.0, rate=float("nan"))
    with pytest.raises(ValueError, match="dividend must be a finite number"):
        implied_vol_status(5.0, 100.0, 100.0, 1.0, dividend=float("inf"))


# ----------------------------------------------------------------------------- vol_surface.py


@pytest.mark.parametrize(("kappa", "tau"), [(2.0, 1.0), (0.5, 0.25), (5e-3, 1.0), (3.0, 1e-9)])
def test_heston_average_variance_closed_form_and_integral(kappa, tau):
    """``theta + (v0 - theta)(1 - e^{-k T}) / (k T)`` and quad of ``E[v_t]`` (Heston 1993)."""
    v0, theta = 0.09, 0.04
    closed = theta + (v0 - theta) * (1.0 - math.exp(-kappa * tau)) / (kappa * tau)
    integral = quad(lambda u: theta + (v0 - theta) * math.exp(-kappa * u), 0.0, tau,
                    epsabs=0.0, epsrel=1e-13)[0] / tau
    got = float(heston_average_variance(v0, tau, kappa, theta))
    assert got == pytest.approx(integral, rel=1e-9)
    if kappa * tau > 1e-6:  # the closed form loses digits to cancellation below
        assert got == pytest.approx(closed, rel=1e-12)
    vol = HestonTermVol(kappa=kappa, theta=theta).implied_vol(100.0, 90.0, tau, v0, 100.0, 0, 0)
    assert float(vol) == pytest.approx(math.sqrt(integral), rel=1e-9)


def test_smile_surface_by_hand_with_carry_sticky_and_floor():
    """``level max(1 + skew x + curv x^2, floor)``, ``x = ln(K / F_ref) / sqrt(max(T, T_min))``."""
    r, q, spot, anchor, level = 0.05, 0.01, 105.0, 100.0, 0.2
    for sticky, ref in (("delta", spot), ("strike", anchor)):
        smile = SmileSurface(skew=-0.3, curvature=0.8, sticky=sticky, floor=0.5, min_tau=0.01)
        for strike, tau in ((90.0, 0.5), (120.0, 2.0), (101.0, 0.001), (60.0, 0.04)):
            x = math.log(strike / (ref * math.exp((r - q) * tau))) / math.sqrt(max(tau, 0.01))
            want = level * max(1.0 - 0.3 * x + 0.8 * x * x, 0.5)
            got = float(smile.implied_vol(spot, strike, tau, level, anchor, r, q))
            assert got == pytest.approx(want, rel=1e-13), (sticky, strike, tau)
    # the floor binds: skew -3 at x = 0.5 gives 1 - 1.5 < 0.5
    smile = SmileSurface(skew=-3.0, curvature=0.0, floor=0.5)
    strike = 100.0 * math.exp(0.5 * math.sqrt(0.25))
    assert float(smile.implied_vol(100.0, strike, 0.25, 0.2, 100.0, 0.0, 0.0)) == pytest.approx(0.1)


@pytest.mark.parametrize(("field", "value"), [("floor", 1.5), ("floor", 0.0), ("min_tau", 0.0),
                                              ("sticky", "spot")])
def test_smile_surface_refuses_bad_fields(field, value):
    with pytest.raises(ValueError, match=f"SmileSurface.{field} must be"):
        SmileSurface(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("rho", -1.0), ("rho", 1.0), ("beta", 1.5),
                                              ("nu", -0.1)])
def test_sabr_surface_refuses_bad_fields(field, value):
    with pytest.raises(ValueError, match=f"SABRSurface.{field} must be"):
        SABRSurface(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("kappa", -1.0), ("theta", -0.01)])
def test_heston_term_vol_refuses_bad_fields(field, value):
    with pytest.raises(ValueError, match=f"HestonTermVol.{field} must be"):
        HestonTermVol(**{field: value})


def test_sabr_surface_with_carry_matches_quantlib():
    """alpha of the forward = level e^{(1 - beta)(r - q) T}; QuantLib's sabrVolatility."""
    beta, rho, nu, level, r, q, tau, spot = 0.5, -0.3, 0.4, 2.0, 0.06, 0.01, 2.0, 100.0
    forward = spot * math.exp((r - q) * tau)
    alpha = level * math.exp((1 - beta) * (r - q) * tau)
    surface = SABRSurface(beta=beta, rho=rho, nu=nu)
    for strike in (80.0, 100.0, 125.0):
        want = ql.sabrVolatility(strike, forward, tau, alpha, beta, nu, rho)
        got = float(surface.implied_vol(spot, strike, tau, level, spot, r, q))
        assert got == pytest.approx(want, rel=1e-10)


# ----------------------------------------------------------------------------- vol_table.py


def test_cell_at_edges_and_inside_by_hand():
    """5 nodes on [0, 2]: spacing 0.5; x = 1.3 is in cell 2 at offset 0.6."""
    x = np.array([-0.5, 0.0, 0.2, 1.3, 1.999, 2.0, 7.0])
    index, offset = cell(np, x, 2.0, 5)
    assert index.tolist() == [0, 0, 0, 2, 3, 3, 3]
    np.testing.assert_allclose(offset, [0.0, 0.0, 0.4, 0.6, 0.998, 1.0, 1.0], atol=1e-12)


def test_multilinear_three_axes_by_hand():
    """Trilinear on a 2x3x4 table of a non-separable, non-linear function, written out."""
    rng = np.random.default_rng(3)
    shape = (2, 3, 4)
    table = rng.normal(size=shape)
    # point: axis 0 at 0.3 of [0, 1] (2 nodes), axis 1 at 1.6 of [0, 2] (3 nodes),
    # axis 2 at 2.25 of [0, 3] (4 nodes): cells (0, 0.3), (1, 0.6), (2, 0.25)
    (i, a), (j, b), (k, c) = (0, 0.3), (1, 0.6), (2, 0.25)
    want = 0.0
    for di, wi in ((0, 1 - a), (1, a)):
        for dj, wj in ((0, 1 - b), (1, b)):
            for dk, wk in ((0, 1 - c), (1, c)):
                want += wi * wj * wk * table[i + di, j + dj, k + dk]
    cells = [cell(np, np.array([0.3]), 1.0, 2), cell(np, np.array([1.6]), 2.0, 3),
             cell(np, np.array([2.25]), 3.0, 4)]
    got = multilinear(np, table.reshape(-1), cells, shape)
    assert float(got[0]) == pytest.approx(want, rel=1e-12)
    # on the last node of every axis: the corner value itself
    cells = [cell(np, np.array([1.0]), 1.0, 2), cell(np, np.array([2.0]), 2.0, 3),
             cell(np, np.array([3.0]), 3.0, 4)]
    assert float(multilinear(np, table.reshape(-1), cells, shape)[0]) == table[1, 2, 3]


def test_safe_power_quarter_half_and_negative():
    x = np.array([-2.0, 0.0, 0.0625, 16.0])
    np.testing.assert_allclose(safe_power(np, x, 0.25), [0.0, 0.0, 0.5, 2.0], atol=1e-70)
    np.testing.assert_allclose(safe_power(np, x, 0.5), [0.0, 0.0, 0.25, 4.0], atol=1e-150)
    np.testing.assert_allclose(safe_power(np, x, 0.75), [0.0, 0.0, 0.125, 8.0], atol=1e-200)


def test_vol_grid_axes_cells_and_checks():
    """Nodes uniform in tau**0.25 on [0, 16**0.25 = 2]; z uniform on [-3, 3]."""
    grid = VolGrid(max_tau=16.0, max_z=3.0, n_tau=5, n_z=7)
    tau, z = grid.tau_z_axes()
    np.testing.assert_allclose(tau, [0.0, 0.5**4, 1.0, 1.5**4, 16.0], rtol=1e-14)
    np.testing.assert_allclose(z, [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    # tau with tau**0.25 = 1.2: cell 2 of 5 nodes over [0, 2] (spacing 0.5) at offset 0.4;
    # strike with z = ln(K / F) / spread = 0.75: z + 3 = 3.75 on 13 fine nodes over [0, 6]
    # (spacing 0.5): cell 7 at 0.5
    t, r, q, spot, spread = 1.2**4, 0.04, 0.01, 100.0, 0.3
    strike = spot * math.exp((r - q) * t) * math.exp(0.75 * spread)
    (ti, to), (zi, zo) = grid.tau_z_cells(np, np.array(spot), np.array(strike), np.array(t),
                                          np.array(spread), r, q, 13)
    assert (int(ti), int(zi)) == (2, 7)
    assert float(to) == pytest.approx(0.4, abs=1e-12)
    assert float(zo) == pytest.approx(0.5, abs=1e-12)
    for kwargs in ({"n_z": 3}, {"n_tau": 1}, {"max_z": 0.0}, {"max_tau": -1.0}):
        with pytest.raises(ValueError, match=f"VolGrid.{next(iter(kwargs))} must be"):
            VolGrid(**kwargs)


def test_otm_implied_vols_below_and_above_the_forward():
    """Forward-normalised BS calls (F = 1, no discount): puts by parity below the forward."""
    log_strike = np.array([-0.6, -0.2, 0.0, 0.3, 0.8])
    call = _bsm(1.0, np.exp(log_strike), 0.5, 0.35, 0.0, 0.0, True)
    np.testing.assert_allclose(otm_implied_vols(call, log_strike, 0.5), 0.35, rtol=1e-9)
    # an OTM price at 1e-9 (per unit forward) is noise: NaN, left to fill_wings
    k, lo, hi, vol = 0.8, 0.05, 1.0, 0.5
    for _ in range(200):  # bisection (on scipy's BS prices) for the vol whose price is 2e-9
        vol = 0.5 * (lo + hi)
        if _bsm(1.0, math.exp(k), 0.5, vol, 0.0, 0.0, True) < 2e-9:
            lo = vol
        else:
            hi = vol
    price_above = float(_bsm(1.0, math.exp(k), 0.5, vol, 0.0, 0.0, True))
    assert 1e-9 < price_above < 3e-9
    assert otm_implied_vols(np.array([price_above]), np.array([k]), 0.5)[0] == pytest.approx(
        vol, rel=1e-4)
    assert np.isnan(otm_implied_vols(np.array([0.9e-9]), np.array([k]), 0.5)[0])


def test_fill_wings_reaches_both_edges_and_finish_table_keeps_partial_rows():
    t = np.array([[np.nan, np.nan, 0.3, 0.25, 0.2, np.nan, np.nan]])
    fill_wings(t)
    np.testing.assert_array_equal(t, [[0.3, 0.3, 0.3, 0.25, 0.2, 0.2, 0.2]])
    table = np.array([[np.nan, 0.3, 0.25, 0.2, np.nan], [np.nan] * 5])
    out = finish_table(table, 0.1, "Surface(x=1)")
    np.testing.assert_array_equal(out, [[0.3, 0.3, 0.25, 0.2, 0.2], [0.1] * 5])
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="Surface\\(x=1\\): 1 of 3 implied vols"):
        check_table(np.array([0.2, -1e-3, 0.3]), "Surface(x=1)")


def test_refine_is_exact_on_cubics_and_holds_within_the_nodes():
    """Lagrange cubics reproduce x**3 - 2x at the midpoints; a step does not overshoot."""
    x = np.arange(6.0)
    fine = refine(x**3 - 2.0 * x, 2)
    xs = np.arange(11) / 2.0
    np.testing.assert_allclose(fine, xs**3 - 2.0 * xs, atol=1e-12)
    step = refine(np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 4)
    assert step.min() >= 0.0
    assert step.max() <= 1.0
