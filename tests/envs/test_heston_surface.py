"""Heston's semi-closed form and its implied-vol surface against QuantLib's AnalyticHestonEngine.

The reference is QuantLib's AnalyticHestonEngine (Heston 1993, integrated adaptively), an
implementation independent of ours (Lewis 2001 single integral, Albrecher et al. 2007 branch).
"""

import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)

from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.heston import Heston
from hedgearena.envs.heston_surface import (
    HestonGrid,
    HestonSurface,
    heston_call_price,
    heston_characteristic,
)
from hedgearena.envs.implied_vol import implied_volatility
from hedgearena.envs.vol_surface import heston_average_variance

DEFAULT = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7}
PARAMETER_SETS = [
    DEFAULT,
    {"kappa": 0.5, "theta": 0.09, "xi": 1.0, "rho": -0.3},  # Feller violated 10-fold
    {"kappa": 4.0, "theta": 0.02, "xi": 0.3, "rho": 0.4},  # positive correlation
]
EXTREME_SETS = [  # the characteristic function decays like exp(-c sqrt(u)): a long integral
    {"kappa": 0.1, "theta": 0.04, "xi": 2.0, "rho": -0.99},
    {"kappa": 1.0, "theta": 0.09, "xi": 1.5, "rho": 0.99},
    {"kappa": 2.0, "theta": 0.04, "xi": 1.0, "rho": -0.95},
]


def bs_price(spot, strike, tau, vol, rate, dividend):
    """Black-Scholes call price (hedgearena's own, checked against QuantLib elsewhere)."""
    return black_scholes_greeks(spot, strike, tau, vol, rate, dividend, select=("price",)).price


def quantlib_call(spot, strike, days, v0, params, rate=0.0, dividend=0.0):
    """QuantLib's AnalyticHestonEngine price of a call expiring in ``days`` days of 365."""
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, rate, day_count))
    dividends = ql.YieldTermStructureHandle(ql.FlatForward(today, dividend, day_count))
    process = ql.HestonProcess(curve, dividends, ql.QuoteHandle(ql.SimpleQuote(spot)),
                               max(v0, 1e-10), params["kappa"], params["theta"], params["xi"],
                               params["rho"])
    option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, strike),
                              ql.EuropeanExercise(today + days))
    option.setPricingEngine(ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100_000))
    return option.NPV()


def standard_strikes(days, v0, params, zs):
    """Strikes at ``zs`` standard deviations of the expected average variance (spot 100)."""
    tau = days / 365
    spread = math.sqrt(heston_average_variance(v0, tau, params["kappa"], params["theta"]) * tau)
    return 100.0 * np.exp(np.asarray(zs) * spread)


@pytest.mark.parametrize("params", PARAMETER_SETS)
@pytest.mark.parametrize("days", [1, 5, 30, 120, 500])
@pytest.mark.parametrize("v0", [1e-8, 0.0025, 0.04, 0.36])
def test_call_price_matches_quantlib_to_the_out_of_the_money_price(params, days, v0):
    # within 1e-8 (currency on spot 100) or 1e-4 of the out-of-the-money option's own price,
    # from -5 to +5 standard deviations
    strikes = standard_strikes(days, v0, params, [-5, -3, -1, 0, 1, 3, 5])
    ours = 100.0 * heston_call_price(np.log(strikes / 100.0), days / 365, v0, **params)
    for strike, got in zip(strikes, ours, strict=True):
        want = quantlib_call(100.0, strike, days, v0, params)
        otm = want - max(100.0 - strike, 0.0)
        assert abs(got - want) <= max(1e-8, 1e-4 * otm), (strike, got, want)


@pytest.mark.parametrize("params", EXTREME_SETS)
@pytest.mark.parametrize(("days", "v0"), [(30, 0.04), (250, 0.0046), (600, 0.0037)])
def test_call_price_matches_quantlib_with_extreme_correlation_and_vol_of_variance(
    params, days, v0
):
    # within 1e-6 (currency on spot 100: 1e-8 of the forward, what vol_table.PRICE_NOISE leaves
    # to the wing fill) or 1e-4 of the out-of-the-money price
    strikes = standard_strikes(days, v0, params, [-3, -1, 0, 1, 2, 3])
    ours = 100.0 * heston_call_price(np.log(strikes / 100.0), days / 365, v0, **params)
    for strike, got in zip(strikes, ours, strict=True):
        want = quantlib_call(100.0, strike, days, v0, params)
        otm = want - max(100.0 - strike, 0.0)
        assert abs(got - want) <= max(1e-6, 1e-4 * otm), (strike, got, want)


def test_extreme_parameters_tabulate_non_negative_vols():
    # zero prices in the wings used to invert to vol 0 and the cubics then dipped below 0
    surface = HestonSurface(kappa=1.0, theta=0.09, xi=1.5, rho=0.99)
    assert surface.table().min() >= 0.0
    vols = surface.implied_vol(100.0, np.geomspace(20.0, 500.0, 200)[:, None],
                               np.array([1 / 365, 0.03125, 0.5, 2.0]), 0.81, 100.0, 0.0, 0.0)
    assert np.all(np.isfinite(vols))
    assert np.all(vols >= 0.0)


def test_low_variance_and_short_expiries_are_accurate():
    # OptionBook's Heston is often at vols below 7%, and every option lives through its last
    # days: 1 to 90 days, vols of 0.5% to 7%, |z| <= 3 at the defaults, within 5e-4 in vol
    surface = HestonSurface(**DEFAULT)
    rng = np.random.default_rng(11)
    days = rng.integers(1, 91, 60)
    v0 = rng.uniform(0.005, 0.07, 60) ** 2
    zs = rng.uniform(-3.0, 3.0, 60)
    for d, v, z in zip(days, v0, zs, strict=True):
        strike = standard_strikes(int(d), v, DEFAULT, [z])[0]
        price = quantlib_call(100.0, strike, int(d), v, DEFAULT)
        want = implied_volatility(price, 100.0, strike, d / 365)
        got = surface.implied_vol(100.0, strike, d / 365, v, 100.0, 0.0, 0.0)
        assert abs(float(got) - float(want)) < 5e-4, (d, v, z, float(got), float(want))


def test_tiny_variances_tabulate():
    # a long-run vol of 1.2% (found by the env fuzz): at the shortest expiries no price rises
    # above the noise and the rows take the short-time limit, sqrt of the average variance
    surface = HestonSurface(kappa=2.0, theta=0.0001373291015625, xi=0.5, rho=-0.7)
    vols = surface.implied_vol(100.0, np.array([99.0, 100.0, 101.0]), np.array([[1e-6], [0.1]]),
                               0.0, 100.0, 0.0, 0.0)
    assert np.all(np.isfinite(vols))
    assert np.all(vols >= 0.0)


def test_nan_inputs_give_nan_and_integers_are_prices():
    surface = HestonSurface(**DEFAULT)
    vols = surface.implied_vol(np.array([100.0, np.nan, 100.0, 100.0]),
                               np.array([100.0, 100.0, np.nan, 100.0]),
                               np.array([0.25, 0.25, 0.25, np.inf]), 0.04, 100.0, 0.0, 0.0)
    assert np.isnan(vols[1:3]).all()
    assert np.isfinite(vols[[0, 3]]).all()
    ints = surface.implied_vol(np.array([100, 100]), 110.0, 0.25, 0.04, 100.0, 0.0, 0.0)
    assert ints.dtype == np.float64
    assert np.all(ints > 0.1)
    singles = surface.implied_vol(np.array([100.0, 101.0], dtype=np.float32), np.float32(105.0),
                                  np.float32(0.1), np.float32(0.04), 100.0, 0.0, 0.0)
    assert singles.dtype == np.float32  # numpy scalars (0-d after clip) kept the spot's dtype


def test_gradients_are_finite_at_zero_variance_and_expiry():
    import torch

    surface = HestonSurface(**DEFAULT)
    for dtype in (torch.float32, torch.float64):
        spot = torch.tensor([100.0, 100.0, 100.0], dtype=dtype, requires_grad=True)
        level = torch.tensor([0.0, 0.04, 0.0], dtype=dtype, requires_grad=True)
        tau = torch.tensor([0.1, 0.0, 0.0], dtype=dtype, requires_grad=True)
        surface.implied_vol(spot, 105.0, tau, level, 100.0, 0.0, 0.0).sum().backward()
        for grad in (spot.grad, level.grad, tau.grad):
            assert torch.isfinite(grad).all()


def test_characteristic_function_is_a_martingale_and_normalised():
    u = np.array([-1j, 0.0])
    for params in PARAMETER_SETS:
        for tau in (1 / 365, 0.5, 5.0):
            np.testing.assert_allclose(heston_characteristic(u, tau, 0.05, **params), 1.0,
                                       atol=1e-13)


def test_vanishing_vol_of_variance_is_black_scholes_at_the_average_variance():
    # xi -> 0: the variance follows its expectation, a deterministic path; Black-Scholes with
    # the average variance to expiry is then exact, to O(xi^2) with rho = 0 (and the form of
    # the characteristic function keeps its digits: 1 / xi^2 = 1e12 multiplies O(xi^2) terms)
    params = {"kappa": 3.0, "theta": 0.04, "xi": 1e-6, "rho": 0.0}
    tau, v0 = 0.5, 0.09
    strikes = np.array([70.0, 100.0, 130.0])
    vol = math.sqrt(heston_average_variance(v0, tau, 3.0, 0.04))
    want = bs_price(100.0, strikes, tau, vol, 0.0, 0.0)
    got = 100.0 * heston_call_price(np.log(strikes / 100.0), tau, v0, **params)
    np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("params", PARAMETER_SETS)
def test_surface_reprices_quantlib_on_and_between_the_grid_nodes(params):
    # rate 3% and dividend 1%: the surface works on the forward
    surface = HestonSurface(**params)
    rng = np.random.default_rng(7)
    days = rng.integers(3, 366, 24)
    v0 = rng.uniform(0.005, 0.25, 24)
    zs = rng.uniform(-3.0, 3.0, 24)
    for d, v, z in zip(days, v0, zs, strict=True):
        tau = d / 365
        forward = 100.0 * math.exp(0.02 * tau)
        spread = math.sqrt(heston_average_variance(v, tau, params["kappa"], params["theta"]) * tau)
        strike = forward * math.exp(z * spread)
        price = quantlib_call(100.0, strike, int(d), v, params, rate=0.03, dividend=0.01)
        want = implied_volatility(price, 100.0, strike, tau, 0.03, 0.01)
        got = surface.implied_vol(100.0, strike, tau, v, 100.0, 0.03, 0.01)
        assert abs(float(got) - float(want)) < 1e-3, (d, v, z, float(got), float(want))


def test_surface_nodes_are_heston_vols():
    surface = HestonSurface(**DEFAULT)
    taus, z = surface.grid.tau_z_axes()
    vols = surface.grid.vol_axis()
    table = surface.nodes()
    for i, j, k in [(5, 8, 20), (12, 4, 8), (30, 20, 33), (40, 2, 6), (3, 10, 36)]:
        tau, v = taus[i], vols[j] ** 2
        spread = math.sqrt(heston_average_variance(v, tau, 2.0, 0.04) * tau)
        strike = math.exp(z[k] * spread)
        price = heston_call_price(np.array([math.log(strike)]), tau, v, **DEFAULT)[0]
        want = implied_volatility(price, 1.0, strike, tau)
        assert table[i, j, k] == pytest.approx(float(want), abs=1e-6)


def test_surface_edges_hold_and_never_give_nan():
    surface = HestonSurface(**DEFAULT)
    grid = surface.grid
    vol = surface.implied_vol(100.0, np.array([1e-3, 1.0, 100.0, 1e3, 1e6]), 0.25, 0.04, 100.0,
                              0.0, 0.0)
    assert np.all(np.isfinite(vol))
    assert np.all(vol > 0)
    spread = math.sqrt(heston_average_variance(0.04, 0.25, 2.0, 0.04) * 0.25)
    edge = surface.implied_vol(100.0, 100.0 * math.exp(grid.max_z * spread), 0.25, 0.04, 100.0,
                               0.0, 0.0)
    assert vol[-1] == pytest.approx(float(edge), abs=1e-12)  # flat beyond max_z
    np.testing.assert_allclose(  # at expiry: sqrt(v) at every strike
        surface.implied_vol(100.0, np.array([80.0, 100.0, 120.0]), 0.0, 0.09, 100.0, 0.0, 0.0),
        0.3, rtol=1e-12)
    extremes = surface.implied_vol(100.0, 100.0, np.array([0.0, 1e-9, 5.0, 5.0]),
                                   np.array([0.0, 0.0, 0.0, 10.0]), 100.0, 0.0, 0.0)
    assert np.all(np.isfinite(extremes))
    assert np.all(extremes >= 0)
    beyond = surface.implied_vol(100.0, 100.0, np.array([grid.max_tau, 5.0]), 0.04, 100.0, 0.0,
                                 0.0)
    assert beyond[1] == pytest.approx(beyond[0], abs=1e-12)  # held at max_tau


def test_heston_market_marks_at_heston_prices():
    # the market's own surface (Heston's default) prices its options as QuantLib does
    model = Heston(**DEFAULT, v0=0.05, rate=0.03, dividend=0.01)
    paths = model.simulate(2, 1, 1 / 250, np.random.default_rng(0))
    assert paths.surface == HestonSurface(**DEFAULT)
    strikes = np.array([85.0, 100.0, 115.0])
    tau = 73 / 365
    vol = paths.implied_vol(strikes[None, :], tau, step=0)[0]
    ours = bs_price(100.0, strikes, tau, vol, 0.03, 0.01)
    want = [quantlib_call(100.0, k, 73, 0.05, DEFAULT, 0.03, 0.01) for k in strikes]
    np.testing.assert_allclose(ours, want, rtol=1e-3, atol=1e-3)  # currency on spot 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xi": 0.0}, r"HestonSurface.xi must be a finite number > 0.0, got 0.0"),
        ({"rho": 1.5}, r"HestonSurface.rho must be a finite number >= -1.0 and <= 1.0, got 1.5"),
        ({"grid": HestonGrid(n_z=5), "kappa": -1.0}, r"HestonSurface.kappa must be"),
        ({"grid": {"n_z": 5}}, r"HestonSurface.grid must be a HestonGrid"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HestonSurface(**kwargs)


def test_grid_validation():
    with pytest.raises(ValueError, match=r"HestonGrid.n_tau must be an integer >= 2, got 1"):
        HestonGrid(n_tau=1)
    with pytest.raises(ValueError, match=r"HestonGrid.max_z must be a finite number > 0.0"):
        HestonGrid(max_z=0.0)
