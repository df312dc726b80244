"""An audit of the minimum-variance delta: the env's conventions, the regression's units, inputs.

References:
- Hull and White (2017), "Optimal delta hedging for options", Journal of Banking and Finance 82,
  180-190: the minimum-variance delta ``delta_BS + vega_BS / (S sqrt(T)) (a + b delta_BS + c
  delta_BS^2)`` and the regression of ``dV - delta_BS dS`` on ``vega_BS /
  sqrt(T) dS / S (1, delta_BS, delta_BS^2)``, ``T`` the option's time to expiry
  in years and ``vega_BS`` per unit of vol.
- Black-Scholes-Merton with a continuous dividend yield ``q`` (Hull, "Options, Futures, and
  Other Derivatives", chapter 17 on indices): ``d1 = (ln(S/K) + (r - q + sigma^2/2) T) /
  (sigma sqrt(T))``, call delta ``e^{-qT} N(d1)``, put delta ``-e^{-qT} N(-d1)``, vega ``S e^{-qT}
  phi(d1) sqrt(T)`` (per unit of vol), computed here by hand with ``math.erf``.
- Put-call parity, ``C - P = S - K`` at ``r = q = 0`` (ibid., chapter 11): a put's value change is
  the call's less ``dS``, its delta the call's less 1, its vega the call's.
"""

import math
import time

import numpy as np
import pytest
from mv_reference import black_scholes

import hedgearena.baselines.minimum_variance as mv_module
from hedgearena.baselines.arena import PATH_BLOCK, block_generator, run_arena
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.baselines.minimum_variance import (
    MinimumVarianceDelta,
    fit_minimum_variance,
    regression_rows,
    single_option,
)
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv

A, B, C = -0.1, -0.2, 0.15
HESTON = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7, "v0": 0.04}


# GBM at sigma 0.2, S0 = 100 (ShortCall's market), flat vol: the marks are Black-Scholes'.
CASES = {
    # rebalancing every 5 steps; the option expires at step 12 of 20, inside the third interval
    "every 5, expiry before the end": dict(
        option={"expiry_steps": 12, "contracts": -1.0}, n_steps=20, rebalance_every=5),
    # a long put out of the money, stock in the book, rates and dividends, 365 days a year
    "long put, stock, r and q, 365 days": dict(
        option={"expiry_steps": 20, "contracts": 2.0, "is_call": False, "moneyness": 0.95},
        n_steps=20, stock=30.0, rate=0.03, dividend=0.01, days_per_year=365.0),
    # an option that outlives the episode: its time to expiry is not the episode's
    "expiry after the end": dict(
        option={"expiry_steps": 30, "contracts": -1.0}, n_steps=20, rebalance_every=2),
}


def case_config(option, n_steps, rebalance_every=1, stock=0.0, rate=0.0, dividend=0.0,
                days_per_year=250.0, **kwargs):
    return make_config("ShortCall", cost=0.0, n_steps=n_steps, rebalance_every=rebalance_every,
                       days_per_year=days_per_year, book={"options": [option], "stock": stock},
                       market_kwargs={"rate": rate, "dividend": dividend}, **kwargs)


def hand(case, spot, step):
    """Black-Scholes price, delta and vega of one unit of the case's option at a market step."""
    option = case["option"]
    tau = (option["expiry_steps"] - step) / case.get("days_per_year", 250.0)
    return black_scholes(spot, 100.0 * option.get("moneyness", 1.0), tau, 0.2,
                         case.get("rate", 0.0), case.get("dividend", 0.0),
                         option.get("is_call", True)), tau


@pytest.mark.parametrize("label", list(CASES))
def test_the_hedge_is_equation_3_by_closed_form_and_delta_after_expiry(label):
    # At every decision the hedger holds -(stock + Q delta_MV), delta_MV of Hull and White with
    # delta and vega by hand (Q the option's units): the env's book vega is per unit of vol
    # (S e^{-qT} phi(d1) sqrt(T), not per vol point: 100 times larger than a vol point's), the
    # book-level form is Q times the option's for a short (Q = -100) and a long (Q = 200) one,
    # T is the option's time to expiry at the decision's market step in the config's years,
    # and after the expiry the hedge is delta's (the stock's -30, or 0).
    case = CASES[label]
    config = case_config(**case)
    quantity = case["option"]["contracts"] * 100.0
    stock = case.get("stock", 0.0)
    env = VecHedgingEnv(num_envs=4, config=config)
    env.reset(seed=11)
    hedger, delta = MinimumVarianceDelta(A, B, C), BlackScholesDelta()
    hedger.reset(env)
    delta.reset(env)
    expired = 0
    for _ in range(config.n_decisions):
        state = env.state
        positions = hedger.positions(state, np.zeros((4, 0), np.float32))
        for path in range(4):
            spot, step = float(state["spot"][path]), int(state["step"][path])
            (_, d, vega), tau = hand(case, spot, step)
            assert state["book_vega"][path] == pytest.approx(quantity * vega, rel=1e-9, abs=1e-9)
            assert state["book_delta"][path] == pytest.approx(stock + quantity * d, abs=1e-9)
            adjustment = (vega / (spot * math.sqrt(tau)) * (A + B * d + C * d * d)
                          if tau > 0 else 0.0)
            assert positions[path, 0] == pytest.approx(
                -(stock + quantity * (d + adjustment)), abs=1e-9)
        if state["step"][0] >= case["option"]["expiry_steps"]:
            expired += 1
            np.testing.assert_allclose(
                positions, delta.positions(state, np.zeros((4, 0), np.float32)), atol=1e-12)
            np.testing.assert_allclose(positions[:, 0], -stock, atol=1e-6)
        env.step_targets(positions)
    assert expired == (1 if label.startswith("every 5") else 0)  # the decision at step 15


def test_the_regression_rows_by_closed_form_with_the_expiry_inside_an_interval():
    # Equation (4)'s rows over decisions of 5 steps of a long put with stock, rates, dividends and
    # 365 days a year, expiring at step 12: y = Q (P(t+5) - P(t)) (+ Q payoff at step 12, the
    # settlement, where the expiry falls in the interval) + stock dS - (stock + Q delta) dS, and
    # x = Q vega / (S sqrt(T)) dS (1, delta, delta^2); the decision at step 15 (expired) is 0.
    case = CASES["long put, stock, r and q, 365 days"]
    case = {**case, "option": {**case["option"], "expiry_steps": 12}, "rebalance_every": 5}
    config = case_config(**case)
    batch = build_episodes(config, 6, np.random.default_rng(3), observations=False)
    y, x = regression_rows(config, batch, single_option(config))
    spot = batch.episode.spot
    quantity, stock = 200.0, 30.0
    for k in range(4):
        start, end = 5 * k, 5 * k + 5
        for path in range(6):
            (price, d, vega), tau = hand(case, spot[start, path], start)
            if tau <= 0:
                assert y[k, path] == 0.0
                np.testing.assert_array_equal(x[k, path], 0.0)
                continue
            later = hand(case, spot[end, path], end)[0][0] if end < 12 else 0.0
            settled = max(95.0 - spot[12, path], 0.0) if start < 12 <= end else 0.0
            move = spot[end, path] - spot[start, path]
            value_change = quantity * (later - price + settled) + stock * move
            assert y[k, path] == pytest.approx(value_change - (stock + quantity * d) * move,
                                               abs=1e-9)
            scale = quantity * vega / (spot[start, path] * math.sqrt(tau)) * move
            np.testing.assert_allclose(x[k, path], scale * np.array([1.0, d, d * d]),
                                       rtol=1e-9, atol=1e-12)


def test_put_call_parity_long_short_and_stock_give_the_same_adjustment():
    # At r = q = 0 a put's rows are the call's (y equal, the regressors (1, delta - 1,
    # (delta - 1)^2) a linear map of the call's), so the fitted adjustment of the put at delta - 1
    # is the call's at delta; a long position (3 contracts) and stock scale or leave the rows
    # unchanged: the same coefficients. Heston paths with rho -0.7, the same seed.
    def config(stock=0.0, **option):
        return make_config("ShortCall", market="heston", market_kwargs=HESTON, cost=0.0,
                           book={"options": [{"expiry_steps": 20, "contracts": -1.0, **option}],
                                 "stock": stock})

    call = fit_minimum_variance(config(), 1_500, seed=2)
    put = fit_minimum_variance(config(is_call=False), 1_500, seed=2)
    long = fit_minimum_variance(config(contracts=3.0, stock=30.0), 1_500, seed=2)

    def f(fit, d):
        return float(fit.coefficients @ np.array([1.0, d, d * d]))

    for d in (0.2, 0.5, 0.8):
        assert f(put, d - 1.0) == pytest.approx(f(call, d), abs=1e-9)
    assert f(call, 0.5) < -0.05  # the leverage effect: not a trivial 0 = 0
    np.testing.assert_allclose(long.coefficients, call.coefficients, rtol=1e-9)
    assert put.gain == pytest.approx(call.gain, rel=1e-9)


@pytest.mark.parametrize("label", ["replay, expiry 10 of 21", "hedging option", "initial delta",
                                   "drawdown limit ends paths"])
def test_the_arena_holds_equation_3_from_the_state(label):
    # Through the arena (run_arena's records), on the S&P 500 replay with an option expiring
    # before the window's end, with a hedging option (none held), with initial_hedge="delta"
    # (the env fixes the first position at delta's) and with a risk limit ending most paths
    # early (every decision before a path's end): the position is Hull and White's at the state.
    configs = {
        "replay, expiry 10 of 21": lambda: make_config(
            "HistoricalReplay", n_steps=21,
            book={"options": [{"expiry_steps": 10, "contracts": -1.0}]}),
        "hedging option": lambda: make_config("ShortCall", hedge_option=True),
        "initial delta": lambda: make_config("ShortCall", initial_hedge="delta"),
        "drawdown limit ends paths": lambda: make_config(
            "ShortCall", risk_limits={"drawdown": 150.0, "action": "terminate"}),
    }
    config = configs[label]()
    result = run_arena(config, [MinimumVarianceDelta(A, B, C)], 200, seed=3, progress=False,
                       keep_batches=True)
    batch, record = result.batches[0], result.records["MV delta"]
    option = config.book.options[0]
    quantity = option.contracts * option.multiplier
    live = 0
    for k, step in enumerate(record.steps):
        book_delta = batch.features.book_delta[:, step]
        tau = (option.expiry_steps - step) * config.dt
        d = book_delta / quantity
        adjustment = (batch.features.book_vega[:, step] / (batch.episode.spot[step] * np.sqrt(tau))
                      * (A + B * d + C * d * d) if tau > 0 else 0.0)
        expected = -book_delta if k == 0 and config.initial_hedge == "delta" else -(
            book_delta + adjustment)
        alive = record.totals["end_step"] > step
        live += int(alive.sum())
        np.testing.assert_allclose(record.hedge[k][alive], expected[alive], rtol=1e-12,
                                   atol=1e-9)
    np.testing.assert_array_equal(record.option, 0.0)
    if label.startswith("drawdown"):
        assert np.mean(record.totals["end_step"] < config.n_steps) > 0.3
    else:
        assert live == 200 * config.n_decisions


def test_the_fit_on_two_blocks_is_the_least_squares_of_the_arenas_paths():
    # 20,000 paths are two blocks (16,384 and 3,616): the fit is numpy's lstsq of the rows of the
    # arena's own paths (run_arena's kept batches, built with observations), the same seed gives
    # the same fit, another seed another.
    config = make_config("ShortCall", market="heston", market_kwargs=HESTON, cost=0.0,
                         n_steps=10, book={"options": [{"expiry_steps": 10, "contracts": -1.0}]})
    n_paths = PATH_BLOCK + 3_616
    fit = fit_minimum_variance(config, n_paths, seed=7)
    result = run_arena(config, [NoHedge()], n_paths, seed=7, progress=False, keep_batches=True,
                       totals_only=["no hedge"])
    assert [len(b.initial_cash) for b in result.batches] == [PATH_BLOCK, 3_616]
    rows = [regression_rows(config, b, single_option(config)) for b in result.batches]
    y = np.concatenate([r[0].reshape(-1) for r in rows])
    x = np.concatenate([r[1].reshape(-1, 3) for r in rows])
    coefficients = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(fit.coefficients, coefficients, rtol=1e-9)
    assert fit.n_observations == n_paths * 10
    np.testing.assert_array_equal(fit_minimum_variance(config, n_paths, seed=7).coefficients,
                                  fit.coefficients)
    other = fit_minimum_variance(config, 2_000, seed=8).coefficients
    assert not np.allclose(other, fit_minimum_variance(config, 2_000, seed=7).coefficients)
    block = build_episodes(config, 3_616, block_generator(7, 1), observations=False)
    np.testing.assert_array_equal(block.episode.spot, result.batches[1].episode.spot)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", "x", None])
def test_the_fit_refuses_a_seed_that_is_not_an_integer_from_0(bad):
    # Before: 1.5, True and "3" fitted on seeds 1, 1 and 3 silently (int() of them); -1 raised
    # numpy's "expected non-negative integer", "x" int()'s "invalid literal", None a TypeError.
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0 \(the seed of the paths"):
        fit_minimum_variance(make_config("ShortCall"), 50, seed=bad)


@pytest.mark.parametrize("bad", [{"book": 1}, None, "ShortCall"])
def test_the_fit_refuses_a_config_that_is_not_an_env_config(bad):
    # Before: AttributeError "'dict' object has no attribute 'book'".
    with pytest.raises(ValueError, match=r"config must be an EnvConfig .*make_config.* got "):
        fit_minimum_variance(bad, 50)


@pytest.mark.parametrize("bad", [np.complex128(1 + 1j), 10**400], ids=["complex", "10**400"])
def test_coefficients_must_be_finite_real_numbers(bad):
    # Before: a complex a was taken as its real part (a ComplexWarning), 10**400 raised numpy's
    # TypeError "ufunc 'isfinite' not supported".
    with pytest.raises(ValueError, match=r"a must be a finite number \(a real one"):
        MinimumVarianceDelta(bad, 0.0, 0.0)
    assert MinimumVarianceDelta(np.float32(0.5), np.int8(3), 0).coefficients.tolist() == [
        0.5, 3.0, 0.0]


def test_fitted_takes_a_fit():
    # Before: AttributeError "'numpy.ndarray' object has no attribute 'coefficients'".
    with pytest.raises(ValueError, match="fitted takes a MinimumVarianceFit"):
        MinimumVarianceDelta.fitted(np.array([0.1, 0.2, 0.3]))


def test_a_fit_beyond_the_memory_is_refused_before_any_path_is_built(monkeypatch):
    # The fit keeps 240 bytes a path (x'y, x'x, twice, and the scores): 10,000 paths are 2.4 MB,
    # refused on a machine of 1 MB, at once. Before: it ran (and 10**9 paths ran for hours
    # before running out of memory, where the arena refuses such a run up front).
    monkeypatch.setattr(mv_module, "physical_memory", lambda: 1_000_000)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"n_paths=10,000 would keep about .* GiB for the fit, "
                                         r"more than this machine's .* GiB of memory: use fewer "
                                         r"paths \(about 2,083 fit in half of it\)"):
        fit_minimum_variance(make_config("ShortCall"), 10_000)
    assert time.perf_counter() - start < 0.5


def test_rows_of_a_batch_of_another_config_are_refused():
    # Before: an IndexError from the spot's rows.
    short = make_config("ShortCall", n_steps=10, book={"options": [{"expiry_steps": 10}]})
    batch = build_episodes(short, 4, np.random.default_rng(0), observations=False)
    config = make_config("ShortCall")
    with pytest.raises(ValueError, match="the batch has 10 market steps, the config 20"):
        regression_rows(config, batch, single_option(config))
