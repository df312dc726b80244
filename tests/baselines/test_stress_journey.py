"""A risk quant's journey through the stress tests: scenarios that rebuild from what the report
records, bad input refused by name, costs that the liquidity shocks really reach, heat maps with
units, a scenario at several magnitudes, and stressed P&L checked against Black-Scholes by hand.

Tests of defects failed before their fix (said in their docstrings); the others pin numbers the
journey checked by hand. Black-Scholes prices and greeks here come from scipy's normal law, not
from the project's pricer (Hull, Options, Futures and Other Derivatives, ch. 15 and 19).
"""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import norm

from hedgearena.baselines import stress
from hedgearena.baselines.stress import (
    DEFAULT_STRESS_COST,
    LiquidityBlindWarning,
    StressSettings,
    stress_test,
)
from hedgearena.cli import main
from hedgearena.envs.config import make_config
from hedgearena.envs.gbm import GBM
from hedgearena.envs.scenarios import BUILDERS, SCENARIOS, apply_scenario, make_scenario
from hedgearena.envs.vector_env import VecHedgingEnv

TINY = StressSettings(n_paths=32, n_boot=5, seed=1, progress=False, worst_paths=False)


def _bs_call(spot, tau, vol, strike=100.0):
    """Black-Scholes call at zero rates: price, delta, gamma (per unit of the underlying)."""
    root = vol * np.sqrt(tau)
    d1 = np.log(spot / strike) / root + 0.5 * root
    return (spot * norm.cdf(d1) - strike * norm.cdf(d1 - root), norm.cdf(d1),
            norm.pdf(d1) / (spot * root))


# ------------------------------------------------------------------- what the report records
@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_scenarios_recorded_parameters_are_its_arguments_and_rebuild_it(name: str) -> None:
    """stress_config.yaml records each scenario's parameters to repeat it. The flash crash's
    held two stray entries, ``name: rebalance_every`` and ``value: 1`` (its check loop's
    variables, taken from ``locals()``): fed back to make_scenario they raised a TypeError."""
    scenario = SCENARIOS[name]
    assert list(scenario.parameters) == list(inspect.signature(BUILDERS[name]).parameters)
    again = make_scenario(name, **dict(scenario.parameters))
    assert (again.name, again.description, dict(again.parameters)) == (
        scenario.name, scenario.description, dict(scenario.parameters))


def test_a_parameter_called_name_is_refused_as_unknown_not_as_a_type_error() -> None:
    """``{gap: {name: x}}`` in stress.scenarios ended ``train.py stress`` in a TypeError
    traceback (make_scenario() got multiple values for argument 'name')."""
    with pytest.raises(ValueError, match=r"scenario 'gap' has no parameter\(s\) \['name'\]; "
                                         r"allowed: \['size', 'step', 'vol_multiplier', 'label'\]"):
        make_scenario("gap", name="x")


def test_the_flash_crash_states_its_grid_unrounded_and_its_episode() -> None:
    """1,000 steps a day are 0.39-minute steps: the description said "-9% in 0 min ... on a
    0-min grid" (390 / steps_per_day rounded), and not that the episode lasts one day (its
    costs sit beside the base's 20-day ones in the report)."""
    described = make_scenario("flash_crash", steps_per_day=1000).description
    assert "-9% in 1.17 min, 80% back in 1.56 min, in a 1-day episode on a 0.39-min grid" in (
        described)
    assert SCENARIOS["flash_crash"].description.startswith(
        "-9% in 15 min, 80% back in 20 min, in a 1-day episode on a 5-min grid; spreads x20")


# --------------------------------------------------------------- liquidity the cost ignores
def test_a_liquidity_shock_the_cost_cannot_read_is_warned_about() -> None:
    """ShortCall-v0's own cost is a 1% fee, which no liquidity multiplier scales: through the
    Python API a drought left the costs as they were (fewer fills even made delta's Y fall from
    598 to 561 at 3,000 paths) and nothing said so. Now a LiquidityBlindWarning names the
    scenarios and their multipliers; the stress cost (spread and impact) reads them, no warning."""
    with pytest.warns(LiquidityBlindWarning,
                      match=r"liquidity_drought \(x5\), flash_crash \(x20\) does not reach"):
        stress_test(make_config("ShortCall"), ["delta"], ["base", "liquidity_drought",
                                                          "flash_crash", "gap"], TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LiquidityBlindWarning)
        stress_test(make_config("ShortCall", cost=DEFAULT_STRESS_COST), ["delta"],
                    ["liquidity_drought"], TINY)
        stress_test(make_config("ShortCall"), ["delta"], ["base", "gap"], TINY)  # no liquidity


def test_the_flash_crash_multiplies_spread_and_impact_by_twenty_on_three_tenths() -> None:
    """The stress cost (5 bp fee; 5 bp half-spread and square-root impact against 2,000 units a
    day, both x20 in the window) during a crash from step 0: rows 1..7 stressed, 30% fills, and
    an order whose fill passes 0.25 notional (25 units of the 100-call book) fills nothing."""
    config = apply_scenario(make_config("ShortCall", cost=DEFAULT_STRESS_COST), "flash_crash",
                            start=0, vol_multiplier=1.0)  # the spread's vol factor stays 1
    env = VecHedgingEnv(num_envs=8, config=config, block=8)
    env.reset(seed=1)
    for step in range(10):
        state = env.state
        spot, order = state["spot"], state["model_hedge"] - state["hedge"]
        big = step == 2  # 100 units ordered, 30 would fill: past the cap
        _, _, _, _, info = env.step_targets((state["hedge"] + (100.0 if big else order))[:, None])
        stressed = 1 <= step <= 7
        filled = 0.0 * order if big else order * (0.3 if stressed else 1.0)
        impact = 0.2 / math.sqrt(252) * spot * np.abs(filled) ** 1.5 / math.sqrt(2000.0)
        expected = 5e-4 * spot * np.abs(filled) + (20.0 if stressed else 1.0) * (
            5e-4 * spot * np.abs(filled) + impact)
        assert np.allclose(info["trade"], filled, rtol=0, atol=1e-12)
        assert np.allclose(info["cost"], expected, rtol=1e-12, atol=1e-9)


# ---------------------------------------------------------------------- the report's labels
def test_the_heat_maps_state_their_units_and_c(monkeypatch, tmp_path: Path) -> None:
    """The heat maps' titles said "Y = mean(cost) + c std(cost)" and "expected shortfall 95%
    of the loss": no unit, no value of c. Now currency per episode (each scenario in its own
    price scale) and c as run."""
    titles = {}

    def record(values, path, *, title="", colorbar_label=""):
        titles[Path(path).name] = title
        return Path(path)

    monkeypatch.setattr(stress, "plot_heatmap", record)
    settings = StressSettings(n_paths=32, n_boot=5, seed=1, c=2.0, progress=False,
                              worst_paths=False)
    stress_test(make_config("ShortCall", cost=DEFAULT_STRESS_COST), ["delta"], ["base"],
                settings, tmp_path)
    units = "(currency per episode, each scenario in its own price scale)"
    assert titles["heatmap_objective.png"] == f"Y = mean(cost) + 2 std(cost) {units}"
    assert titles["heatmap_es95.png"] == f"expected shortfall 95% of the loss {units}"


# --------------------------------------------------------------- one scenario, many sizes
def test_a_gap_ladder_runs_under_labels_on_the_same_paths(tmp_path: Path) -> None:
    """A quant's gap ladder (-5%, -10%, -20%) could not be run: a scenario name could be given
    once only ("scenario 'gap' is given twice") and there was no way to rename it. A ``label``
    names it now; the record keeps its kind and parameters to rebuild it, and the paths are the
    same seed's (the no-hedge P&L before any gap is the base's: it only moves by the gap)."""
    ladder = [make_scenario("gap", size=s, step=20, label=f"gap {s:+.0%}") for s in (-0.05, -0.1)]
    report = stress_test(make_config("ShortCall", cost=DEFAULT_STRESS_COST), ["no_hedge"],
                         ["base", *ladder], TINY, tmp_path)
    assert list(report.scenarios) == ["base", "gap -5%", "gap -10%"]
    record = yaml.safe_load((tmp_path / "stress_config.yaml").read_text())["scenarios"]
    assert record["gap -10%"]["kind"] == "gap"
    assert "kind" not in record["base"]
    again = make_scenario(record["gap -10%"]["kind"], **record["gap -10%"]["parameters"],
                          label="gap -10%")
    assert again.description == ladder[1].description
    # the same draws: the unhedged short call settles 100 (S_T - 100)^+ on the base's paths,
    # 100 (0.95 S_T - 100)^+ on the gap's, S_T read back from the base's payoff
    base = report.pnl["base"]["no hedge"]
    premium = base.max()  # a path that ends out of the money keeps the premium
    spot = 100.0 + (premium - base) / 100.0  # (S_T where the call ends in the money)
    itm = base < premium - 1e-9
    assert 0 < itm.sum() < itm.size
    gapped = premium - 100.0 * np.maximum(0.95 * spot[itm] - 100.0, 0.0)
    assert np.allclose(report.pnl["gap -5%"]["no hedge"][itm], gapped, rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match=r"given twice; to run it at several magnitudes, label"):
        stress_test(make_config("ShortCall", cost=DEFAULT_STRESS_COST), ["no_hedge"],
                    ["gap", make_scenario("gap", size=-0.1)], TINY)
    with pytest.raises(ValueError, match=r"scenario 'gap'.label must be a non-empty string"):
        make_scenario("gap", label=" ")


def test_the_stress_command_takes_a_labelled_ladder_from_the_run_config(tmp_path: Path) -> None:
    """``stress.scenarios: [{gap: {size: -0.1, label: gap -10%}}, ...]`` (refused before: no
    parameter 'label')."""
    main(["stress", "--set", "stress.scenarios=[{gap: {size: -0.1, label: gap -10%}}, "
          "{gap: {size: -0.2, label: gap -20%}}]", "--hedgers", "delta", "--paths", "64",
          "--out", str(tmp_path), "--set", "stress.n_boot=5", "--set", "stress.worst_paths=false",
          "--no-progress"])
    table = (tmp_path / "stress-ShortCall-seed2024" / "stress.csv").read_text()
    assert "gap -10%,delta," in table
    assert "gap -20%,delta," in table


# -------------------------------------------------------- stressed P&L against closed forms
def test_a_flash_crash_that_recovers_costs_the_delta_hedger_its_gamma_losses(
    delta_hedge_pnl,
) -> None:
    """A -9% crash over 3 five-minute steps, fully recovered over 4 (no vol or liquidity
    stress, no cost) against the same paths without it: the delta hedger of 100 short 20-day
    calls sells into the fall and buys back into the rise, losing sum 0.5 Gamma dS^2 over the
    seven moves (Hull ch. 19's gamma P&L): 125.0 by hand, 123.3 +- 0.2 simulated (the cubic term
    of a 3% move is ~1.5%)."""
    base = make_config("ShortCall", market=GBM(mu=0.0, sigma=0.2), cost=0.0)
    calm = {"start": 30, "recovery": 1.0, "vol_multiplier": 1.0, "liquidity": 1.0,
            "fill_fraction": 1.0, "fill_cap": math.inf}
    crash = apply_scenario(base, "flash_crash", drop=-0.09, **calm)
    pnl, spot = delta_hedge_pnl(crash, 2000)
    plain_pnl, plain_spot = delta_hedge_pnl(apply_scenario(base, "flash_crash", drop=0.0, **calm),
                                         2000)
    loss = np.zeros(spot.shape[0])
    for k in range(30, 37):  # the moves (k, k + 1] of the crash and the recovery
        tau = (1560 - k) * crash.dt  # the 20-day call on 78 steps a day
        for s, sign in ((spot, 1.0), (plain_spot, -1.0)):
            gamma = _bs_call(s[:, k], tau, 0.2)[2]
            loss += sign * 100.0 * 0.5 * gamma * (s[:, k + 1] - s[:, k]) ** 2
    difference = pnl.sum(axis=0) - plain_pnl.sum(axis=0)
    se = difference.std() / math.sqrt(difference.size)
    assert -loss.mean() == pytest.approx(-125.0, rel=0.01)
    assert difference.mean() == pytest.approx(-loss.mean(), rel=0.03)
    assert se < 0.005 * loss.mean()
    assert difference.mean() < -100.0  # selling into a crash that comes back costs


def test_a_vol_spike_reprices_the_short_call_at_the_average_variance_to_expiry(
    delta_hedge_pnl,
) -> None:
    """Vol x4 at step 10 (15-day half-life): the 10-day call is marked at sqrt(1 + 15 (1 -
    e^{-k tau}) / (k tau)) x 20% = 72.1%; the delta hedge's P&L over (9, 10] is minus the
    repricing plus delta dS, to 1e-9 (-371 a path on average for the 100 calls)."""
    half_life = 15 / 252
    config = apply_scenario(make_config("ShortCall", market=GBM(mu=0.0, sigma=0.2), cost=0.0),
                            "vol_spike", step=10, multiplier=4.0, half_life=half_life)
    pnl, spot = delta_hedge_pnl(config, 500)
    kappa, tau = math.log(2) / half_life, 10 / 250
    implied = 0.2 * math.sqrt(1 + 15 * -math.expm1(-kappa * tau) / (kappa * tau))
    assert implied == pytest.approx(0.7209, abs=1e-4)
    before, delta, _ = _bs_call(spot[:, 9], 11 / 250, 0.2)
    after = _bs_call(spot[:, 10], tau, implied)[0]
    exact = -100.0 * ((after - before) - delta * (spot[:, 10] - spot[:, 9]))
    assert np.allclose(pnl[9], exact, rtol=1e-9, atol=1e-8)
    assert exact.mean() == pytest.approx(-371.2, abs=15.0)


# ------------------------------------------------------ common random numbers, reproducible
def test_the_report_is_reproducible_by_seed_and_shares_paths_across_scenarios() -> None:
    """Two runs of one seed give the same table; the no-hedge book never trades, so in a
    drought (which changes only costs and fills) its P&L is the base's path by path."""
    config = make_config("ShortCall", cost=DEFAULT_STRESS_COST)
    args = (config, ["no_hedge", "delta"], ["base", "liquidity_drought"])
    first, second = stress_test(*args, TINY), stress_test(*args, TINY)
    assert first.table.equals(second.table)
    assert np.array_equal(first.pnl["base"]["no hedge"],
                          first.pnl["liquidity_drought"]["no hedge"])
    assert not np.array_equal(first.pnl["base"]["delta"], first.pnl["liquidity_drought"]["delta"])
    other = stress_test(*args, StressSettings(n_paths=32, n_boot=5, seed=2, progress=False,
                                              worst_paths=False))
    assert not np.array_equal(other.pnl["base"]["delta"], first.pnl["base"]["delta"])


# ------------------------------------------------------ refused before the run folder exists
def test_a_scenario_given_twice_on_the_command_line_leaves_no_run_folder(
    tmp_path: Path, capsys
) -> None:
    """``--scenarios gap gap`` wrote ``stress-ShortCall-seed2024/run_config.yaml`` and then
    failed: the run config now refuses it, so nothing is written (README: a refused config
    leaves no folder)."""
    with pytest.raises(SystemExit):
        main(["stress", "--scenarios", "gap", "gap", "--hedgers", "delta", "--paths", "16",
              "--out", str(tmp_path), "--no-progress"])
    assert "invalid run config" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_labels_that_would_write_the_same_files_are_refused() -> None:
    """'gap 5%' and 'gap +5%' both slug to ``gap_5``: the second's worst-path PNGs would
    overwrite the first's."""
    ladder = [make_scenario("gap", size=-0.05, label="gap 5%"),
              make_scenario("gap", size=0.05, label="gap +5%")]
    with pytest.raises(ValueError, match=r"'gap 5%' and 'gap \+5%' would write the same files"):
        stress.resolve_scenarios(ladder)
    ladder[1] = make_scenario("gap", size=0.05, label="gap up 5%")
    assert list(stress.resolve_scenarios(ladder)) == ["gap 5%", "gap up 5%"]
