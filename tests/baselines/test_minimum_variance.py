"""Hull and White's minimum-variance delta: its regression, its hedge, and the benchmark's fit.

References:
- Hull and White (2017), "Optimal delta hedging for options", Journal of Banking and Finance 82,
  180-190: the regression of the delta hedge's error and the minimum-variance delta.
- The minimum-variance delta of the Heston model, ``dC/dS + rho xi / S dC/dv`` (the spot and
  variance moves' covariance over the spot's variance, by Ito's lemma; e.g. Poulsen,
  Schenk-Hoppe and Ewald (2009), "Risk minimization in stochastic volatility models: model risk
  and empirical performance", Quantitative Finance 9(6)), with Heston's price
  from QuantLib's AnalyticHestonEngine.
- In a Black-Scholes market the implied vol does not move: the minimum-variance delta is the
  Black-Scholes delta (the adjustment is the expected vol move, 0 here).
"""

import math

import numpy as np
import pytest
from mv_reference import quantlib_heston_f

from hedgearena.baselines.arena import block_generator, run_arena
from hedgearena.baselines.benchmark import (
    BenchmarkSettings,
    benchmark,
    report_note,
    split_configs,
)
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.minimum_variance import (
    FITTED_NAME,
    MinimumVarianceDelta,
    fit_minimum_variance,
    regression_rows,
    single_option,
)
from hedgearena.baselines.registry import parse_hedger
from hedgearena.baselines.stress import StressSettings, stress_test
from hedgearena.cli import run_stress
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.run_config import hedger_name, load_config
from hedgearena.training import check_arena, check_hedgers

HESTON = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7, "v0": 0.04}


def heston_config(**kwargs):
    """ShortCall on Heston with a strong leverage effect (rho -0.7), no costs."""
    return make_config("ShortCall", market="heston", market_kwargs=HESTON, cost=0.0, **kwargs)


def hull_white_f(fit, delta):
    """``a + b delta + c delta^2`` and its standard error."""
    t = np.array([1.0, delta, delta * delta])
    return float(fit.coefficients @ t), float(np.sqrt(t @ fit.covariance @ t))


def env_heston_f(spot, strike, tau, v, kappa, theta, xi, rho):
    """Hull and White's ``f`` of the minimum-variance delta of the env's own Heston marks.

    As :func:`quantlib_heston_f`, with the price ``C(S, v)`` the env marks options at:
    Black-Scholes at the vol of its :class:`HestonSurface` table (central differences).
    """
    surface = HestonSurface(kappa, theta, xi, rho)

    def price(s, variance):
        vol = surface.implied_vol(np.array(s), np.array(strike), tau, np.array(variance), spot,
                                  0.0, 0.0)
        return float(black_scholes_greeks(np.array(s), strike, tau, vol, select=("price",)).price)

    h_s, h_v = 1e-2, 1e-5
    c_s = (price(spot + h_s, v) - price(spot - h_s, v)) / (2 * h_s)
    c_v = (price(spot, v + h_v) - price(spot, v - h_v)) / (2 * h_v)
    vol = surface.implied_vol(np.array(spot), np.array(strike), tau, np.array(v), spot, 0.0, 0.0)
    greeks = black_scholes_greeks(spot, strike, tau, vol, select=("delta", "vega"))
    minimum_variance = c_s + rho * xi / spot * c_v
    return math.sqrt(tau) * spot / float(greeks.vega) * (minimum_variance - float(greeks.delta))


def test_the_regression_of_one_short_step_finds_hestons_minimum_variance_delta():
    # Every path starts at S0 = 100, v0 = theta: the regression's slope on the first decision is
    # Cov(dV - delta dS, dS) / Var(dS) in Hull and White's units, which as dt -> 0 is the
    # minimum-variance delta less the Black-Scholes one. 146 days to expiry (0.4 years), a step
    # of 1/25,000 year, 200,000 paths: -0.1670 +- 0.0009, against -0.1657 by Ito's lemma on
    # Heston's own prices (QuantLib) and -0.1652 on the env's marks (its table's dC/dv is
    # QuantLib's within 0.2% here; 3.7% low, -0.1514, before its variance axis was refined).
    # With a daily step the slope is -0.171: the regression measures the hedge over the actual
    # rebalancing interval, where higher-order terms count.
    heston = {k: v for k, v in HESTON.items() if k != "v0"}
    config = heston_config(n_steps=1, days_per_year=25_000, book={"options": [
        {"moneyness": 1.0, "expiry_steps": 10_000, "contracts": -1.0}]})
    batch = build_episodes(config, 200_000, np.random.default_rng(5), observations=False)
    y, x = regression_rows(config, batch, single_option(config))
    first = x[0, :, 0]  # vega / (S sqrt(T)) dS, every path at the same state: one regressor
    slope = float(first @ y[0] / (first @ first))
    error = float(np.sqrt(np.sum((first * (y[0] - slope * first)) ** 2)) / (first @ first))
    own = env_heston_f(100.0, 100.0, 0.4, v=HESTON["v0"], **heston)
    heston_f, _ = quantlib_heston_f(100.0, 100.0, 146, v=HESTON["v0"], **heston)
    assert own == pytest.approx(-0.1652, abs=5e-4)  # the oracles themselves, as computed
    assert heston_f == pytest.approx(-0.1657, abs=5e-4)
    assert error < 0.0015
    assert slope == pytest.approx(own, abs=0.005)  # 3%: about 4 SE and the step's own bias
    assert slope == pytest.approx(heston_f, abs=0.005)


def test_a_black_scholes_market_gives_no_adjustment():
    # GBM: the implied vol never moves, so the minimum-variance delta is the Black-Scholes delta.
    # On daily steps the regression finds a + b delta + c delta^2 of 0.005 to 0.01 (3 to 4 SE,
    # seeds 1 to 3: the lognormal step's skew against the option's gamma), under 0.02 at every
    # delta, an eighth of the leverage effect's -0.15 below; the fit removes under 0.3% of the
    # delta hedge's squared error.
    config = make_config("ShortCall", cost=0.0)
    fit = fit_minimum_variance(config, 20_000, seed=1)
    for delta in (0.2, 0.5, 0.8):
        value, _ = hull_white_f(fit, delta)
        assert abs(value) < 0.02, (delta, value)
    assert 0.0 <= fit.gain < 0.003
    assert fit.n_observations == 20_000 * 20
    assert fit.n_paths == 20_000


def test_a_leverage_effect_gives_a_negative_adjustment_and_a_smaller_hedging_error():
    # Heston with rho = -0.7: vol falls as the spot rises, so the call's minimum-variance delta is
    # below Black-Scholes' (Hull and White's finding on S&P 500 options). Fitted on seed 1 and
    # scored on seed 0 (out of sample), without costs, the hedge's P&L variance is lower than the
    # delta hedge's on the same paths: 8.5% (56.2 -> 53.8 std), the paired difference > 10 SE.
    config = heston_config()
    fit = fit_minimum_variance(config, 20_000, seed=1)
    value, error = hull_white_f(fit, 0.5)
    assert value < -10 * error
    assert fit.gain > 0.05
    hedger = MinimumVarianceDelta(*fit.coefficients)
    result = run_arena(config, [BlackScholesDelta(), hedger], 20_000, seed=0, progress=False)
    bs, mv = (result.records[name].totals["pnl"] for name in ("delta", hedger.name))
    squares = (mv - mv.mean()) ** 2 - (bs - bs.mean()) ** 2
    assert mv.var() / bs.var() < 0.95
    assert squares.mean() < -10 * squares.std(ddof=1) / math.sqrt(squares.size)


def test_the_fit_is_the_least_squares_of_the_rows_with_path_clustered_errors():
    # A direct computation on 300 paths: numpy's lstsq for the coefficients, the sandwich
    # (X'X)^-1 (sum over paths of s_p s_p') (X'X)^-1 with s_p = sum_t x_pt e_pt for the errors
    # (clustered by path), and the gain 1 - sum e^2 / sum y^2.
    config = heston_config(rebalance_every=2)
    fit = fit_minimum_variance(config, 300, seed=4)
    batch = build_episodes(config, 300, block_generator(4, 0), observations=False)
    y, x = regression_rows(config, batch, single_option(config))
    assert y.shape == (10, 300)
    assert x.shape == (10, 300, 3)
    rows_x, rows_y = x.reshape(-1, 3), y.reshape(-1)
    coefficients = np.linalg.lstsq(rows_x, rows_y, rcond=None)[0]
    residual = (rows_y - rows_x @ coefficients).reshape(10, 300)
    inverse = np.linalg.inv(rows_x.T @ rows_x)
    meat = np.zeros((3, 3))
    for path in range(300):
        s = x[:, path].T @ residual[:, path]
        meat += np.outer(s, s)
    np.testing.assert_allclose(fit.coefficients, coefficients, rtol=1e-9)
    np.testing.assert_allclose(fit.covariance, inverse @ meat @ inverse, rtol=1e-8)
    np.testing.assert_allclose(fit.standard_errors, np.sqrt(np.diag(inverse @ meat @ inverse)),
                               rtol=1e-8)
    assert fit.gain == pytest.approx(1 - np.sum(residual**2) / np.sum(y**2), rel=1e-9)
    # the rows: dV over two steps less the book's delta at the decision times dS over them
    episode, features = batch.episode, batch.features
    assert y[3, 7] == pytest.approx(
        episode.option_mtm[6, 7] + episode.option_mtm[7, 7]
        - features.book_delta[7, 6] * (episode.spot[8, 7] - episode.spot[6, 7]), rel=1e-12)
    # and the regressors, with the option's time to expiry the env's tau (it expires at the end)
    d = features.book_delta[7, 6] / -100.0
    scale = features.book_vega[7, 6] / (episode.spot[6, 7] * math.sqrt(features.tau[7, 6]))
    np.testing.assert_allclose(x[3, 7], scale * (episode.spot[8, 7] - episode.spot[6, 7])
                               * np.array([1.0, d, d * d]), rtol=1e-12)


def test_the_hedge_holds_hull_and_whites_delta_with_the_envs_time_to_expiry():
    # ShortCall's option expires with the episode, so its time to expiry is the env's tau:
    # hedge = -(book delta + book vega / (S sqrt(tau)) (a + b d + c d^2)), d = book delta / -100.
    a, b, c = -0.1, -0.2, 0.15
    env = VecHedgingEnv(num_envs=5, preset="ShortCall")
    env.reset(seed=3)
    hedger = MinimumVarianceDelta(a, b, c)
    hedger.reset(env)
    for _ in range(4):
        state = env.state
        d = state["book_delta"] / -100.0
        expected = -(state["book_delta"] + state["book_vega"] / (
            state["spot"] * np.sqrt(state["tau"])) * (a + b * d + c * d * d))
        positions = hedger.positions(state, np.zeros((5, 0), np.float32))
        np.testing.assert_allclose(positions[:, 0], expected, rtol=1e-12)
        env.step_targets(positions)


def test_zero_coefficients_are_the_delta_hedge_and_no_hedging_option_is_held():
    config = make_config("ShortCall", hedge_option=True)
    result = run_arena(config, [BlackScholesDelta(), MinimumVarianceDelta(0, 0, 0)], 64, seed=2,
                       progress=False)
    delta, mv = result.records["delta"], result.records["MV delta"]
    np.testing.assert_array_equal(mv.hedge, delta.hedge)
    np.testing.assert_array_equal(mv.option, np.zeros_like(mv.option))
    np.testing.assert_array_equal(mv.totals["pnl"], delta.totals["pnl"])


@pytest.mark.parametrize(("preset", "words"), [
    ("OptionBook", "client flow"), ("PortfolioInsurance", "2 options")])
def test_a_book_without_exactly_one_option_has_no_single_option(preset, words):
    # The one-option form names why; the fit and the hedger pool such a book over its options
    # instead (test_minimum_variance_book.py), where they refused it before.
    with pytest.raises(ValueError, match=f"exactly one option.*{words}"):
        single_option(make_config(preset))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "0.1", None])
def test_coefficients_must_be_finite_numbers(bad):
    with pytest.raises(ValueError, match="b must be a finite number"):
        MinimumVarianceDelta(0.0, bad, 0.0)


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "100"])
def test_the_fit_needs_at_least_two_paths(bad):
    with pytest.raises(ValueError, match="n_paths must be an integer >= 2"):
        fit_minimum_variance(make_config("ShortCall"), bad)


def test_paths_where_the_delta_does_not_move_cannot_be_fitted():
    # One decision: every path's delta is the initial one, so 1, delta and delta^2 are collinear.
    with pytest.raises(ValueError, match="collinear"):
        fit_minimum_variance(make_config("ShortCall", n_steps=1), 200)


def test_the_specs():
    hedger = parse_hedger("mv_delta:-0.1:-0.2:0.15")
    assert isinstance(hedger, MinimumVarianceDelta)
    assert (hedger.a, hedger.b, hedger.c, hedger.fit) == (-0.1, -0.2, 0.15, None)
    with pytest.raises(ValueError, match="resolved by the benchmark"):
        parse_hedger("mv_delta:fit")
    with pytest.raises(ValueError, match="mv_delta takes 3"):
        parse_hedger("mv_delta:0.1:0.2")


def test_the_benchmark_fits_on_its_tuning_paths_and_says_so(tmp_path):
    config = heston_config()
    settings = BenchmarkSettings(n_paths=2_000, tune_paths=3_000, seed=5, n_boot=20,
                                 frontier=False, progress=False)
    report = benchmark(config, ["delta", "mv_delta:fit"], settings, out_dir=tmp_path)
    fit = fit_minimum_variance(config, 3_000, seed=6)  # the tuning paths: seed + 1
    np.testing.assert_array_equal(report.fitted[FITTED_NAME].coefficients, fit.coefficients)
    assert FITTED_NAME in report.table.index
    text = (tmp_path / "scores.md").read_text()
    assert "(fitted): Hull and White's minimum-variance delta regressed on 3,000 tuning" in text
    saved = (tmp_path / "config.yaml").read_text()
    assert f"a: {float(fit.coefficients[0])!r}" in saved


def test_on_the_replay_the_fit_uses_the_history_before_the_split():
    config = make_config("HistoricalReplay")
    settings = BenchmarkSettings(n_paths=500, tune_paths=2_000, n_boot=20, frontier=False,
                                 progress=False, split="2010-01-01")
    report = benchmark(config, ["delta", "mv_delta:fit"], settings)
    before = split_configs(config, "2010-01-01")[0]
    expected = fit_minimum_variance(before, 2_000, seed=settings.tuning_seed)
    np.testing.assert_array_equal(report.fitted[FITTED_NAME].coefficients,
                                  expected.coefficients)
    note = report_note(report, settings)
    assert "regressed on 2,000 tuning paths (seed 1) of the history before 2010-01-01" in note
    assert "(standard errors by path, too small for overlapping windows)." in note


def test_a_run_config_checks_the_book_before_the_fit():
    # train.py refuses mv_delta:fit on a book it cannot hedge before it trains or writes, and
    # names the fitted hedger as the report will.
    # A book of many options is pooled (OptionBook: accepted); one that never holds an option
    # (a client flow of rate 0) is refused.
    check_hedgers(make_config("ShortCall"), ["delta", "mv_delta:fit"])
    check_hedgers(make_config("OptionBook"), ["delta", "mv_delta:fit"])
    never = make_config("OptionBook", book={"options": [], "client_flow": {"rate": 0.0}})
    with pytest.raises(ValueError, match=r"arena.hedgers: 'mv_delta:fit' cannot hedge this env: "
                                         r"the minimum-variance delta .* never holds one"):
        check_hedgers(never, ["delta", "mv_delta:fit"])
    assert hedger_name("mv_delta:fit") == FITTED_NAME


def test_the_sp500_and_the_vix_show_the_leverage_effect():
    # The replay from 2014 on marks the option at the VIX, which rises as the S&P 500 falls: the
    # fitted adjustment of an at-the-money call is negative, many standard errors from 0 (as
    # Hull and White found on S&P 500 options).
    config = make_config("HistoricalReplay", market_kwargs={"start": "2014-01-01"})
    fit = fit_minimum_variance(config, 5_000, seed=1)
    value, error = hull_white_f(fit, 0.5)
    assert value < -5 * error
    assert fit.gain > 0.05


def test_a_fit_that_cannot_be_made_is_refused_before_a_run_trains_or_writes():
    # train.py fits mv_delta:fit after training, on arena.tune_paths: a single tuning path, or
    # one decision an episode (every path's delta the initial one), is named by check_arena.
    ok = load_config(overrides=["arena.hedgers=[delta, 'mv_delta:fit']"])
    check_arena(ok)
    few = load_config(overrides=["arena.hedgers=[delta, 'mv_delta:fit']", "arena.tune_paths=1"])
    with pytest.raises(ValueError, match=r"arena.tune_paths must be >= 2 to fit 'mv_delta:fit'"):
        check_arena(few)
    short = load_config(overrides=["arena.hedgers=[delta, 'mv_delta:fit']", "env.kwargs.n_steps=1"])
    with pytest.raises(ValueError, match=r"arena.hedgers: 'mv_delta:fit' cannot be fitted on the "
                                         r"tuning paths: .*collinear"):
        check_arena(short)
    check_arena(load_config(overrides=["arena.tune_paths=1", "env.kwargs.n_steps=1"]))  # no fit


def test_the_benchmark_names_the_tuning_paths_a_fit_failed_on():
    settings = BenchmarkSettings(n_paths=100, tune_paths=1, frontier=False, progress=False)
    with pytest.raises(ValueError, match=r"'mv_delta:fit' \(fitted on tune_paths=1\): n_paths"):
        benchmark(make_config("ShortCall"), ["delta", "mv_delta:fit"], settings)


def test_stress_checks_the_fit_before_it_writes(tmp_path):
    config = load_config(overrides=["stress.hedgers=[delta, 'mv_delta:fit']",
                                    "env.kwargs.n_steps=1", f"out={tmp_path}"])
    with pytest.raises(ValueError, match=r"stress.hedgers: 'mv_delta:fit' cannot be fitted"):
        run_stress(config)
    assert not any(tmp_path.iterdir())


def test_the_stress_report_says_where_its_tuned_and_fitted_hedgers_were_chosen(tmp_path):
    # As the benchmark's: on the unstressed env's tuning paths (seed + 1), with the coefficients.
    settings = StressSettings(n_paths=300, tune_paths=400, n_boot=10, seed=3, progress=False,
                              worst_paths=False)
    report = stress_test(heston_config(), ["delta", "mv_delta:fit", "band:best"], ["base", "calm"],
                         settings, out_dir=tmp_path)
    fit = fit_minimum_variance(heston_config(), 400, seed=4)
    text = (tmp_path / "stress.md").read_text()
    assert ("(tuned): the family's member with the lowest Y on 400 tuning paths (seed 4), "
            "apart from the scoring paths (seed 3); chosen: band") in text
    assert ("(fitted): Hull and White's minimum-variance delta regressed on 400 tuning paths "
            f"(seed 4), apart from the scoring paths (seed 3); MV delta (fitted): a "
            f"{fit.coefficients[0]:.3g} ({fit.standard_errors[0]:.2g})") in text
    assert len(report.notes) == 2
    plain = stress_test(heston_config(), ["delta"], ["base"], settings)
    assert plain.notes == ()
