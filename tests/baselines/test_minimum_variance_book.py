"""Hull and White's minimum-variance delta for books of many options (the market maker's case).

References:
- Hull and White (2017), "Optimal delta hedging for options", Journal of Banking and Finance 82,
  180-190: the regression of ``dV - delta_BS dS`` on ``vega_BS / sqrt(T) dS / S (1, delta,
  delta^2)``, one ``(a, b, c)`` fitted across strikes and maturities, and the hedge
  ``delta_BS + vega_BS / (S sqrt(T)) (a + b delta + c delta^2)``; for a book, the
  position-weighted sums over its options.
- Black-Scholes-Merton with a dividend yield (Hull, "Options, Futures, and Other Derivatives",
  chapter 17): call delta ``e^{-qT} N(d1)``, put delta ``-e^{-qT} N(-d1)``, vega ``S e^{-qT}
  phi(d1) sqrt(T)``, computed here by hand with ``math.erf``; put-call parity of the deltas,
  ``delta_call - delta_put = e^{-qT}`` (ibid., chapter 11): a put enters the quadratic at the
  call's delta.
- Heston's minimum-variance delta ``dC/dS + rho xi / S dC/dv`` (Ito's lemma; Poulsen,
  Schenk-Hoppe and Ewald 2009, Quantitative Finance 9(6)), Heston's prices from QuantLib's
  AnalyticHestonEngine.
"""

import math
import tracemalloc

import numpy as np
import pytest
from mv_reference import black_scholes, hand_row, hand_terms, quantlib_heston_f, surface_vol

import hedgearena.baselines.minimum_variance as mv_module
from hedgearena.baselines.arena import block_generator, run_arena
from hedgearena.baselines.benchmark import BenchmarkSettings
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.minimum_variance import (
    FIT_BYTES_PER_PATH,
    MinimumVarianceDelta,
    book_option,
    book_regression_rows,
    fit_minimum_variance,
    regression_rows,
    single_option,
)
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.training import check_fit, check_hedgers

HESTON = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7, "v0": 0.04}
A, B, C = -0.1, -0.2, 0.15


# A fixed book on GBM (flat vol 0.2) with r and q and stock, rebalanced every 5 of 20 steps:
# a short call outliving the episode (expiry 30), a long put settling at step 10 (a decision)
# and a short call settling at step 12 (inside the interval from 10 to 15).
FIXED = {"options": [
    {"moneyness": 1.0, "expiry_steps": 30, "contracts": -1.0},
    {"moneyness": 0.95, "expiry_steps": 10, "contracts": 2.0, "is_call": False},
    {"moneyness": 1.05, "expiry_steps": 12, "contracts": -1.0},
], "stock": 30.0}


def fixed_config(book=FIXED, n_steps=20, rebalance_every=5):
    return make_config("ShortCall", cost=0.0, n_steps=n_steps, rebalance_every=rebalance_every,
                       book=book, market_kwargs={"rate": 0.03, "dividend": 0.01})


def test_the_rows_of_a_fixed_book_by_closed_form_leave_out_options_settling_in_the_interval():
    # Rows of decisions 0, 5, 10, 15: y = sum over the options held at the decision and still
    # held at the next one of q (V(t+5) - V(t) - delta dS), x = the same options' sum of
    # q vega / (S sqrt T) (1, d, d^2) dS, d the call's delta (the put's + e^{-qT}). The put
    # (settling at 10) is in the first row only, the call settling at 12 in the first two; the
    # stock (30 units) cancels. Each row has the long-dated call: 4 rows a path.
    config = fixed_config()
    batch = build_episodes(config, 5, np.random.default_rng(3), observations=False)
    rows = book_regression_rows(config, batch)
    assert rows.y.shape == (4, 5)
    assert rows.x.shape == (4, 5, 3)
    counts = []
    for k in range(4):
        for path in range(5):
            y, x, survivors = hand_row(batch, config, path, 5 * k, 5 * k + 5)
            assert rows.y[k, path] == pytest.approx(y, rel=1e-9, abs=1e-9)
            np.testing.assert_allclose(rows.x[k, path], x, rtol=1e-9, atol=1e-9)
            assert rows.observed[k, path]
        counts.append(len(survivors))
    assert counts == [3, 2, 1, 1]
    fit = fit_minimum_variance(config, 40, seed=2)
    assert fit.n_observations == 4 * 40


def test_a_path_decision_without_a_surviving_option_is_no_row():
    # Without the long-dated call, the decision at 10 holds only the call settling at 12 and
    # the one at 15 nothing: both are no rows (0, not counted), 2 rows a path.
    config = fixed_config(book={"options": FIXED["options"][1:]})
    batch = build_episodes(config, 30, block_generator(4, 0), observations=False)
    rows = book_regression_rows(config, batch)
    np.testing.assert_array_equal(rows.observed, np.arange(4)[:, None] < 2 + np.zeros(30))
    np.testing.assert_array_equal(rows.y[2:], 0.0)
    np.testing.assert_array_equal(rows.x[2:], 0.0)
    assert fit_minimum_variance(config, 30, seed=4).n_observations == 2 * 30


@pytest.mark.parametrize("every", [1, 2])
def test_a_book_of_one_long_dated_option_has_the_one_option_rows(every):
    # A call outliving the episode on Heston with r, q and stock: the pooled rows (repriced at
    # the surface's vol) are the one-option rows (the env's marks) to rounding; a put's are the
    # one-option rows with its delta moved to the call's, d + e^{-qT} (Hull and White's d for a
    # put), x = (x0, x1 + e^{-qT} x0, x2 + 2 e^{-qT} x1 + e^{-2qT} x0).
    for is_call in (True, False):
        config = make_config(
            "ShortCall", market="heston",
            market_kwargs={**HESTON, "rate": 0.02, "dividend": 0.01}, cost=0.0,
            n_steps=20, rebalance_every=every, book={"options": [
                {"expiry_steps": 30, "contracts": -2.0, "is_call": is_call,
                 "moneyness": 1.0 if is_call else 0.97}], "stock": 10.0})
        batch = build_episodes(config, 200, np.random.default_rng(7), observations=False)
        book = book_regression_rows(config, batch)
        y, x = regression_rows(config, batch, single_option(config))
        np.testing.assert_allclose(book.y, y, rtol=1e-9, atol=1e-8)
        if is_call:
            np.testing.assert_allclose(book.x, x, rtol=1e-9, atol=1e-12)
        else:
            starts = np.arange(config.n_decisions) * every
            shift = np.exp(-0.01 * (30 - starts) * config.dt)[:, None]
            mapped = np.stack((x[..., 0], x[..., 1] + shift * x[..., 0],
                               x[..., 2] + 2 * shift * x[..., 1] + shift**2 * x[..., 0]), -1)
            np.testing.assert_allclose(book.x, mapped, rtol=1e-8, atol=1e-10)
        assert book.observed.all()


def test_the_rows_of_a_client_flow_book_leave_out_the_options_arriving_in_the_interval():
    # OptionBook (Heston rho -0.7, client flow) rebalanced every 3 steps: a row is over the
    # options held at the decision that survive the interval, by hand at the surface's vol.
    # Options arriving inside the interval are in the env's mark-to-market but not in the rows
    # (the hedge could not hold them): on some rows the two differ.
    config = make_config("OptionBook", cost=0.0, n_steps=12, rebalance_every=3,
                         market_kwargs={"rate": 0.02, "dividend": 0.01},
                         book={"options": [], "client_flow": {"rate": 2_000.0,
                                                              "expiry_steps": [4, 30]}})
    batch = build_episodes(config, 6, np.random.default_rng(11), observations=False)
    rows = book_regression_rows(config, batch)
    spot, mtm, delta = batch.episode.spot, batch.episode.option_mtm, batch.features.book_delta
    arrivals_matter = 0
    for k in range(4):
        start, end = 3 * k, 3 * k + 3
        for path in range(6):
            s0, s1 = float(spot[start, path]), float(spot[end, path])
            _, _, held = hand_terms(batch, config, path, start, s0)
            y = 0.0
            for slot, expiry, quantity, price, d in held:
                if expiry <= end:
                    continue
                strike = float(batch.instruments.strike[path, slot])
                is_call = bool(batch.instruments.is_call[path, slot])
                tau1 = (expiry - end) * config.dt
                vol1 = surface_vol(batch, path, end, s1, strike, tau1)
                later = black_scholes(s1, strike, tau1, vol1, 0.02, 0.01, is_call)[0]
                y += quantity * (later - price - d * (s1 - s0))
            assert rows.y[k, path] == pytest.approx(y, rel=1e-8, abs=1e-7)
            assert rows.observed[k, path] == any(h[1] > end for h in held)
            env_y = mtm[start:end, path].sum() - delta[path, start] * (s1 - s0)
            arrivals_matter += not np.isclose(env_y, y, rtol=1e-6, atol=1e-6)
    assert arrivals_matter >= 5


@pytest.mark.parametrize("label", ["flow, r and q, every 2", "hedging option", "initial delta"])
def test_the_arena_holds_the_books_minimum_variance_delta(label):
    # Through the arena on OptionBook (Heston rho -0.7, client flow): at every decision the
    # position is -(book delta + sum_i q_i vega_i / (S sqrt T_i) (a + b d_i + c d_i^2)) over
    # the options held there (arrived, not settled), by hand at the surface's vol, d the call's
    # delta; with a hedging option none is held, and initial_hedge="delta" opens at delta's.
    overrides = {
        "flow, r and q, every 2": dict(rebalance_every=2,
                                       market_kwargs={"rate": 0.03, "dividend": 0.02}),
        "hedging option": dict(hedge_option=True),
        "initial delta": dict(initial_hedge="delta"),
    }[label]
    config = make_config("OptionBook", n_steps=24, **overrides)
    result = run_arena(config, [MinimumVarianceDelta(A, B, C)], 8, seed=3, progress=False,
                       keep_batches=True)
    batch, record = result.batches[0], result.records["MV delta"]
    checked = 0
    for k, step in enumerate(record.steps):
        for path in range(8):
            spot = float(batch.episode.spot[step, path])
            terms, delta, held = hand_terms(batch, config, path, step, spot)
            book_delta = batch.features.book_delta[path, step]
            assert book_delta == pytest.approx(delta, abs=1e-8)
            expected = -book_delta if k == 0 and label == "initial delta" else -(
                book_delta + terms @ np.array([A, B, C]))
            assert record.hedge[k][path] == pytest.approx(expected, rel=1e-9, abs=1e-8)
            checked += len(held) > 1
    assert checked > 50  # most decisions hold several options
    np.testing.assert_array_equal(record.option, 0.0)


def test_zero_coefficients_hedge_a_book_as_delta_does():
    config = make_config("OptionBook", n_steps=20, hedge_option=True)
    result = run_arena(config, [BlackScholesDelta(), MinimumVarianceDelta(0, 0, 0)], 64, seed=2,
                       progress=False)
    delta, mv = result.records["delta"], result.records["MV delta"]
    np.testing.assert_array_equal(mv.hedge, delta.hedge)
    np.testing.assert_array_equal(mv.option, 0.0)
    np.testing.assert_array_equal(mv.totals["pnl"], delta.totals["pnl"])


def test_a_flat_vol_book_gives_no_adjustment():
    # GBM at sigma 0.2 (the implied vol never moves), client flow of calls and puts at random
    # strikes and expiries, 20 daily steps: the pooled fit's a + b d + c d^2 is within 0.015 of
    # 0 at d = 0.2, 0.5, 0.8 (measured -0.006 to 0.004 on seeds 1 to 3, under 2 SE; the
    # leverage effect below gives -0.12) and removes under 0.2% of the delta hedge's squared
    # error (measured 0.002% to 0.07%).
    config = make_config("OptionBook", market="gbm", market_kwargs={"sigma": 0.2}, cost=0.0,
                         n_steps=20)
    fit = fit_minimum_variance(config, 3_000, seed=1)
    t = np.array([[1.0, d, d * d] for d in (0.2, 0.5, 0.8)])
    values, errors = t @ fit.coefficients, np.sqrt(np.einsum("ij,jk,ik->i", t, fit.covariance, t))
    assert np.all(np.abs(values) < 0.015), values
    assert np.all(np.abs(values) < 4 * errors + 0.005), (values, errors)
    assert 0.0 <= fit.gain < 0.002


def test_a_leverage_effect_on_the_book_gives_a_negative_adjustment_out_of_sample():
    # OptionBook (Heston rho -0.7) on 24 steps, no cost: fitted on seed 1, the adjustment at an
    # at-the-money call delta is negative by many SE (-0.116 +- 0.008; gain 14.6%), and on
    # seed 0 the P&L's variance is below the delta hedge's on the same paths (paired, > 3 SE).
    config = make_config("OptionBook", cost=0.0, n_steps=24)
    fit = fit_minimum_variance(config, 1_500, seed=1)
    t = np.array([1.0, 0.5, 0.25])
    assert fit.coefficients @ t < -5 * np.sqrt(t @ fit.covariance @ t)
    assert fit.gain > 0.05
    hedger = MinimumVarianceDelta.fitted(fit)
    result = run_arena(config, [BlackScholesDelta(), hedger], 2_000, seed=0, progress=False)
    bs, mv = (result.records[name].totals["pnl"] for name in ("delta", hedger.name))
    squares = (mv - mv.mean()) ** 2 - (bs - bs.mean()) ** 2
    assert squares.mean() < -3 * squares.std(ddof=1) / math.sqrt(squares.size)


def test_one_short_step_of_a_book_finds_the_position_weighted_heston_minimum_variance_delta():
    # Every path at S0 = 100, v0 = theta, one step of 1/25,000 year: each row's x is dS times
    # the book's sum of q_i vega_i / (S sqrt T_i) (1, d_i, d_i^2), the same on every path, so
    # the regression on its first column has the slope sum_i w_i f_i / sum_i w_i, w_i = q_i
    # vega_i / (S sqrt T_i): the position-weighted f of Hull and White. A small fixed book: a
    # short call at 100 (146 days), two short puts at 90 (146 days) and a long call at 110 (73
    # days), r = q = 0. 200,000 paths: -0.1413 +- 0.0008, against -0.1400 by Ito's lemma on
    # Heston's prices (QuantLib; f = -0.166, -0.149 and -0.232 for the three strikes, weights
    # -39.8, -56.8 and +16.5; the put's f is its call's, by parity).
    heston = {k: v for k, v in HESTON.items() if k != "v0"}
    legs = [(100.0, 146, -1.0, True), (90.0, 146, -2.0, False), (110.0, 73, 1.0, True)]
    config = make_config("ShortCall", market="heston", market_kwargs=HESTON, cost=0.0,
                         n_steps=1, days_per_year=25_000, book={"options": [
                             {"moneyness": k / 100, "expiry_steps": round(days / 365 * 25_000),
                              "contracts": q, "is_call": call} for k, days, q, call in legs]})
    assert book_option(config) is None
    batch = build_episodes(config, 200_000, np.random.default_rng(5), observations=False)
    rows = book_regression_rows(config, batch)
    first = rows.x[0, :, 0]
    slope = float(first @ rows.y[0] / (first @ first))
    error = float(np.sqrt(np.sum((first * (rows.y[0] - slope * first)) ** 2)) / (first @ first))
    weights, fs = [], []
    for strike, days, quantity, _ in legs:
        f, vega = quantlib_heston_f(100.0, strike, days, v=HESTON["v0"], **heston)
        weights.append(quantity * 100 * vega / (100.0 * math.sqrt(days / 365)))
        fs.append(f)
    oracle = float(np.dot(weights, fs) / np.sum(weights))
    assert oracle == pytest.approx(-0.1400, abs=5e-4)  # the oracle itself, as computed
    assert error < 0.0015
    assert slope == pytest.approx(oracle, abs=0.004)  # 3%: a few SE and the step's own bias
    # the regressors: the same (1, d, d^2) mix on every path, the put at its call's delta
    ratio = rows.x[0, :, 1] / rows.x[0, :, 0]
    assert np.ptp(ratio) < 1e-9 * abs(ratio[0])


def test_books_with_options_are_accepted_and_one_that_never_holds_one_is_refused():
    # OptionBook (client flow) and PortfolioInsurance (2 options) are fitted and hedged; a book
    # that never holds an option (no option of non-zero contracts, a client flow of rate 0) is
    # refused, by the fit, the hedger and train.py's checks, with what it needs. Before, all
    # three were refused as "not exactly one option".
    for preset in ("OptionBook", "PortfolioInsurance"):
        config = make_config(preset, n_steps=10)
        assert book_option(config) is None
        assert fit_minimum_variance(config, 50, seed=1).n_paths == 50
        env = VecHedgingEnv(num_envs=2, config=config)
        env.reset(seed=0)
        MinimumVarianceDelta(0, 0, 0).reset(env)
        check_hedgers(config, ["delta", "mv_delta:fit"])
        check_fit(config, ["mv_delta:fit"], BenchmarkSettings(tune_paths=50))
    with pytest.raises(ValueError, match=r"exactly one option.*client flow"):
        single_option(make_config("OptionBook"))
    # (a book of options all of 0 contracts without a flow is refused by the config itself)
    empty = [make_config("OptionBook", book={"options": [], "client_flow": {"rate": 0.0}}),
             make_config("OptionBook", book={"options": [{"contracts": 0.0}],
                                             "client_flow": {"rate": 0.0}})]
    for config in empty:
        message = ("never holds one \\(its options all have 0 contracts and it has a client flow "
                   "of rate 0\\)")
        with pytest.raises(ValueError, match=message):
            fit_minimum_variance(config, 50)
        env = VecHedgingEnv(num_envs=2, config=config)
        env.reset(seed=0)
        with pytest.raises(ValueError, match=message):
            MinimumVarianceDelta(0, 0, 0).reset(env)
        with pytest.raises(ValueError, match=f"'mv_delta:fit' cannot hedge this env: .*{message}"):
            check_hedgers(config, ["delta", "mv_delta:fit"])


def test_the_fit_of_a_book_is_the_least_squares_of_its_rows_with_path_clustered_errors():
    # numpy's lstsq of the pooled rows (columns equilibrated) and the sandwich clustered by
    # path; n_observations the path-decisions with a surviving option.
    config = make_config("OptionBook", cost=0.0, n_steps=20)
    fit = fit_minimum_variance(config, 300, seed=4)
    batch = build_episodes(config, 300, block_generator(4, 0), observations=False)
    rows = book_regression_rows(config, batch)
    x, y = rows.x.reshape(-1, 3), rows.y.reshape(-1)
    norms = np.sqrt(np.sum(x**2, axis=0))
    coefficients = np.linalg.lstsq(x / norms, y, rcond=None)[0] / norms
    np.testing.assert_allclose(fit.coefficients, coefficients, rtol=1e-7)
    residual = (rows.y - np.einsum("dpk,k->dp", rows.x, coefficients))
    scores = np.einsum("dpk,dp->pk", rows.x, residual)
    inverse = np.linalg.inv(x.T @ x)
    np.testing.assert_allclose(fit.covariance, inverse @ scores.T @ scores @ inverse, rtol=1e-6)
    assert fit.n_observations == int(rows.observed.sum())
    assert 0 < fit.n_observations < 300 * 20  # the first decision holds nothing: no row
    assert not rows.observed[0].any()


def test_the_fit_of_a_book_keeps_fit_bytes_per_path_whatever_its_options(monkeypatch):
    # The per-path sums the fit keeps (its x'y, x'x, scores) are three regressors a path,
    # however many options the book holds: measured with tracemalloc on a 3-option book in
    # blocks of 500 paths, the peak grows by 240 bytes a path (within 10%) from 20,000 to
    # 40,000 paths. Before, the book was refused.
    monkeypatch.setattr(mv_module, "path_blocks",
                        lambda n: [(i, min(500, n - 500 * i)) for i in range(-(-n // 500))])
    config = fixed_config(n_steps=5, rebalance_every=1)
    peaks = []
    for n_paths in (20_000, 40_000):
        tracemalloc.start()
        fit_minimum_variance(config, n_paths, seed=1)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_path = (peaks[1] - peaks[0]) / 20_000
    assert per_path == pytest.approx(FIT_BYTES_PER_PATH, rel=0.1)
