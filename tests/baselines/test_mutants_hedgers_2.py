"""Leland, delta-vega and the adaptive band against hand computations (found by mutation testing).

Every expected number below is written out from the published formula with :mod:`math` (the
normal cdf from ``erf``), not from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.baselines import AdaptiveBand, DeltaVega, Leland
from hedgearena.envs.book import HedgeOption, Option, OptionBook
from hedgearena.envs.vector_env import VecHedgingEnv

OBS = np.zeros((4, 1), np.float32)


def _ncdf(x: float) -> float:
    """The standard normal cdf, ``(1 + erf(x / sqrt 2)) / 2``."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _leland_vol(sigma: float, k: float, interval: float, short: bool) -> float:
    """Leland (1985), J. Finance 40(5): ``sigma_L^2 = sigma^2 (1 +- Le)``.

    ``Le = sqrt(2/pi) k / (sigma sqrt dt)``, clipped at 0 for a long option.
    """
    le = math.sqrt(2.0 / math.pi) * k / (sigma * math.sqrt(interval))
    return sigma * math.sqrt(max(1.0 + (le if short else -le), 0.0))


def _call_delta(spot: float, strike: float, tau: float, vol: float) -> float:
    """Black-Scholes call delta ``N(d1)`` with r = q = 0 (Hull, ch. 19)."""
    d1 = math.log(spot / strike) / (vol * math.sqrt(tau)) + 0.5 * vol * math.sqrt(tau)
    return _ncdf(d1)


def test_leland_interval_is_the_time_between_rebalances() -> None:
    """Leland's ``dt`` is the time between rebalances: 5 market steps of 0.004 years = 0.02.

    ShortCall: sigma = 20%, cost 1% one way so k = 2%, short gamma:
    ``sigma_L = 0.2 sqrt(1 + sqrt(2/pi) 0.02 / (0.2 sqrt(0.02)))``.
    """
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", rebalance_every=5)
    env.reset(seed=0)
    hedger = Leland()
    hedger.reset(env)
    vol, leland = hedger.volatilities(env.state)
    np.testing.assert_allclose(vol, 0.2, rtol=1e-12)
    np.testing.assert_allclose(leland, _leland_vol(0.2, 0.02, 0.02, short=True), rtol=1e-12)


def test_leland_treats_a_book_with_no_gamma_as_short() -> None:
    """Net gamma exactly 0 (a flat or expiring book) takes the writer's sign, ``+``."""
    env = VecHedgingEnv(num_envs=4, preset="ShortCall")
    env.reset(seed=0)
    hedger = Leland()
    hedger.reset(env)
    state = {**env.state, "book_gamma": np.zeros(4)}
    _, leland = hedger.volatilities(state)
    np.testing.assert_allclose(leland, _leland_vol(0.2, 0.02, 0.004, short=True), rtol=1e-12)


def test_leland_hedge_offsets_the_books_own_stock() -> None:
    """A book short 1 call (100 units) that also holds 30 shares: hedge ``100 N(d1(sigma_L)) - 30``.

    At the start S = K = 100, tau = 20 * 0.004 = 0.08, sigma_L from Leland's formula.
    """
    book = OptionBook(options=(Option(contracts=-1.0),), stock=30.0)
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", book=book)
    env.reset(seed=0)
    hedger = Leland()
    hedger.reset(env)
    sigma_l = _leland_vol(0.2, 0.02, 0.004, short=True)
    want = 100.0 * _call_delta(100.0, 100.0, 0.08, sigma_l) - 30.0
    positions = hedger.positions(env.state, OBS)
    np.testing.assert_allclose(positions[:, 0], want, rtol=1e-12)


def test_delta_vega_tests_the_option_at_its_own_expiry() -> None:
    """The usable test ``vega / (S sqrt(tau)) > 1e-4`` uses the hedging option's time to expiry.

    Hedging option: strike 100, expiring at step 90 of 0.004 years; the book expires at step 20.
    One step before the book's end (book tau 0.004) the option has ``T = 71 * 0.004 = 0.284``
    left. At S = 61.5, sigma = 20%: ``d1 = ln(0.615) / (0.2 sqrt 0.284) + 0.1 sqrt 0.284 ~ -4.5``,
    so ``vega / (S sqrt T) = n(d1) ~ 1.6e-5``: too far out of the money, hold no option and hedge
    the book's delta with the stock. (Dividing by the book's sqrt(0.004) instead would make it
    ~1.4e-4 and buy ``-V_book / V_opt`` options of almost no vega.)
    """
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", hedge_option=HedgeOption())
    env.reset(seed=0)
    hedger = DeltaVega()
    hedger.reset(env)
    spot, big_t, sigma = 61.5, 71 * 0.004, 0.2
    d1 = math.log(spot / 100.0) / (sigma * math.sqrt(big_t)) + 0.5 * sigma * math.sqrt(big_t)
    vega = spot * math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi) * math.sqrt(big_t)
    assert vega / (spot * math.sqrt(big_t)) < 1e-4 < vega / (spot * math.sqrt(0.004))
    state = {
        **env.state, "spot": np.full(4, spot), "tau": np.full(4, 0.004),
        "option_vega": np.full(4, vega), "option_delta": np.full(4, _ncdf(d1)),
        "book_vega": np.full(4, -50.0), "book_delta": np.full(4, -3.0),
    }
    positions = hedger.positions(state, OBS)
    np.testing.assert_array_equal(positions[:, 1], 0.0)
    np.testing.assert_array_equal(positions[:, 0], 3.0)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_adaptive_band_uses_the_net_gamma_of_book_and_hedging_option(fraction: float) -> None:
    """``w = base N clip((|Gamma_book + n Gamma_opt| / Gamma_ref)^(2/3), 0.25, 4)`` at sigma_0.

    ``Gamma_ref = N n(0) / (S_0 sigma_0 sqrt(T)) = 100 * 0.398942 / (100 * 0.2 * sqrt(0.08))``.
    Holding the gamma-neutral ``n`` (fraction 1) leaves no gamma: the floor, 0.25 * 5 = 1.25
    units; half of it leaves half the book's gamma.
    """
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", hedge_option=True)
    env.reset(seed=0)
    hedger = AdaptiveBand(base=0.05)
    hedger.reset(env)
    state = dict(env.state)
    units = fraction * -state["book_gamma"] / state["option_gamma"]
    state["model_option"] = units
    gamma_ref = 100.0 / math.sqrt(2.0 * math.pi) / (100.0 * 0.2 * math.sqrt(0.08))
    net = np.abs(state["book_gamma"] + units * state["option_gamma"])
    want = 5.0 * np.clip((net / gamma_ref) ** (2.0 / 3.0), 0.25, 4.0)
    np.testing.assert_allclose(hedger.half_width(state), want, rtol=1e-9)
    if fraction == 1.0:
        np.testing.assert_allclose(hedger.half_width(state), 1.25, rtol=1e-12)
