"""Mutation-testing round over the episode build (``envs/episode.py``) and its neighbours.

Each test pins a rule that a hand-made mutant broke while the rest of the suite (including
``tests/envs/test_mutants_book.py``) passed. The expected numbers are hand computations written
out here from the documented formulas: the EWMA realised vol of ``EXOGENOUS_FEATURES`` and
:func:`hedgearena.envs.episode._realised_vol`'s docstring, and the smile of
:class:`hedgearena.envs.vol_surface.SmileSurface` (its docstring's formula, evaluated here with
``math``, not the surface's code).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from hedgearena.envs.book import Option, OptionBook
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.episode import build_episodes, with_realised_vol
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.vol_surface import FlatVol, SmileSurface

DT = 1.0 / 252.0


class _PathMarket:
    """A market model replaying given spot and vol-level paths on every path of a batch."""

    def __init__(self, spot: list[float], level: list[float], surface: Any = None,
                 rate: float = 0.0, dividend: float = 0.0) -> None:
        self.spot, self.level = np.asarray(spot), np.asarray(level)
        self.surface = FlatVol() if surface is None else surface
        self.rate, self.dividend = rate, dividend

    def simulate(self, n_paths: int, n_steps: int, dt: float,
                 rng: np.random.Generator) -> MarketPaths:
        assert n_steps + 1 == self.spot.size
        spot = np.tile(self.spot, (n_paths, 1))
        level = np.tile(self.level, (n_paths, 1))
        return MarketPaths(times=dt * np.arange(n_steps + 1), spot=spot, variance=level**2,
                           vol_state=level, surface=self.surface, rate=self.rate,
                           dividend=self.dividend)


def _config(market: Any, halflife: float = 2.0) -> EnvConfig:
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=4, contracts=-1.0),))
    return EnvConfig(market=market, book=book, cost=0.01, n_steps=4,
                     realised_vol_halflife=halflife)


def _ewma(spots: list[float], sigma0: float, halflife: float) -> list[float]:
    """``v_0 = sigma_0^2``, ``v_s = (1 - a) v_{s-1} + a r_s^2 / dt``, ``a = 1 - 2^(-1/h)``."""
    a = 1.0 - 2.0 ** (-1.0 / halflife)
    v = [sigma0**2]
    for s0, s1 in itertools.pairwise(spots):
        v.append((1 - a) * v[-1] + a * math.log(s1 / s0) ** 2 / DT)
    return [math.sqrt(x) for x in v]


def test_a_new_half_life_restarts_the_ewma_at_the_initial_implied_vol() -> None:
    """``with_realised_vol`` starts the EWMA at the implied vol of step 0, not a later one.

    The implied vol moves 0.20 -> 0.40 over the episode (a flat surface at the path's level);
    re-computed at half-life 5 the feature is the EWMA from 0.20 on the spots 100, 102, 99,
    101, 100, and observation entry 8 (``realised_vol``) follows it.
    """
    spots, levels = [100.0, 102.0, 99.0, 101.0, 100.0], [0.2, 0.25, 0.3, 0.35, 0.4]
    config = _config(_PathMarket(spots, levels), halflife=2.0)
    batch = build_episodes(config, 2, np.random.default_rng(0))
    np.testing.assert_allclose(batch.features.realised_vol[1], _ewma(spots, 0.2, 2.0),
                               rtol=1e-12)
    redone = with_realised_vol(config.replace(realised_vol_halflife=5.0), batch)
    expected = _ewma(spots, 0.2, 5.0)
    np.testing.assert_allclose(redone.features.realised_vol[0], expected, rtol=1e-12)
    np.testing.assert_allclose(redone.features.realised_vol[1], expected, rtol=1e-12)
    np.testing.assert_allclose(redone.observations[:, 1, 8], expected, rtol=1e-6)
    assert expected[0] == 0.2
    assert expected[-1] != _ewma(spots, 0.2, 2.0)[-1]  # the half-life matters here


def _smile(spot: float, anchor: float, tau: float, level: float, skew: float,
           curvature: float) -> float:
    """SmileSurface's documented vol at the forward, sticky strike (the carry cancels).

    ``x = ln(K / F_ref) / sqrt(max(tau, 1/365))`` with ``K = S e^{(r-q) tau}`` (the forward) and
    ``F_ref = A e^{(r-q) tau}`` (the anchor's forward): ``x = ln(S / A) / sqrt(tau)``;
    ``sigma = level * max(1 + skew x + curvature x^2, 0.25)``.
    """
    x = math.log(spot / anchor) / math.sqrt(max(tau, 1.0 / 365.0))
    return level * max(1.0 + skew * x + curvature * x * x, 0.25)


def test_at_the_money_vol_is_the_smile_at_the_forward_for_the_time_left() -> None:
    """The ``implied_vol`` feature: the surface's vol at the forward ``S e^{(r-q) tau}``, for
    ``tau = max(T - t, dt)`` (T = 4 dt: 4, 3, 2, 1, 1 steps at steps 0..4).

    A sticky-strike smile (skew -0.1, curvature 0.5) anchored at S_0 = 100, r = 5%, q = 1%, so
    both the carry in the forward and the time left move the vol; at step 0 the spot is the
    anchor and the vol is the level, 0.2.
    """
    spots = [100.0, 103.0, 98.0, 101.0, 97.0]
    surface = SmileSurface(skew=-0.1, curvature=0.5, sticky="strike")
    market = _PathMarket(spots, [0.2] * 5, surface, rate=0.05, dividend=0.01)
    batch = build_episodes(_config(market), 1, np.random.default_rng(0))
    left = [4, 3, 2, 1, 1]
    expected = [_smile(s, 100.0, n * DT, 0.2, -0.1, 0.5) for s, n in zip(spots, left, strict=True)]
    assert expected[0] == 0.2
    np.testing.assert_allclose(batch.features.implied_vol[0], expected, rtol=1e-12)
    np.testing.assert_allclose(batch.observations[:, 0, 7], expected, rtol=1e-6)


# ------------------------------------------------------------- re-marks at the hedger's own spot
def _bs(spot: float, strike: float, tau: float, vol: float, call: bool = True) -> dict[str, float]:
    """Black-Scholes price, delta, gamma and vega at zero rates (Hull ch. 15, 19)."""
    from scipy.stats import norm

    root = vol * math.sqrt(tau)
    d1 = (math.log(spot / strike) + 0.5 * vol**2 * tau) / root
    d2 = d1 - root
    if call:
        price, delta = spot * norm.cdf(d1) - strike * norm.cdf(d2), norm.cdf(d1)
    else:
        price, delta = strike * norm.cdf(-d2) - spot * norm.cdf(-d1), -norm.cdf(-d1)
    return {"price": float(price), "delta": float(delta),
            "gamma": float(norm.pdf(d1) / (spot * root)),
            "vega": float(spot * norm.pdf(d1) * math.sqrt(tau))}


REMARK_SPOTS = [100.0, 104.0, 110.0, 108.0, 109.0]


def test_a_step_re_marked_at_a_moved_spot_settles_and_quotes_at_the_market() -> None:
    """``mark_step`` at step 2, spot moved from 110 to S' = 110 e^0.01 by the hedger's impact.

    The book (built by hand): short 100 calls K = 102 expiring at step 2, and a client trade
    arriving at step 2 (the dealer sells 50 puts K = 98 to step 6, half-spread 1 vol point).
    By :func:`hedgearena.envs.episode.mark_step`'s docstring: the expiring call settles at the
    market's 110: ``-100 * (110 - 102) = -800``; the new put is marked, and pays its premium
    ``50 P(S')`` and half-spread ``50 * 0.01 * vega(S')``, at S'; the hedging option (an
    at-the-money call on S_0 = 100 to step 40) is quoted at the market's 110.
    """
    from hedgearena.envs.book import BookPaths, HedgeOption
    from hedgearena.envs.episode import mark_step

    vol = 0.2
    option = HedgeOption(moneyness=1.0, expiry_steps=40, is_call=True)
    book = OptionBook(options=(Option(expiry_steps=6),))
    config = EnvConfig(market=_PathMarket(REMARK_SPOTS, [vol] * 5), book=book, cost=0.01,
                       n_steps=4, hedge_option=option)
    market = config.market.simulate(1, 4, DT, np.random.default_rng(0))
    instruments = BookPaths(
        strike=np.array([[102.0, 98.0]]), quantity=np.array([[-100.0, -50.0]]),
        is_call=np.array([[True, False]]), start=np.array([[0, 2]]),
        expiry=np.array([[2, 6]]), half_spread_vol=np.array([[0.0, 0.01]]))
    moved = 110.0 * math.exp(0.01)
    marks = mark_step(config, market, instruments, np.array([2]), np.array([0]),
                      np.array([moved]))
    put = _bs(moved, 98.0, 4 * DT, vol, call=False)
    hedge = _bs(110.0, 100.0, 38 * DT, vol)
    assert marks.settlement[0] == pytest.approx(-800.0, abs=1e-9)
    assert marks.book_value[0] == pytest.approx(-50.0 * put["price"], rel=1e-10)
    assert marks.premium[0] == pytest.approx(50.0 * put["price"], rel=1e-10)
    assert marks.spread_income[0] == pytest.approx(50.0 * 0.01 * put["vega"], rel=1e-10)
    assert marks.option_price[0] == pytest.approx(hedge["price"], rel=1e-10)
    assert marks.option_delta[0] == pytest.approx(hedge["delta"], rel=1e-10)


def test_a_re_marked_step_rewrites_the_previous_mark_to_market_and_the_observation() -> None:
    """``Remarker`` at step 2 with ``flows``: ``option_mtm[1] = V_2' - V_1 + cash_flow_2``.

    Book: short 100 calls K = 102 to step 2 (settles ``-800`` at the market's 110) and short
    100 calls K = 100 to step 6. At S' = 110 e^0.01: ``V_2' = -100 C(S', 100, 4 dt)``,
    ``V_1 = -100 C(104, 102, 1 dt) - 100 C(104, 100, 5 dt)``; the observation's
    ``log_moneyness`` is ``ln(S' / 102)`` (K the first option's strike, not S_0).
    """
    from hedgearena.envs.episode import Remarker

    vol = 0.2
    book = OptionBook(options=(Option(moneyness=1.02, expiry_steps=2, contracts=-1.0),
                               Option(moneyness=1.0, expiry_steps=6, contracts=-1.0)))
    config = EnvConfig(market=_PathMarket(REMARK_SPOTS, [vol] * 5), book=book, cost=0.01,
                       n_steps=4)
    batch = build_episodes(config, 1, np.random.default_rng(0))
    Remarker(config, batch)(2, 0.01, True, flows=True)
    moved = 110.0 * math.exp(0.01)
    v2 = -100.0 * _bs(moved, 100.0, 4 * DT, vol)["price"]
    v1 = -100.0 * (_bs(104.0, 102.0, DT, vol)["price"] + _bs(104.0, 100.0, 5 * DT, vol)["price"])
    ep = batch.episode
    assert ep.spot[2, 0] == pytest.approx(moved, rel=1e-14)
    assert ep.book_value[2, 0] == pytest.approx(v2, rel=1e-10)
    assert ep.cash_flow[2, 0] == pytest.approx(-800.0, abs=1e-9)
    assert ep.option_mtm[1, 0] == pytest.approx(v2 - v1 - 800.0, rel=1e-10)
    assert batch.observations[2, 0, 1] == pytest.approx(math.log(moved / 102.0), rel=1e-6)


def test_the_gamma_hedge_uses_the_hedging_options_own_time_left() -> None:
    """The usable rule ``vega / (S sqrt(tau)) > 1e-4`` takes ``tau`` = the hedging option's time
    left, ``(5 - k) dt`` for an option expiring at step 5 (one step at the episode's end).

    At step 4 (S = 100 = S_0) the option's strike puts ``d1 = -4`` one step from its expiry:
    density ``phi(4) = 1.338e-4 > 1e-4``, usable (with its full 5 steps the density would read
    ``phi(4) / sqrt(5) = 0.6e-4``). The model position is then ``-Gamma_book / Gamma_opt``:
    the book is short 100 at-the-money calls to step 6 (``tau = 2 dt``), the option's gamma
    ``phi(4) / (S sigma sqrt(dt))`` (Hull ch. 19); the limit (10^4 notionals) does not bind.
    """
    from hedgearena.envs.book import HedgeOption
    from hedgearena.envs.episode import GAMMA_HEDGE_MIN_DENSITY

    vol, root = 0.2, 0.2 * math.sqrt(DT)
    moneyness = math.exp(4.0 * root + 0.5 * root**2)  # d1 = -4 at S = S_0, tau = dt
    option = HedgeOption(moneyness=moneyness, expiry_steps=5, is_call=True)
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=6, contracts=-1.0),))
    config = EnvConfig(market=_PathMarket([100.0, 101.0, 99.0, 102.0, 100.0], [vol] * 5),
                       book=book, cost=0.01, n_steps=4, hedge_option=option,
                       option_position_limit=1e4)
    batch = build_episodes(config, 1, np.random.default_rng(0))
    phi4 = math.exp(-8.0) / math.sqrt(2.0 * math.pi)
    assert GAMMA_HEDGE_MIN_DENSITY < phi4 < math.sqrt(5.0) * GAMMA_HEDGE_MIN_DENSITY
    option_gamma = phi4 / (100.0 * root)
    book_gamma = -100.0 * _bs(100.0, 100.0, 2 * DT, vol)["gamma"]
    assert batch.features.option_gamma[0, 4] == pytest.approx(option_gamma, rel=1e-9)
    assert batch.episode.model_option[4, 0] == pytest.approx(-book_gamma / option_gamma,
                                                             rel=1e-9)


# ----------------------------------------------------------------- rebalancing every K decisions
def test_delta_every_k_counts_decisions_not_market_steps() -> None:
    """``rebalance_every=2`` on 12 steps: decisions at steps 0, 2, .., 10 (indices 0..5, the
    market step // 2); ``delta:2`` trades at decision indices 0, 2, 4 (steps 0, 4, 8) and holds
    at 1, 3, 5 (steps 2, 6, 10; every one of them an even *step*, so counting steps instead of
    decisions would trade at all six).

    At a rebalance the position is minus the book's delta at that step (Boyle and Emanuel
    1980's discretely adjusted hedge, :func:`hedgearena.baselines.delta.time_based_rebalance`).
    """
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.baselines.hedger import run_hedger
    from hedgearena.envs.config import make_config
    from hedgearena.envs.vector_env import VecHedgingEnv

    config = make_config("ShortCall", n_steps=12, rebalance_every=2,
                         book={"options": [{"expiry_steps": 12}]})
    env = VecHedgingEnv(num_envs=3, config=config)
    hedge = np.asarray(run_hedger(env, BlackScholesDelta(every=2), seed=5).hedge)  # (6, paths)
    delta = env.batch.features.book_delta  # (paths, steps + 1)
    assert hedge.shape == (6, 3)
    for k, step in enumerate([0, 0, 4, 4, 8, 8]):
        np.testing.assert_allclose(hedge[k], -delta[:, step], rtol=1e-12, err_msg=str(k))
    assert np.all(np.abs(delta[:, 2] - delta[:, 0]) > 1e-6)  # holding differs from trading
