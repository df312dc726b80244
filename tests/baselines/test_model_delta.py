"""The model's own minimum-variance delta (Bakshi, Cao and Chen 1997; Alexander and Nogueira
2007; Bartlett 2006): per option against QuantLib's Heston prices and SABR vols, differentiated
here by finite differences (not the hedger's autograd); the book's hedge against a sum over its
held options repriced by finite differences; GBM's against the Black-Scholes delta hedge bit for
bit; the variance it removes on Heston paths by Monte Carlo; the markets it refuses."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)
from mv_reference import delta_hedged

from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.hedger import run_hedger
from hedgearena.baselines.model_delta import (
    VARIANCE_FLOOR,
    JumpLaw,
    ModelDelta,
    VolSpotCovariance,
    jump_covariance,
    merton_minimum_variance_delta,
    model_slopes,
    smile_adjustment,
    vol_spot_covariance,
)
from hedgearena.baselines.registry import describe, parse_hedger
from hedgearena.envs.black_scholes import black_scholes_greeks, black_scholes_price
from hedgearena.envs.config import make_config
from hedgearena.envs.heston import Heston
from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.merton import MertonSurface, merton_call_price
from hedgearena.envs.sabr import SABR
from hedgearena.envs.scenarios import apply_scenario, make_scenario
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.envs.vol_surface import SABRSurface, SmileSurface

KAPPA, THETA, XI, RHO = 2.0, 0.04, 0.5, -0.7  # OptionBook-v0's Heston


def model_delta_of(surface, covariance, spot, strike, tau, level, rate=0.0, dividend=0.0,
                   is_call=True):
    """The hedger's per-option Delta_MV: Black-Scholes greeks plus its smile adjustment."""
    a = [np.array([float(x)]) for x in (spot, strike, tau, level)]
    vol = surface.implied_vol(a[0], a[1], a[2], a[3], a[0], rate, dividend)
    greeks = black_scholes_greeks(a[0], a[1], a[2], vol, rate, dividend, is_call,
                                  select=("delta", "vega"))
    slopes = model_slopes(surface, a[0], a[1], a[2], a[3], a[0], rate, dividend)
    return float((greeks.delta + smile_adjustment(greeks.vega, slopes,
                                                  covariance.ratio(a[0])))[0])


# ---- Heston: C_S + rho xi / S C_v against QuantLib's AnalyticHestonEngine ---------------------

def quantlib_heston(spot, variance, strike, days, is_call, rate, dividend):
    """QuantLib's Heston price (Actual/365, ``days`` to expiry)."""
    today = ql.Date(2, 1, 2026)
    ql.Settings.instance().evaluationDate = today
    count = ql.Actual365Fixed()
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, rate, count))
    carry = ql.YieldTermStructureHandle(ql.FlatForward(today, dividend, count))
    process = ql.HestonProcess(curve, carry, ql.QuoteHandle(ql.SimpleQuote(spot)), variance,
                               KAPPA, THETA, XI, RHO)
    engine = ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100_000)
    kind = ql.Option.Call if is_call else ql.Option.Put
    option = ql.VanillaOption(ql.PlainVanillaPayoff(kind, strike),
                              ql.EuropeanExercise(today + days))
    option.setPricingEngine(engine)
    return option.NPV()


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize(("rate", "dividend"), [(0.0, 0.0), (0.03, 0.01)])
def test_heston_options_model_delta_is_quantlibs_c_s_plus_rho_xi_over_s_c_v(
        is_call, rate, dividend):
    # Delta_MV = C_S + rho xi / S C_v (Bakshi, Cao and Chen 1997), here from QuantLib's
    # semi-closed form by central differences (steps 1% of S and 1e-4 of v; their error is
    # below 1e-4 in delta). Tolerance: the Heston table's documented slope error, 4.3% of the
    # vol's slope in v (HestonSurface: its C_v term), plus 0.004 in delta for its slope in
    # the spot (the table's 6e-5 interpolation error in vol across a refined z cell, about
    # half a currency wide here, times a vega below 20).
    spot, ratio = 100.0, RHO * XI / 100.0
    surface = HestonSurface(KAPPA, THETA, XI, RHO)
    worst = 0.0
    for days in (30, 73):
        for strike in (90.0, 100.0, 110.0):
            for variance in (0.02, 0.04, 0.09):
                option = (strike, days, is_call, rate, dividend)
                c_s = (quantlib_heston(1.01 * spot, variance, *option)
                       - quantlib_heston(0.99 * spot, variance, *option)) / 2.0
                c_v = (quantlib_heston(spot, variance + 1e-4, *option)
                       - quantlib_heston(spot, variance - 1e-4, *option)) / 2e-4
                want = c_s + ratio * c_v
                got = model_delta_of(surface, vol_spot_covariance(Heston(xi=XI, rho=RHO)), spot,
                                     strike, days / 365, variance, rate, dividend, is_call)
                error = abs(got - want)
                assert error <= 0.043 * abs(ratio * c_v) + 0.004, (days, strike, variance)
                worst = max(worst, error)
    assert worst < 0.003  # measured: at most 0.0019 (calls and puts, with and without carry)


def test_at_a_variance_near_zero_the_level_slope_is_taken_at_the_floor():
    # The table is linear in v**(1/4): at v = 1e-7 its slope in v is -35 x vega where Heston's
    # C_v is +88 (QuantLib, 5 days at the money). The hedger takes it at VARIANCE_FLOOR, within
    # 17% of QuantLib's C_v at v = 1e-7 (Heston's C_v changes that little below the floor).
    surface, days = HestonSurface(KAPPA, THETA, XI, RHO), 5
    c_v = (quantlib_heston(100.0, 1.5e-7, 100.0, days, True, 0.0, 0.0)
           - quantlib_heston(100.0, 0.5e-7, 100.0, days, True, 0.0, 0.0)) / 1e-7
    a = [np.array([x]) for x in (100.0, 100.0, days / 365)]
    vol = surface.implied_vol(a[0], a[1], a[2], np.array([1e-7]), a[0], 0.0, 0.0)
    vega = black_scholes_greeks(a[0], a[1], a[2], vol, select=("vega",)).vega
    slopes = model_slopes(surface, *a, np.array([1e-7]), a[0], 0.0, 0.0)
    at_floor = model_slopes(surface, *a, np.array([VARIANCE_FLOOR]), a[0], 0.0, 0.0)
    assert slopes.level[0] == at_floor.level[0]
    assert abs(float(vega[0] * slopes.level[0]) / c_v - 1.0) < 0.17


# ---- SABR: Bartlett's (2006) delta from QuantLib's Hagan vol by finite differences ----------

def hagan_vol(strike, tau, growth, carry, params, spot, alpha):
    """QuantLib's Hagan vol of the forward ``growth * spot`` and its alpha ``carry * alpha``."""
    beta, nu, rho = params
    return ql.sabrVolatility(strike, spot * growth, tau, alpha * carry, beta, nu, rho)


@pytest.mark.parametrize(("rate", "dividend"), [(0.0, 0.0), (0.04, 0.01)])
def test_sabr_options_model_delta_is_bartletts(rate, dividend):
    # Bartlett (2006): Delta = Delta_BS + vega (d sigma / dF + rho nu / F^beta d sigma /
    # d alpha), the spot as the underlying (dS = alpha S^beta dW1): here QuantLib's
    # sabrVolatility (Hagan et al. 2002) differentiated by central differences (steps 1e-4 of
    # S and of alpha; truncation below 1e-9 in vol), of the forward S e^{(r - q) tau} and the
    # forward's alpha alpha e^{(1 - beta)(r - q) tau}. Both differentiate the same formula.
    beta, rho, nu = 0.5, -0.3, 0.4
    surface = SABRSurface(beta, rho, nu)
    moved = 0.0
    for strike in (80.0, 95.0, 100.0, 120.0):
        for tau, alpha in ((0.1, 2.0), (0.5, 2.5), (1.0, 1.5)):
            spot = 100.0
            growth = math.exp((rate - dividend) * tau)
            carry = math.exp((1.0 - beta) * (rate - dividend) * tau)
            vol = functools.partial(hagan_vol, strike, tau, growth, carry, (beta, nu, rho))
            h_s, h_a = 1e-4 * spot, 1e-4 * alpha
            d_spot = (vol(spot + h_s, alpha) - vol(spot - h_s, alpha)) / (2 * h_s)
            d_alpha = (vol(spot, alpha + h_a) - vol(spot, alpha - h_a)) / (2 * h_a)
            greeks = black_scholes_greeks(spot, strike, tau, vol(spot, alpha), rate, dividend,
                                          select=("delta", "vega"))
            want = greeks.delta + greeks.vega * (d_spot + rho * nu / spot**beta * d_alpha)
            got = model_delta_of(surface, vol_spot_covariance(SABR(beta=beta, rho=rho, nu=nu)),
                                 spot, strike, tau, alpha, rate, dividend)
            assert got == pytest.approx(float(want), abs=1e-7), (strike, tau)
            moved = max(moved, abs(got - float(greeks.delta)))
    assert moved > 0.02  # the smile moves it off the Black-Scholes delta (0.034 to 0.039)


# ---- Merton: the quadratic hedge of the diffusion and the jumps ------------------------------

SIGMA, LAMBDA, JUMP_MEAN, JUMP_STD = 0.2, 1.0, -0.1, 0.15  # MertonJumpDiffusion's defaults
LAW = JumpLaw(SIGMA, LAMBDA, JUMP_MEAN, JUMP_STD)


def quad_jump_delta(price, spot):
    """Cont and Tankov's (2004, 10.4.2) quadratic hedge of the price function ``price(x)``:
    ``(sigma^2 C_S + lambda/S int (C(S e^y) - C(S))(e^y - 1) phi(y) dy) / (sigma^2 + lambda
    int (e^y - 1)^2 phi(y) dy)``, the integrals by scipy's adaptive quadrature and ``C_S`` by
    central differences (1e-4 of S)."""
    from scipy import integrate, stats

    density = stats.norm(JUMP_MEAN, JUMP_STD).pdf
    low, high = JUMP_MEAN - 12 * JUMP_STD, JUMP_MEAN + 12 * JUMP_STD
    c = price(spot)
    covariance = integrate.quad(lambda y: (price(spot * math.exp(y)) - c) * math.expm1(y)
                                * density(y), low, high, epsabs=1e-9, epsrel=1e-9, limit=200)[0]
    variance = integrate.quad(lambda y: math.expm1(y) ** 2 * density(y), low, high,
                              epsabs=1e-14)[0]
    c_s = (price(spot * 1.0001) - price(spot * 0.9999)) / (2e-4 * spot)
    return (SIGMA**2 * c_s + LAMBDA * covariance / spot) / (SIGMA**2 + LAMBDA * variance)


def test_merton_options_model_delta_is_the_quadratic_hedge_of_mertons_prices():
    # Merton's prices from its own series (merton_call_price, not the surface that marks the
    # book), the jump integral by adaptive quadrature: within 1e-3 (the surface's 4e-5 in vol
    # across a refined z cell, about a currency wide, times a vega below 12, weighted by
    # sigma^2 / (sigma^2 + lambda E[(e^Y - 1)^2]) = 0.55 in the diffusion's C_S; measured
    # 3e-4). At the money it is 0.425 where C_S is 0.542 and the Black-Scholes delta 0.513.
    surface = MertonSurface(SIGMA, LAMBDA, JUMP_MEAN, JUMP_STD)
    level, tau, moved = surface.base_level, 20 / 250, 0.0
    for strike in (90.0, 100.0, 110.0):
        want = quad_jump_delta(functools.partial(merton_price, strike, tau), 100.0)
        spot, k, t, v = (np.array([x]) for x in (100.0, strike, tau, level))
        vol = surface.implied_vol(spot, k, t, v, spot, 0.0, 0.0)
        greeks = black_scholes_greeks(spot, k, t, vol, select=("price", "delta", "vega"))
        c_s = greeks.delta + smile_adjustment(greeks.vega, model_slopes(
            surface, spot, k, t, v, spot, 0.0, 0.0), np.zeros(1))
        covariance = jump_covariance(functools.partial(surface_mark, surface, k, t, v),
                                     greeks.price, spot, LAW)
        got = float(merton_minimum_variance_delta(c_s, covariance, spot, LAW)[0])
        assert got == pytest.approx(want, abs=1e-3), strike
        moved = max(moved, abs(got - float(c_s[0])))
    assert moved > 0.05  # the jumps move it off C_S


def merton_price(strike, tau, spot):
    """Merton's call price by its series (Merton 1976), currency."""
    return float(merton_call_price(spot, strike, tau, SIGMA, LAMBDA, JUMP_MEAN, JUMP_STD))


def surface_mark(surface, strike, tau, level, spot):
    """Black-Scholes at ``surface``'s vol of ``spot`` (the env's mark; anchor 100), ``(k,)``."""
    vol = surface.implied_vol(spot, strike, tau, level, 100.0, 0.0, 0.0)
    return black_scholes_price(spot, strike, tau, vol, 0.0, 0.0, True)


def test_the_jump_quadrature_is_a_dense_trapezoidal_rules_integral():
    # JUMP_NODES Gauss-Hermite nodes against the trapezoidal rule on 40,001 log jumps over
    # +-10 standard deviations (its error O(h^2) ~ 1e-8 here, kinks of the table's linear
    # cells included), on the surface's own marks: within 1e-5 in delta for 20-day calls
    # (measured 6e-6; 8e-5 with 16 nodes).
    from scipy import stats

    surface = MertonSurface(SIGMA, LAMBDA, JUMP_MEAN, JUMP_STD)
    level, tau = surface.base_level, 20 / 250
    y = np.linspace(JUMP_MEAN - 10 * JUMP_STD, JUMP_MEAN + 10 * JUMP_STD, 40_001)
    density = stats.norm(JUMP_MEAN, JUMP_STD).pdf(y)
    for strike in (80.0, 100.0, 120.0):
        spot, k, t, v = (np.array([x]) for x in (100.0, strike, tau, level))
        mark = functools.partial(surface_mark, surface, k, t, v)
        price = mark(spot)
        want = np.trapezoid((mark(100.0 * np.exp(y)) - price) * np.expm1(y) * density, y)
        got = jump_covariance(mark, price, spot, LAW)
        scale = LAMBDA / 100.0 / (SIGMA**2 + LAMBDA * LAW.jump_variance())  # into delta
        assert abs(float(got[0]) - want) * scale < 1e-5, strike


def _variance_reduction(config, n_paths):
    """Delta's P&L variance less the model delta's on the same ``n_paths`` (seed 21), paired:
    the mean of ``(delta - mean)^2 - (model - mean)^2`` and its standard error."""
    env = VecHedgingEnv(num_envs=n_paths, config=config)
    delta = run_hedger(env, BlackScholesDelta(), seed=21).totals["pnl"]
    model = run_hedger(env, ModelDelta(), seed=21).totals["pnl"]
    paired = (delta - delta.mean()) ** 2 - (model - model.mean()) ** 2
    return paired.mean(), paired.std(ddof=1) / math.sqrt(paired.size)


def test_on_merton_paths_it_hedges_a_short_call_with_less_variance_than_delta():
    # ShortCall-v0 on Merton's defaults (one jump a year of -10% +- 15%), no costs: on 16,000
    # paths the P&L variance falls from 41,350 to 35,110 (std 203 -> 187); the paired
    # difference of the squared deviations is 6,240, its standard error 1,024 (6 standard
    # errors; asserted above 3). The diffusion's C_S alone hedges worse than delta there.
    config = make_config("ShortCall", market="merton", cost=0.0)
    gain, error = _variance_reduction(config, 16_000)
    assert gain > 3.0 * error, (gain, error)


# ---- the book's hedge --------------------------------------------------------------------------

def option_model_delta(market, path, step, spot, strike, tau, is_call, ratio):
    """``C_S + ratio C_level`` of one held option by central differences of its mark
    BS(S, K, T, sigma(S, level)) (steps 1e-6 of S, 1e-8 of the level)."""
    level, anchor = float(market.vol_state[path, step]), market.spot[path, 0]

    def vol(s, v):
        return market.surface.implied_vol(np.array([s]), strike, tau, np.array([v]), anchor,
                                          market.rate, market.dividend)

    def mark(s, v):
        return float(black_scholes_price(s, strike, tau, vol(s, v), market.rate,
                                         market.dividend, is_call)[0])
    h = 1e-6 * spot
    c_s = (mark(spot + h, level) - mark(spot - h, level)) / (2 * h)
    if level < VARIANCE_FLOOR:  # the hedger's documented floor: its vega x the slope there
        vega = black_scholes_greeks(spot, strike, tau, vol(spot, level), market.rate,
                                    market.dividend, select=("vega",)).vega
        v = VARIANCE_FLOOR
        c_v = float(vega[0]) * float(vol(spot, v + 1e-8)[0] - vol(spot, v - 1e-8)[0]) / 2e-8
    else:
        c_v = (mark(spot, level + 1e-8) - mark(spot, level - 1e-8)) / 2e-8
    return c_s + ratio * c_v


def finite_difference_hedge(env, state):
    """``-(sum_i q_i (C_S + ratio C_level) + stock)`` over the options held on each path,
    looped over paths and options (:func:`option_model_delta`; the reference)."""
    market, book = env.batch.market, env.batch.instruments
    covariance = vol_spot_covariance(env.config.market)
    expiries = np.broadcast_to(book.expiry, book.strike.shape)
    hedge = np.zeros(env.num_envs)
    for p in range(env.num_envs):
        step, spot = int(state["step"][p]), float(state["spot"][p])
        for i in range(book.strike.shape[1]):
            start, expiry = int(book.start[p, i]), int(expiries[p, i])
            quantity = float(book.quantity[p, i])
            if not (start <= step < expiry) or quantity == 0.0:
                continue
            tau = (expiry - step) * env.config.dt  # years (past the episode's end too)
            hedge[p] -= quantity * option_model_delta(
                market, p, step, spot, float(book.strike[p, i]), tau, bool(book.is_call[p, i]),
                float(covariance.ratio(spot)))
        hedge[p] -= float(env.config.book.stock)
    return hedge


def test_the_books_hedge_sums_its_held_options_model_deltas():
    # OptionBook-v0 (Heston, client flow of calls and puts), 6 paths after 25 decisions of the
    # delta hedge: many options held, some arrived, some settled, variances near 0 too.
    env = VecHedgingEnv(num_envs=6, preset="OptionBook")
    env.reset(seed=11)
    delta_hedged(env, 25)
    hedger = ModelDelta()
    hedger.reset(env)
    state = env.state
    got = hedger.positions(state, np.zeros((6, 0), np.float32))[:, 0]
    want = finite_difference_hedge(env, state)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert np.abs(got + state["book_delta"]).min() > 0.1  # not the Black-Scholes delta


def test_on_gbm_it_is_the_black_scholes_delta_hedge_bit_for_bit():
    # A flat surface whose level does not move: C_S = Delta_BS and no level term.
    config = make_config("PortfolioInsurance", hedge_option=True)  # two options, r = 2%
    env = VecHedgingEnv(num_envs=64, config=config)
    want = run_hedger(env, BlackScholesDelta(), seed=5)
    got = run_hedger(env, ModelDelta(), seed=5)
    np.testing.assert_array_equal(got.hedge, want.hedge)
    np.testing.assert_array_equal(got.option, np.zeros_like(got.option))  # no hedging option


def test_on_a_sticky_delta_smile_it_adds_the_smiles_slope():
    # GBM marked on a sticky-delta smile: the level does not move, but the vol of a strike
    # moves with the spot, so the hedge is C_S = Delta_BS + vega d sigma / dS (by differences).
    config = make_config("ShortCall", market_kwargs={"surface": SmileSurface(skew=-0.2)})
    env = VecHedgingEnv(num_envs=3, config=config)
    env.reset(seed=2)
    hedger = ModelDelta()
    hedger.reset(env)
    got = hedger.positions(env.state, np.zeros((3, 0), np.float32))[:, 0]
    np.testing.assert_allclose(got, finite_difference_hedge(env, env.state), rtol=1e-6)
    assert np.all(np.abs(got + env.state["book_delta"]) > 0.5)


# ---- Monte Carlo: the variance it removes -----------------------------------------------------

def test_on_heston_paths_it_hedges_a_short_call_with_less_variance_than_delta():
    # ShortCall-v0 (100 short 20-day at-the-money calls) on OptionBook's Heston (rho -0.7),
    # no costs, daily: the model's MV delta holds less than the Black-Scholes delta (the vol
    # falls as the spot rises). On 4,000 paths the P&L variance falls from 3,085 to 2,805
    # (std 55.5 -> 53.0); the paired difference of the squared deviations is 280, its standard
    # error 23 (12 standard errors; asserted above 4).
    config = make_config("ShortCall", cost=0.0, market="heston",
                         market_kwargs=dict(kappa=KAPPA, theta=THETA, xi=XI, rho=RHO, v0=0.04))
    gain, error = _variance_reduction(config, 4000)
    assert gain > 4.0 * error, (gain, error)


# ---- the spec and the refusals -------------------------------------------------------------

def test_the_spec_builds_it_and_takes_no_argument():
    hedger = parse_hedger("model_delta")
    assert isinstance(hedger, ModelDelta)
    assert describe(hedger) == {"class": "ModelDelta"}
    assert hedger.name == "model MV delta"
    with pytest.raises(ValueError, match="model_delta takes no argument"):
        parse_hedger("model_delta:1")


def test_the_covariance_ratio_of_each_model():
    assert vol_spot_covariance(Heston(xi=0.5, rho=-0.7)) == (-0.35, 1.0)
    assert vol_spot_covariance(SABR(beta=0.7, rho=-0.5, nu=0.4)) == (-0.2, 0.7)
    np.testing.assert_allclose(VolSpotCovariance(-0.12, 0.5).ratio(np.array([64.0])), [-0.015])
    assert vol_spot_covariance(make_config("ShortCall").market) == (0.0, 0.0)
    assert vol_spot_covariance(make_config("ShortCall", market="merton").market) == (0.0, 0.0)


def test_the_sp500_replay_is_refused_by_name_at_reset():
    env = VecHedgingEnv(num_envs=2, preset="HistoricalReplay")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"replay of 'S&P 500' \(market 'historical'\) has no "
                                         "model.*allows the markets gbm, heston, sabr, merton"):
        ModelDelta().reset(env)


def test_a_benchmark_of_the_replay_refuses_it_before_anything_runs():
    # train.py's check of the hedgers resets each on two paths before a run writes or trains.
    from hedgearena.training import check_hedgers

    with pytest.raises(ValueError, match=r"arena\.hedgers: 'model_delta' cannot hedge this env: "
                                         "the historical replay of 'S&P 500'"):
        check_hedgers(make_config("HistoricalReplay"), ["delta", "model_delta"])
    check_hedgers(make_config("OptionBook"), ["delta", "model_delta"])  # accepted


def test_a_stress_scenario_is_refused_by_name():
    config = apply_scenario(make_config("ShortCall"), make_scenario("volatile"))
    name = type(config.market).__name__
    with pytest.raises(ValueError, match=rf"{name} is not one of the markets.*unwrapped"):
        vol_spot_covariance(config.market)


def test_a_surface_that_does_not_work_on_torch_is_refused():
    class NumpyOnly:
        def implied_vol(self, spot, strike, tau, level, anchor, rate, dividend):
            return np.full(np.shape(np.asarray(spot)), 0.2)

    config = make_config("ShortCall", market_kwargs={"surface": NumpyOnly()})
    env = VecHedgingEnv(num_envs=2, config=config)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"NumpyOnly\.implied_vol failed on torch tensors"):
        ModelDelta().reset(env)


def test_positions_before_reset_are_refused():
    with pytest.raises(RuntimeError, match="reset"):
        ModelDelta().positions({"book_delta": np.zeros(1), "spot": np.ones(1)},
                               np.zeros((1, 0), np.float32))
