"""Report, stress, portfolio insurance, Leland, Zakamouline and dependence: mutation survivors.

Each test kills a mutant the rest of the suite let through. The expected numbers come from the
published formulas (cited in each test) recomputed here with numpy or :mod:`math`, or from
hand-built inputs whose answer is known, never from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.baselines.dependence import Overlap, block_resamples, long_run_se
from hedgearena.baselines.stress import breach_counts


# ------------------------------------------------------------------------------- dependence
def _newey_west_se(influence: np.ndarray, start: np.ndarray, bandwidth: int) -> float:
    """Newey and West (1987), Econometrica 55(3), eq. (2), written out with a double loop.

    ``z_d`` sums the influence values of the paths starting on day ``d``;
    ``V = sum_{|l| < L} (1 - |l| / L) sum_d z_d z_{d+l}``; ``se = sqrt(V) / n``.
    """
    days = np.arange(start.min(), start.max() + 1)
    z = np.array([influence[start == d].sum() for d in days])
    total = 0.0
    for i in range(z.size):
        for j in range(z.size):
            lag = abs(i - j)
            if lag < bandwidth:
                total += (1.0 - lag / bandwidth) * z[i] * z[j]
    return math.sqrt(total) / influence.size


def test_long_run_se_is_newey_west_with_bartlett_weights_at_every_lag() -> None:
    """Every lag ``1 .. L - 1`` weighted ``1 - l / L`` (L = 3 span = 6), the last one too.

    Kills a weight of ``1 - l / (L + 1)`` and a loop that stops at lag ``L - 2``.
    """
    rng = np.random.default_rng(7)
    start = rng.integers(0, 40, size=120).astype(np.int64)
    influence = rng.standard_normal(120)
    influence -= influence.mean()
    overlap = Overlap(start, span=2)
    assert overlap.bandwidth == 6
    assert overlap.stretches >= 2
    want = _newey_west_se(influence, start, 6)
    assert long_run_se(influence, overlap) == pytest.approx(want, rel=1e-12)
    # only lag 5 (= L - 1) links paths 5 days apart: its weight is 1 / 6
    lagged = Overlap(np.array([0, 5, 20, 25, 40, 45], dtype=np.int64), span=2)
    x = np.array([1.0, 1.0, -1.0, -1.0, 0.5, -0.5])
    v = (x @ x) + 2.0 * (1.0 - 5.0 / 6.0) * (1.0 * 1.0 + (-1.0) * (-1.0) + 0.5 * (-0.5))
    assert long_run_se(x, lagged) == pytest.approx(math.sqrt(v) / 6.0, rel=1e-12)


def test_one_stretch_of_history_leaves_the_standard_error_undefined() -> None:
    """Documented: NaN with fewer than two stretches; one stretch (days // 3 span == 1) too."""
    overlap = Overlap(np.array([0, 10, 20, 30], dtype=np.int64), span=10)  # 31 days, L = 30
    assert overlap.stretches == 1
    assert math.isnan(long_run_se(np.array([1.0, -1.0, 1.0, -1.0]), overlap))


def test_block_bootstrap_draws_every_first_path_including_the_last_block() -> None:
    """Kuensch (1989): a block's first path is uniform on ``0 .. n - b``, the last one too.

    8 paths, b = ceil(8 * 15 / 31) = 4: first paths 0..4, each with probability 1/5.
    """
    overlap = Overlap(np.array([0, 0, 10, 10, 20, 20, 30, 30], dtype=np.int64), span=5)
    index = block_resamples(overlap, 4000, np.random.default_rng(1))
    firsts = index[:, 0]  # the starts are sorted: path order is start order
    assert set(np.unique(firsts)) == {0, 1, 2, 3, 4}
    share = np.bincount(firsts, minlength=5) / firsts.size
    np.testing.assert_allclose(share, 0.2, atol=0.03)
    np.testing.assert_array_equal(index[:, 1] - index[:, 0], 1)  # consecutive in a block


# ----------------------------------------------------------------------------------- stress
def test_breach_counts_prefers_the_envs_count_to_the_other_breach_totals() -> None:
    """Documented: ``totals["breaches"]`` when present, else the sum of the ``breach*`` totals."""
    totals = {"breaches": np.array([1.0, 0.0]), "breach_delta": np.array([5.0, 5.0])}
    assert breach_counts(totals).tolist() == [1.0, 0.0]
    others = {"breach_delta": np.array([1.0, 0.0]), "gamma_breach": np.array([2.0, 0.0]),
              "pnl": np.array([9.0, 9.0])}
    assert breach_counts(others).tolist() == [3.0, 0.0]


def test_stress_settings_refuse_a_seed_that_is_not_a_non_negative_integer() -> None:
    """The seed is checked when the settings are made, naming the field (numpy refuses -1 later)."""
    from hedgearena.baselines.stress import StressSettings

    for seed in (-1, 1.5, "0", None):
        with pytest.raises(ValueError, match="seed"):
            StressSettings(seed=seed)  # type: ignore[arg-type]


def test_a_scenario_given_twice_is_refused() -> None:
    from hedgearena.baselines.stress import resolve_scenarios
    from hedgearena.envs.scenarios import make_scenario

    with pytest.raises(ValueError, match="'gap' is given twice"):
        resolve_scenarios(["gap", "base", "gap"])
    with pytest.raises(ValueError, match="'gap' is given twice"):
        resolve_scenarios(["gap", make_scenario("gap")])


def test_worst_path_stories_show_the_reference_beside_every_other_hedger(
    tmp_path, monkeypatch
) -> None:
    """Each hedger's worst path is drawn with the reference's positions beside it (not twice)."""
    from hedgearena.baselines import stress
    from hedgearena.envs.config import make_config

    drawn: list[tuple[list[str], int]] = []

    def fake_story(result, names, index, path, title="", figures=None):  # type: ignore[no-untyped-def]
        drawn.append((list(names), int(result.spot.shape[0])))
        return path

    monkeypatch.setattr(stress, "plot_story", fake_story)
    settings = stress.StressSettings(n_paths=32, n_boot=5, worst_paths=True, progress=False)
    stress.stress_test(make_config("ShortCall"), ["no_hedge", "delta"], ["base"], settings,
                       tmp_path)
    assert drawn == [(["no hedge", "delta"], 1), (["delta"], 1)]


# ---------------------------------------------------------------------- portfolio insurance
class _EnvWithState:
    """An env whose ``state`` is a given dict (every other attribute the env's own)."""

    def __init__(self, env: object, state: dict) -> None:
        self._env, self.state = env, state

    def __getattr__(self, name: str) -> object:
        return getattr(self._env, name)


def test_cppi_refuses_when_any_path_starts_at_or_below_its_floor_and_names_that_path() -> None:
    """Every path must start above its floor (Black and Jones 1987: a cushion to multiply).

    Path 1's assets are set to 0: refused, the message quoting path 1's floor value
    ``N K e^{-r T} = 100 * 90 * e^{-0.02 * 63 / 252}`` and its assets, 0.
    """
    from hedgearena.baselines import CPPI
    from hedgearena.envs.vector_env import VecHedgingEnv

    env = VecHedgingEnv(num_envs=3, preset="PortfolioInsurance")
    env.reset(seed=0)
    state = dict(env.state)
    state["cash"] = np.array(state["cash"], dtype=np.float64) * np.array([1.0, 0.0, 1.0])
    floor_value = 100.0 * 90.0 * math.exp(-float(state["rate"]) * 63 / 252)
    with pytest.raises(ValueError, match=rf"floor's value \({floor_value:.6g}\) is not below "
                                         r"the assets \(0\)"):
        CPPI(4.0).reset(_EnvWithState(env, state))  # type: ignore[arg-type]


def test_no_applicable_scenario_is_an_error_even_when_skipping() -> None:
    """Skipping the inapplicable scenarios must not leave an empty report to run."""
    from hedgearena.baselines.stress import applicable
    from hedgearena.envs.config import make_config
    from hedgearena.envs.scenarios import make_scenario

    with pytest.raises(ValueError, match=r"no scenario applies to this env.*vol_spike"):
        applicable({"vol_spike": make_scenario("vol_spike")}, make_config("OptionBook"), True)


def test_a_spec_reference_is_resolved_and_breaches_are_a_per_path_mean() -> None:
    """``reference="leland"`` names the hedger "Leland": the others are paired with it.

    And ``mean_breaches`` is the mean over paths of the env's count, at most one breach of the
    one limit per decision (20 decisions): checked against the arena's own totals.
    """
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.registry import parse_hedger
    from hedgearena.baselines.stress import StressSettings, stress_test
    from hedgearena.envs.config import make_config

    limits = {"delta": 0.3, "action": "report"}
    settings = StressSettings(n_paths=64, n_boot=5, progress=False, worst_paths=False,
                              reference="leland", risk_limits=limits)
    config = make_config("ShortCall")
    table = stress_test(config, ["no_hedge", "leland"], ["base"], settings).table.xs("base")
    assert math.isfinite(table.loc["no hedge", "cost_diff"])
    assert math.isnan(table.loc["Leland", "cost_diff"])  # the reference itself
    result = run_arena(config.replace(risk_limits=limits), [parse_hedger("no_hedge")], 64, 0,
                       progress=False)
    breaches = np.asarray(result.records["no hedge"].totals["breaches"], dtype=np.float64)
    assert table.loc["no hedge", "mean_breaches"] == pytest.approx(breaches.mean(), rel=1e-12)
    assert 1.0 <= table.loc["no hedge", "mean_breaches"] <= 20.0


def _hand_report():  # type: ignore[no-untyped-def]
    """A two-scenario, three-hedger stress report with known numbers (one missing)."""
    import pandas as pd

    from hedgearena.baselines.stress import StressReport
    from hedgearena.envs.scenarios import make_scenario

    hedgers = ["a", "b", "c"]
    nan = float("nan")
    rows = {("base", "a"): (3.0, 0.1, 30.0, -9.0), ("base", "b"): (1.0, 0.1, 10.0, -5.0),
            ("base", "c"): (2.0, 0.1, 20.0, -7.0), ("gap", "a"): (5.0, 0.1, 50.0, -1.0),
            ("gap", "b"): (nan, nan, 60.0, -2.0), ("gap", "c"): (4.0, 0.1, 40.0, -3.0)}
    table = pd.DataFrame(list(rows.values()), columns=["objective", "objective_se",
                                                       "expected_shortfall_95", "worst_pnl"],
                         index=pd.MultiIndex.from_tuples(list(rows), names=["scenario", "hedger"]))
    scenarios = {name: make_scenario(name) for name in ("base", "gap")}
    return StressReport(table, scenarios, {}, {}, hedgers)


def test_the_terminal_stress_table_marks_the_lowest_objective_of_each_scenario() -> None:
    """Green: b in base (1 < 2 < 3), c in gap (4 < 5, b missing)."""
    import io

    from rich.console import Console

    from hedgearena.baselines.stress import print_stress_table

    table = print_stress_table(_hand_report(), console=Console(file=io.StringIO(), width=200))
    cells = [list(column._cells) for column in table.columns[1:]]  # hedger columns a, b, c
    green = {(row, hedger) for hedger, column in zip("abc", cells, strict=True)
             for row, cell in enumerate(column) if "[green]" in cell}
    assert green == {(0, "b"), (1, "c")}


def test_stress_json_writes_a_missing_value_as_null(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from hedgearena.baselines.stress import StressSettings, write_tables

    write_tables(_hand_report(), tmp_path, StressSettings(progress=False))
    records = json.loads((tmp_path / "stress.json").read_text())["records"]
    gap_b = next(r for r in records if r["scenario"] == "gap" and r["hedger"] == "b")
    assert gap_b["objective"] is None
    assert gap_b["expected_shortfall_95"] == 60.0


# ------------------------------------------------------------------------------------ Leland
def test_book_slots_give_an_expired_option_zero_years_left() -> None:
    """``BookSlots.tau`` is the years to expiry, 0 once expired (not the years since).

    ShortCall steps of 0.004 years: after 10 steps the option expiring at step 5 has 0 left,
    the one expiring at step 20 has ``10 * 0.004 = 0.04``.
    """
    from hedgearena.baselines import Leland
    from hedgearena.envs.book import Option, OptionBook
    from hedgearena.envs.vector_env import VecHedgingEnv

    book = OptionBook(options=(Option(contracts=-1.0, expiry_steps=5), Option(contracts=-1.0)))
    env = VecHedgingEnv(num_envs=2, preset="ShortCall", book=book)
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.zeros((2, 1), np.float32))
    hedger = Leland()
    hedger.reset(env)
    slots = hedger.book_slots(env.state, held_only=False)
    keys = zip(slots.path.tolist(), slots.option.tolist(), strict=True)
    tau = dict(zip(keys, slots.tau, strict=True))
    for path in (0, 1):
        assert tau[path, 0] == 0.0
        assert tau[path, 1] == pytest.approx(10 * 0.004, rel=1e-12)


# ------------------------------------------------------------------------------------ report
def test_numbers_at_the_format_thresholds() -> None:
    """Thousands separated from 1,000 on; SEs of 100 and more as numbers, not ``1e+02``."""
    from hedgearena.baselines.report import format_number, format_se

    assert format_number(1000.0) == "1,000"
    assert format_number(-1000.0) == "-1,000"
    assert format_number(999.94) == "999.9"
    assert format_se(100.0) == "100"
    assert format_se(-100.0) == "-100"
    assert format_se(99.4) == "99"


def test_p_values_below_one_in_a_thousand_are_written_as_a_bound() -> None:
    """``< 0.001`` strictly below 1e-3; 1e-3 itself is written ``0.001``."""
    import pandas as pd

    from hedgearena.baselines.report import markdown_table

    table = pd.DataFrame({"cost_diff_p_value": [1e-3, 9.99e-4, 0.25]},
                         index=pd.Index(["a", "b", "c"], name="hedger"))
    rows = markdown_table(table).splitlines()[2:]
    assert [row.split("|")[2].strip() for row in rows] == ["0.001", "<0.001", "0.250"]


def test_the_reference_row_is_named_only_when_one_row_lacks_the_paired_columns() -> None:
    """Two rows without ``cost_diff`` (no reference ran): neither is named the reference."""
    import pandas as pd

    from hedgearena.baselines.report import REFERENCE_CELL, markdown_table

    nan = float("nan")
    table = pd.DataFrame({"mean_cost": 1.0, "cost_diff": [nan, nan, 1.0]},
                         index=pd.Index(["a", "b", "c"], name="hedger"))
    body = markdown_table(table).splitlines()[2:]
    assert [row.split("|")[3].strip() for row in body] == ["-", "-", "1"]
    assert REFERENCE_CELL == "reference"
    table = pd.DataFrame({"mean_cost": 1.0, "cost_diff": [nan, 1.0]},
                         index=pd.Index(["a", "b"], name="hedger"))
    assert markdown_table(table).splitlines()[2] == "| a | 1 | reference |"


# ------------------------------------------------------------------------------- Zakamouline
def test_zakamouline_half_width_floors_the_time_left_at_one_step() -> None:
    """At ``tau = 0`` the half-width is Zakamouline's (2006) at ``T = dt`` (0.004), not infinite.

    Quantitative Finance 6(5): ``H_0 = lambda / (gamma S sigma^2 T)``, ``H_1 = 1.12
    lambda^0.31 T^0.05 (e^{-rT} / sigma)^0.25 (|Gamma| / gamma)^0.5``; ShortCall at its start:
    lambda = 1%, S = 100, sigma = 20%, r = 0.
    """
    from hedgearena.baselines import Zakamouline
    from hedgearena.envs.vector_env import VecHedgingEnv

    env = VecHedgingEnv(num_envs=2, preset="ShortCall")
    env.reset(seed=0)
    hedger = Zakamouline(0.01)
    hedger.reset(env)
    state = {**env.state, "tau": np.zeros(2)}
    lam, gamma, spot, sigma, t, r = 0.01, 0.01, 100.0, 0.2, 0.004, float(state["rate"])
    book_gamma = np.abs(np.asarray(state["book_gamma"], dtype=np.float64))
    assert np.all(book_gamma > 0)
    h0 = lam / (gamma * spot * sigma**2 * t)
    h1 = (1.12 * lam**0.31 * t**0.05 * (math.exp(-r * t) / sigma) ** 0.25
          * np.sqrt(book_gamma / gamma))
    np.testing.assert_allclose(hedger.half_width(state), h0 + h1, rtol=1e-12)


def test_a_histogram_spike_is_measured_against_the_bins_beyond_its_neighbours() -> None:
    """The spike's two neighbours are left out of the bulk's height (a point mass spills).

    Bins ``[1, 2, 10, 100, 30, 2, 1]``: beyond bins 2..4 the highest is 2, and 100 > 3 * 2.
    """
    from hedgearena.baselines.report import _bulk_height

    assert _bulk_height(np.array([1.0, 2.0, 10.0, 100.0, 30.0, 2.0, 1.0])) == (2.0, True)
    assert _bulk_height(np.array([100.0, 40.0, 5.0, 2.0])) == (5.0, True)  # at the edge
    assert _bulk_height(np.array([5.0, 1.0, 12.0, 1.0, 5.0])) == (12.0, False)  # 12 < 3 * 5
    assert _bulk_height(np.array([0.0, 0.0, 10.0, 0.0, 0.0, 4.0])) == (10.0, False)  # < 3 * 4


def test_a_cut_histogram_keeps_room_above_the_bulk_and_bins_at_the_pooled_quantiles() -> None:
    """Documented: bins span the pooled 0.5% to 99.5% quantiles; a spike is cut above the bulk.

    Values 0..1000 and 5,000 at 500: the step outline runs between numpy's quantiles of the
    pooled values (30 and 970; 1% and 99% would give 60 and 940). The spike of 5,000 at 500
    is cut: the axis stops above the tallest other bin (its top inside the axes, not on the
    frame).
    """
    from hedgearena.baselines.report import _histogram_panel
    from hedgearena.envs.rendering import agg_figure

    values = np.concatenate([np.arange(1001.0), np.full(5000, 500.0)])
    fig = agg_figure()
    ax = fig.subplots()
    _histogram_panel(ax, {"a": values}, "x")
    outline = ax.patches[0].get_path().vertices
    low, high = np.quantile(values, [0.005, 0.995])  # 30 and 970 (the spike is pooled too)
    assert (low, high) != tuple(np.quantile(values, [0.01, 0.99]))
    assert outline[:, 0].min() == pytest.approx(low, abs=1e-9)
    assert outline[:, 0].max() == pytest.approx(high, abs=1e-9)
    heights = outline[:, 1]
    bulk = np.sort(np.unique(heights))[-2]  # the tallest bin but the spike
    assert bulk < ax.get_ylim()[1] < heights.max()


def test_a_missing_value_is_written_without_its_standard_error() -> None:
    import pandas as pd

    from hedgearena.baselines.report import markdown_table

    table = pd.DataFrame({"mean_cost": [float("nan"), 2.0], "mean_cost_se": [0.1, 0.1]},
                         index=pd.Index(["a", "b"], name="hedger"))
    assert markdown_table(table).splitlines()[2:] == ["| a | - |", "| b | 2 ± 0.1 |"]


def test_the_terminal_puts_the_interval_on_its_own_line_and_markdown_on_the_same() -> None:
    """The terminal's cells break before ``± SE``, and so before ``[low, high]``."""
    import io

    import pandas as pd
    from rich.console import Console

    from hedgearena.baselines.report import markdown_table, print_table

    table = pd.DataFrame({"objective": [3.0, 2.5], "objective_diff": [0.0, -0.5],
                          "objective_diff_low": [0.0, -1.0], "objective_diff_high": [0.0, -0.25]},
                         index=pd.Index(["ref", "b"], name="hedger"))
    rich_table = print_table(table, "t", Console(file=io.StringIO(), width=200))
    column = next(c for c in rich_table.columns if c.header == "Y -\nref Y")
    assert list(column._cells)[1] == "-0.5\n[-1, -0.25]"
    assert markdown_table(table).splitlines()[3].endswith("| -0.5 [-1, -0.25] |")


def test_an_interrupted_report_leaves_the_previous_files_as_they_were(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Documented (:func:`staged_files`): files move in only when the writing ends without error."""
    from hedgearena.baselines.report import write_staged

    (tmp_path / "table.csv").write_text("old")

    def write(stage):  # type: ignore[no-untyped-def]
        (stage / "table.csv").write_text("new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_staged(tmp_path, write)
    assert (tmp_path / "table.csv").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no staging folder left


def test_a_one_point_family_still_gives_the_frontier_a_view_around_it() -> None:
    """A family of one point has no span: 5% of its level stands in for it.

    Family at (10, 5): spans 0.5 and 0.25, so a hedger at (10.2, 5.1), within 2 spans, is in
    the view; one at (20, 5) is not.
    """
    from hedgearena.baselines.report import _frontier_view

    family = [(np.array([10.0]), np.array([5.0]))]
    view = _frontier_view(family, {"near": (10.2, 5.1), "far": (20.0, 5.0)})
    assert view == pytest.approx((10.0, 10.2, 5.0, 5.1), abs=1e-12)
