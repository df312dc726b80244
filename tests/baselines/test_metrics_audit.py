"""Independent audit of the scoring estimators: closed forms, scipy, Monte Carlo coverage.

References: for normal data ``se(s) = sigma / sqrt(2 (n - 1))``, ``ES_a = mu + sigma phi(z_a) /
(1 - a)`` of the loss and the entropic risk of a normal P&L ``-mu + a sigma^2 / 2``;
scipy.stats.ttest_rel for the paired t test. Every Monte Carlo tolerance is >= 4 of its
stated Monte Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hedgearena.baselines import metrics
from hedgearena.baselines.dependence import Overlap, long_run_se
from hedgearena.baselines.hedger import EpisodeRecord


# ---------------------------------------------------------------- closed forms and scipy
def test_estimators_match_normal_closed_forms() -> None:
    """n = 200,000 draws of N(1, 2^2): each estimate within 4 of its own standard errors."""
    mu, sigma, n = 1.0, 2.0, 200_000
    x = np.random.default_rng(123).normal(mu, sigma, n)
    # SE(s) of normal data: sigma / sqrt(2 (n - 1)); the delta-method one estimates it (1%)
    assert metrics.sample_std(x).se == pytest.approx(sigma / math.sqrt(2 * (n - 1)), rel=0.01)
    assert metrics.sample_variance(x).se == pytest.approx(sigma**2 * math.sqrt(2 / (n - 1)),
                                                          rel=0.01)
    se_y = sigma * math.sqrt((1 + 1.5**2 / 2) / n)  # var(mean) + c^2 var(s), no m3 term
    y = metrics.cost_objective(x, 1.5)
    assert y.se == pytest.approx(se_y, rel=0.01)
    assert abs(y.value - (mu + 1.5 * sigma)) < 4 * se_y
    for level in (0.95, 0.99):
        z = stats.norm.ppf(level)
        # the VaR is the loss quantile at the level: numpy's inverted-cdf quantile
        assert metrics.value_at_risk(x, level) == np.quantile(x, level, method="inverted_cdf")
        # asymptotic SEs: quantile sqrt(a (1 - a) / n) / phi(z); ES about sqrt(var_tail / (n (1-a)))
        se_var = sigma * math.sqrt(level * (1 - level) / n) / stats.norm.pdf(z)
        assert abs(metrics.value_at_risk(x, level) - (mu + sigma * z)) < 4 * se_var
        es = mu + sigma * stats.norm.pdf(z) / (1 - level)
        assert abs(metrics.expected_shortfall(x, level) - es) < 4 * 2 * se_var
    a = 0.1  # entropic risk of the P&L -x: the loss x, so mu + a sigma^2 / 2
    se_entropic = sigma * math.sqrt((math.exp(a**2 * sigma**2) - 1) / (a**2 * sigma**2) / n)
    assert abs(metrics.entropic_risk(-x, a) - (mu + a * sigma**2 / 2)) < 4 * se_entropic


def test_paired_p_value_is_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(4)
    for n in (3, 7, 40):
        ref = rng.gamma(2.0, 1.0, n)
        cost = ref + rng.normal(0.3, 1.0, n)
        out = metrics.paired_comparison(cost, ref, n_boot=10)
        result = stats.ttest_rel(cost, ref)
        assert out["cost_diff_p_value"] == pytest.approx(result.pvalue, rel=1e-10)
        assert out["cost_diff"] / out["cost_diff_se"] == pytest.approx(result.statistic,
                                                                       rel=1e-10)


# ------------------------------------------------------------------ Monte Carlo coverage
def test_paired_objective_interval_covers_the_true_difference() -> None:
    """95% paired bootstrap interval of Y(C) - Y(C_ref), 800 repetitions of 300 paths.

    ``C_ref ~ N(5, 2^2)`` and ``C = 0.95 C_ref + N(0.5, 0.5^2)``: the true difference is
    ``0.25 + c (sqrt(0.95^2 4 + 0.25) - 2)``. Measured 0.94 (MC SE 0.008); the band
    [0.91, 0.985] is >= 4 SE. Resampling the two hedgers' paths independently ignores the
    correlation of 0.97 and covers about 1.0; swapped or one-sided percentiles cover about 0.
    """
    c, reps, n = 1.5, 800, 300
    truth = 0.25 + c * (math.sqrt(0.95**2 * 4 + 0.25) - 2.0)
    rng = np.random.default_rng(11)
    hits = 0
    for rep in range(reps):
        ref = rng.normal(5.0, 2.0, n)
        cost = 0.95 * ref + rng.normal(0.5, 0.5, n)
        out = metrics.paired_comparison(cost, ref, c=c, n_boot=200, seed=rep)
        hits += out["objective_diff_low"] <= truth <= out["objective_diff_high"]
    coverage = hits / reps
    assert 0.91 < coverage < 0.985, coverage


def test_paired_t_test_has_its_size_under_the_null() -> None:
    """Rejections at 5% of a true null over 2,000 repetitions: 0.05 +- 4 * 0.0049."""
    rng = np.random.default_rng(5)
    p_values = []
    for _ in range(2000):
        ref = rng.gamma(2.0, 1.0, 30)
        p_values.append(metrics.paired_comparison(ref + rng.normal(0.0, 1.0, 30), ref,
                                                  n_boot=1)["cost_diff_p_value"])
    size = np.mean(np.array(p_values) < 0.05)
    assert abs(size - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 2000), size


# --------------------------------------------------------------------- findings (fixed)
def test_bootstrap_count_is_checked_by_name_everywhere() -> None:
    """tail_risk and paired_comparison failed with numpy's 'need at least one array to
    concatenate' (n_boot <= 0) or a TypeError (n_boot = 2.5), naming nothing."""
    x = np.random.default_rng(0).normal(size=20)
    for n_boot in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_boot must be an integer >= 1"):
            metrics.tail_risk(x, n_boot=n_boot)
        with pytest.raises(ValueError, match="n_boot must be an integer >= 1"):
            metrics.paired_comparison(x, x + 1.0, n_boot=n_boot)


def test_one_path_has_no_interval() -> None:
    """With one path every resample is that path: the intervals were [v, v] (zero width,
    claiming certainty) while its standard errors and p-value are NaN."""
    risk = metrics.tail_risk([1.0], n_boot=20)
    assert risk["value_at_risk_95"] == -1.0
    for name in ("value_at_risk_95", "expected_shortfall_99", "entropic_risk"):
        assert math.isnan(risk[f"{name}_low"]), name
        assert math.isnan(risk[f"{name}_high"]), name
    out = metrics.paired_comparison([2.0], [1.0], n_boot=20)
    assert out["objective_diff"] == 1.0
    assert math.isnan(out["objective_diff_low"])
    assert math.isnan(out["objective_diff_high"])
    ci = metrics.bootstrap_interval([3.0], lambda r: r.mean(axis=-1), n_boot=20)
    assert ci.value == 3.0
    assert math.isnan(ci.low)
    assert math.isnan(ci.high)


def test_hedging_cost_rejects_misshaped_or_nan_inputs() -> None:
    """A ``(n, 1)`` premium broadcast against ``(n,)`` P&L to an ``(n, n)`` cost; a NaN premium
    went through and surfaced later as 'x must be finite', naming no field."""
    pnl = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="initial_premium must be a scalar or one value"):
        metrics.hedging_cost(pnl, np.ones((3, 1)), 0.0, 1.0)
    with pytest.raises(ValueError, match="initial_premium must be finite"):
        metrics.hedging_cost(pnl, np.array([1.0, math.nan, 1.0]), 0.0, 1.0)
    with pytest.raises(ValueError, match="terminal_pnl"):
        metrics.hedging_cost(np.array([1.0, math.nan]), 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="rate"):
        metrics.hedging_cost(pnl, 1.0, math.nan, 1.0)
    np.testing.assert_allclose(metrics.hedging_cost(pnl, 2.0, 0.0, 1.0), [1.0, 0.0, -1.0])


def _record(n: int, premium: np.ndarray | float = 0.0) -> EpisodeRecord:
    rng = np.random.default_rng(2)
    totals = {"terminal_pnl": rng.normal(size=n), "initial_premium": np.full(n, 1.0) * premium,
              "cost": np.ones(n), "turnover": np.ones(n), "trades": np.ones(n)}
    empty = np.zeros((1, n))
    return EpisodeRecord(totals, np.zeros(1, dtype=np.int64), empty, empty, empty, empty)


def test_score_names_the_field_of_bad_inputs() -> None:
    record = _record(10, premium=1.0)
    good = {"delta": np.zeros(10)}
    out = metrics.score(record, None, attribution=good, rate_time=(0.0, 1.0), n_boot=5)
    assert out["pnl_delta"] == 0.0
    with pytest.raises(ValueError, match=r"attribution\['delta'\] must give one value per path"):
        metrics.score(record, None, attribution={"delta": np.zeros(7)}, rate_time=(0.0, 1.0),
                      n_boot=5)
    bad = _record(10, premium=1.0)
    bad.totals["initial_premium"][3] = math.nan
    with pytest.raises(ValueError, match="initial_premium"):
        metrics.score(bad, None, attribution=good, rate_time=(0.0, 1.0), n_boot=5)
    with pytest.raises(ValueError, match="levels must be a sequence"):
        metrics.score(record, None, attribution=good, rate_time=(0.0, 1.0), n_boot=5,
                      levels=0.95)


def test_overlap_is_validated_by_name() -> None:
    """span 0 raised ZeroDivisionError, a negative span gave silent NaN standard errors, float
    start days a numpy casting TypeError."""
    x = np.random.default_rng(0).normal(size=50)
    starts = np.arange(50, dtype=np.int64) * 10
    for span in (0, -1):
        with pytest.raises(ValueError, match=r"overlap\.span must be an integer >= 1"):
            metrics.sample_mean(x, overlap=Overlap(starts, span))
        with pytest.raises(ValueError, match=r"overlap\.span must be an integer >= 1"):
            metrics.paired_comparison(x, x + 1.0, n_boot=5, overlap=Overlap(starts, span))
    with pytest.raises(ValueError, match=r"overlap\.start must be integer days"):
        metrics.sample_mean(x, overlap=Overlap(starts.astype(np.float64), 1))
    with pytest.raises(ValueError, match=r"overlap\.span"):
        long_run_se(x - x.mean(), Overlap(starts, 0))
    assert metrics.sample_mean(x, overlap=Overlap(starts, 1)).se > 0.0
