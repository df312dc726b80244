"""Stress scenarios and the stress report: tests for the survivors of a hand-made mutation round.

Each test names the mutants it kills (a sign, a comparison, an index or a dropped check in
``envs/scenarios.py`` or ``baselines/stress.py``). Expected numbers are worked out by hand in
the docstrings or come from closed forms: the crowd's weight is the delta of stock plus put,
``e^{-q tau} N(d1)`` (Leland and Rubinstein's portfolio insurance; Hull, *Options, Futures and
Other Derivatives*, ch. 19 for the Black-Scholes-Merton delta with a dividend yield ``q``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hedgearena.baselines import stress
from hedgearena.baselines.stress import (
    StressReport,
    StressSettings,
    breach_counts,
    warn_liquidity_blind,
)
from hedgearena.envs.book import ClientFlow, HedgeOption
from hedgearena.envs.config import make_config
from hedgearena.envs.gbm import GBM
from hedgearena.envs.scenarios import (
    FILL_FIELDS,
    SCENARIOS,
    Crowding,
    FlashCrash,
    Gap,
    LiquidityDrought,
    RealisedVsImplied,
    Scenario,
    StressWindow,
    VolSpike,
    apply_scenario,
    intraday_grid,
    make_scenario,
)
from hedgearena.envs.vol_surface import HestonTermVol, SmileSurface

DT = 1 / 252


# ------------------------------------------------------------------------- stacked windows
def test_stacked_droughts_multiply_liquidity_and_keep_the_tighter_fills() -> None:
    """Inner drought rows 0..2 (x2, 50% fills, cap 0.3), outer rows 2..4 (x5, 25%, cap 0.4).

    By hand, rows 0..6: liquidity 2, 2, 2*5, 5, 5, 1, 1 (the multipliers multiply); fill
    fraction min(.) = 0.5, 0.5, 0.25, 0.25, 0.25, 1, 1; cap min(.) = 0.3, 0.3, 0.3, 0.4, 0.4,
    inf, inf. Kills ``with_fills`` taking the looser (np.maximum) fraction or cap, and
    ``StressWindow.apply`` dropping the base's liquidity.
    """
    inner = LiquidityDrought(GBM(), window=StressWindow(2.0, 0.5, 0.3), start=0, length=3)
    outer = LiquidityDrought(inner, window=StressWindow(5.0, 0.25, 0.4), start=2, length=3)
    paths = outer.simulate(3, 6, DT, np.random.default_rng(0))
    inf = math.inf
    assert paths.liquidity.tolist() == [[2.0, 2.0, 10.0, 5.0, 5.0, 1.0, 1.0]] * 3
    assert paths.fill_fraction.tolist() == [[0.5, 0.5, 0.25, 0.25, 0.25, 1.0, 1.0]] * 3
    assert paths.fill_cap.tolist() == [[0.3, 0.3, 0.3, 0.4, 0.4, inf, inf]] * 3


# ----------------------------------------------------------------------------------------- gap
def test_a_gaps_vol_multiplier_starts_on_the_interval_after_the_jump() -> None:
    """Gap at step 5 (the interval (4, 5]), vol x3 from step 5 on, GBM mu = 0, sigma = 0.2, on
    the same normal draws as the base. By hand (``scale_returns``, Ito-corrected): intervals
    0..3 are the base's returns r; interval 4 is r + ln 0.9 (the jump, at the old vol);
    intervals 5.. are -9 sigma^2 dt / 2 + 3 (r + sigma^2 dt / 2). Kills the multiplier applied
    from the jump's own interval (``after[1:]``) and the variance scaled by 3, not 9."""
    base = GBM(mu=0.0, sigma=0.2)
    gap = Gap(base, size=-0.1, step=5, vol_multiplier=3.0)
    r = np.diff(np.log(base.simulate(50, 10, DT, np.random.default_rng(2)).spot), axis=1)
    got = np.diff(np.log(gap.simulate(50, 10, DT, np.random.default_rng(2)).spot), axis=1)
    v = 0.04
    np.testing.assert_allclose(got[:, :4], r[:, :4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[:, 4], r[:, 4] + math.log(0.9), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[:, 5:], -4.5 * v * DT + 3.0 * (r[:, 5:] + 0.5 * v * DT),
                               rtol=0, atol=1e-12)
    # the variance (0.04 -> 9 x 0.04) and the implied vol (0.2 -> 0.6) from step 5 on
    paths = gap.simulate(50, 10, DT, np.random.default_rng(2))
    np.testing.assert_allclose(paths.variance[:, :5], v, rtol=1e-12)
    np.testing.assert_allclose(paths.variance[:, 5:], 9.0 * v, rtol=1e-12)
    np.testing.assert_allclose(paths.vol_state[:, 5:], 0.6, rtol=1e-12)


# ---------------------------------------------------------------------- event steps on the grid
@pytest.mark.parametrize(
    ("name", "field", "last"),
    [("gap", "step", 20), ("vol_spike", "step", 19), ("liquidity_drought", "start", 20)],
)
def test_the_last_step_on_the_grid_is_allowed_and_the_next_one_refused(
    name: str, field: str, last: int
) -> None:
    """ShortCall's grid has 20 steps (rows 0..20). A gap's first step after the jump can be
    20 (the interval (19, 20]); a vol spike must start on an interval, at most 19; a drought
    can start on row 20 (the unwind's row). Kills ``>=`` for ``>`` in ``_check_grid`` and each
    scenario's ``last`` shifted by one."""
    config = make_config("ShortCall")
    stressed = apply_scenario(config, name, **{field: last})
    assert getattr(stressed.market, field) == last
    message = f"must be at most {last} on a grid of n_steps=20, got {last + 1}"
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_scenario(config, name, **{field: last + 1})


def test_a_flash_crash_may_fill_the_grid_exactly_and_start_at_the_last_step_that_fits() -> None:
    """78 steps: 3 + 4 steps of crash and recovery fit from start 0..71 (78 - 7); a crash of
    40 + 38 = 78 steps fills the grid (start 0), one of 79 is refused. Kills ``span >=
    n_steps`` and the start's ``last`` one step late."""
    config = make_config("ShortCall")
    assert apply_scenario(config, "flash_crash", start=71).market.start == 71
    with pytest.raises(ValueError, match=re.escape(
            "FlashCrash.start must be at most 71 on a grid of n_steps=78, got 72")):
        apply_scenario(config, "flash_crash", start=72)
    full = apply_scenario(config, "flash_crash", crash_steps=40, recovery_steps=38)
    assert full.market.span == 78
    with pytest.raises(ValueError, match=re.escape("(79) must be at most the grid's n_steps")):
        apply_scenario(config, "flash_crash", crash_steps=40, recovery_steps=39)


def test_a_random_vol_spike_starts_on_an_interval_of_the_grid() -> None:
    """With ``step=None`` the spike's step is uniform in [0, n_steps - 1]: on 5 steps every
    path reaches the spike's variance M^2 sigma^2 = 16 * 0.04 = 0.64 on a row 0..4, about 1/5
    of the paths on each (2,000 paths: 400 +- 18 per row; 4 sigma bounds). Kills drawing the
    step in [0, n_steps] (1/6 of the paths spiking on the last row, after every interval)."""
    paths = VolSpike(GBM(sigma=0.2), multiplier=4.0).simulate(2000, 5, DT,
                                                              np.random.default_rng(0))
    spiked = np.isclose(paths.variance, 0.64, rtol=1e-12)
    assert (spiked[:, :5].sum(axis=1) == 1).all()
    counts = spiked[:, :5].sum(axis=0)
    assert counts.min() > 400 - 4 * 18
    assert counts.max() < 400 + 4 * 18


# ------------------------------------------------------------------------- the vol spike's base
class _VarianceMarked:
    """GBM paths marked by Heston's term structure at a constant variance level 0.04 (GBM
    itself refuses that surface): one constant level, but a variance."""

    def simulate(self, n_paths, n_steps, dt, rng):  # type: ignore[no-untyped-def]
        paths = GBM(sigma=0.2).simulate(n_paths, n_steps, dt, rng)
        return dataclasses.replace(paths, vol_state=np.full_like(paths.spot, 0.04),
                                   surface=HestonTermVol())


def test_a_vol_spike_refuses_a_base_with_a_varying_or_variance_level() -> None:
    """The spike's surface needs one constant vol level: a gap that doubles the vol at step 2
    varies it (flat surface), and paths marked by Heston's term structure have a variance for
    a level (constant). Each check alone lets one of them through."""
    varying = VolSpike(Gap(GBM(sigma=0.2), size=-0.1, step=2, vol_multiplier=2.0), step=3)
    with pytest.raises(ValueError, match=r"VolSpike\.base must have one constant vol level"):
        varying.simulate(4, 5, DT, np.random.default_rng(0))
    variance_level = VolSpike(_VarianceMarked(), step=3)
    with pytest.raises(ValueError, match=r"VolSpike\.base must have one constant vol level"):
        variance_level.simulate(4, 5, DT, np.random.default_rng(0))


# ------------------------------------------------------------------------------------ crowding
def _bsm_weight(spot, strike, tau, vol, rate, dividend):  # type: ignore[no-untyped-def]
    """Stock plus put delta, e^{-q tau} N(d1), d1 = (ln(S/K) + (r - q + vol^2/2) tau) /
    (vol sqrt(tau)) (Hull ch. 19, by scipy's normal CDF)."""
    d1 = (np.log(spot / strike) + (rate - dividend + 0.5 * vol**2) * tau) / (vol * math.sqrt(tau))
    return math.exp(-dividend * tau) * norm.cdf(d1)


def test_the_crowds_weight_is_the_delta_of_stock_plus_put_at_the_steps_vol_and_forward() -> None:
    """r = 3%, q = 5%, floor 90% of S0 = 100, horizon 0.25: at step 5 of a daily grid tau =
    0.25 - 5/252. The base doubles its vol at step 2 (0.2 -> 0.4) and marks with a skewed smile
    whose at-the-money-forward vol is the level, so the crowd's vol is 0.4 at step 5 (0.2 at
    step 1). Kills: tau one step short, the strike at the current spot, the forward at
    ``r + q``, the Ito term's sign, no dividend discount, and the vol read at step 0."""
    rate, dividend = 0.03, 0.05
    base = Gap(GBM(sigma=0.2, rate=rate, dividend=dividend,
                   surface=SmileSurface(skew=-0.3, curvature=0.5)),
               size=-0.1, step=2, vol_multiplier=2.0)
    paths = base.simulate(3, 10, DT, np.random.default_rng(0))
    crowd = Crowding(base, floor=0.9, horizon=0.25)
    spot = np.array([80.0, 95.0, 120.0])
    strike = 0.9 * paths.spot[:, 0]
    for step, vol in ((1, 0.2), (5, 0.4)):
        tau = 0.25 - step * DT
        expected = _bsm_weight(spot, strike, tau, vol, rate, dividend)
        np.testing.assert_allclose(crowd.weight(paths, spot, step, DT), expected, rtol=1e-10)
    # past the horizon the option has one step left (tau floored at dt)
    short = Crowding(base, floor=0.9, horizon=3 * DT)
    expected = _bsm_weight(spot, strike, DT, 0.4, rate, dividend)
    np.testing.assert_allclose(short.weight(paths, spot, 5, DT), expected, rtol=1e-10)


def test_the_crowds_feedback_is_the_explicit_scheme_written_out() -> None:
    """Two steps by hand with a fixed crowd vol of 25%, lambda = crowd_size * depth_impact =
    2 * 0.3 = 0.6: w0 = w(S0, 0); m1 = ln S0 + r0, w1 = w(e^{m1}, 1), ln S1 = m1 + 0.6 (w1 -
    w0); m2 = ln S1 + r1, w2 = w(e^{m2}, 2), ln S2 = m2 + 0.6 (w2 - w1). Kills lambda as a sum,
    the impact's sign, and the weight taken at the price before the step's return."""
    base = GBM(mu=0.0, sigma=0.3)
    model = Crowding(base, floor=0.95, horizon=0.1, crowd_size=2.0, depth_impact=0.3,
                     crowd_vol=0.25)
    plain = base.simulate(4, 2, DT, np.random.default_rng(7)).spot
    crowd = model.simulate(4, 2, DT, np.random.default_rng(7)).spot
    r = np.diff(np.log(plain), axis=1)
    strike = 0.95 * plain[:, 0]

    def w(spot, step):  # type: ignore[no-untyped-def]
        return _bsm_weight(spot, strike, 0.1 - step * DT, 0.25, 0.0, 0.0)

    w0 = w(plain[:, 0], 0)
    m1 = np.log(plain[:, 0]) + r[:, 0]
    w1 = w(np.exp(m1), 1)
    log1 = m1 + 0.6 * (w1 - w0)
    m2 = log1 + r[:, 1]
    w2 = w(np.exp(m2), 2)
    log2 = m2 + 0.6 * (w2 - w1)
    np.testing.assert_allclose(np.log(crowd), np.stack([np.log(plain[:, 0]), log1, log2], 1),
                               rtol=0, atol=1e-12)


def test_the_crowd_trades_on_the_horizons_step_even_when_horizon_over_dt_rounds_down() -> None:
    """horizon 0.29, dt 0.01: 0.29 / 0.01 = 28.999999999999996 in floating point, but the
    horizon's step is 29. The weight moves at steps 1..29 and never after. Kills flooring
    without the 1e-9 (expiry 28) and ``s + 1 < expiry`` (the last trade dropped)."""
    base = GBM(mu=0.0, sigma=0.2)
    paths = base.simulate(200, 40, 0.01, np.random.default_rng(1))
    _, weight = Crowding(base, horizon=0.29).feedback(paths, 0.01)
    moves = np.abs(np.diff(weight, axis=0))  # row s: the trade at step s + 1
    assert moves[28].max() > 1e-3  # the trade at step 29 (0 on paths far from the floor)
    assert (moves[29:] == 0).all()


# --------------------------------------------------------------------------------- intraday grid
def test_the_intraday_grid_keeps_every_calendar_length_and_the_decisions_cadence() -> None:
    """On 78 five-minute steps a day: the realised-vol half-life of 10 days becomes 780 steps,
    a hedging option of 90 days 7,020, client trades of 20/40/60 days 1,560/3,120/4,680;
    ``rebalance_every`` passes through; an episode of 30 days on a 20-day config lasts the
    config's 20 days (1,560 steps). Kills each calendar length left in days, the cadence
    forced to 1 and the episode not capped at the config's length."""
    config = make_config("ShortCall", hedge_option=HedgeOption(expiry_steps=90),
                         book=dataclasses.replace(make_config("ShortCall").book,
                                                  client_flow=ClientFlow()))
    grid = intraday_grid(config, days=30, rebalance_every=3)
    assert grid["n_steps"] == 20 * 78
    assert grid["realised_vol_halflife"] == 780.0
    assert grid["hedge_option"].expiry_steps == 7020
    assert grid["book"].client_flow.expiry_steps == (1560, 3120, 4680)
    assert grid["rebalance_every"] == 3
    assert grid["days_per_year"] == 250.0 * 78


# ------------------------------------------------------------------------------ scenario checks
def test_a_scenario_overriding_an_unknown_env_field_names_it() -> None:
    scenario = Scenario("odd", "sets a field EnvConfig lacks", lambda base: base,
                        env_overrides={"bogus": 1})
    with pytest.raises(ValueError, match=re.escape("scenario 'odd': unknown env field(s) "
                                                   "['bogus']")):
        scenario.apply(make_config("ShortCall"))


def test_a_fixed_step_under_another_wrapper_is_checked_when_applied() -> None:
    """A gap at step 30 inside a calm-market wrapper, on a 20-step grid, is refused when the
    scenario is applied (not later, when paths are drawn): kills the check's recursion into
    ``base``."""
    scenario = Scenario("stack", "calm over a late gap",
                        lambda base: RealisedVsImplied(Gap(base, step=30), ratio=0.8))
    with pytest.raises(ValueError, match=re.escape("Gap.step must be at most 20")):
        scenario.apply(make_config("ShortCall"))


def test_a_historical_window_shorter_than_the_episode_is_refused_when_applied() -> None:
    """1..10 Oct 2008 holds 8 closes; a 20-step episode needs 21 rows: refused by
    ``apply_scenario`` (kills the dropped ``window_starts`` check)."""
    with pytest.raises(ValueError, match=re.escape("needs n_steps + 1 = 21 rows, the series has "
                                                   "8")):
        apply_scenario(make_config("ShortCall"), "crisis_2008", start="2008-10-01",
                       end="2008-10-10")


def test_a_historical_window_keeps_the_replays_own_surface() -> None:
    from hedgearena.envs.historical import HistoricalReplay

    smile = SmileSurface(skew=-0.2)
    replay = make_scenario("crisis_2008").market(HistoricalReplay.sp500(surface=smile))
    assert replay.surface == smile


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RealisedVsImplied(ratio=0.0),
         "RealisedVsImplied.ratio must be a finite number > 0.0, got 0.0"),
        (lambda: Gap(size=-1.0), "Gap.size must be a finite number > -1.0, got -1.0"),
        (lambda: FlashCrash(drop=-1.0), "FlashCrash.drop must be a finite number > -1.0"),
        (lambda: StressWindow(liquidity=0.5),
         "StressWindow.liquidity must be a finite number >= 1.0, got 0.5"),
        (lambda: StressWindow(fill_cap=-0.1), "StressWindow.fill_cap must be a number >= 0"),
        (lambda: make_scenario("calm", ratio=1.0), "calm.ratio must be a finite number < 1.0"),
        (lambda: make_scenario("volatile", ratio=1.0),
         "volatile.ratio must be a finite number > 1.0"),
        (lambda: make_scenario("gap", label="   "), "label must be a non-empty string"),
        (lambda: apply_scenario(make_config("ShortCall"), SCENARIOS["gap"], step=3),
         "parameters are given with a scenario's name, not with a Scenario"),
        (lambda: StressSettings(c=-0.1), "StressSettings.c must be a finite number >= 0.0"),
    ],
)
def test_bad_values_are_refused_naming_the_field(build, message: str) -> None:  # type: ignore[no-untyped-def]
    """A ratio of 0 (no diffusion), a 100% fall (log 0), a liquidity below 1 (spreads
    tighter under stress), calm and volatile at a ratio of 1 (the base), a blank label, and
    parameters beside a Scenario object."""
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_boundary_values_are_accepted() -> None:
    """A zero fill cap (refuse every fill), liquidity 1, no crowd, no hedger impact, a
    one-day historical window, c = 0 (the mean cost alone)."""
    assert StressWindow(fill_cap=0.0).arrays(np.array([True]))[2].tolist() == [0.0]
    assert StressWindow(liquidity=1.0).liquidity == 1.0
    assert make_scenario("crowding", permanent_impact=0.0).overrides(
        make_config("ShortCall")) == {"permanent_impact": 0.0}
    assert make_scenario("crowding", crowd_size=0.0).market(GBM()).crowd_size == 0.0  # no crowd
    one_day = make_scenario("crisis_2008", start="2008-10-10", end="2008-10-10")
    assert one_day.parameters == {"start": "2008-10-10", "end": "2008-10-10"}
    assert StressSettings(c=0.0).c == 0.0


def test_scenarios_declare_the_execution_mechanics_they_switch_on() -> None:
    """What the report's scenario table lists: fills for the flash crash and the drought, the
    hedger's permanent impact for crowding, none for the others."""
    assert SCENARIOS["flash_crash"].mechanics == FILL_FIELDS
    assert SCENARIOS["liquidity_drought"].mechanics == FILL_FIELDS
    assert SCENARIOS["crowding"].mechanics == ("permanent_impact",)
    assert SCENARIOS["gap"].mechanics == ()


def test_descriptions_state_the_defaults() -> None:
    assert SCENARIOS["liquidity_drought"].description == (
        "10 steps of spreads x5, 25% fills, fills above 0.2 notional refused")
    assert SCENARIOS["gap"].description == (
        "overnight gap of -20% at a random step, no trading across it")
    assert make_scenario("gap", step=4).description.endswith("at step 4, no trading across it")


# ---------------------------------------------------------------------------- stress settings
def test_the_benchmark_settings_carry_the_tuning_paths_and_c() -> None:
    """``ww:best`` is tuned on ``tune_paths`` paths with the report's objective weight c."""
    bench = StressSettings(n_paths=10, tune_paths=7, c=0.3, n_boot=5, seed=4).benchmark()
    assert (bench.n_paths, bench.tune_paths, bench.c, bench.seed) == (10, 7, 0.3, 4)


# -------------------------------------------------------------------------- breaches and warnings
def test_breach_counts_sum_every_breach_total() -> None:
    """Without the env's ``breaches`` count, the per-limit totals add up: (1, 0) + (2, 3)."""
    counts = breach_counts({"delta_breach": np.array([1.0, 0.0]),
                            "loss_breach": np.array([2.0, 3.0]), "pnl": np.zeros(2)})
    assert counts.tolist() == [3.0, 3.0]


def test_breach_probability_is_the_share_of_paths_with_a_breach() -> None:
    """Counts (0, 2, 0, 1): mean 0.75 breaches, 2 of 4 paths breached (0.5)."""
    record = SimpleNamespace(totals={"breaches": np.array([0.0, 2.0, 0.0, 1.0])})
    assert stress._breach_columns(record) == {"mean_breaches": 0.75, "breach_probability": 0.5}


def test_no_liquidity_shock_no_warning_whatever_the_cost() -> None:
    """A gap multiplies no spread: nothing to warn about on a fee-only cost."""
    config = make_config("ShortCall")  # 1% proportional fee, blind to liquidity
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_liquidity_blind({"gap": SCENARIOS["gap"]}, config) == []


# ------------------------------------------------------------------------------- report tables
def _report(scenarios=("gap", "base"), hedgers=("c", "a", "b")):  # type: ignore[no-untyped-def]
    """Hand numbers: objective = 10 * scenario index + hedger index + 1, rows out of order."""
    rows = {}
    for i, s in enumerate(scenarios):
        for j, h in enumerate(hedgers):
            rows[s, h] = {"objective": 10.0 * i + j + 1, "objective_se": 0.5,
                          "expected_shortfall_95": 100.0 - j, "worst_pnl": -50.0 + j,
                          "mean_breaches": 0.0, "breach_probability": 0.0}
    order = sorted(rows)  # the table's own row order differs from the run's
    table = pd.DataFrame([rows[k] for k in order],
                         index=pd.MultiIndex.from_tuples(order, names=["scenario", "hedger"]))
    return StressReport(table, {s: make_scenario(s) for s in scenarios}, {}, {}, list(hedgers))


def test_pivot_keeps_the_runs_order_of_hedgers_and_scenarios() -> None:
    wide = _report().pivot("objective")
    assert list(wide.index) == ["c", "a", "b"]
    assert list(wide.columns) == ["gap", "base"]
    assert wide.loc["a", "base"] == 12.0


def test_markdown_lists_the_scenarios_with_their_mechanics_or_a_dash() -> None:
    report = _report(scenarios=("base", "liquidity_drought"))
    text = stress.markdown_report(report, StressSettings(progress=False))
    assert "| base | the config's own market, no stress | - |" in text
    assert "| fill_fraction, fill_cap |" in text


def test_json_has_units_and_metadata_and_writes_an_infinite_value_as_null(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The breach columns have units (count, probability), the seed is the run's, and an
    infinite value (JSON has none) is null, not an error."""
    report = _report()
    report.table.loc[("gap", "a"), "worst_pnl"] = -math.inf
    stress.write_tables(report, tmp_path, StressSettings(seed=7, progress=False))
    document = json.loads((tmp_path / "stress.json").read_text())
    assert document["units"]["mean_breaches"] == "count"
    assert document["units"]["breach_probability"] == "probability"
    assert document["metadata"]["seed"] == 7
    gap_a = next(r for r in document["records"] if (r["scenario"], r["hedger"]) == ("gap", "a"))
    assert gap_a["worst_pnl"] is None


def test_heat_map_marks_each_columns_best_in_bold_and_extremes_in_white(monkeypatch,  # type: ignore[no-untyped-def]
                                                                        tmp_path) -> None:
    """Column x: 1, 2, 3 scaled to 0, 0.5, 1: the best (1) bold; 0 and 1 are deep colours
    (white text), 0.5 pale (black)."""
    figures = []
    monkeypatch.setattr(stress.report, "_save", lambda fig, path: figures.append(fig) or path)
    values = pd.DataFrame({"x": [2.0, 1.0, 3.0]}, index=["p", "q", "r"])
    stress.plot_heatmap(values, tmp_path / "h.png")
    texts = {t.get_text(): t for t in figures[0].axes[0].texts}
    assert texts["1"].get_fontweight() == "bold"
    assert texts["2"].get_fontweight() == "normal"
    assert texts["1"].get_color() == "white"
    assert texts["3"].get_color() == "white"
    assert texts["2"].get_color() == "black"


def test_an_empty_scenario_list_is_refused_by_name() -> None:
    """``scenarios=[]`` asks for nothing: refused as such, not later as "no scenario applies
    to this env: {}" (kills the dropped check in ``resolve_scenarios``)."""
    with pytest.raises(ValueError, match="give at least one scenario"):
        stress.resolve_scenarios([])


# ------------------------------------------------------------- vol spike: the interval average
def test_a_vol_spikes_returns_carry_the_intervals_average_variance() -> None:
    """Spike x3 at step 0 with a half-life of one step (kappa dt = ln 2), GBM mu = 0, sigma =
    0.2, on the base's normal draws. The variance ratio decays as 1 + 8 e^{-kappa t}; its
    average over the interval (s, s + 1] is 1 + 8 e^{-s ln 2} (1 - e^{-ln 2}) / ln 2 =
    1 + 4 / ln 2 = 6.7708 on interval 0 and 1 + 2 / ln 2 = 3.8854 on interval 1 (integral of
    the exponential, by hand), not the ratio at the interval's start (9, then 5). Each return
    is (-f^2 v / 2) dt + f (r + v dt / 2) with f^2 that average (``scale_returns``). Kills
    dropping the interval average (``decay = 1``) and averaging the next step's ratio."""
    base = GBM(mu=0.0, sigma=0.2)
    spike = VolSpike(base, multiplier=3.0, step=0, half_life=DT)
    r = np.diff(np.log(base.simulate(40, 3, DT, np.random.default_rng(5)).spot), axis=1)
    got = np.diff(np.log(spike.simulate(40, 3, DT, np.random.default_rng(5)).spot), axis=1)
    v = 0.04
    for s, f2 in enumerate([1.0 + 4.0 / math.log(2.0), 1.0 + 2.0 / math.log(2.0),
                            1.0 + 1.0 / math.log(2.0)]):
        want = -0.5 * f2 * v * DT + math.sqrt(f2) * (r[:, s] + 0.5 * v * DT)
        np.testing.assert_allclose(got[:, s], want, rtol=0, atol=1e-12)


def test_a_short_historical_window_under_a_wrapper_is_refused_when_applied() -> None:
    """A gap over 1..10 Oct 2008 (8 closes) on a 20-step episode (21 rows needed): the config's
    own check reads only the top market (the gap, no rows), so ``apply`` must recurse into the
    wrapper's base to refuse it before anything runs (kills the recursion dropped from
    ``_check_market_grid``; its explicit ``window_starts`` call is redundant: the recursion's
    ``dataclasses.replace`` validates the base's config, which calls it)."""
    from hedgearena.envs.historical import HistoricalReplay

    short = HistoricalReplay.sp500().between("2008-10-01", "2008-10-10")
    scenario = Scenario("stack", "a gap over a short window", lambda base: Gap(short, step=3))
    with pytest.raises(ValueError, match=re.escape("needs n_steps + 1 = 21 rows, the series has "
                                                   "8")):
        scenario.apply(make_config("ShortCall"))


def test_a_flash_crash_description_keeps_fractional_minutes() -> None:
    """60 steps in a 390-minute day are 6.5-minute steps (390 / 60, by hand): 3 crash steps are
    19.5 minutes and 4 recovery steps 26 minutes, not the floored 6-minute grid's 18 and 24
    (kills ``390 // steps_per_day``)."""
    description = make_scenario("flash_crash", steps_per_day=60).description
    assert "in 19.5 min" in description
    assert "back in 26 min" in description
    assert "on a 6.5-min grid" in description


def test_a_crowd_without_impact_leaves_the_base_paths_bit_for_bit() -> None:
    """lambda = crowd_size x depth_impact = 0 x 0.2 = 0: the crowd moves nothing, so the paths
    are the base's exactly (not rebuilt through exp(log S + sum r), which is off by rounding)
    (kills dropping the ``impact == 0`` shortcut)."""
    model = Crowding(GBM(sigma=0.2), crowd_size=0.0)
    crowd = model.simulate(64, 30, DT, np.random.default_rng(3)).spot
    base = GBM(sigma=0.2).simulate(64, 30, DT, np.random.default_rng(3)).spot
    assert np.array_equal(crowd, base)


# ---------------------------------------------------------------------- the same paths everywhere
def test_every_scenario_runs_on_the_settings_seed() -> None:
    """"seed: of the paths (the same in every scenario)": the unstressed market run twice, under
    two labels, gives the same P&L path for path, and it is the arena's own run at that seed
    (kills a seed that moves with the scenario's position)."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.registry import parse_hedger

    config = make_config("ShortCall")
    settings = StressSettings(n_paths=64, seed=3, n_boot=5, worst_paths=False, progress=False)
    out = stress.stress_test(config, ["delta"], ["base", make_scenario("base", label="again")],
                             settings)
    first, second = out.pnl["base"]["delta"], out.pnl["again"]["delta"]
    np.testing.assert_array_equal(first, second)
    alone = run_arena(config, [parse_hedger("delta")], 64, 3, progress=False)
    np.testing.assert_array_equal(second, alone.records["delta"].totals["terminal_pnl"])


def test_the_printed_table_greens_the_lowest_objective_not_the_lowest_shortfall() -> None:
    """Hand numbers of ``_report``: hedger c has the lowest objective (1 < 2 < 3) and b the
    lowest ES (98 < 99 < 100): the green cell of each scenario is c's (kills the best read off
    the ES column)."""
    import io

    from rich.console import Console

    table = stress.print_stress_table(_report(), console=Console(file=io.StringIO()))
    cells = {column.header: list(column.cells) for column in table.columns}
    for hedger, greened in (("c", True), ("a", False), ("b", False)):
        assert [("[green]" in cell) for cell in cells[hedger]] == [greened, greened]


def test_the_written_config_names_a_labelled_scenarios_kind_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A scenario run under a label records the builder it came from (``kind: gap``), one run
    under its own name does not repeat it (kills the inverted condition)."""
    from hedgearena.yaml_io import load_yaml

    report = _report(scenarios=("base",))
    ladder = make_scenario("gap", size=-0.1, label="gap -10%")
    report = dataclasses.replace(report, scenarios={"base": make_scenario("base"),
                                                    "gap -10%": ladder})
    path = stress._write_config(tmp_path / "c.yaml", report, make_config("ShortCall"), [],
                                StressSettings(progress=False))
    scenarios = load_yaml(path.read_text())["scenarios"]
    assert scenarios["gap -10%"]["kind"] == "gap"
    assert "kind" not in scenarios["base"]


def test_markdown_lists_the_scenarios_left_out_and_why() -> None:
    report = dataclasses.replace(_report(), skipped={"crisis_2008": "needs a daily grid"})
    text = stress.markdown_report(report, StressSettings(progress=False))
    assert "Not applicable to this env (left out):" in text
    assert "- crisis_2008: needs a daily grid" in text


def test_the_objective_heat_map_title_carries_the_settings_c(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """c = 0.3: the objective heat map reads "Y = mean(cost) + 0.3 std(cost)" (kills the label
    formatted with c = 1)."""
    titles = {}
    monkeypatch.setattr(stress, "_write_config", lambda path, *args: path)
    monkeypatch.setattr(stress, "write_tables", lambda *args: {})
    def plot(values, path, title, colorbar_label):  # type: ignore[no-untyped-def]
        titles[path.name] = title
        return path

    monkeypatch.setattr(stress, "plot_heatmap", plot)
    stress._write_files(_report(), make_config("ShortCall"), [], StressSettings(c=0.3),
                        tmp_path, "")
    assert titles["heatmap_objective.png"].startswith("Y = mean(cost) + 0.3 std(cost) (")


def test_a_historical_windows_errors_are_the_conditional_ones() -> None:
    """The stress report reads a window's errors conditionally (``CONDITIONAL_ERRORS``): the
    standard error of the mean cost is the i.i.d. one, std(cost, ddof=1) / sqrt(n), over the
    window's overlapping paths, not the long-run (overlap-adjusted) one the benchmark uses
    (kills ``conditional=False``)."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.registry import parse_hedger

    config = make_config("ShortCall")
    settings = StressSettings(n_paths=64, seed=1, n_boot=5, worst_paths=False, progress=False)
    out = stress.stress_test(config, ["delta"], ["crisis_2008"], settings)
    result = run_arena(apply_scenario(config, "crisis_2008"), [parse_hedger("delta")], 64, 1,
                       progress=False)
    assert result.overlap is not None  # overlapping windows: the two readings differ
    cost = result.cost("delta")
    want = cost.std(ddof=1) / math.sqrt(cost.size)
    got = out.table.loc[("crisis_2008", "delta"), "mean_cost_se"]
    assert got == pytest.approx(want, rel=1e-9)
