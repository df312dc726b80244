"""Scoring metrics: against direct numpy computations, Monte Carlo spreads and real records."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats

from hedgearena.baselines import metrics
from hedgearena.baselines.hedger import EpisodeRecord, Hedger, run_hedger
from hedgearena.envs.episode import EpisodeBatch
from hedgearena.envs.vector_env import VecHedgingEnv

SAMPLE = np.array([1.0, 2.0, 3.0, 4.0, 10.0])


class ModelHedger(Hedger):
    """The model's hedge (delta, or delta-gamma with a hedging option)."""

    name = "delta"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        if obs.shape[1] > 12:  # with a hedging option: trade it to the model's position too
            return np.stack([state["model_hedge"], state["model_option"]], axis=1)
        return state["model_hedge"][:, None]


class NoHedger(Hedger):
    name = "no hedge"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        return np.zeros((obs.shape[0], 1))


def run(hedger: Hedger, n: int = 500, seed: int = 1, **kwargs: Any) -> tuple[EpisodeRecord,
                                                                              EpisodeBatch]:
    env = VecHedgingEnv(num_envs=n, preset="ShortCall", **({"cost": 0.0} | kwargs))
    record = run_hedger(env, hedger, seed=seed)
    return record, env.batch


@pytest.fixture(scope="module")
def delta_run() -> tuple[EpisodeRecord, EpisodeBatch]:
    return run(ModelHedger())


# ---------------------------------------------------------------------- moments and SEs
def central(x: np.ndarray, k: int) -> float:
    return float(np.mean((x - x.mean()) ** k))


def test_moments_against_numpy() -> None:
    x, n = SAMPLE, SAMPLE.size
    s = np.std(x, ddof=1)
    assert metrics.sample_mean(x) == pytest.approx((4.0, s / math.sqrt(n)))
    m2, m4 = central(x, 2), central(x, 4)
    assert metrics.sample_std(x) == pytest.approx((s, math.sqrt((m4 - m2**2) / (4 * s**2 * n))))
    assert metrics.sample_variance(x) == pytest.approx((s**2, math.sqrt((m4 - m2**2) / n)))
    # hand-checked: mean 4, s^2 = (9 + 4 + 1 + 0 + 36) / 4 = 12.5
    assert metrics.sample_variance(x).value == pytest.approx(12.5)


def test_objective_against_direct_formula() -> None:
    x, n, c = SAMPLE, SAMPLE.size, 1.5
    s = np.std(x, ddof=1)
    m2, m3, m4 = central(x, 2), central(x, 3), central(x, 4)
    var = s**2 / n + c**2 * (m4 - m2**2) / (4 * s**2 * n) + 2 * c * m3 / (2 * s * n)
    assert metrics.cost_objective(x, c) == pytest.approx((4.0 + c * s, math.sqrt(var)))
    assert metrics.cost_objective(x, 0.0) == pytest.approx(metrics.sample_mean(x))


def estimators(x: np.ndarray) -> dict[str, metrics.Estimate]:
    return {
        "mean": metrics.sample_mean(x),
        "std": metrics.sample_std(x),
        "variance": metrics.sample_variance(x),
        "objective": metrics.cost_objective(x, 1.5),
    }


def test_standard_errors_match_monte_carlo_spread() -> None:
    """Each SE formula against the spread of its estimator over 2,000 repetitions (10%).

    A skewed sample (gamma, shape 2) so the objective's covariance term matters: leaving it out
    or flipping its sign changes the objective's SE by over 20%.
    """
    rng = np.random.default_rng(7)
    samples = rng.gamma(2.0, 1.0, size=(2000, 400))
    runs = [estimators(x) for x in samples]
    for name in runs[0]:
        values = np.array([r[name].value for r in runs])
        ses = np.array([r[name].se for r in runs])
        assert np.mean(ses) == pytest.approx(np.std(values, ddof=1), rel=0.10), name


def test_degenerate_samples_never_nan_but_n1_se() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        constant = np.full(10, 3.0)
        for est in estimators(constant).values():
            assert est.se == 0.0
            assert math.isfinite(est.value)
        assert metrics.cost_objective(constant).value == 3.0
        one = np.array([2.5])
        for name, est in estimators(one).items():
            assert math.isfinite(est.value), name
            assert math.isnan(est.se), name  # documented: undefined with one path
        assert metrics.value_at_risk(one) == metrics.expected_shortfall(one) == 2.5


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValueError, match="loss"):
        metrics.value_at_risk([])
    with pytest.raises(ValueError, match="level"):
        metrics.value_at_risk(SAMPLE, 95)
    with pytest.raises(ValueError, match="risk_aversion"):
        metrics.entropic_risk(SAMPLE, 0.0)
    with pytest.raises(ValueError, match="finite"):
        metrics.sample_mean([1.0, math.nan])
    with pytest.raises(ValueError, match="c must be"):
        metrics.cost_objective(SAMPLE, -1.0)


def test_hedging_cost_discounts_the_pnl() -> None:
    pnl, premium = np.array([10.0, -20.0]), np.array([5.0, 5.0])
    expected = premium - math.exp(-0.05 * 0.5) * pnl
    np.testing.assert_allclose(metrics.hedging_cost(pnl, premium, 0.05, 0.5), expected)


# ---------------------------------------------------------------------------- tail risk
def test_value_at_risk_and_expected_shortfall_by_hand() -> None:
    loss = np.arange(1.0, 21.0)  # 20 losses: VaR95 = L_(19), ES95 = mean of the top 1
    assert metrics.value_at_risk(loss, 0.95) == 19.0
    assert metrics.expected_shortfall(loss, 0.95) == 20.0
    shuffled = np.random.default_rng(0).permutation(np.arange(1.0, 101.0))
    assert metrics.value_at_risk(shuffled, 0.99) == 99.0
    assert metrics.expected_shortfall(shuffled, 0.95) == 98.0  # (96 + ... + 100) / 5


def test_value_at_risk_is_numpys_inverted_cdf_quantile() -> None:
    loss = np.random.default_rng(1).standard_t(3, size=997)
    for level in (0.9, 0.95, 0.99):
        expected = np.quantile(loss, level, method="inverted_cdf")
        assert metrics.value_at_risk(loss, level) == expected
        tail = np.sort(loss)[-math.floor(997 * (1 - level)) :]
        assert metrics.expected_shortfall(loss, level) == pytest.approx(tail.mean())
        assert metrics.expected_shortfall(loss, level) >= metrics.value_at_risk(loss, level)


def test_entropic_risk_against_direct_and_limits() -> None:
    pnl, a = np.array([-2.0, 0.5, 1.0, 3.0]), 0.7
    direct = math.log(np.mean(np.exp(-a * pnl))) / a
    assert metrics.entropic_risk(pnl, a) == pytest.approx(direct)
    assert -pnl.mean() < metrics.entropic_risk(pnl, a) < -pnl.min()
    # normal P&L: rho = -mu + a sigma^2 / 2
    normal = np.random.default_rng(2).normal(1.0, 2.0, size=200_000)
    assert metrics.entropic_risk(normal, 0.1) == pytest.approx(-1.0 + 0.1 * 4.0 / 2, abs=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp(5000) would overflow without log-sum-exp
        assert metrics.entropic_risk([-5000.0, 0.0], 1.0) == pytest.approx(5000.0 - math.log(2))


def test_bootstrap_reproducible_by_seed_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(3).normal(size=300)
    mean = lambda rows: rows.mean(axis=-1)  # noqa: E731
    first = metrics.bootstrap_interval(x, mean, n_boot=100, seed=5)
    assert metrics.bootstrap_interval(x, mean, n_boot=100, seed=5) == first
    assert metrics.bootstrap_interval(x, mean, n_boot=100, seed=6) != first
    monkeypatch.setattr(metrics, "_BOOT_CHUNK", 300 * 7)  # 7 resamples per chunk
    assert metrics.bootstrap_interval(x, mean, n_boot=100, seed=5) == first


def test_bootstrap_interval_of_the_mean_matches_normal_theory() -> None:
    x = np.random.default_rng(4).exponential(size=2000)
    ci = metrics.bootstrap_interval(x, lambda r: r.mean(axis=-1), n_boot=1000, seed=0)
    se = metrics.sample_mean(x).se
    assert ci.value == pytest.approx(x.mean())
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert ci.low < ci.value < ci.high


def test_tail_risk_values_and_intervals() -> None:
    pnl = np.random.default_rng(5).normal(0.0, 10.0, size=1000)
    risk = metrics.tail_risk(pnl, risk_aversion=0.05, n_boot=100, seed=1)
    assert risk["value_at_risk_99"] == metrics.value_at_risk(-pnl, 0.99)
    assert risk["expected_shortfall_95"] == metrics.expected_shortfall(-pnl, 0.95)
    assert risk["entropic_risk"] == pytest.approx(metrics.entropic_risk(pnl, 0.05))
    for name in ("value_at_risk_95", "expected_shortfall_99", "entropic_risk"):
        assert risk[f"{name}_low"] <= risk[name] <= risk[f"{name}_high"]
        assert risk[f"{name}_low"] < risk[f"{name}_high"]
    assert risk == metrics.tail_risk(pnl, risk_aversion=0.05, n_boot=100, seed=1)


# -------------------------------------------------------------------- paired comparison
def test_paired_test_matches_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(10.0, 3.0, size=50)
    cost = ref + rng.normal(0.3, 1.0, size=50)
    out = metrics.paired_comparison(cost, ref, n_boot=100)
    expected = stats.ttest_rel(cost, ref)
    assert out["cost_diff_p_value"] == pytest.approx(expected.pvalue)
    assert out["cost_diff"] / out["cost_diff_se"] == pytest.approx(expected.statistic)
    y = metrics.cost_objective(cost).value - metrics.cost_objective(ref).value
    assert out["objective_diff"] == pytest.approx(y)


def test_identical_hedger_gives_p_one_and_zero_interval() -> None:
    ref = np.random.default_rng(7).normal(size=40)
    out = metrics.paired_comparison(ref, ref.copy(), n_boot=50)
    assert out["cost_diff_p_value"] == 1.0
    assert out["cost_diff"] == out["cost_diff_se"] == 0.0
    assert out["objective_diff_low"] == out["objective_diff_high"] == 0.0
    shifted = metrics.paired_comparison(ref + 1.0, ref, n_boot=50)
    assert shifted["cost_diff_p_value"] == 0.0
    assert shifted["cost_diff"] == pytest.approx(1.0)


def test_paired_bootstrap_resamples_paths_jointly() -> None:
    """Two hedgers that differ little on every path: the paired interval is far narrower."""
    rng = np.random.default_rng(8)
    ref = rng.normal(100.0, 20.0, size=1000)
    cost = ref + rng.normal(-1.0, 0.5, size=1000)
    out = metrics.paired_comparison(cost, ref, n_boot=200)
    alone = metrics.bootstrap_interval(cost, lambda r: metrics._objective_rows(r, 1.5))
    assert out["objective_diff_high"] - out["objective_diff_low"] < 0.2 * (alone.high - alone.low)
    assert out["objective_diff_high"] < 0.0  # -1 per path, same spread: Y falls by about 1


# --------------------------------------------------------------------- real records
def test_held_positions_reproduce_the_envs_hedge_pnl() -> None:
    """Positions held between decisions (rebalance_every > 1, a hedging option) times price
    moves give the core's hedge P&L on every path."""
    for kwargs in ({}, {"rebalance_every": 4}, {"hedge_option": True, "rebalance_every": 2}):
        record, batch = run(ModelHedger(), n=200, **kwargs)
        hedge, option = metrics.held_positions(record, batch.market.n_steps)
        every = kwargs.get("rebalance_every", 1)
        np.testing.assert_array_equal(hedge[:, ::every], record.hedge.T)
        if every > 1:
            np.testing.assert_array_equal(hedge[:, 1::every], record.hedge.T)
        moves = hedge * np.diff(batch.market.spot, axis=1)
        moves += option * np.diff(batch.episode.option_price.T, axis=1)
        np.testing.assert_allclose(moves.sum(axis=1), record.totals["hedge_pnl"], atol=1e-8)


def test_attribution_sums_to_pnl_and_books_totals(delta_run: Any) -> None:
    record, batch = delta_run
    terms = metrics.pnl_attribution(record, batch)
    assert tuple(terms) == metrics.ATTRIBUTION_TERMS
    total = np.sum([terms[name] for name in metrics.ATTRIBUTION_TERMS], axis=0)
    np.testing.assert_allclose(total, record.totals["terminal_pnl"], atol=1e-9)
    np.testing.assert_allclose(terms["cost"], -record.totals["cost"])
    np.testing.assert_allclose(terms["carry"], record.totals["carry"])
    # a daily delta hedge holds minus the book's delta: no net delta P&L at all
    np.testing.assert_allclose(terms["delta"], 0.0, atol=1e-8)
    for name in ("option_delta", "option_other", "vega"):  # no hedging option; flat vol
        np.testing.assert_allclose(terms[name], 0.0, atol=1e-12)


def test_attribution_residual_is_small_for_fine_zero_cost_delta_hedge(delta_run: Any) -> None:
    """Black-Scholes: the P&L of a daily delta hedge is gamma (realised variance) plus theta;
    the residual (third-order terms) is a small fraction of either, and theta pays for gamma
    on average."""
    record, batch = delta_run
    terms = metrics.pnl_attribution(record, batch)
    gamma, theta, residual = (np.abs(terms[k]).mean() for k in ("gamma", "theta", "residual"))
    assert residual < 0.1 * gamma
    assert residual < 0.1 * theta
    assert abs(terms["gamma"].mean() + terms["theta"].mean()) < 0.1 * gamma
    assert (terms["gamma"] <= 0).all()
    assert (terms["theta"] >= 0).all()


def test_attribution_with_sparse_rebalancing_has_delta_pnl() -> None:
    record, batch = run(ModelHedger(), n=200, rebalance_every=4)
    terms = metrics.pnl_attribution(record, batch)
    assert np.abs(terms["delta"]).mean() > 5 * np.abs(terms["residual"]).mean()
    total = np.sum(list(terms.values()), axis=0)
    np.testing.assert_allclose(total, record.totals["terminal_pnl"], atol=1e-9)


def test_attribution_with_hedging_option() -> None:
    record, batch = run(ModelHedger(), n=200, hedge_option=True, cost=0.001)
    terms = metrics.pnl_attribution(record, batch)
    assert np.abs(terms["option_delta"]).mean() > 0
    assert np.abs(terms["option_other"]).mean() > 0
    # gamma neutral: the option's non-delta P&L offsets the book's gamma and theta
    book = terms["gamma"] + terms["theta"]
    assert np.abs(book + terms["option_other"]).mean() < 0.2 * np.abs(book).mean()


def test_trading_activity_against_numpy() -> None:
    record, _ = run(ModelHedger(), n=100, cost=0.01)
    out = metrics.trading_activity(record.totals)
    for key, total in (("transaction_cost", "cost"), ("turnover", "turnover"),
                       ("trades", "trades")):
        x = record.totals[total]
        assert out[f"mean_{key}"] == pytest.approx(x.mean())
        assert out[f"mean_{key}_se"] == pytest.approx(x.std(ddof=1) / math.sqrt(x.size))
    assert out["mean_transaction_cost"] > 0


def test_score_collects_everything_finite(delta_run: Any) -> None:
    record, batch = delta_run
    out = metrics.score(record, batch, reference=record, n_boot=50)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert out["n_paths"] == 500
    premium, pnl = record.totals["initial_premium"], record.totals["terminal_pnl"]
    assert out["mean_cost"] == pytest.approx(np.mean(premium - pnl))  # r = 0 in ShortCall
    assert out["std_cost"] == pytest.approx(np.std(pnl, ddof=1))
    assert out["cost_diff_p_value"] == 1.0
    assert out["objective_diff"] == 0.0
    assert out["pnl_gamma"] == pytest.approx(metrics.pnl_attribution(record, batch)["gamma"].mean())
    discounted = metrics.score(record, batch, rate_time=(0.05, 1.0), n_boot=10)
    assert discounted["mean_cost"] == pytest.approx(np.mean(premium - math.exp(-0.05) * pnl))
    assert "cost_diff" not in discounted


def test_score_table_one_row_per_hedger(delta_run: Any) -> None:
    record, batch = delta_run
    env = VecHedgingEnv(num_envs=500, preset="ShortCall", cost=0.0)
    none = run_hedger(env, NoHedger(), episodes=batch)
    scores = {
        "delta": metrics.score(record, batch, n_boot=20),
        "no hedge": metrics.score(none, batch, reference=record, n_boot=20),
    }
    table = metrics.score_table(scores)
    assert list(table.index) == ["delta", "no hedge"]
    assert table.index.name == "hedger"
    assert table.loc["no hedge", "mean_turnover"] == 0.0
    assert table.loc["no hedge", "std_cost"] > 3 * table.loc["delta", "std_cost"]
    assert table.loc["no hedge", "cost_diff"] == pytest.approx(
        np.mean(record.totals["terminal_pnl"] - none.totals["terminal_pnl"])
    )
    assert np.isnan(table.loc["delta", "cost_diff_p_value"])  # scored without a reference
    units = metrics.column_units(list(table.columns))
    assert units["var_cost"] == "currency^2"
    assert units["mean_trades"] == "count"


def test_entropic_risk_keeps_its_digits_as_the_risk_aversion_vanishes() -> None:
    """``rho_a -> -mean(PnL) + a var / 2`` as ``a -> 0`` (the cumulant expansion): centred, the
    log-sum-exp does not lose the digits that ``log n`` used to cancel (241.229 for 241.284)."""
    pnl = np.random.default_rng(3).normal(-241.284, 50.0, 2_000)
    for a in (1e-14, 1e-10, 1e-6):
        want = -pnl.mean() + 0.5 * a * pnl.var()
        assert metrics.entropic_risk(pnl, a) == pytest.approx(want, rel=1e-9)
