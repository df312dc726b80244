"""Hand references of the minimum-variance delta's tests: Black-Scholes by hand, Heston by QuantLib.

Shared by ``test_minimum_variance.py``, ``test_minimum_variance_audit.py`` and
``test_minimum_variance_book.py`` (``tests/helpers`` is on pytest's ``pythonpath``).
"""

from __future__ import annotations

import math

import QuantLib as ql  # noqa: N813  (the conventional alias)


def normal_cdf(x):
    """The standard normal cdf, ``(1 + erf(x / sqrt 2)) / 2``."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(spot, strike, tau, sigma, rate, dividend, is_call):
    """Price, delta and vega (per unit of vol) of one unit; the payoff at ``tau <= 0``."""
    if tau <= 0.0:
        return max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0), 0.0, 0.0
    root = sigma * math.sqrt(tau)
    d1 = (math.log(spot / strike) + (rate - dividend) * tau) / root + root / 2
    d2 = d1 - root
    carry, discount = math.exp(-dividend * tau), math.exp(-rate * tau)
    if is_call:
        price = spot * carry * normal_cdf(d1) - strike * discount * normal_cdf(d2)
        delta = carry * normal_cdf(d1)
    else:
        price = strike * discount * normal_cdf(-d2) - spot * carry * normal_cdf(-d1)
        delta = -carry * normal_cdf(-d1)
    vega = spot * carry * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) * math.sqrt(tau)
    return price, delta, vega


def quantlib_heston_f(spot, strike, days, v, kappa, theta, xi, rho):
    """Hull and White's ``f = sqrt(T) S / vega_BS (dC/dS + rho xi / S dC/dv - delta_BS)``.

    For the CALL of the strike and expiry (a put's is the same at r = q = 0: its value, delta
    and MV delta are the call's less the underlying's, its vega the call's). Heston's prices
    from QuantLib's AnalyticHestonEngine (central differences); ``delta_BS`` and ``vega_BS``
    Black-Scholes' at the implied vol of Heston's price. Returns ``(f, vega_BS)``.
    """
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, ql.Actual365Fixed()))

    def price(s, variance):
        process = ql.HestonProcess(curve, curve, ql.QuoteHandle(ql.SimpleQuote(s)), variance,
                                   kappa, theta, xi, rho)
        option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, strike),
                                  ql.EuropeanExercise(today + days))
        option.setPricingEngine(ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100_000))
        return option.NPV()

    tau = days / 365.0
    h_s, h_v = 1e-2, 1e-5
    c_s = (price(spot + h_s, v) - price(spot - h_s, v)) / (2 * h_s)
    c_v = (price(spot, v + h_v) - price(spot, v - h_v)) / (2 * h_v)
    stdev = ql.blackFormulaImpliedStdDev(ql.Option.Call, strike, spot, price(spot, v))
    d1 = math.log(spot / strike) / stdev + stdev / 2
    delta_bs = 0.5 * math.erfc(-d1 / math.sqrt(2))
    vega_bs = spot * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) * math.sqrt(tau)
    return math.sqrt(tau) * spot / vega_bs * (c_s + rho * xi / spot * c_v - delta_bs), vega_bs
