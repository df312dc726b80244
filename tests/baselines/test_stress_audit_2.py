"""Second audit of the stress scenarios, the historical replay and the stress report.

Each test of a defect failed before its fix (said in its docstring); the others pin numbers the
audit checked by hand. Statistical bounds state their standard errors.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgearena.baselines import stress
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.registry import parse_hedger
from hedgearena.baselines.stress import (
    DEFAULT_STRESS_COST,
    StressSettings,
    _pivot_markdown,
    stress_test,
)
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.gbm import GBM
from hedgearena.envs.historical import HistoricalReplay
from hedgearena.envs.scenarios import (
    LiquidityDrought,
    StressWindow,
    apply_scenario,
    make_scenario,
)
from hedgearena.envs.vector_env import VecHedgingEnv

SMALL = StressSettings(n_paths=32, n_boot=5, seed=1, progress=False)


# ------------------------------------------------------------------ common random numbers
@pytest.mark.parametrize("name", ["gap", "liquidity_drought"])
def test_a_random_event_leaves_the_client_flow_as_the_bases(name: str) -> None:
    """OptionBook-v0's client flow is drawn after the market: the scenario's random step was
    drawn from the same stream before, so every client trade differed from the base's."""
    base = make_config("OptionBook")
    plain = build_episodes(base, 64, np.random.default_rng(5), False)
    stressed = build_episodes(apply_scenario(base, name), 64, np.random.default_rng(5), False)
    for key in ("quantity", "is_call", "start", "expiry"):
        assert np.array_equal(getattr(stressed.instruments, key), getattr(plain.instruments, key))
    if name == "liquidity_drought":  # prices untouched: the strikes too
        assert np.array_equal(stressed.market.spot, plain.market.spot)
        assert np.array_equal(stressed.instruments.strike, plain.instruments.strike)


def test_stacked_random_events_draw_numbers_of_their_own() -> None:
    """Two droughts of one step each, stacked: their starts agree on a path with probability
    1/21 (independent uniform starts over 21 rows); 2000 paths: 95 +- 9.5 agreeing."""
    inner = LiquidityDrought(GBM(), StressWindow(2.0, 1.0, math.inf), length=1)
    outer = LiquidityDrought(inner, StressWindow(3.0, 1.0, math.inf), length=1)
    liquidity = outer.simulate(2000, 20, 1 / 252, np.random.default_rng(0)).liquidity
    inner_start = np.argmax(np.isin(liquidity, (2.0, 6.0)), axis=1)
    outer_start = np.argmax(np.isin(liquidity, (3.0, 6.0)), axis=1)
    assert 50 < (inner_start == outer_start).sum() < 140


# ----------------------------------------------------------------------- historical replay
def _replay() -> HistoricalReplay:
    frame = pd.DataFrame({"close": np.linspace(100.0, 110.0, 30), "iv": 0.2},
                         index=pd.bdate_range("2020-01-01", periods=30))
    return HistoricalReplay.from_frame(frame, vol_column="iv")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.walk_forward_starts(True), "n_steps must be an integer >= 1, got True"),
        (lambda r: r.walk_forward_starts(5, stride=True), "stride must be an integer >= 1"),
        (lambda r: r.window([0], True, 1 / 252), "n_steps must be an integer >= 1, got True"),
        (lambda r: r.simulate(True, 5, 1 / 252, np.random.default_rng(0)),
         "n_paths must be an integer >= 1, got True"),
    ],
)
def test_a_boolean_is_no_count_of_the_replay(call, message: str) -> None:
    """True was taken for 1 (windows of one step, a stride of one row); as n_paths numpy
    raised a TypeError that named nothing."""
    with pytest.raises(ValueError, match=re.escape(message)):
        call(_replay())


def test_a_historical_window_ending_before_it_starts_is_refused_when_built() -> None:
    """It was built, then failed on every env and was skipped as "not applicable"."""
    with pytest.raises(ValueError, match=re.escape(
            "crisis_2008.start (2009-01-01) must be on or before crisis_2008.end (2008-12-31)")):
        make_scenario("crisis_2008", start="2009-01-01")
    assert make_scenario("crisis_2008", end="2008-09-02").parameters["end"] == "2008-09-02"


# ---------------------------------------------------------------------------- the report
class _OnePath:
    """``StressReport.pivot`` of a one-path run: values, and standard errors that are NaN."""

    def pivot(self, key: str) -> pd.DataFrame:
        value = math.nan if key.endswith("_se") else 5.0
        return pd.DataFrame({"base": [value]}, index=["delta"])


def test_an_undefined_standard_error_is_left_out_of_the_markdown() -> None:
    """One path: the objective's cell read '**5 ± -**' (the NaN drawn as '-')."""
    line = _pivot_markdown(_OnePath(), "objective", "objective_se").splitlines()[2]
    assert line == "| base | **5** |"


def test_an_inapplicable_scenario_is_refused_before_anything_runs(monkeypatch) -> None:
    """Named explicitly, the vol spike on Heston failed only in its own turn, after the tuning
    and the earlier scenarios had run (and their worst paths had replaced the folder's)."""

    def never(*args, **kwargs):
        raise AssertionError("a scenario ran")

    monkeypatch.setattr(stress, "run_arena", never)
    with pytest.raises(ValueError, match=r"vol_spike: VolSpike\.base must have one constant"):
        stress_test(make_config("OptionBook"), ["delta"], ["base", "vol_spike"], SMALL)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_interrupted_stress_leaves_the_previous_worst_paths(tmp_path: Path,
                                                               monkeypatch) -> None:
    """The worst paths were written straight into the folder after removing the earlier
    report's: an interrupted run left the old tables beside new, partial worst paths."""
    config = make_config("ShortCall")
    stress_test(config, ["no_hedge", "delta"], ["base", "gap"], SMALL, tmp_path)
    before = _files(tmp_path / "worst_paths")
    assert sorted(before) == ["base__delta.png", "base__no_hedge.png", "gap__delta.png",
                              "gap__no_hedge.png"]
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_arena(*args, **kwargs)

    monkeypatch.setattr(stress, "run_arena", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stress_test(config, ["delta"], ["base", "gap"], SMALL, tmp_path)
    assert _files(tmp_path / "worst_paths") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    report = stress_test(config, ["delta"], ["base", "gap"], SMALL, tmp_path)
    assert sorted(_files(tmp_path / "worst_paths")) == ["base__delta.png", "gap__delta.png"]
    assert report.files["worst_gap_delta"] == tmp_path / "worst_paths" / "gap__delta.png"
    no_stories = StressSettings(n_paths=32, n_boot=5, seed=1, progress=False, worst_paths=False)
    stress_test(config, ["delta"], ["base"], no_stories, tmp_path)
    assert not (tmp_path / "worst_paths").exists()  # not this report's: removed


# ------------------------------------------------------------- numbers checked by hand
def test_a_drought_costs_exactly_five_times_the_spread_and_impact_on_a_quarter() -> None:
    """The stress cost (5 bp fee, 5 bp half-spread at 20% vol, square-root impact against
    2,000 units a day) in a drought of two steps: fills of 0.25, spread and impact x5, to 1e-9."""
    config = apply_scenario(make_config("ShortCall", cost=DEFAULT_STRESS_COST), "liquidity_drought",
                            start=0, length=2, fill_cap=math.inf)
    env = VecHedgingEnv(num_envs=16, config=config, block=16)
    env.reset(seed=1)
    for step in range(3):
        state = env.state
        spot, order = state["spot"], state["model_hedge"] - state["hedge"]
        _, _, _, _, info = env.step_targets(state["model_hedge"][:, None])
        stressed = 5.0 if step < 2 else 1.0
        filled = order * (0.25 if step < 2 else 1.0)
        impact = 0.2 / math.sqrt(252) * spot * np.abs(filled) ** 1.5 / math.sqrt(2000.0)
        expected = 5e-4 * spot * np.abs(filled) + stressed * (5e-4 * spot * np.abs(filled)
                                                                + impact)
        assert np.allclose(info["trade"], filled, rtol=0, atol=1e-12)
        assert np.allclose(info["cost"], expected, rtol=1e-12, atol=1e-9)


def test_the_report_is_the_arenas_scores_on_the_same_paths() -> None:
    """Y = mean + 1.5 std (ddof 1) of premium - P&L, the ES 95% the mean of the worst 5% of
    losses, recomputed from a separate arena run of the stressed config and seed."""
    config = make_config("ShortCall")
    settings = StressSettings(n_paths=200, n_boot=5, seed=4, progress=False, worst_paths=False)
    report = stress_test(config, ["delta"], ["crowding"], settings)
    result = run_arena(apply_scenario(config, "crowding"), [parse_hedger("delta")], 200, 4,
                       progress=False)
    totals = result.records["delta"].totals
    cost = totals["initial_premium"] - math.exp(-result.rate * result.horizon) * totals[
        "terminal_pnl"]
    row = report.table.loc[("crowding", "delta")]
    assert row["objective"] == pytest.approx(cost.mean() + 1.5 * cost.std(ddof=1), rel=1e-12)
    worst = np.sort(-totals["terminal_pnl"])[::-1][:10]
    assert row["expected_shortfall_95"] == pytest.approx(worst.mean(), rel=1e-12)
    assert row["worst_pnl"] == totals["terminal_pnl"].min()
