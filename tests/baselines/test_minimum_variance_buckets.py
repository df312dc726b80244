"""Hull and White's minimum-variance delta by maturity bucket (a book of many options).

Hull and White ("Optimal delta hedging for options", J. Banking & Finance 82, 2017, 180-190)
fit ``(a, b, c)`` pooled over maturities and by maturity bucket. With ``K - 1`` edges the rows
have ``3K`` columns, each option's three terms ``q vega / (S sqrt T) (1, d, d^2) dS`` in the
columns of its bucket at the decision (``T <= e_1``, ``e_1 < T <= e_2``, ..., ``T > e_{K-1}``),
and the hedge gives each option its bucket's ``(a, b, c)``. References: the rows and the hedge
by hand (Black-Scholes in tests/helpers/mv_reference.py), numpy's least squares, the pooled fit
of the code before buckets (pinned values), and Heston's minimum-variance delta by QuantLib.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from mv_reference import (
    FOUR_OPTIONS_DIVIDEND,
    FOUR_OPTIONS_RATE,
    four_option_config,
    hand_row,
    hand_terms,
    quantlib_heston_f,
)

import hedgearena.baselines.minimum_variance as mv_module
from hedgearena.baselines.arena import block_generator, run_arena
from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark
from hedgearena.baselines.minimum_variance import (
    OPTION_BOOK_EDGES,
    MinimumVarianceDelta,
    book_regression_rows,
    book_terms,
    check_maturity_edges,
    fit_bytes_per_path,
    fit_minimum_variance,
    fit_spec_edges,
    maturity_bucket,
)
from hedgearena.baselines.registry import is_fitted, parse_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.run_config import hedger_name
from hedgearena.training import check_fit, check_hedgers

HESTON = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7, "v0": 0.04}

# A fixed book on GBM (flat vol 0.2, r 3%, q 1%), 250 days a year (dt 0.004), 20 steps
# rebalanced every 5 (decisions at steps 0, 5, 10, 15), with stock; edges 0.09 and 0.21 years.
# Times to expiry at the decisions and their buckets (0: T <= 0.09, 1: to 0.21, 2: beyond):
#   short call 1.00, expiry 30:  0.12 (1), 0.10 (1), 0.08 (0), 0.06 (0)  crosses 0.09
#   long put 0.95, expiry 10:    0.04 (0), settles at 10 (a decision): row 0 only
#   short call 1.05, expiry 12:  0.048 (0), 0.028 (0), settles inside 10-15: rows 0 and 1
#   long put 1.00, expiry 60:    0.24 (2), 0.22 (2), 0.20 (1), 0.18 (1)  crosses 0.21
EDGES = (0.09, 0.21)
RATE, DIVIDEND, SIGMA = FOUR_OPTIONS_RATE, FOUR_OPTIONS_DIVIDEND, 0.2
fixed_config = four_option_config  # the book of the table above (FOUR_OPTIONS)


@pytest.mark.parametrize(("edges", "message"), [
    ((0.16, 0.08), r"unsorted: edge 1 \(0.08\) is below edge 0 \(0.16\)"),
    ((0.08, 0.08), r"duplicates: edges 0 and 1 are both 0.08"),
    ((0.0, 0.1), r"edge 0 is 0.0"),
    ((0.1, -0.2), r"edge 1 is -0.2"),
    ((0.1, float("nan")), r"edge 1 is nan"),
    ((float("inf"),), r"edge 0 is inf"),
    (("0.1",), r"edge 0 is '0.1'"),
    ((True,), r"edge 0 is True"),
    ("0.1", r"got '0.1'"),
    (0.1, r"got 0.1"),
    (np.array([[0.1]]), r"got array"),
])
def test_bad_edges_are_refused_by_name_by_the_fit_the_rows_and_the_hedger(edges, message):
    allowed = r"maturity_edges are years of time to expiry, finite numbers > 0 in strictly"
    config = make_config("OptionBook", n_steps=5)
    batch = build_episodes(config, 2, np.random.default_rng(0), observations=False)
    for call in (lambda: check_maturity_edges(edges),
                 lambda: fit_minimum_variance(config, 10, maturity_edges=edges),
                 lambda: book_regression_rows(config, batch, edges),
                 lambda: MinimumVarianceDelta(0, 0, 0, maturity_edges=edges)):
        with pytest.raises(ValueError, match=f"{allowed}.*{message}"):
            call()


def test_bad_edges_in_a_spec_are_refused_naming_the_spec():
    with pytest.raises(ValueError, match=r"'mv_delta:fit:0.16:0.08': .*unsorted"):
        parse_hedger("mv_delta:fit:0.16:0.08")
    with pytest.raises(ValueError, match=r"'mv_delta:fit:0.1:x': maturity edge 'x' is not a"):
        fit_spec_edges("mv_delta:fit:0.1:x")
    with pytest.raises(ValueError, match=r"'mv_delta:fit:0:0.1': .*edge 0 is 0.0"):
        fit_spec_edges("mv_delta:fit:0:0.1")
    with pytest.raises(ValueError, match=r"'mv_delta:0.1:0.2:0.3:0.4' has 4 argument\(s\); "
                       r"mv_delta takes 3"):
        parse_hedger("mv_delta:0.1:0.2:0.3:0.4")


def test_a_time_to_expiry_at_an_edge_is_in_the_shorter_bucket():
    # T <= e_1 is bucket 0, e_1 < T <= e_2 bucket 1, T > e_2 bucket 2 (the boundary side);
    # no edges: one bucket.
    tau = np.array([1e-9, 0.08, np.nextafter(0.08, 1.0), 0.16, np.nextafter(0.16, 1.0), 3.0])
    np.testing.assert_array_equal(maturity_bucket(tau, (0.08, 0.16)), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(maturity_bucket(tau, ()), 0)
    assert check_maturity_edges(np.array([0.08, 0.16])) == (0.08, 0.16)
    assert OPTION_BOOK_EDGES == (0.08, 0.16)


def test_the_rows_of_a_fixed_book_put_each_option_in_its_bucket_at_the_decision():
    # Rows of decisions 0, 5, 10, 15 by hand (Black-Scholes at 0.2): y = sum over the options
    # held at the decision and still held at the next of q (V(t+5) - V(t) - delta dS); x the
    # same options' q vega / (S sqrt T) (1, d, d^2) dS in the columns of their bucket then
    # (d the call's delta, a put's + e^{-qT}). The buckets held (the table above): the
    # call of expiry 30 moves from bucket 1 to 0 and the put of expiry 60 from 2 to 1. Before,
    # there was no edge argument (the rows had 3 columns).
    config = fixed_config()
    batch = build_episodes(config, 4, np.random.default_rng(3), observations=False)
    rows = book_regression_rows(config, batch, EDGES)
    pooled = book_regression_rows(config, batch)
    assert rows.x.shape == (4, 4, 9)
    buckets_held = []
    for k in range(4):
        for path in range(4):
            y, x, _ = hand_row(batch, config, path, 5 * k, 5 * k + 5, EDGES)
            assert rows.y[k, path] == pytest.approx(y, rel=1e-9, abs=1e-9)
            np.testing.assert_allclose(rows.x[k, path], x, rtol=1e-9, atol=1e-9)
        buckets_held.append(sorted(b for b in range(3) if np.any(x[3 * b:3 * b + 3] != 0)))
    assert buckets_held == [[0, 1, 2], [0, 1, 2], [0, 1], [0, 1]]
    # the buckets' columns add up to the pooled rows (the same y, the same options)
    np.testing.assert_array_equal(rows.y, pooled.y)
    np.testing.assert_allclose(rows.x.reshape(4, 4, 3, 3).sum(axis=2), pooled.x, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(rows.observed, pooled.observed)


def test_the_hedge_gives_each_option_its_buckets_coefficients_at_the_decision():
    # minus (book delta + sum_i q_i vega_i / (S sqrt T_i) (a_k + b_k d_i + c_k d_i^2)), k the
    # bucket of option i at the decision, by hand at steps 0, 5, 10 and 15 of the fixed book
    # (the two crossing options change coefficients as they cross).
    coefficients = np.array([[-0.1, -0.2, 0.15], [-0.3, 0.1, 0.05], [0.2, -0.4, 0.3]])
    hedger = MinimumVarianceDelta(*coefficients.T.tolist(), maturity_edges=list(EDGES))
    np.testing.assert_array_equal(hedger.coefficients, coefficients.reshape(-1))
    config = fixed_config()
    env = VecHedgingEnv(num_envs=3, config=config)
    env.reset(seed=4)
    hedger.reset(env)
    batch = env.batch
    for step in (0, 5, 10, 15):
        spot = np.asarray(batch.episode.spot[step], dtype=np.float64)
        deltas, expected = [], []
        for path in range(3):
            terms, delta, _ = hand_terms(batch, config, path, step, float(spot[path]), EDGES)
            deltas.append(delta + 30.0)
            expected.append(-(delta + 30.0 + terms @ coefficients.reshape(-1)))
        state = {"step": np.full(3, step), "spot": spot, "book_delta": np.array(deltas),
                 "dt": config.dt}
        positions = hedger.positions(state, np.zeros((3, 1), dtype=np.float32))
        np.testing.assert_allclose(positions[:, 0], expected, rtol=1e-9, atol=1e-8)
    # one coefficient row in every bucket is the pooled hedge
    same = MinimumVarianceDelta(*[[v] * 3 for v in (-0.1, -0.2, 0.15)], maturity_edges=EDGES)
    pooled = MinimumVarianceDelta(-0.1, -0.2, 0.15)
    for one in (same, pooled):
        one.reset(env)
    np.testing.assert_allclose(same.positions(state, None), pooled.positions(state, None),
                               rtol=1e-12)


def test_one_bucket_is_the_pooled_fit_and_hedge_bit_for_bit():
    # No edges is the fit and hedge of the code before buckets, to the last bit: values
    # printed by that code (git 9e5a82a's fit_minimum_variance and MinimumVarianceDelta) on
    # OptionBook (12 steps, no cost), 200 paths of seed 3, the hedge on 8 paths of seed 5.
    config = make_config("OptionBook", cost=0.0, n_steps=12)
    fit = fit_minimum_variance(config, 200, seed=3)
    np.testing.assert_array_equal(fit.coefficients, [
        -0.28003516073247775, 0.49460577537041966, -0.28969936642585353])
    np.testing.assert_array_equal(fit.standard_errors, [
        0.05682661523951803, 0.21264570397186608, 0.2015785310878031])
    assert fit.covariance[0, 2] == 0.008636491831700732
    assert (fit.gain, fit.n_observations) == (0.12304095832076768, 2091)
    assert fit == fit_minimum_variance(config, 200, seed=3, maturity_edges=[])._replace(
        coefficients=fit.coefficients, standard_errors=fit.standard_errors,
        covariance=fit.covariance)
    hedger = MinimumVarianceDelta.fitted(fit)
    assert (hedger.a, hedger.b, hedger.c, hedger.maturity_edges) == (
        -0.28003516073247775, 0.49460577537041966, -0.28969936642585353, ())
    record = run_arena(config, [hedger], 8, seed=5, progress=False).records[hedger.name]
    np.testing.assert_array_equal(np.asarray(record.hedge)[6][:3], [
        121.31870095626388, 114.69532621458927, 171.5553727869553])


def test_the_bucketed_fit_is_the_least_squares_of_its_3k_columns_with_clustered_errors():
    # numpy's lstsq of the bucketed rows (columns equilibrated) and the sandwich clustered by
    # path; coefficients (9,), bucket by bucket.
    config = make_config("OptionBook", cost=0.0, n_steps=20)
    fit = fit_minimum_variance(config, 300, seed=4, maturity_edges=OPTION_BOOK_EDGES)
    assert fit.coefficients.shape == (9,)
    assert fit.covariance.shape == (9, 9)
    assert fit.maturity_edges == OPTION_BOOK_EDGES
    batch = build_episodes(config, 300, block_generator(4, 0), observations=False)
    rows = book_regression_rows(config, batch, OPTION_BOOK_EDGES)
    x, y = rows.x.reshape(-1, 9), rows.y.reshape(-1)
    norms = np.sqrt(np.sum(x**2, axis=0))
    coefficients = np.linalg.lstsq(x / norms, y, rcond=None)[0] / norms
    np.testing.assert_allclose(fit.coefficients, coefficients, rtol=1e-7)
    np.testing.assert_array_equal(fit.bucket_coefficients, fit.coefficients.reshape(3, 3))
    residual = rows.y - np.einsum("dpk,k->dp", rows.x, coefficients)
    scores = np.einsum("dpk,dp->pk", rows.x, residual)
    inverse = np.linalg.inv(x.T @ x)
    np.testing.assert_allclose(fit.covariance, inverse @ scores.T @ scores @ inverse, rtol=1e-6)
    sse_bs, sse_mv = float(y @ y), float(np.sum((y - x @ coefficients) ** 2))
    assert fit.gain == pytest.approx(1 - sse_mv / sse_bs, rel=1e-9)
    hedger = MinimumVarianceDelta.fitted(fit)
    assert hedger.name == "MV delta by maturity 0.08/0.16 (fitted)"
    assert hedger.a == tuple(fit.bucket_coefficients[:, 0])


def test_one_short_step_by_bucket_finds_each_buckets_heston_minimum_variance_delta():
    # Every path at S0 = 100, v0 = theta, one step of 1/25,000 year, r = q = 0; edge 0.3 years.
    # A book of a long call at 110 (73 days: bucket T <= 0.3) and a short call at 100 and two
    # short puts at 90 (146 days: T > 0.3), and a book of the 73-day call alone: each row's x is
    # dS times the book's sums q vega / (S sqrt T) (1, d, d^2) in its buckets' columns, so the
    # least squares of y on the buckets' first columns over both books' rows has slopes
    # sum_i w_i f_i / sum_i w_i over each bucket's options, w_i = q_i vega_i / (S sqrt T_i),
    # f_i Hull and White's f by Ito's lemma on Heston's prices (QuantLib): -0.2319 for the
    # short bucket (the 110 call), -0.1558 for the long one (f -0.166 and -0.149, weights
    # -39.8 and -56.8). 100,000 paths a book: -0.2321 +- 0.0011 and -0.1542 +- 0.0010 (the
    # sandwich's errors); within 0.005 (a few SE and the step's own bias). Pooled, the one
    # slope would be the book's mix of the two, -0.140 (the pooled test).
    heston = {k: v for k, v in HESTON.items() if k != "v0"}
    legs = [(110.0, 73, 1.0, True), (100.0, 146, -1.0, True), (90.0, 146, -2.0, False)]

    def rows_of(book_legs, seed):
        config = make_config("ShortCall", market="heston", market_kwargs=HESTON, cost=0.0,
                             n_steps=1, days_per_year=25_000, book={"options": [
                                 {"moneyness": k / 100, "expiry_steps": round(d / 365 * 25_000),
                                  "contracts": q, "is_call": call}
                                 for k, d, q, call in book_legs]})
        batch = build_episodes(config, 100_000, np.random.default_rng(seed), observations=False)
        return book_regression_rows(config, batch, (0.3,))

    both, short = rows_of(legs, 5), rows_of(legs[:1], 6)
    np.testing.assert_array_equal(short.x[0, :, 3:], 0.0)
    x = np.concatenate([both.x[0][:, [0, 3]], short.x[0][:, [0, 3]]])
    y = np.concatenate([both.y[0], short.y[0]])
    slopes = np.linalg.solve(x.T @ x, x.T @ y)
    bread = np.linalg.inv(x.T @ x)
    scores = x * (y - x @ slopes)[:, None]
    errors = np.sqrt(np.diag(bread @ scores.T @ scores @ bread))
    oracles = []
    for bucket_legs in (legs[:1], legs[1:]):
        weights, fs = [], []
        for strike, days, quantity, _ in bucket_legs:
            f, vega = quantlib_heston_f(100.0, strike, days, v=HESTON["v0"], **heston)
            weights.append(quantity * 100 * vega / (100.0 * math.sqrt(days / 365)))
            fs.append(f)
        oracles.append(float(np.dot(weights, fs) / np.sum(weights)))
    assert oracles == pytest.approx([-0.2319, -0.1558], abs=1e-4)  # the oracles, as computed
    assert np.all(errors < 0.0015), errors
    assert slopes == pytest.approx(oracles, abs=0.005), (slopes, errors)


def test_a_bucket_without_rows_or_with_too_few_is_refused_by_name():
    # OptionBook's options live at most 60 days (0.238 years): a bucket beyond 0.5 years never
    # holds one. On the fixed book the bucket beyond 0.23 years holds the long put at the
    # first decision only: every path's row there has the same (1, d, d^2) mix (S0 on every
    # path), one direction for three coefficients. Both refused, naming the bucket; never NaN.
    with pytest.raises(ValueError, match=r"holds no option with vega in the maturity bucket "
                                         r"T > 0.5 over any decision.*options in every bucket"):
        fit_minimum_variance(make_config("OptionBook", n_steps=10), 50, maturity_edges=(0.08, 0.5))
    with pytest.raises(ValueError, match=r"\(1, delta, delta\^2\) in the maturity bucket T > 0.23 "
                                         r"are collinear.*too few rows"):
        fit_minimum_variance(fixed_config(), 50, maturity_edges=(0.23,))
    fit = fit_minimum_variance(fixed_config(n_steps=20, rebalance_every=1), 50,
                               maturity_edges=EDGES)
    assert np.all(np.isfinite(fit.covariance))


def test_a_one_option_book_is_one_bucket():
    config = make_config("ShortCall")
    message = r"maturity_edges \(0.1,\) split a book of many options.*give no edges"
    with pytest.raises(ValueError, match=message):
        fit_minimum_variance(config, 50, maturity_edges=(0.1,))
    env = VecHedgingEnv(num_envs=2, config=config)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        MinimumVarianceDelta([0, 0], [0, 0], [0, 0], maturity_edges=(0.1,)).reset(env)
    with pytest.raises(ValueError, match=f"'mv_delta:fit:0.1' cannot hedge this env: {message}"):
        check_hedgers(config, ["delta", "mv_delta:fit:0.1"])
    MinimumVarianceDelta(0, 0, 0).reset(env)  # no edges: the one-option hedge, as before


def test_coefficients_must_be_one_a_bucket():
    with pytest.raises(ValueError, match=r"b must be 3 finite numbers, one for each maturity "
                                         r"bucket of edges \(0.08, 0.16\) \(T <= 0.08, "
                                         r"0.08 < T <= 0.16, T > 0.16\), got \[1, 2\]"):
        MinimumVarianceDelta([0, 0, 0], [1, 2], [0, 0, 0], maturity_edges=(0.08, 0.16))
    with pytest.raises(ValueError, match=r"a must be 2 finite numbers.*got \[0, nan\]"):
        MinimumVarianceDelta([0, float("nan")], [0, 0], [0, 0], maturity_edges=(0.1,))
    with pytest.raises(ValueError, match=r"a must be a finite number"):
        MinimumVarianceDelta([0.1], 0, 0)


def test_the_bucketed_spec_is_fitted_by_the_benchmark_on_its_tuning_paths(tmp_path):
    # mv_delta:fit:0.08:0.16 is named and checked as the fitted hedger it will be (its stand-in
    # refuses to hedge unfitted), parse_hedger leaves it to the benchmark as it does
    # mv_delta:fit, and the benchmark fits it on its tuning paths (seed + 1) beside the pooled
    # mv_delta:fit; the report's (fitted) line gives each bucket's coefficients.
    spec = "mv_delta:fit:0.08:0.16"
    assert is_fitted(spec)
    assert hedger_name(spec) == "MV delta by maturity 0.08/0.16 (fitted)"
    with pytest.raises(ValueError, match=r"'mv_delta:fit:0.08:0.16': ':fit' is resolved by the "
                                         "benchmark"):
        parse_hedger(spec)
    waiting = MinimumVarianceDelta.awaiting_fit(fit_spec_edges(spec))
    assert (waiting.name, waiting.maturity_edges) == (
        "MV delta by maturity 0.08/0.16 (fitted)", (0.08, 0.16))
    config = make_config("OptionBook", cost=0.0, n_steps=12)
    check_hedgers(config, ["delta", "mv_delta:fit", spec])
    env = VecHedgingEnv(num_envs=2, config=config)
    env.reset(seed=0)
    waiting.reset(env)
    with pytest.raises(RuntimeError, match="the benchmark fits its coefficients"):
        waiting.positions(env.state, None)
    settings = BenchmarkSettings(n_paths=300, tune_paths=400, seed=5, n_boot=20,
                                 frontier=False, progress=False)
    report = benchmark(config, ["delta", "mv_delta:fit", spec], settings, out_dir=tmp_path)
    fit = fit_minimum_variance(config, 400, seed=6, maturity_edges=(0.08, 0.16))
    np.testing.assert_array_equal(report.fitted[waiting.name].coefficients, fit.coefficients)
    np.testing.assert_array_equal(report.fitted["MV delta (fitted)"].coefficients,
                                  fit_minimum_variance(config, 400, seed=6).coefficients)
    text = " ".join((tmp_path / "scores.md").read_text().split())
    first = fit.bucket_coefficients[0, 0], fit.bucket_standard_errors[0, 0]
    assert (f"MV delta by maturity 0.08/0.16 (fitted): T <= 0.08: a {first[0]:.3g} "
            f"({first[1]:.2g})") in text
    assert "T > 0.16: a" in text
    saved = (tmp_path / "config.yaml").read_text()
    assert "maturity_edges:\n    - 0.08\n    - 0.16" in saved


def test_the_bucketed_fit_keeps_fit_bytes_per_path(monkeypatch):
    # 3 buckets, 9 regressors: the peak grows by 48 K (3K + 2) = 1,584 bytes a path (within
    # 10%) from 10,000 to 20,000 paths, in blocks of 500 (tracemalloc).
    monkeypatch.setattr(mv_module, "path_blocks",
                        lambda n: [(i, min(500, n - 500 * i)) for i in range(-(-n // 500))])
    config = fixed_config(n_steps=5, rebalance_every=1)
    peaks = []
    for n_paths in (10_000, 20_000):
        tracemalloc.start()
        fit_minimum_variance(config, n_paths, seed=1, maturity_edges=(0.05, 0.15))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_path = (peaks[1] - peaks[0]) / 10_000
    assert fit_bytes_per_path(3) == 1_584
    assert per_path == pytest.approx(fit_bytes_per_path(3), rel=0.1)


def test_book_terms_of_one_bucket_are_the_pooled_terms():
    config = make_config("OptionBook", n_steps=12)
    env = VecHedgingEnv(num_envs=16, config=config)
    env.reset(seed=1)
    reader = mv_module.BookReader()
    reader.reset(env)
    spot = np.asarray(env.batch.episode.spot[8], dtype=np.float64)
    state = {"step": np.full(16, 8), "spot": spot}
    pooled, bucketed = book_terms(reader, state), book_terms(reader, state, (0.05, 0.1))
    assert bucketed.shape == (16, 9)
    np.testing.assert_allclose(bucketed.reshape(16, 3, 3).sum(axis=1), pooled, rtol=1e-12,
                               atol=1e-12)


def test_a_run_tries_each_bucketed_fit_before_it_trains():
    # train.py checks each fitted spec by a trial fit with its own edges before anything is
    # written: a bucket no option of OptionBook reaches (T > 5 years) is named then, not after
    # training when the benchmark fits. The pooled spec beside it passes.
    config = make_config("OptionBook", cost=0.0, n_steps=12)
    settings = BenchmarkSettings(tune_paths=64, seed=3)
    check_fit(config, ["delta", "mv_delta:fit", "mv_delta:fit:0.08:0.16"], settings)
    with pytest.raises(ValueError, match=r"arena.hedgers: 'mv_delta:fit:5' cannot be fitted on "
                                         r"the tuning paths: .*T > 5.* \(a trial fit on the "
                                         r"first 64 of them, seed 4\)$"):
        check_fit(config, ["mv_delta:fit", "mv_delta:fit:5"], settings)
