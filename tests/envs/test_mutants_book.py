"""Mutation-testing round over the book, execution, limits, episode build and replay windows.

Each test pins a rule that a hand-made mutant of ``envs/book.py``, ``envs/execution.py``,
``envs/limits.py``, ``envs/episode.py`` or ``envs/historical.py`` broke while the rest of the
suite passed. The expected numbers come from hand computations written out here from the
documented formulas (the modules' docstrings), Black-Scholes-Merton closed forms (Hull,
"Options, Futures, and Other Derivatives", ch. 15 and 19; written out below with scipy's normal
cdf, not the project's pricer) and binomial statistics with stated standard errors.
"""

from __future__ import annotations

import itertools
import math
import types
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hedgearena.envs.book import (
    BookPaths,
    ClientFlow,
    HedgeOption,
    Option,
    OptionBook,
    mark_book,
    mark_hedge_option,
    sample_book,
    sample_client_flow,
)
from hedgearena.envs.execution import (
    MAX_IMPACT_MOVE,
    average_price_factor,
    check_impact,
    child_order,
    filled_order,
)
from hedgearena.envs.historical import HistoricalReplay
from hedgearena.envs.limits import (
    BREACH_FLAGS,
    RiskLimits,
    count_breaches,
    exposures,
    first_breach,
    new_breaches,
    over_limits,
)
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.vol_surface import FlatVol

DT = 1.0 / 252.0


# ----------------------------------------------------------------------------- references
def bs(spot: Any, strike: Any, tau: Any, vol: float, rate: float = 0.0, dividend: float = 0.0,
       call: bool = True) -> dict[str, Any]:
    """Black-Scholes-Merton price and greeks (Hull ch. 15, 19), theta per year (dV/dt).

    At ``tau = 0`` the price is the payoff (the other greeks are not used there).
    """
    spot, strike, tau = (np.asarray(x, dtype=np.float64) for x in (spot, strike, tau))
    if np.all(tau == 0):
        payoff = np.maximum(spot - strike, 0.0) if call else np.maximum(strike - spot, 0.0)
        zero = np.zeros_like(payoff)
        return {"price": payoff, "delta": zero, "gamma": zero, "vega": zero, "theta": zero}
    root = vol * np.sqrt(tau)
    d1 = (np.log(spot / strike) + (rate - dividend + 0.5 * vol**2) * tau) / root
    d2 = d1 - root
    dq, dr = np.exp(-dividend * tau), np.exp(-rate * tau)
    pdf = norm.pdf(d1)
    gamma = dq * pdf / (spot * root)
    vega = spot * dq * pdf * np.sqrt(tau)
    decay = -spot * dq * pdf * vol / (2 * np.sqrt(tau))
    if call:
        price = spot * dq * norm.cdf(d1) - strike * dr * norm.cdf(d2)
        delta = dq * norm.cdf(d1)
        theta = decay + dividend * spot * dq * norm.cdf(d1) - rate * strike * dr * norm.cdf(d2)
    else:
        price = strike * dr * norm.cdf(-d2) - spot * dq * norm.cdf(-d1)
        delta = -dq * norm.cdf(-d1)
        theta = decay - dividend * spot * dq * norm.cdf(-d1) + rate * strike * dr * norm.cdf(-d2)
    return {"price": price, "delta": delta, "gamma": gamma, "vega": vega, "theta": theta}


def _market(spot: list[list[float]], vol: float = 0.2, rate: float = 0.0,
            dividend: float = 0.0, dt: float = DT) -> MarketPaths:
    """Market paths with the given spots and a flat implied vol ``vol``."""
    s = np.asarray(spot, dtype=np.float64)
    level = np.full(s.shape, vol)
    return MarketPaths(times=dt * np.arange(s.shape[1]), spot=s, variance=level**2,
                       vol_state=level, surface=FlatVol(), rate=rate, dividend=dividend)


def test_the_closed_form_reference_matches_a_textbook_value() -> None:
    """Hull's Example 15.6: S 42, K 40, r 10%, sigma 20%, T 0.5: call 4.76, put 0.81."""
    assert float(bs(42.0, 40.0, 0.5, 0.2, 0.1)["price"]) == pytest.approx(4.759, abs=1e-3)
    assert float(bs(42.0, 40.0, 0.5, 0.2, 0.1, call=False)["price"]) == pytest.approx(
        0.8086, abs=1e-3)


# ------------------------------------------------------------- initial book and settlement
def test_initial_book_marks_settles_at_expiry_and_sums_the_instruments() -> None:
    """Two options, their marks summed, the call settled at its expiry step, the put held on.

    Short 2 contracts x 100 of the at-the-money call expiring at step 2, long 1 contract x 50 of
    the 95% put expiring at step 5 (past the 3-step grid: held and marked at the end). Spots
    100, 104, 110, 90. The call pays ``-200 * max(110 - 100, 0) = -2,000`` at step 2, where it
    leaves the book (no value, no greeks after), and the dealer receives the premiums at step 0
    (``-quantity * price``: ``+200 C_0 - 50 P_0``).
    """
    rate, dividend, vol = 0.03, 0.01, 0.25
    market = _market([[100.0, 104.0, 110.0, 90.0]], vol, rate, dividend)
    book = OptionBook(options=(
        Option(moneyness=1.0, expiry_steps=2, contracts=-2.0, is_call=True, multiplier=100.0),
        Option(moneyness=0.95, expiry_steps=5, contracts=1.0, is_call=False, multiplier=50.0),
    ))
    marks = mark_book(sample_book(book, market, np.random.default_rng(0)), market)
    spots = market.spot[0]
    for k, s in enumerate(spots):
        put = bs(s, 95.0, (5 - k) * DT, vol, rate, dividend, call=False)
        call = bs(s, 100.0, (2 - k) * DT, vol, rate, dividend) if k < 2 else None
        for name, field in (("price", "value"), ("delta", "delta"), ("gamma", "gamma"),
                            ("vega", "vega"), ("theta", "theta")):
            expected = 50.0 * put[name] + (-200.0 * call[name] if call else 0.0)
            assert getattr(marks, field)[0, k] == pytest.approx(float(expected), rel=1e-9,
                                                                abs=1e-9), (field, k)
    np.testing.assert_allclose(marks.settlement[0], [0.0, 0.0, -2_000.0, 0.0], atol=1e-9)
    premium0 = (200.0 * bs(100.0, 100.0, 2 * DT, vol, rate, dividend)["price"]
                - 50.0 * bs(100.0, 95.0, 5 * DT, vol, rate, dividend, call=False)["price"])
    np.testing.assert_allclose(marks.premium[0], [float(premium0), 0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(marks.spread_income[0], 0.0)  # initial options pay no spread


def test_a_put_settles_its_intrinsic_value_at_expiry_and_notional_uses_sizes() -> None:
    """A long put of 3 contracts x 10 expiring at step 1, spot 80: ``30 * (100 - 80) = 600``.

    The notional is the largest ``|contracts| * multiplier`` of an option or a client trade:
    ``max(|-3| * 10, 2 * 50) = 100`` with a flow, 30 without (a short book has a positive one).
    """
    market = _market([[100.0, 80.0, 85.0]])
    book = OptionBook(options=(Option(expiry_steps=1, contracts=3.0, is_call=False,
                                      multiplier=10.0),))
    marks = mark_book(sample_book(book, market, np.random.default_rng(0)), market)
    np.testing.assert_allclose(marks.settlement[0], [0.0, 600.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(marks.value[0, 1:], 0.0)
    short = OptionBook(options=(Option(contracts=-3.0, multiplier=10.0),))
    assert short.notional == 30.0
    with_flow = OptionBook(options=(Option(contracts=-3.0, multiplier=10.0),),
                           client_flow=ClientFlow(contracts=2.0, multiplier=50.0))
    assert with_flow.notional == 100.0


# --------------------------------------------------------------------- client trades' cash
def _client_book(pad: int) -> BookPaths:
    """Two client trades on one path, then ``pad`` empty slots.

    A client buys 1 contract x 100 of the 100 call at step 1 expiring at step 3 (the dealer is
    short 100 units); a client sells 2 x 100 of the 105 put at step 2 expiring at step 6, past
    the 4-step grid (the dealer is long 200 units). Half-spread 0.01 (one vol point).
    """
    n = 2 + pad
    strike = np.ones((1, n))
    quantity = np.zeros((1, n))
    is_call = np.ones((1, n), dtype=bool)
    start = np.zeros((1, n), dtype=np.int64)
    expiry = np.ones((1, n), dtype=np.int64)
    spread = np.zeros((1, n))
    strike[0, :2], quantity[0, :2], is_call[0, :2] = (100.0, 105.0), (-100.0, 200.0), (True, False)
    start[0, :2], expiry[0, :2], spread[0, :2] = (1, 2), (3, 6), 0.01
    return BookPaths(strike, quantity, is_call, start, expiry, spread)


@pytest.mark.parametrize("pad", [0, 30])  # 30 empty slots: the sparse pricing of live slots
def test_client_trades_pay_premium_half_spread_and_settle(pad: int) -> None:
    """Premium ``-q * price`` and half-spread ``|q| * 0.01 * vega`` at arrival, settlement after.

    Spots 100, 101, 98, 97, 99 (vol 20%, r 2%). The dealer receives ``100 C(101, 100, 2 dt)`` for
    the call it sells at step 1 and pays ``200 P(98, 105, 4 dt)`` for the put it buys at step 2;
    it earns the half-spread on both sides (positive either way). The call settles
    ``-100 * max(97 - 100, 0) = 0`` at step 3 (out of the money: no cash, no value after); the
    put is held to the end.
    """
    vol, rate = 0.2, 0.02
    spots = [100.0, 101.0, 98.0, 97.0, 99.0]
    market = _market([spots], vol, rate)
    marks = mark_book(_client_book(pad), market)
    call1 = bs(101.0, 100.0, 2 * DT, vol, rate)
    put2 = bs(98.0, 105.0, 4 * DT, vol, rate, call=False)
    premium = [0.0, 100.0 * call1["price"], -200.0 * put2["price"], 0.0, 0.0]
    spread = [0.0, 100.0 * 0.01 * call1["vega"], 200.0 * 0.01 * put2["vega"], 0.0, 0.0]
    np.testing.assert_allclose(marks.premium[0], np.array(premium, dtype=float), atol=1e-9)
    np.testing.assert_allclose(marks.spread_income[0], np.array(spread, dtype=float), atol=1e-9)
    np.testing.assert_allclose(marks.settlement[0], 0.0, atol=1e-12)
    for k, s in enumerate(spots):
        expected = 0.0
        if 1 <= k < 3:
            expected -= 100.0 * float(bs(s, 100.0, (3 - k) * DT, vol, rate)["price"])
        if k >= 2:
            expected += 200.0 * float(bs(s, 105.0, (6 - k) * DT, vol, rate, call=False)["price"])
        assert marks.value[0, k] == pytest.approx(expected, abs=1e-9), k


@pytest.mark.parametrize("pad", [0, 30])
def test_an_in_the_money_client_call_settles_against_the_dealer(pad: int) -> None:
    """The same call ends at 112 at step 3: ``-100 * (112 - 100) = -1,200`` paid at step 3."""
    market = _market([[100.0, 101.0, 108.0, 112.0, 111.0]])
    marks = mark_book(_client_book(pad), market)
    np.testing.assert_allclose(marks.settlement[0], [0.0, 0.0, 0.0, -1_200.0, 0.0], atol=1e-9)


# ----------------------------------------------------------------------- client flow draws
def _constant_market(n_paths: int, n_steps: int, spot: float = 100.0,
                     later: float | None = None) -> MarketPaths:
    """Spot ``spot`` at step 0 and ``later`` (default the same) at every later step."""
    s = np.full((n_paths, n_steps + 1), spot if later is None else later)
    s[:, 0] = spot
    return _market(s.tolist())


def test_client_sides_and_types_follow_their_probabilities() -> None:
    """Buy and call frequencies are binomial: 0.8 and 0.3 within 4 standard errors.

    About 24,000 trades (2,000 paths x 12.0 expected trades, rate 252 over 12 steps of 1/252):
    the standard error of a frequency p is ``sqrt(p (1 - p) / n)`` (0.0026 and 0.0030). A client
    buy is a negative quantity for the dealer (it goes short), ``contracts * multiplier`` in size.
    """
    flow = ClientFlow(rate=252.0, buy_probability=0.8, call_probability=0.3, contracts=2.0,
                      multiplier=50.0, max_trades=60)
    paths = sample_client_flow(flow, _constant_market(2_000, 13), np.random.default_rng(5))
    live = paths.quantity != 0
    n = int(live.sum())
    assert n > 20_000
    np.testing.assert_array_equal(np.abs(paths.quantity[live]), 100.0)
    buys = float(np.mean(paths.quantity[live] < 0))
    calls = float(np.mean(paths.is_call[live]))
    assert abs(buys - 0.8) < 4 * math.sqrt(0.8 * 0.2 / n)
    assert abs(calls - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    np.testing.assert_array_equal(paths.half_spread_vol[live], flow.half_spread_vol)
    np.testing.assert_array_equal(paths.half_spread_vol[~live], 0.0)


def test_client_strikes_are_rounded_to_the_nearest_step_of_the_spot_at_arrival() -> None:
    """Spot 100 at step 0 and 103 after: with moneyness exactly 1 every strike is 103.

    Rounded to a strike step of 5 the nearest multiple is 105 (``round(20.6) = 21``); rounding
    down would give 100, and striking at the initial spot 100.
    """
    market = _constant_market(50, 10, spot=100.0, later=103.0)
    exact = sample_client_flow(ClientFlow(moneyness_range=(1.0, 1.0), strike_step=0.0),
                               market, np.random.default_rng(1))
    live = exact.quantity != 0
    assert live.sum() > 100
    np.testing.assert_allclose(exact.strike[live], 103.0)
    stepped = sample_client_flow(ClientFlow(moneyness_range=(1.0, 1.0), strike_step=5.0),
                                 market, np.random.default_rng(1))
    np.testing.assert_allclose(stepped.strike[stepped.quantity != 0], 105.0)


def test_client_moneyness_is_uniform_over_the_whole_range() -> None:
    """Strikes / spot uniform on (0.9, 1.1): mean 1.0 (se 0.0012), both ends reached.

    The standard deviation of U(0.9, 1.1) is ``0.2 / sqrt(12) = 0.0577``; over about 2,380
    trades (100 paths x 24 steps x 250 / 252) the mean's standard error is 0.0012.
    """
    flow = ClientFlow(strike_step=0.0)
    market = _constant_market(100, 25)
    paths = sample_client_flow(flow, market, np.random.default_rng(2))
    m = paths.strike[paths.quantity != 0] / 100.0
    assert m.size > 2_000
    assert abs(m.mean() - 1.0) < 4 * 0.2 / math.sqrt(12 * m.size)
    assert m.min() < 0.905
    assert m.max() > 1.095
    assert m.min() >= 0.9
    assert m.max() <= 1.1


# --------------------------------------------------------------------------- hedging option
def test_hedging_option_marks_are_the_closed_form_with_its_own_strike_and_expiry() -> None:
    """A 105% put expiring at step 10, on a 4-step grid: ``tau_k = (10 - k) dt``, K = 105."""
    vol, rate, dividend = 0.3, 0.04, 0.015
    spots = [100.0, 97.0, 99.0, 103.0, 95.0]
    market = _market([spots], vol, rate, dividend)
    option = HedgeOption(moneyness=1.05, expiry_steps=10, is_call=False)
    marks = mark_hedge_option(option, market)
    for k, s in enumerate(spots):
        ref = bs(s, 105.0, (10 - k) * DT, vol, rate, dividend, call=False)
        for name in ("price", "delta", "gamma", "vega"):
            assert getattr(marks, name)[0, k] == pytest.approx(float(ref[name]), rel=1e-9), name


def test_hedging_option_must_outlive_the_episode() -> None:
    """``expiry_steps`` equal to the grid's steps is refused (it would settle, not be marked)."""
    market = _market([[100.0, 101.0, 102.0, 103.0]])
    with pytest.raises(ValueError, match=r"HedgeOption.expiry_steps \(3\) must exceed the "
                                         r"episode's 3 steps"):
        mark_hedge_option(HedgeOption(expiry_steps=3), market)
    assert mark_hedge_option(HedgeOption(expiry_steps=4), market).price.shape == (1, 4)


# ------------------------------------------------------------------------------ execution
def test_fills_at_the_cap_fill_and_children_follow_their_rules() -> None:
    """A fill of exactly the cap fills (all or nothing *past* it); TWAP is ``parent / n``."""
    assert filled_order(12.0, 0.5, 6.0) == 6.0
    np.testing.assert_array_equal(filled_order(np.array([12.0, -12.0, 12.2]), 0.5, 6.0),
                                  [6.0, -6.0, 0.0])
    assert filled_order(10.0, 0.3, math.inf) == pytest.approx(3.0)
    # TWAP sends a quarter of the parent whatever is left; participation clips what is left
    assert child_order("twap", 5.0, 40.0, 4, None) == 10.0
    assert child_order("participation", 30.0, 40.0, 4, 25.0) == 25.0
    assert child_order("participation", 7.0, 40.0, 4, 25.0) == 7.0
    assert child_order("participation", -7.0, -40.0, 4, 5.0) == -5.0
    np.testing.assert_array_equal(
        child_order("participation", np.array([-30.0, 3.0, 30.0]), None, 4, 25.0),
        [-25.0, 3.0, 25.0])
    assert child_order("immediate", 12.5, 40.0, 4, None) == 12.5


def test_average_price_factor_is_the_mean_price_along_the_move() -> None:
    """``(e^x - 1) / x`` = the mean of ``e^y`` on ``[0, x]`` (numerical integral, midpoints)."""
    for x in (-0.3, -0.01, 0.02, 0.5):
        y = (np.arange(200_000) + 0.5) / 200_000 * x
        mean = float(np.mean(np.exp(y)))
        assert average_price_factor(x) == pytest.approx(mean, rel=1e-9)
        assert float(average_price_factor(np.array([x]))[0]) == pytest.approx(mean, rel=1e-9)
    np.testing.assert_array_equal(average_price_factor(np.array([0.0, 0.0])), [1.0, 1.0])


def test_impact_bound_is_inclusive_and_names_the_worst_move() -> None:
    """``|I| <= 100`` passes, float or array; past it, or NaN, raises naming the worst move."""
    check_impact(MAX_IMPACT_MOVE, 0.1)
    check_impact(-MAX_IMPACT_MOVE, 0.1)
    check_impact(np.array([MAX_IMPACT_MOVE, -MAX_IMPACT_MOVE]), 0.1)
    with pytest.raises(ValueError, match=r"permanent_impact=0.1: .* by 100.5 "):
        check_impact(100.5, 0.1)
    with pytest.raises(ValueError, match=r"by -120 \(the spot times e\^-120\)"):
        check_impact(np.array([101.0, -120.0, 3.0]), 0.1)
    with pytest.raises(ValueError, match=r"by nan"):
        check_impact(np.array([1.0, np.nan, 130.0]), 0.1)
    with pytest.raises(ValueError, match=r"by nan"):  # a NaN alone is no move within the bound
        check_impact(np.array([1.0, np.nan]), 0.1)
    with pytest.raises(ValueError, match=r"by nan"):
        check_impact(float("nan"), 0.1)
    assert MAX_IMPACT_MOVE == 100.0  # the documented bound (e^100)


# --------------------------------------------------------------------------------- limits
_GREEKS = dict(book_delta=-60.0, book_gamma=-5.0, book_vega=-2_000.0, option_delta=0.5,
               option_gamma=0.04, option_vega=30.0)


def test_exposures_in_the_documented_units() -> None:
    """The module table, by hand: N = 100, S = 100, h = 40, g = 50 units of the option.

    delta ``|-60 + 40 + 50 * 0.5| / 100 = 0.05``; gamma ``|-5 + 50 * 0.04| * 100 * 1% / 100 =
    0.03``; vega ``|-2,000 + 50 * 30| * 1% = 5``; the drawdown passes through.
    """
    e = exposures(_GREEKS, 100.0, 40.0, 50.0, 7.0, 100.0)
    assert e.delta == pytest.approx(0.05)
    assert e.gamma == pytest.approx(0.03)
    assert e.vega == pytest.approx(5.0)
    assert e.drawdown == 7.0
    # the sign of the hedge matters: short 40 gives |-60 - 40 + 25| / 100 = 0.75
    assert exposures(_GREEKS, 100.0, -40.0, 50.0, 0.0, 100.0).delta == pytest.approx(0.75)
    # gamma grows with the spot: at S = 200, |-3| * 200 * 1% / 100 = 0.06
    assert exposures(_GREEKS, 200.0, 40.0, 50.0, 0.0, 100.0).gamma == pytest.approx(0.06)


def test_limits_are_strict_edge_triggered_and_named_in_priority_order() -> None:
    """A limit breaches when the exposure is strictly over it; a breach counts once per crossing."""
    limits = RiskLimits(delta=0.05, gamma=0.01, vega=None, drawdown=6.0)
    e = exposures(_GREEKS, 100.0, 40.0, 50.0, 7.0, 100.0)  # delta at its limit: no breach
    assert over_limits(limits, e) == BREACH_FLAGS["gamma"] | BREACH_FLAGS["drawdown"]
    assert BREACH_FLAGS == {"delta": 1, "gamma": 2, "vega": 4, "drawdown": 8}
    assert new_breaches(10, 2) == 8
    assert new_breaches(10, 10) == 0
    np.testing.assert_array_equal(new_breaches(np.array([3, 3, 12]), np.array([0, 1, 4])),
                                  [3, 2, 8])
    np.testing.assert_array_equal(count_breaches(np.array([0, 15, 8, 5])), [0, 4, 1, 2])
    assert count_breaches(8) == 1
    assert first_breach(12) == "vega"
    assert first_breach(0) == ""
    np.testing.assert_array_equal(first_breach(np.array([12, 10, 9, 0])),
                                  ["vega", "gamma", "delta", ""])


@pytest.mark.parametrize(("spec", "message"), [
    ({"delta": -0.1}, r"risk_limits.delta must be a finite number >= 0 or None, got -0.1"),
    ({"vega": float("nan")}, r"risk_limits.vega must be a finite number >= 0"),
    ({"gamma": True}, r"risk_limits.gamma must be a finite number >= 0 or None, got True"),
    ({"action": "halt"}, r"risk_limits.action must be one of report, flatten, terminate; "
                         r"got 'halt'"),
    ({"delta": 1.0, "vgea": 2.0}, r"unknown risk_limits key\(s\) \['vgea'\]; allowed"),
    ([("delta", 1.0)], r"risk_limits must be a RiskLimits, a dict or None, got list"),
])
def test_bad_risk_limits_are_refused_by_name(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RiskLimits.from_spec(spec)


# ----------------------------------------------------------------------- realised vol EWMA
def _realised(spot: np.ndarray, initial_vol: float, halflife: float) -> np.ndarray:
    from hedgearena.envs.episode import _realised_vol

    config = types.SimpleNamespace(realised_vol_halflife=halflife, dt=DT)
    return _realised_vol(np.asarray(spot, dtype=np.float64)[:, None],
                         np.array([initial_vol]), config)[:, 0]


def test_realised_vol_is_the_documented_ewma() -> None:
    """``v_s = (1 - a) v_{s-1} + a r_s^2 / dt``, ``a = 1 - 2^(-1/h)``, ``v_0 = sigma_0^2``.

    Written out for h = 3 on the spots 100, 102, 99, 99, 104 from sigma_0 = 0.25.
    """
    spots = [100.0, 102.0, 99.0, 99.0, 104.0]
    a = 1.0 - 2.0 ** (-1.0 / 3.0)
    v = [0.25**2]
    for s0, s1 in itertools.pairwise(spots):
        v.append((1 - a) * v[-1] + a * math.log(s1 / s0) ** 2 / DT)
    np.testing.assert_allclose(_realised(np.array(spots), 0.25, 3.0), np.sqrt(v), rtol=1e-12)


def test_realised_variance_halves_after_one_half_life() -> None:
    """From sigma_0 = 0 one return r then none: ``v`` halves every ``h`` steps after the shock."""
    h = 4.0
    spots = np.array([100.0, 110.0] + [110.0] * 8)
    var = _realised(spots, 0.0, h) ** 2
    a = 1.0 - 2.0 ** (-1.0 / h)
    assert var[1] == pytest.approx(a * math.log(1.1) ** 2 / DT, rel=1e-12)
    assert var[5] / var[1] == pytest.approx(0.5, rel=1e-12)
    assert var[9] / var[1] == pytest.approx(0.25, rel=1e-12)


# ---------------------------------------------------------------------------- replay windows
def _replay(n_rows: int = 10) -> HistoricalReplay:
    frame = pd.DataFrame({"close": 100.0 + np.arange(n_rows), "iv": 0.1 + 0.01 * np.arange(n_rows)},
                         index=pd.bdate_range("2021-03-01", periods=n_rows))
    return HistoricalReplay.from_frame(frame, price_column="close", vol_column="iv")


def test_replay_windows_cover_the_whole_series_and_no_further() -> None:
    """10 rows, windows of 3 steps (4 rows): starts 0..6; walk-forward 0, 3, 6.

    The last window (start 6) covers rows 6..9, the series' end; start 7 would need row 10.
    ``between`` keeps both of its dates; ``walk_forward_starts`` with dates covers rows from
    the first on or after ``start`` to the last on or before ``end``.
    """
    replay = _replay()
    assert replay.window_starts(3) == 7
    assert replay.window_starts(9) == 1
    with pytest.raises(ValueError, match=r"n_steps=10 needs n_steps \+ 1 = 11 rows, the series "
                                         r"has 10"):
        replay.window_starts(10)
    paths = replay.window(np.array([6, 0]), 3, DT)
    np.testing.assert_array_equal(paths.spot, [[106.0, 107.0, 108.0, 109.0],
                                               [100.0, 101.0, 102.0, 103.0]])
    np.testing.assert_allclose(paths.vol_state[0], [0.16, 0.17, 0.18, 0.19])
    np.testing.assert_allclose(paths.variance[0], np.array([0.16, 0.17, 0.18, 0.19]) ** 2)
    np.testing.assert_allclose(paths.times, DT * np.arange(4))
    with pytest.raises(ValueError, match=r"start row 7 is out of range: windows of n_steps=3 "
                                         r"start in \[0, 6\]"):
        replay.window(np.array([7]), 3, DT)
    with pytest.raises(ValueError, match=r"start row -1 is out of range"):
        replay.window(np.array([-1]), 3, DT)
    np.testing.assert_array_equal(replay.walk_forward_starts(3), [0, 3, 6])
    np.testing.assert_array_equal(replay.walk_forward_starts(3, 4), [0, 4])
    days = pd.bdate_range("2021-03-01", periods=10)  # rows 0..9: Mon 1 March .. Fri 12 March
    np.testing.assert_array_equal(
        replay.walk_forward_starts(2, start=days[2], end=days[8]), [2, 4, 6])
    assert len(replay.between(days[2], days[5])) == 4
    with pytest.raises(ValueError, match=r"keeps 1 row\(s\), at least 2 are needed"):
        replay.between(days[3], days[3])


def test_replay_draws_every_window_start_uniformly() -> None:
    """Starts uniform on 0..2 (3 windows): each drawn with frequency 1/3 (se 0.0105 of 2,000)."""
    replay = _replay(6)
    paths = replay.simulate(2_000, 3, DT, np.random.default_rng(0))
    first = paths.spot[:, 0] - 100.0
    counts = np.bincount(first.astype(int), minlength=4)
    assert counts[3] == 0
    np.testing.assert_allclose(counts[:3] / 2_000, 1 / 3, atol=4 * math.sqrt(2 / 9 / 2_000))


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: r.window(np.array([0]), 3, 0.0), r"dt must be a finite number of years per row "
                                                r"> 0 \(e.g. 1/252\), got 0.0"),
    (lambda r: r.window(np.array([0]), 0, DT), r"n_steps must be an integer >= 1, got 0"),
    (lambda r: r.window(np.array([0.0]), 3, DT), r"starts must be a 1-d array of integer rows"),
    (lambda r: r.simulate(True, 3, DT, np.random.default_rng(0)),
     r"n_paths must be an integer >= 1, got True"),
    (lambda r: r.walk_forward_starts(3, 0), r"stride must be an integer >= 1, got 0"),
])
def test_bad_replay_window_arguments_are_refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(_replay())


# ------------------------------------------------------------------------- episode build
class _FixedMarket:
    """A market model replaying the same given paths on every path of a batch."""

    def __init__(self, spot: list[float], vol: float, rate: float, dividend: float,
                 liquidity: list[float] | None = None) -> None:
        self.spot, self.vol, self.rate, self.dividend = np.asarray(spot), vol, rate, dividend
        self.liquidity = None if liquidity is None else np.asarray(liquidity, dtype=np.float64)

    def simulate(self, n_paths: int, n_steps: int, dt: float,
                 rng: np.random.Generator) -> MarketPaths:
        assert n_steps + 1 == self.spot.size
        spot = np.tile(self.spot, (n_paths, 1))
        level = np.full(spot.shape, self.vol)
        liquidity = None if self.liquidity is None else np.tile(self.liquidity, (n_paths, 1))
        return MarketPaths(times=dt * np.arange(n_steps + 1), spot=spot, variance=level**2,
                           vol_state=level, surface=FlatVol(), rate=self.rate,
                           dividend=self.dividend, liquidity=liquidity)


SPOTS = [100.0, 103.0, 98.0, 101.0, 97.0]
VOL, RATE, DIV = 0.25, 0.03, 0.01


def _build(hedge_option: HedgeOption | None = None, stock: float = 0.0, halflife: float = 2.0,
           liquidity: list[float] | None = None, option_position_limit: float = 10.0) -> Any:
    from hedgearena.envs.config import EnvConfig
    from hedgearena.envs.episode import build_episodes

    book = OptionBook(options=(
        Option(moneyness=1.02, expiry_steps=2, contracts=-1.0, is_call=True),  # settles at 2
        Option(moneyness=0.97, expiry_steps=6, contracts=2.0, is_call=False, multiplier=50.0),
    ), stock=stock)
    config = EnvConfig(market=_FixedMarket(SPOTS, VOL, RATE, DIV, liquidity), book=book,
                       cost=0.01, n_steps=4, hedge_option=hedge_option,
                       realised_vol_halflife=halflife,
                       option_position_limit=option_position_limit)
    return config, build_episodes(config, 2, np.random.default_rng(0))


def _book_greeks(k: int, s: float) -> dict[str, float]:
    """The book's closed-form marks at step k: short 100 of the 102 call to step 2, long 100 of
    the 97 put to step 6 (2 contracts x 50)."""
    put = bs(s, 97.0, (6 - k) * DT, VOL, RATE, DIV, call=False)
    call = bs(s, 102.0, (2 - k) * DT, VOL, RATE, DIV) if k < 2 else None
    return {name: float(100.0 * put[name] - (100.0 * call[name] if call else 0.0))
            for name in ("price", "delta", "gamma", "vega", "theta")}


def test_episode_build_books_greeks_cash_flows_and_the_stock() -> None:
    """Per step: the summed closed-form greeks, the stock in value and delta, the cash flows.

    The book holds 30 units of stock: value ``+ 30 S``, delta ``+ 30``. The call settles
    ``-100 * max(98 - 102, 0) = 0`` at step 2; ``option_mtm[k] = V_{k+1} - V_k + premium_{k+1}
    + settlement_{k+1}``; the initial cash is the premiums received at step 0
    (``100 C_0 - 100 P_0``). The model hedge is ``-book delta``; ``tau`` the time left.
    """
    _, batch = _build(stock=30.0)
    ep, f = batch.episode, batch.features
    for k, s in enumerate(SPOTS):
        g = _book_greeks(k, s)
        assert ep.book_value[k, 1] == pytest.approx(g["price"] + 30.0 * s, abs=1e-8)
        assert f.book_delta[1, k] == pytest.approx(g["delta"] + 30.0, abs=1e-10)
        assert f.book_gamma[1, k] == pytest.approx(g["gamma"], abs=1e-10)
        assert f.book_vega[1, k] == pytest.approx(g["vega"], abs=1e-8)
        assert f.book_theta[1, k] == pytest.approx(g["theta"], abs=1e-7)
        assert ep.model_hedge[k, 1] == pytest.approx(-(g["delta"] + 30.0), abs=1e-10)
        assert f.tau[1, k] == pytest.approx((4 - k) * DT)
    premium0 = (100.0 * bs(100.0, 102.0, 2 * DT, VOL, RATE, DIV)["price"]
                - 100.0 * bs(100.0, 97.0, 6 * DT, VOL, RATE, DIV, call=False)["price"])
    assert batch.initial_cash[1] == pytest.approx(float(premium0), abs=1e-9)
    for k in range(4):
        expected = ep.book_value[k + 1, 1] - ep.book_value[k, 1]  # the settlement here is 0
        assert ep.option_mtm[k, 1] == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(ep.cash_flow[1:, 1], 0.0, atol=1e-12)


def test_episode_cash_flows_carry_an_in_the_money_settlement() -> None:
    """With the call in the money at its expiry (spot 110 at step 2) it pays -100 * 8 = -800.

    ``option_mtm[1] = V_2 - V_1 - 800`` and ``cash_flow[2] = -800``.
    """
    from hedgearena.envs.config import EnvConfig
    from hedgearena.envs.episode import build_episodes

    spots = [100.0, 104.0, 110.0, 108.0, 109.0]
    book = OptionBook(options=(Option(moneyness=1.02, expiry_steps=2, contracts=-1.0),
                               Option(moneyness=1.0, expiry_steps=6, contracts=-1.0)))
    config = EnvConfig(market=_FixedMarket(spots, VOL, 0.0, 0.0), book=book, cost=0.01,
                       n_steps=4)
    ep = build_episodes(config, 1, np.random.default_rng(0)).episode
    np.testing.assert_allclose(ep.cash_flow[:, 0], [ep.cash_flow[0, 0], 0.0, -800.0, 0.0, 0.0],
                               atol=1e-9)
    assert ep.option_mtm[1, 0] == pytest.approx(
        ep.book_value[2, 0] - ep.book_value[1, 0] - 800.0, abs=1e-9)
    long_call = float(bs(110.0, 100.0, 4 * DT, VOL)["price"])
    assert ep.book_value[2, 0] == pytest.approx(-100.0 * long_call, abs=1e-9)


def test_episode_model_positions_with_the_hedging_option() -> None:
    """Gamma neutral ``n = -Gamma_book / Gamma_opt``, clipped to the option limit; delta beside it.

    The hedging option: an at-the-money call to step 40 (its ``tau = (40 - k) dt``). Its cost
    per unit is ``half_spread_vol * vega * liquidity`` (liquidity 1, 2, 1, 3, 1).
    """
    option = HedgeOption(moneyness=1.0, expiry_steps=40, is_call=True, half_spread_vol=0.01)
    liquidity = [1.0, 2.0, 1.0, 3.0, 1.0]
    _, batch = _build(hedge_option=option, liquidity=liquidity)
    ep, f = batch.episode, batch.features
    for k, s in enumerate(SPOTS):
        g = _book_greeks(k, s)
        o = {n: float(v) for n, v in bs(s, 100.0, (40 - k) * DT, VOL, RATE, DIV).items()}
        assert f.option_gamma[0, k] == pytest.approx(o["gamma"], rel=1e-9)
        n = float(np.clip(-g["gamma"] / o["gamma"], -1_000.0, 1_000.0))  # 10 N = 1,000 units
        assert ep.model_option[k, 0] == pytest.approx(n, rel=1e-9, abs=1e-9)
        assert ep.model_hedge[k, 0] == pytest.approx(-(g["delta"] + n * o["delta"]), abs=1e-8)
        assert ep.option_linear[k, 0] == pytest.approx(0.01 * o["vega"] * liquidity[k],
                                                       rel=1e-9)
    # a limit of 0.5 N = 50 units clips the position at step 0 (about 104 units unclipped)
    _, clipped = _build(hedge_option=option, option_position_limit=0.5)
    g0, o0 = _book_greeks(0, 100.0), bs(100.0, 100.0, 40 * DT, VOL, RATE, DIV)
    assert -g0["gamma"] / float(o0["gamma"]) > 50.0
    assert clipped.episode.model_option[0, 0] == pytest.approx(50.0)


def test_observation_entries_follow_the_documented_table() -> None:
    """Each entry by its row of ``EXOGENOUS_FEATURES`` / ``OPTION_FEATURES``, from closed forms.

    N = 100 (the largest |contracts| x multiplier), T = 4 dt, K = 102 (the first option's
    strike), sigma_t = 0.25 (flat), cost 1% of the traded value (``cost_rate`` 1.0, percent).
    """
    from hedgearena.envs.episode import feature_names

    option = HedgeOption(moneyness=1.0, expiry_steps=40, is_call=True)
    _, batch = _build(hedge_option=option, halflife=2.0)
    names = feature_names(True)
    obs = batch.observations[:, 0].astype(np.float64)
    root_t, notional = math.sqrt(4 * DT), 100.0
    realised = _realised(np.array(SPOTS), VOL, 2.0)
    for k, s in enumerate(SPOTS):
        g = _book_greeks(k, s)
        o = {n: float(v) for n, v in bs(s, 100.0, (40 - k) * DT, VOL, RATE, DIV).items()}
        n_opt = float(np.clip(-g["gamma"] / o["gamma"], -1_000.0, 1_000.0))
        expected = {
            "time_left": (4 - k) / 4,
            "log_moneyness": math.log(s / 102.0),
            "book_delta": g["delta"] / notional,
            "book_gamma": g["gamma"] * s * VOL * root_t / notional,
            "book_vega": g["vega"] / (notional * s * root_t),
            "book_theta": g["theta"] * root_t / (notional * s * VOL),
            "model_hedge": -(g["delta"] + n_opt * o["delta"]) / notional,
            "implied_vol": VOL,
            "realised_vol": realised[k],
            "cost_rate": 1.0,
            "liquidity": 1.0,
            "model_option": n_opt / notional,
            "option_delta": o["delta"],
            "option_gamma": o["gamma"] * s * VOL * root_t,
            "option_vega": o["vega"] / (s * root_t),
            "hedge": 0.0,
            "option_position": 0.0,
        }
        assert set(expected) == set(names)
        for i, name in enumerate(names):
            assert obs[k, i] == pytest.approx(expected[name], rel=2e-6, abs=1e-6), (name, k)


# ----------------------------------------------------------------- rebalancing every K decisions
def test_delta_every_k_trades_at_every_kth_decision_of_the_decision_grid() -> None:
    """``rebalance_every=2`` on 12 steps: decisions at steps 0, 2, .., 10 (6 of them); ``delta:3``
    trades at decisions 0 and 3 (steps 0 and 6) and holds in between (Boyle and Emanuel 1980).

    At a rebalance the position is minus the book's delta at that step (the batch's features);
    the record's hedge is the position held after each decision.
    """
    from hedgearena.baselines.delta import BlackScholesDelta, time_based_rebalance
    from hedgearena.baselines.hedger import run_hedger
    from hedgearena.envs.config import make_config
    from hedgearena.envs.vector_env import VecHedgingEnv

    held = np.zeros(1)
    positions = []
    for k in range(7):
        held = time_based_rebalance(held, np.array([float(k + 1)]), np.array([k]), 3)
        positions.append(float(held[0]))
    assert positions == [1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 7.0]
    config = make_config("ShortCall", n_steps=12, rebalance_every=2,
                         book={"options": [{"expiry_steps": 12}]})
    env = VecHedgingEnv(num_envs=3, config=config)
    record = run_hedger(env, BlackScholesDelta(every=3), seed=4)
    hedge = np.asarray(record.hedge)  # (decisions, paths)
    delta = env.batch.features.book_delta  # (paths, steps + 1)
    assert hedge.shape == (6, 3)
    np.testing.assert_allclose(hedge[0:3], np.broadcast_to(-delta[:, 0], (3, 3)), rtol=1e-12)
    np.testing.assert_allclose(hedge[3:6], np.broadcast_to(-delta[:, 6], (3, 3)), rtol=1e-12)
