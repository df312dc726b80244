"""Inference on dependent paths (the historical replay's overlapping windows).

References: Newey and West (1987), Econometrica 55(3) (the long-run variance with Bartlett
weights); Kuensch (1989), Annals of Statistics 17(3) (the moving-block bootstrap). The Monte
Carlo tests build paths as overlapping windows of one i.i.d. daily series, whose estimators'
true spread is measured by repeating the whole experiment.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from hedgearena.baselines import metrics
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.baselines.dependence import Overlap, block_resamples, long_run_se, overlap_of
from hedgearena.envs.config import make_config


def overlapping_windows(
    rng: np.random.Generator, days: int = 2000, span: int = 10, n: int = 5000
) -> tuple[np.ndarray, Overlap]:
    """Sums over windows of ``span`` days of one i.i.d. N(0, 1) series, starts drawn uniformly."""
    steps = np.concatenate([[0.0], np.cumsum(rng.standard_normal(days + span))])
    start = rng.integers(0, days, size=n)
    return steps[start + span] - steps[start], Overlap(start.astype(np.int64), span)


def far_apart(n: int, span: int = 1) -> Overlap:
    """Starts far enough apart that no two paths share a day."""
    return Overlap(np.arange(n, dtype=np.int64) * 10 * span, span)


def test_independent_paths_give_the_independent_formulas() -> None:
    """With no shared days the long-run SEs are the i.i.d. delta-method ones (ddof 0 in s)."""
    x = np.random.default_rng(0).lognormal(0.0, 0.5, 400)
    overlap, n = far_apart(x.size), x.size
    shrink = math.sqrt((n - 1) / n)  # the i.i.d. mean's SE uses s (ddof 1), Sum(psi^2) uses m2
    assert metrics.sample_mean(x, overlap=overlap).se == pytest.approx(
        metrics.sample_mean(x).se * shrink, rel=1e-12)
    for estimator in (metrics.sample_std, metrics.sample_variance):
        assert estimator(x, overlap=overlap).se == pytest.approx(estimator(x).se, rel=1e-12)
    # Y: the i.i.d. formula's first term is s^2 / n; the influence form's is m2 / n
    m2 = x.var()
    with_s = metrics.cost_objective(x, 1.5).se ** 2 * n
    expected = math.sqrt((with_s - x.var(ddof=1) + m2) / n)
    assert metrics.cost_objective(x, 1.5, overlap=overlap).se == pytest.approx(expected, rel=1e-12)


def test_copies_of_a_path_count_once() -> None:
    """``k`` copies of each of ``n`` values on one start day: the SE of the ``n`` values alone."""
    rng = np.random.default_rng(1)
    x, k = rng.standard_normal(300), 7
    copies = np.repeat(x, k)
    overlap = Overlap(np.repeat(far_apart(x.size).start, k), 1)
    alone = metrics.sample_mean(x, overlap=far_apart(x.size)).se
    assert metrics.sample_mean(copies, overlap=overlap).se == pytest.approx(alone, rel=1e-12)
    naive = metrics.sample_mean(copies).se  # the copies read as independent paths
    assert naive == pytest.approx(alone / math.sqrt(k), rel=0.01)


def test_long_run_se_of_overlapping_windows_matches_the_monte_carlo_spread() -> None:
    """Mean and Y of 5,000 windows of 10 days over 2,000 days, 300 experiments.

    The true spread is the standard deviation over the experiments (relative SE 1/sqrt(600),
    about 4%). Measured: long-run SEs 0.95 (mean) and 0.94 (Y) of it on the sums, 0.88 and
    0.86 on their squares (heavier tails); the independent-path SE 0.20. Bands of about 3 SE.
    """
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(300):
        sums, overlap = overlapping_windows(rng)
        for x in (sums, sums**2):
            mean, y = metrics.sample_mean(x, overlap=overlap), metrics.cost_objective(
                x, 1.5, overlap=overlap)
            rows.append((mean.value, mean.se, y.value, y.se, metrics.sample_mean(x).se))
    table = np.array(rows).reshape(300, 2, 5)
    spread = table[:, :, [0, 2]].std(axis=0, ddof=1)
    ratio = table[:, :, [1, 3]].mean(axis=0) / spread
    assert ((ratio > 0.78) & (ratio < 1.08)).all(), ratio
    independent = table[:, :, 4].mean(axis=0) / spread[:, 0]
    assert (independent < 0.3).all(), independent


def test_block_bootstrap_spread_matches_the_monte_carlo_spread() -> None:
    """Moving-block percentile intervals of the mean, 100 experiments of 2,000 windows.

    Measured: half-width / 1.96 is 0.80 of the true spread (relative SE about 7%); the
    independent bootstrap's is about 0.2.
    """
    rng = np.random.default_rng(2)
    values, block, single = [], [], []
    mean_rows = lambda r: r.mean(axis=-1)  # noqa: E731
    for _ in range(100):
        sums, overlap = overlapping_windows(rng, n=2000)
        values.append(sums.mean())
        for out, dependence in ((block, overlap), (single, None)):
            ci = metrics.bootstrap_interval(sums, mean_rows, n_boot=200, seed=3,
                                            overlap=dependence)
            out.append((ci.high - ci.low) / (2 * 1.96))
    spread = np.std(values, ddof=1)
    assert 0.6 < np.mean(block) / spread < 1.05
    assert np.mean(single) / spread < 0.35


def test_block_resamples_keep_runs_of_start_days() -> None:
    """Each resample is n paths made of blocks of consecutive paths in start order."""
    start = np.repeat(np.arange(0, 100, 2), 3)[::-1].copy()  # 150 paths, reversed order
    overlap = Overlap(start.astype(np.int64), span=2)  # bandwidth 6: b = ceil(150 * 6 / 99) = 10
    index = block_resamples(overlap, 4, np.random.default_rng(0))
    assert index.shape == (4, 150)
    days = start[index]
    steps = np.diff(days, axis=1)
    runs = (steps >= 0) & (steps <= 2)  # inside a block days never fall and rise by <= 2
    # 15 blocks: only the 14 joins between blocks may break a run (i.i.d. resamples break most)
    assert runs.sum(axis=1).min() >= 149 - 14


def test_paired_test_uses_the_stretches_as_degrees_of_freedom() -> None:
    """p-value = 2 sf_t(|d| / se, stretches - 1), the SE the long-run one."""
    rng = np.random.default_rng(3)
    sums, overlap = overlapping_windows(rng, days=300, n=600)
    reference = sums + rng.normal(0.05, 1.0, sums.size)
    out = metrics.paired_comparison(sums, reference, n_boot=50, overlap=overlap)
    diff = sums - reference
    se = long_run_se(diff - diff.mean(), overlap)
    assert out["cost_diff_se"] == pytest.approx(se, rel=1e-12)
    days = int(overlap.start.max() - overlap.start.min()) + 1
    dof = days // 30 - 1  # stretches of 3 spans of 10 days
    expected = 2 * student_t.sf(abs(diff.mean() / se), dof)
    assert out["cost_diff_p_value"] == pytest.approx(expected, rel=1e-9)


def test_too_little_history_leaves_the_uncertainty_undefined() -> None:
    """Starts within one bandwidth: one stretch, so SEs, p-values and intervals are NaN."""
    x = np.arange(10.0)
    overlap = Overlap(np.arange(10, dtype=np.int64), span=10)
    assert overlap.stretches == 0
    assert math.isnan(metrics.sample_mean(x, overlap=overlap).se)
    assert math.isnan(metrics.cost_objective(x, overlap=overlap).se)
    risk = metrics.tail_risk(-x, levels=(0.95,), n_boot=20, overlap=overlap)
    assert math.isnan(risk["value_at_risk_95_low"])
    assert risk["value_at_risk_95"] == 9.0
    paired = metrics.paired_comparison(x, x[::-1], n_boot=20, overlap=overlap)
    assert math.isnan(paired["cost_diff_p_value"])
    assert math.isnan(paired["objective_diff_low"])


def test_overlap_must_match_the_paths() -> None:
    with pytest.raises(ValueError, match=r"one start day per path, shape \(3,\)"):
        metrics.sample_mean([1.0, 2.0, 3.0], overlap=far_apart(4))


def test_overlap_of_dates() -> None:
    """Start days and the longest span (calendar days, first to last date inclusive)."""
    dates = np.array([["2008-01-04", "2008-01-07", "2008-01-08"],
                      ["2008-01-02", "2008-01-03", "2008-01-04"]], dtype="datetime64[D]")
    overlap = overlap_of(dates)
    assert overlap is not None
    assert overlap.span == 5  # Friday 4 to Tuesday 8
    assert list(overlap.start) == [np.datetime64("2008-01-04", "D").astype(np.int64),
                                   np.datetime64("2008-01-02", "D").astype(np.int64)]
    assert overlap_of(None) is None


def test_replay_scores_allow_for_overlapping_windows() -> None:
    """The arena records the replay's overlap, and its SEs are far above independent ones.

    4,096 windows of 21 days from about 5,000 starts: about 35 paths per stretch of 3 spans.
    """
    config = make_config("HistoricalReplay", n_steps=21)
    result = run_arena(config, [NoHedge(), BlackScholesDelta()], n_paths=4096, seed=5,
                       progress=False)
    assert result.overlap is not None
    assert result.overlap.span >= 29
    cost = result.cost("delta")
    dependent = metrics.sample_mean(cost, overlap=result.overlap).se
    assert dependent > 3.0 * metrics.sample_mean(cost).se  # measured: 6.4
    simulated = run_arena(make_config("ShortCall"), [NoHedge()], n_paths=64, seed=5,
                          progress=False)
    assert simulated.overlap is None


def test_benchmark_reads_replay_errors_as_long_run_and_stress_as_conditional() -> None:
    """The benchmark's replay scores use the overlap (and say so); the stress report does not."""
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark, report_note
    from hedgearena.baselines.stress import StressSettings, stress_test

    config = make_config("HistoricalReplay", n_steps=21)
    settings = BenchmarkSettings(n_paths=2048, n_boot=20, progress=False)
    out = benchmark(config, ["no_hedge", "delta"], settings)
    cost, overlap = out.arena.cost("delta"), out.arena.overlap
    assert out.table.loc["delta", "mean_cost_se"] == pytest.approx(
        metrics.sample_mean(cost, overlap=overlap).se, rel=1e-12)
    assert "overlapping windows of one history" in (report_note(out, settings) or "")
    stress = stress_test(config, ["no_hedge", "delta"], ["base"],
                         StressSettings(n_paths=2048, n_boot=20, worst_paths=False,
                                        progress=False, seed=settings.seed))
    assert stress.table.loc[("base", "delta"), "mean_cost_se"] == pytest.approx(
        metrics.sample_mean(cost).se, rel=1e-12)


def test_paired_test_and_objective_interval_are_calibrated_on_overlapping_windows() -> None:
    """Size of the paired t test and coverage of the 95% interval of ``Y(b) - Y(a)``.

    500 histories of 2,000 days, 2,000 windows of 30 days each (a: sums of one i.i.d. N(0, 1)
    series; b: a plus half the sums of another, same mean, std sqrt(1.25) times a's). Measured:
    rejection 0.058 and coverage 0.896 (Monte Carlo SE 0.01); on a replay-sized history (7,000
    days, 20,000 windows, 500 histories, 35 s) 0.052 and 0.944. The independent-path formulas
    reject the true null 72% of the time here (200 histories).
    """
    rng = np.random.default_rng(11)
    days, n, span, reps = 2_000, 2_000, 30, 500
    true = 1.5 * (math.sqrt(1.25 * span) - math.sqrt(span))
    rejected = covered = 0
    for i in range(reps):
        walks = np.zeros((2, days + span + 1))
        walks[:, 1:] = np.cumsum(rng.standard_normal((2, days + span)), axis=1)
        start = np.sort(rng.integers(0, days, n))
        a, noise = walks[:, start + span] - walks[:, start]
        out = metrics.paired_comparison(a + 0.5 * noise, a, c=1.5, n_boot=200, seed=i,
                                        overlap=Overlap(start.astype(np.int64), span))
        rejected += out["cost_diff_p_value"] < 0.05
        covered += out["objective_diff_low"] <= true <= out["objective_diff_high"]
    assert 0.025 <= rejected / reps <= 0.095
    assert 0.85 <= covered / reps <= 0.985
