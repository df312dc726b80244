"""Hand references of the minimum-variance delta's tests: Black-Scholes by hand, Heston by QuantLib.

Shared by ``test_minimum_variance.py``, ``test_minimum_variance_audit.py``,
``test_minimum_variance_book.py`` and ``test_minimum_variance_buckets.py`` (``tests/helpers``
is on pytest's ``pythonpath``).
"""

from __future__ import annotations

import math

import numpy as np
import QuantLib as ql  # noqa: N813  (the conventional alias)

from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.envs.config import make_config

FOUR_OPTIONS = {"options": [
    {"moneyness": 1.0, "expiry_steps": 30, "contracts": -1.0},
    {"moneyness": 0.95, "expiry_steps": 10, "contracts": 2.0, "is_call": False},
    {"moneyness": 1.05, "expiry_steps": 12, "contracts": -1.0},
    {"moneyness": 1.0, "expiry_steps": 60, "contracts": 1.0, "is_call": False},
], "stock": 30.0}
"""A fixed book of four options of expiries 10 to 60 steps and 30 shares."""
FOUR_OPTIONS_RATE, FOUR_OPTIONS_DIVIDEND = 0.03, 0.01


def four_option_config(n_steps=20, rebalance_every=5):
    """:data:`FOUR_OPTIONS` on GBM (sigma 0.2, 250 days a year, r 3%, q 1%), no cost."""
    return make_config("ShortCall", cost=0.0, n_steps=n_steps, rebalance_every=rebalance_every,
                       book=FOUR_OPTIONS, market_kwargs={"rate": FOUR_OPTIONS_RATE,
                                                         "dividend": FOUR_OPTIONS_DIVIDEND})


def delta_hedged(env, decisions):
    """Step a reset ``env`` through ``decisions`` decisions of the Black-Scholes delta hedge."""
    delta = BlackScholesDelta()
    delta.reset(env)
    no_obs = np.zeros((env.num_envs, 0), np.float32)
    for _ in range(decisions):
        env.step_targets(delta.positions(env.state, no_obs))
    return env


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


def held_options(batch, path, step):
    """``(slot, quantity, strike, expiry, is_call)`` of the options held on a path at a step."""
    book = batch.instruments
    shape = book.strike.shape
    fields = [np.broadcast_to(v, shape)[path] for v in (
        book.quantity, book.strike, book.start, book.expiry, book.is_call)]
    quantity, strike, start, expiry, is_call = fields
    return [(i, quantity[i], strike[i], int(expiry[i]), bool(is_call[i]))
            for i in range(shape[1]) if quantity[i] != 0 and start[i] <= step < expiry[i]]


def surface_vol(batch, path, step, spot, strike, tau):
    """The vol the env marks an option at (its market's surface, at the path's state)."""
    market = batch.market
    return float(market.surface.implied_vol(
        np.array([spot]), np.array([strike]), np.array([tau]),
        np.array([market.vol_state[path, step]]), np.array([market.spot[path, 0]]),
        market.rate, market.dividend)[0])


def hand_terms(batch, config, path, step, spot, edges=()):
    """The book's ``sum q vega / (S sqrt T) (1, d, d^2)`` and ``sum q delta`` by hand, d a call's.

    With maturity ``edges`` (years) each option's three terms go to its bucket's columns, the
    bucket counted by hand (the edges below its ``T``: ``T`` at an edge is in the shorter one).
    Returns ``(terms, delta, held)``, ``terms`` ``(3 (len(edges) + 1),)``, with ``held`` the
    options held, each as ``(slot, expiry step, quantity, price, delta)``.
    """
    rate, dividend = batch.market.rate, batch.market.dividend
    terms, delta, held = np.zeros(3 * (len(edges) + 1)), 0.0, []
    for slot, quantity, strike, expiry, is_call in held_options(batch, path, step):
        tau = (expiry - step) * config.dt
        vol = surface_vol(batch, path, step, spot, strike, tau)
        price, d, vega = black_scholes(spot, strike, tau, vol, rate, dividend, is_call)
        call_d = d if is_call else d + math.exp(-dividend * tau)
        bucket = sum(tau > edge for edge in edges)
        terms[3 * bucket:3 * bucket + 3] += quantity * vega / (spot * math.sqrt(tau)) * np.array(
            [1, call_d, call_d**2])
        delta += quantity * d
        held.append((slot, expiry, quantity, price, d))
    return terms, delta, held


def hand_row(batch, config, path, start, end, edges=()):
    """The regression row of ``path`` over the decision interval ``(start, end]``, by hand.

    ``y = sum q (V_end - V_start - delta dS)`` and ``x = sum q vega / (S sqrt T) dS (1, d, d^2)``
    over the options held at ``start`` that are still held at ``end`` (each option's terms in
    its bucket's columns at ``start``, as :func:`hand_terms`). Returns ``(y, x, survivors)``.
    """
    spot = batch.episode.spot
    s0, s1 = float(spot[start, path]), float(spot[end, path])
    _, _, held = hand_terms(batch, config, path, start, s0, edges)
    survivors = [h for h in held if h[1] > end]
    rate, dividend = batch.market.rate, batch.market.dividend
    is_call_of = np.broadcast_to(batch.instruments.is_call, batch.instruments.strike.shape)
    y, x = 0.0, np.zeros(3 * (len(edges) + 1))
    for slot, expiry, quantity, price, d in survivors:
        strike, is_call = float(batch.instruments.strike[path, slot]), bool(is_call_of[path, slot])
        tau0, tau1 = (expiry - start) * config.dt, (expiry - end) * config.dt
        later_vol = surface_vol(batch, path, end, s1, strike, tau1)
        later = black_scholes(s1, strike, tau1, later_vol, rate, dividend, is_call)[0]
        y += quantity * (later - price - d * (s1 - s0))
        vol = surface_vol(batch, path, start, s0, strike, tau0)
        _, _, vega = black_scholes(s0, strike, tau0, vol, rate, dividend, is_call)
        call_d = d if is_call else d + math.exp(-dividend * tau0)
        bucket = sum(tau0 > edge for edge in edges)
        x[3 * bucket:3 * bucket + 3] += quantity * vega / (s0 * math.sqrt(tau0)) * (
            s1 - s0) * np.array([1, call_d, call_d**2])
    return y, x, survivors
