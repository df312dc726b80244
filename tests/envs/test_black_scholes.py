"""Black-Scholes-Merton prices and greeks against QuantLib, closed-form limits and each other.

References: QuantLib's ``AnalyticEuropeanEngine`` (price, delta, gamma, vega, theta) and
``BlackCalculator`` (vanna; volga as the central difference of its vega); put-call parity
(Hull, *Options, Futures and Other Derivatives*, 10th ed., sec. 17.4:
``C - P = S e^{-q tau} - K e^{-r tau}``); greeks as derivatives of the price by central finite
differences; the implied vol of QuantLib's ``EuropeanOption.impliedVolatility``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813
import torch

from hedgearena.envs.black_scholes import GREEKS, black_scholes_greeks, black_scholes_price
from hedgearena.envs.implied_vol import (
    NoImpliedVolWarning,
    implied_vol_status,
    implied_volatility,
)

TODAY = ql.Date(15, 1, 2025)


def _grid(n: int = 1200, seed: int = 7) -> dict[str, np.ndarray]:
    """Random inputs, with deep ITM/OTM strikes, short and long expiries, low and high vols."""
    rng = np.random.default_rng(seed)
    spot = rng.uniform(20.0, 500.0, n)
    moneyness = np.exp(rng.normal(0.0, 0.35, n))
    moneyness[:100] = np.geomspace(0.3, 3.0, 100)  # deep in and out of the money
    days = rng.integers(1, 3650, n)
    days[100:200] = rng.integers(1, 5, 100)  # a day or a few
    vol = rng.uniform(0.02, 1.2, n)
    vol[200:260] = rng.uniform(0.005, 0.02, 60)  # nearly deterministic
    vol[260:300] = rng.uniform(1.5, 3.0, 40)  # crisis-level
    return {
        "spot": spot,
        "strike": spot * moneyness,
        "days": days,
        "tau": days / 365.0,
        "vol": vol,
        "rate": rng.uniform(-0.01, 0.08, n),
        "dividend": rng.uniform(0.0, 0.05, n),
        "is_call": rng.random(n) < 0.5,
    }


def _quantlib(g: dict[str, np.ndarray], i: int) -> dict[str, float]:
    """QuantLib's analytic European engine for input ``i`` (Actual/365 Fixed, continuous rates)."""
    ql.Settings.instance().evaluationDate = TODAY
    dc = ql.Actual365Fixed()
    spot = ql.SimpleQuote(float(g["spot"][i]))
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, float(g["dividend"][i]), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, float(g["rate"][i]), dc)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(TODAY, ql.NullCalendar(), float(g["vol"][i]), dc)
        ),
    )
    kind = ql.Option.Call if g["is_call"][i] else ql.Option.Put
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(kind, float(g["strike"][i])),
        ql.EuropeanExercise(TODAY + int(g["days"][i])),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    tau = float(g["tau"][i])
    forward = float(g["spot"][i]) * np.exp((g["rate"][i] - g["dividend"][i]) * tau)

    def calculator(vol: float) -> ql.BlackCalculator:
        return ql.BlackCalculator(
            ql.PlainVanillaPayoff(kind, float(g["strike"][i])), float(forward),
            vol * np.sqrt(tau), float(np.exp(-g["rate"][i] * tau)),
        )

    vol, h = float(g["vol"][i]), 1e-6 * float(g["vol"][i])
    return {
        "price": option.NPV(),
        "delta": option.delta(),
        "gamma": option.gamma(),
        "vega": option.vega(),
        "theta": option.theta(),
        "vanna": calculator(vol).vanna(float(g["spot"][i]), tau),
        # BlackCalculator.volga (1.44) disagrees with the derivative of its own vega away from
        # the money (e.g. 99.6 against 183.3, the FD of its vega); the reference is that FD.
        "volga": (calculator(vol + h).vega(tau) - calculator(vol - h).vega(tau)) / (2 * h),
    }


@pytest.fixture(scope="module")
def grid() -> dict[str, np.ndarray]:
    return _grid()


@pytest.fixture(scope="module")
def quantlib(grid: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = [_quantlib(grid, i) for i in range(len(grid["spot"]))]
    return {name: np.array([r[name] for r in rows]) for name in GREEKS}


def _ours(g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rates = {}
    for name in GREEKS:
        values = np.empty_like(g["spot"])
        for i in range(len(values)):  # rate and dividend are scalars per call
            values[i] = getattr(
                black_scholes_greeks(
                    g["spot"][i], g["strike"][i], g["tau"][i], g["vol"][i], float(g["rate"][i]),
                    float(g["dividend"][i]), bool(g["is_call"][i]), select=(name,),
                ),
                name,
            )
        rates[name] = values
    return rates


@pytest.fixture(scope="module")
def ours(grid: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return _ours(grid)


@pytest.mark.parametrize("name", GREEKS)
def test_every_greek_matches_quantlib_on_1200_random_inputs(name, grid, quantlib, ours) -> None:
    # QuantLib is exact here (closed forms); the scale is the option's natural size so that the
    # deep-OTM tails, where both are ~1e-300, do not dominate a relative test.
    scale = {"price": grid["spot"], "delta": 1.0, "gamma": 1.0 / grid["spot"], "vega": grid["spot"],
             "theta": grid["spot"], "vanna": 1.0, "volga": grid["spot"]}[name]
    rtol = 1e-6 if name == "volga" else 1e-8  # volga's reference is a finite difference
    np.testing.assert_allclose(ours[name], quantlib[name], rtol=rtol, atol=1e-12 * np.max(scale))
    assert np.isfinite(ours[name]).all()


def test_vectorised_call_equals_elementwise_calls(grid, ours) -> None:
    rate, dividend = 0.03, 0.01
    g = black_scholes_greeks(grid["spot"], grid["strike"], grid["tau"], grid["vol"], rate, dividend,
                             grid["is_call"])
    i = 17
    one = black_scholes_greeks(grid["spot"][i], grid["strike"][i], grid["tau"][i], grid["vol"][i],
                               rate, dividend, bool(grid["is_call"][i]))
    for name in GREEKS:
        assert getattr(g, name).shape == grid["spot"].shape
        assert getattr(g, name)[i] == pytest.approx(float(getattr(one, name)), rel=1e-14)


def test_put_call_parity(grid) -> None:
    args = (grid["spot"], grid["strike"], grid["tau"], grid["vol"], 0.04, 0.02)
    call = black_scholes_greeks(*args, True)
    put = black_scholes_greeks(*args, False)
    forward_value = grid["spot"] * np.exp(-0.02 * grid["tau"]) - grid["strike"] * np.exp(
        -0.04 * grid["tau"]
    )
    np.testing.assert_allclose(call.price - put.price, forward_value, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(call.delta - put.delta, np.exp(-0.02 * grid["tau"]), atol=1e-12)
    for name in ("gamma", "vega", "vanna", "volga"):
        np.testing.assert_allclose(getattr(call, name), getattr(put, name), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_are_the_derivatives_of_the_price(is_call: bool) -> None:
    rng = np.random.default_rng(3)
    n = 400
    spot, strike = rng.uniform(50, 150, n), rng.uniform(60, 140, n)
    tau, vol, r, q = rng.uniform(0.05, 2.0, n), rng.uniform(0.1, 0.6, n), 0.03, 0.015

    def price(s=spot, t=tau, v=vol):
        return black_scholes_price(s, strike, t, v, r, q, is_call)

    g = black_scholes_greeks(spot, strike, tau, vol, r, q, is_call)
    hs, hv, ht = 1e-4 * spot, 1e-5, 1e-6
    fd = {
        "delta": (price(s=spot + hs) - price(s=spot - hs)) / (2 * hs),
        "gamma": (price(s=spot + hs) - 2 * price() + price(s=spot - hs)) / hs**2,
        "vega": (price(v=vol + hv) - price(v=vol - hv)) / (2 * hv),
        "theta": -(price(t=tau + ht) - price(t=tau - ht)) / (2 * ht),
    }
    delta = lambda v: black_scholes_greeks(spot, strike, tau, v, r, q, is_call).delta  # noqa: E731
    vega = lambda v: black_scholes_greeks(spot, strike, tau, v, r, q, is_call).vega  # noqa: E731
    fd["vanna"] = (delta(vol + hv) - delta(vol - hv)) / (2 * hv)
    fd["volga"] = (vega(vol + hv) - vega(vol - hv)) / (2 * hv)
    for name, value in fd.items():
        np.testing.assert_allclose(getattr(g, name), value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_limits_at_expiry_are_exact() -> None:
    spot = np.array([90.0, 100.0, 110.0])
    for is_call, sign in ((True, 1.0), (False, -1.0)):
        g = black_scholes_greeks(spot, 100.0, 0.0, 0.2, 0.05, 0.02, is_call)
        np.testing.assert_array_equal(g.price, np.maximum(sign * (spot - 100.0), 0.0))
        np.testing.assert_array_equal(g.delta, sign * np.array([0.0, 0.5, 1.0]) if is_call
                                      else np.array([-1.0, -0.5, 0.0]))
        for name in ("gamma", "vega", "theta", "vanna", "volga"):
            np.testing.assert_array_equal(getattr(g, name), 0.0)


def test_limits_at_zero_vol_are_the_discounted_forward_intrinsic() -> None:
    spot, strike, tau, r, q = np.array([80.0, 120.0]), 100.0, 0.5, 0.05, 0.01
    g = black_scholes_greeks(spot, strike, tau, 0.0, r, q, True)
    fwd_value = spot * np.exp(-q * tau) - strike * np.exp(-r * tau)
    np.testing.assert_allclose(g.price, np.maximum(fwd_value, 0.0), rtol=1e-15)
    np.testing.assert_allclose(g.delta, [0.0, np.exp(-q * tau)], rtol=1e-15)
    # theta of the deterministic value K e^{-r tau} - S e^{-q tau} held ITM: q S e^{-q tau} - r K.
    itm_theta = q * spot[1] * np.exp(-q * tau) - r * strike * np.exp(-r * tau)
    np.testing.assert_allclose(g.theta, [0.0, itm_theta], rtol=1e-14)
    for name in ("gamma", "vega", "vanna", "volga"):
        np.testing.assert_array_equal(getattr(g, name), 0.0)
    # The limit is continuous: a tiny vol gives nearly the same price.
    near = black_scholes_greeks(spot, strike, tau, 1e-6, r, q, True)
    np.testing.assert_allclose(near.price, g.price, atol=1e-9)


def test_no_nan_at_extremes() -> None:
    spot = np.array([1e-3, 1.0, 100.0, 1e5, 1e8])[:, None]
    tau = np.array([0.0, 1e-12, 1e-6, 1.0, 50.0])[None, :]
    for vol in (0.0, 1e-8, 0.2, 5.0):
        for is_call in (True, False):
            g = black_scholes_greeks(spot, 100.0, tau, vol, 0.05, 0.03, is_call)
            for name in GREEKS:
                assert np.isfinite(getattr(g, name)).all(), (name, vol, is_call)


def test_torch_matches_numpy_and_autograd_delta_is_delta() -> None:
    rng = np.random.default_rng(5)
    spot, strike = rng.uniform(80, 120, 50), rng.uniform(80, 120, 50)
    tau, vol = rng.uniform(0.01, 1.0, 50), rng.uniform(0.1, 0.5, 50)
    ref = black_scholes_greeks(spot, strike, tau, vol, 0.02, 0.01, True)
    s = torch.tensor(spot, requires_grad=True)
    g = black_scholes_greeks(s, torch.tensor(strike), torch.tensor(tau), torch.tensor(vol), 0.02,
                             0.01, True)
    for name in GREEKS:
        np.testing.assert_allclose(getattr(g, name).detach().numpy(), getattr(ref, name),
                                   rtol=1e-10, atol=1e-14)
    g.price.sum().backward()
    np.testing.assert_allclose(s.grad.numpy(), ref.delta, rtol=1e-10)


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(ValueError, match="spot must be finite and > 0"):
        black_scholes_price(-1.0, 100.0, 1.0, 0.2)
    with pytest.raises(ValueError, match="vol must be finite and >= 0"):
        black_scholes_price(100.0, 100.0, 1.0, -0.2)
    for name, args in (("vol", (100.0, 100.0, 1.0, np.inf)), ("tau", (100.0, 100.0, np.inf, 0.2)),
                       ("spot", (np.inf, 100.0, 1.0, 0.2))):  # they gave NaN greeks
        with pytest.raises(ValueError, match=f"{name} must be finite and .* got inf"):
            black_scholes_greeks(*(np.array([a]) for a in args))
    with pytest.raises(ValueError, match="select must name greeks"):
        black_scholes_greeks(100.0, 100.0, 1.0, 0.2, select=("rho",))


# ------------------------------------------------------------------------- implied volatility
def test_implied_vol_round_trip_on_the_grid(grid) -> None:
    r, q = 0.03, 0.01
    price = black_scholes_price(grid["spot"], grid["strike"], grid["tau"], grid["vol"], r, q,
                                grid["is_call"])
    vega = black_scholes_greeks(grid["spot"], grid["strike"], grid["tau"], grid["vol"], r, q,
                                grid["is_call"]).vega
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every price of the grid has a vol: no warning
        vol = implied_volatility(price, grid["spot"], grid["strike"], grid["tau"], r, q,
                                 grid["is_call"])
    assert np.isfinite(vol).all()
    # Where the price determines the vol to 1e-8 (a 1e-8 relative change of vol moves the price
    # by more than 1e3 ulps of the in-the-money price it is solved from), the vol is exact.
    informative = vega * grid["vol"] * 1e-8 > 1e3 * 2.2e-16 * np.maximum(price, 1e-300)
    assert informative.mean() > 0.9
    np.testing.assert_allclose(vol[informative], grid["vol"][informative], rtol=1e-8, atol=1e-9)
    # Everywhere, the vol found reprices the option.
    repriced = black_scholes_price(grid["spot"], grid["strike"], grid["tau"], vol, r, q,
                                   grid["is_call"])
    np.testing.assert_allclose(repriced, price, rtol=1e-9, atol=1e-9)


def test_implied_vol_against_quantlib() -> None:
    ql.Settings.instance().evaluationDate = TODAY
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, 0.01, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, 0.05, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(TODAY, ql.NullCalendar(), 0.3, dc)),
    )
    for strike, kind, price in ((90.0, ql.Option.Put, 3.1), (120.0, ql.Option.Call, 2.5)):
        option = ql.EuropeanOption(ql.PlainVanillaPayoff(kind, strike),
                                   ql.EuropeanExercise(TODAY + 182))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        expected = option.impliedVolatility(price, process, 1e-12, 1000, 1e-4, 4.0)
        ours = implied_volatility(price, 100.0, strike, 182 / 365, 0.05, 0.01,
                                  kind == ql.Option.Call)
        assert float(ours) == pytest.approx(expected, rel=1e-9)


def test_implied_vol_at_intrinsic_is_zero_and_below_is_nan_with_a_warning() -> None:
    spot, strike, tau, r, q = 100.0, 90.0, 0.5, 0.05, 0.0
    intrinsic = spot - strike * np.exp(-r * tau)
    prices = np.array([intrinsic, intrinsic - 1.0, spot + 1.0, 15.0])
    message = r"2 of 4 prices: 1 x price below the discounted intrinsic"
    with pytest.warns(NoImpliedVolWarning, match=message):
        vol = implied_volatility(prices, spot, strike, tau, r, q, True)
    assert vol[0] == 0.0
    assert np.isnan(vol[1:3]).all()
    assert np.isfinite(vol[3])
    assert implied_vol_status(prices, spot, strike, tau, r, q, True).tolist() == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="no implied volatility for 2 of 4"):
        implied_volatility(prices, spot, strike, tau, r, q, True, errors="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        implied_volatility(prices, spot, strike, tau, r, q, True, errors="nan")


def test_implied_vol_of_expired_options_and_bad_inputs() -> None:
    status = implied_vol_status([5.0, 6.0, 1.0, np.nan], [105.0, 105.0, -1.0, 100.0], 100.0,
                                [0.0, 0.0, 1.0, 1.0])
    assert status.tolist() == [0, 3, 4, 4]
    vol = implied_volatility([5.0, 6.0], 105.0, 100.0, 0.0, errors="nan")
    assert vol[0] == 0.0
    assert np.isnan(vol[1])
    with pytest.raises(ValueError, match="errors must be"):
        implied_volatility(5.0, 100.0, 100.0, 1.0, errors="ignore")
