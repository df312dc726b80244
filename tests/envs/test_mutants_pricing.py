"""Black-Scholes on large mixed books against QuantLib (tests found by mutation testing).

Inputs above ``_CHUNK`` (65,536) elements are priced block by block; a book mixing calls and
puts must keep each element's type in every block.
"""

from __future__ import annotations

import numpy as np
import pytest

from hedgearena.envs.black_scholes import _CHUNK, black_scholes_greeks

ql = pytest.importorskip("QuantLib")

RATE, DIVIDEND = 0.03, 0.01


def _quantlib(spot: float, strike: float, days: int, vol: float, call: bool) -> tuple[float, ...]:
    """Price, delta, gamma, vega of a European option: QuantLib's AnalyticEuropeanEngine.

    Flat rate and dividend curves, Actual/365 Fixed, so ``tau = days / 365`` exactly.
    """
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    counter = ql.Actual365Fixed()
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, strike),
        ql.EuropeanExercise(today + days),
    )
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, DIVIDEND, counter)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, counter)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, counter)),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return option.NPV(), option.delta(), option.gamma(), option.vega()


def test_a_large_book_mixing_calls_and_puts_is_priced_per_option_in_every_block() -> None:
    """72,768 options (two blocks), calls at even and puts at odd places, against QuantLib."""
    n = _CHUNK + 7_232
    rng = np.random.default_rng(5)
    spot = rng.uniform(80.0, 120.0, n)
    strike = rng.uniform(85.0, 115.0, n)
    days = rng.integers(10, 400, n)
    vol = rng.uniform(0.1, 0.4, n)
    is_call = np.arange(n) % 2 == 0
    got = black_scholes_greeks(spot, strike, days / 365.0, vol, RATE, DIVIDEND, is_call,
                               select=("price", "delta", "gamma", "vega"))
    for i in (0, 1, 2, 3, 1001, _CHUNK - 2, _CHUNK - 1, _CHUNK, _CHUNK + 1, n - 2, n - 1):
        want = _quantlib(spot[i], strike[i], int(days[i]), vol[i], bool(is_call[i]))
        have = (got.price[i], got.delta[i], got.gamma[i], got.vega[i])
        np.testing.assert_allclose(have, want, rtol=1e-9, atol=1e-10, err_msg=str(i))
    # put-call parity on every element: C - P = S e^{-q tau} - K e^{-r tau} (Hull, ch. 11)
    other = black_scholes_greeks(spot, strike, days / 365.0, vol, RATE, DIVIDEND, ~is_call,
                                 select=("price",)).price
    sign = np.where(is_call, 1.0, -1.0)
    forward_gap = spot * np.exp(-DIVIDEND * days / 365.0) - strike * np.exp(-RATE * days / 365.0)
    np.testing.assert_allclose(sign * (got.price - other), forward_gap, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("name", "bad", "message"), [
    ("spot", np.nan, "spot must be finite and > 0"),
    ("strike", 0.0, "strike must be finite and > 0"),
    ("tau", -1e-9, "tau must be finite and >= 0"),
    ("vol", np.inf, "vol must be finite and >= 0"),
])
def test_a_bad_value_in_any_block_of_a_big_input_is_named(name, bad, message) -> None:
    """Big inputs are validated block by block: a bad value in the last block is still found."""
    n = 2 * _CHUNK + 5
    good = {"spot": 100.0, "strike": 100.0, "tau": 0.5, "vol": 0.2}
    values = {key: np.full(n, value) for key, value in good.items()}
    for index in (0, _CHUNK, n - 1):
        values[name] = np.where(np.arange(n) == index, bad, good[name])
        with pytest.raises(ValueError, match=message):
            black_scholes_greeks(*values.values(), select=("price",))
