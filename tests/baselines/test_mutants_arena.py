"""Tests written against the mutants that survived a mutation round over the scoring plumbing:
``baselines/arena.py`` (blocks, their seeds, common random numbers, the records, the result),
``baselines/benchmark.py`` (tuning, scoring, the frontier, the report), ``hedgearena/run_config.py``
(the checks of a run config) and ``hedgearena/sweep.py``.

Every expected number comes from an independent computation written out here: the blocks built
by hand from numpy's ``default_rng(SeedSequence([seed, k]))`` (the seeding the arena documents),
each hedger stepped through its own :class:`VecHedgingEnv` on them, the blocks' numbers joined
with ``np.concatenate`` and the scores computed with numpy (the hedging cost
``C = premium - exp(-r T) PnL_T`` and the objective ``Y = mean(C) + c std(C)`` of Cao, Chen, Hull
and Poulos 2021, eq. (3)), never by running the code under test a second time. ``PATH_BLOCK`` is
monkeypatched small so that runs of a hundred paths span several blocks.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.baselines.hedger import run_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv


def short_call(**kwargs):
    """ShortCall on 5 daily steps with a non-zero rate (the cost discounts the P&L)."""
    return make_config("ShortCall", n_steps=5, book={"options": [
        {"moneyness": 1.0, "expiry_steps": 5, "contracts": -1.0}]},
        market_kwargs={"rate": 0.03}, **kwargs)


def blocks_by_hand(config, seed, sizes, hedgers, observe=False):
    """Each block built from ``default_rng(SeedSequence([seed, k]))`` and each hedger run on it.

    Returns ``(batches, totals)`` with ``totals[name][key]`` the blocks' totals joined in order.
    """
    batches, totals = [], {h.name: {} for h in hedgers}
    for k, size in enumerate(sizes):
        batch = build_episodes(config, size, np.random.default_rng(np.random.SeedSequence(
            [seed, k])), observe)
        batches.append(batch)
        for hedger in hedgers:
            env = VecHedgingEnv(num_envs=size, config=config, block=size, observations=observe)
            record = run_hedger(env, hedger, episodes=batch)
            for key, value in record.totals.items():
                totals[hedger.name].setdefault(key, []).append(np.asarray(value, dtype=float))
    joined = {name: {key: np.concatenate(parts) for key, parts in keys.items()}
              for name, keys in totals.items()}
    return batches, joined


def cost_by_hand(totals, rate, horizon):
    """``C = premium_0 - exp(-r T) PnL_T`` per path."""
    return totals["initial_premium"] - np.exp(-rate * horizon) * totals["terminal_pnl"]


# ------------------------------------------------------------------------ blocks and seeds
def test_a_run_is_the_union_of_its_blocks_each_from_its_own_seed(small_blocks) -> None:
    """Pins ``block_generator`` (``SeedSequence([seed, k])``) and ``run_arena``'s use of it.

    Kills: ``SeedSequence([seed + k])`` (the blocks of seed 1 would be those of seed 0 shifted),
    ``SeedSequence([k, seed])``, every block built from block 0's generator (repeated paths),
    and blocks written at ``index * size`` instead of ``index * PATH_BLOCK``.
    """
    config = short_call()
    hedgers = [BlackScholesDelta(), NoHedge()]
    result = run_arena(config, hedgers, n_paths=130, seed=7, progress=False)
    batches, totals = blocks_by_hand(config, 7, [50, 50, 30], [BlackScholesDelta(), NoHedge()])
    np.testing.assert_array_equal(result.spot, np.concatenate([b.market.spot for b in batches]))
    assert result.n_paths == 130
    for name in ("delta", "no hedge"):
        for key in ("terminal_pnl", "cost", "initial_premium"):
            np.testing.assert_allclose(result.totals(name)[key], totals[name][key], rtol=0,
                                       atol=1e-9, err_msg=f"{name} {key}")
    # the blocks are distinct draws: no path repeats
    assert np.unique(result.spot[:, -1]).size == 130



@pytest.mark.parametrize("seed", [-1, 2.5, "0"])
def test_a_bad_seed_is_named_before_any_path_is_built(seed) -> None:
    """Pins ``check_arena_inputs``'s seed check (an integer >= 0, named with the value).

    Kills: the check reduced to ``is_integer(seed)`` (a negative seed then fails inside numpy's
    ``SeedSequence`` with a message that names neither the argument nor what is allowed).
    """
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, got "):
        run_arena(short_call(), [NoHedge()], n_paths=10, seed=seed, progress=False)


def test_records_of_paths_at_block_boundaries_are_their_own(small_blocks) -> None:
    """Pins ``_Runs._kept_in`` (a kept path belongs to the block ``[lo, hi)``): the kept rows of
    ``spot`` and the kept columns of the records are those of the paths asked for, in the order
    asked, from the blocks built by hand.

    Kills: ``kept_paths <= hi`` (path 50, the first of block 1, also counted in block 0).
    """
    config = short_call()
    kept = [50, 0, 129, 49]
    result = run_arena(config, [BlackScholesDelta()], n_paths=130, seed=3, progress=False,
                       record_paths=kept)
    batches, _ = blocks_by_hand(config, 3, [50, 50, 30], [])
    where = {50: (1, 0), 0: (0, 0), 129: (2, 29), 49: (0, 49)}  # path -> (block, row)
    for column, path in enumerate(kept):
        block, row = where[path]
        np.testing.assert_array_equal(result.spot[column], batches[block].market.spot[row])
        env = VecHedgingEnv(num_envs=len(batches[block].initial_cash), config=config,
                            block=len(batches[block].initial_cash), observations=False)
        record = run_hedger(env, BlackScholesDelta(), episodes=batches[block])
        np.testing.assert_allclose(result.records["delta"].hedge[:, column],
                                   record.hedge[:, row], rtol=0, atol=1e-12)
        assert result.column(path) == column

# ------------------------------------------------------------------- the benchmark's scores
BAND_GRID = (0.01, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4)
"""The fixed band's grid (``registry.FAMILIES["band"]``), written out."""


def band_costs_by_hand(config, seed, sizes):
    """Each fixed-band member's cost per path on the blocks of ``seed``, ``{tolerance: (n,)}``."""
    from hedgearena.baselines.registry import parse_hedger

    members = []
    for p in BAND_GRID:
        member = parse_hedger(f"band:{p:g}")
        member.name = f"band {p:g}"
        members.append(member)
    _, totals = blocks_by_hand(config, seed, sizes, members)
    horizon = config.n_steps * config.dt
    return {p: cost_by_hand(totals[f"band {p:g}"], 0.03, horizon) for p in BAND_GRID}


def objective(cost, c):
    return cost.mean() + c * cost.std(ddof=1)


def test_benchmark_scores_tunes_and_sweeps_with_its_own_c_seeds_and_paths(small_blocks) -> None:
    """Pins ``benchmark``'s ``_score_all`` (``c=settings.c``), ``tune_family`` (the tuning seed
    ``seed + 1``, ``tune_paths`` paths, ``settings.c``, the lowest objective) and the frontier's
    ``_family_rows`` (``std(ddof=1)``, ``settings.c``), on scoring paths of several blocks.

    Kills: scores, tuning or frontier at the default c 1.5 instead of the settings' 3, tuning on
    the scoring seed (the selection bias the tuning seed avoids) or on ``n_paths`` paths, the
    highest objective picked, the frontier's std with ``ddof=0``, and the scoring run on the
    tuning seed or on the tuning history.
    """
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark, tune_family

    config = short_call(cost=0.01)
    settings = BenchmarkSettings(n_paths=130, tune_paths=60, seed=4, c=3.0, n_boot=5,
                                 progress=False)
    report = benchmark(config, ["no_hedge", "delta", "band:best"], settings)
    horizon = config.n_steps * config.dt
    _, totals = blocks_by_hand(config, 4, [50, 50, 30], [BlackScholesDelta()])
    delta = cost_by_hand(totals["delta"], 0.03, horizon)
    assert report.scores["delta"]["mean_cost"] == pytest.approx(delta.mean(), rel=1e-10)
    assert report.scores["delta"]["std_cost"] == pytest.approx(delta.std(ddof=1), rel=1e-10)
    assert report.scores["delta"]["objective"] == pytest.approx(objective(delta, 3.0), rel=1e-10)
    # tuning: the lowest Y = mean + 3 std on 60 paths of seed 5 (blocks of 50 and 10)
    tuning = band_costs_by_hand(config, 5, [50, 10])
    tuned_y = {p: objective(cost, 3.0) for p, cost in tuning.items()}
    best = min(tuned_y, key=tuned_y.__getitem__)
    assert report.tuned == {"band": best}
    chosen, sweep = tune_family(config, "band", settings)
    assert chosen == best
    np.testing.assert_allclose(sweep["mean_cost"], [tuning[p].mean() for p in BAND_GRID],
                               rtol=1e-10)
    np.testing.assert_allclose(sweep["objective"], [tuned_y[p] for p in BAND_GRID], rtol=1e-10)
    # the frontier: every member on the 130 scoring paths
    scoring = band_costs_by_hand(config, 4, [50, 50, 30])
    rows = report.frontier["fixed band"]
    np.testing.assert_allclose(rows["parameter"], BAND_GRID)
    np.testing.assert_allclose(rows["mean_cost"], [scoring[p].mean() for p in BAND_GRID],
                               rtol=1e-10)
    np.testing.assert_allclose(rows["std_cost"], [scoring[p].std(ddof=1) for p in BAND_GRID],
                               rtol=1e-10)
    np.testing.assert_allclose(rows["objective"], [objective(scoring[p], 3.0) for p in BAND_GRID],
                               rtol=1e-10)


# --------------------------------------------------------------------------- keep_batches
def test_kept_batches_hold_every_blocks_arrays_in_path_order(small_blocks) -> None:
    """Pins ``concat_batches`` / ``_concat_market`` (what ``result.batch`` joins) and
    ``run_arena``'s ``observe = keep_batches or ...``.

    Kills: the observations joined along decisions (axis 0) instead of paths, the market's
    variance (GBM's constant sigma^2 paths) left at the first block's 50 rows, and kept batches
    built without observations.
    """
    config = short_call()
    result = run_arena(config, [BlackScholesDelta()], n_paths=130, seed=2, progress=False,
                       keep_batches=True)
    batches, _ = blocks_by_hand(config, 2, [50, 50, 30], [], observe=True)
    batch = result.batch
    assert batch.observations.shape[1] == 130
    for (lo, hi), block in zip([(0, 50), (50, 100), (100, 130)], batches, strict=True):
        np.testing.assert_array_equal(batch.market.spot[lo:hi], block.market.spot)
        np.testing.assert_array_equal(batch.market.variance[lo:hi], block.market.variance)
        np.testing.assert_array_equal(batch.observations[:, lo:hi], block.observations)
        np.testing.assert_array_equal(batch.episode.model_hedge[:, lo:hi],
                                      block.episode.model_hedge)


# ------------------------------------------------------------------------- dated paths
def test_dated_paths_keep_every_blocks_start_days_and_the_longest_span(small_blocks) -> None:
    """Pins ``_Runs.add_block``'s overlap (each block's start days in place, the span the
    maximum over the blocks), which the replay's long-run standard errors use.

    Kills: the span of the last block only (34 days here, not the run's 37) and a dated run
    that keeps no overlap (independent-path errors on overlapping windows).
    """
    config = make_config("HistoricalReplay")
    result = run_arena(config, [NoHedge()], n_paths=103, seed=1, progress=False)
    batches, _ = blocks_by_hand(config, 1, [50, 50, 3], [])
    days = [b.market.dates.astype("datetime64[D]").astype(np.int64) for b in batches]
    spans = [int((d[:, -1] - d[:, 0]).max()) + 1 for d in days]
    assert spans == [37, 35, 34]  # the last block's windows are not the longest
    assert result.overlap is not None
    np.testing.assert_array_equal(result.overlap.start, np.concatenate([d[:, 0] for d in days]))
    assert result.overlap.span == 37


# ------------------------------------------------------------------------ run-config checks
@pytest.mark.parametrize(("override", "named"), [
    ("arena.c=-1", "arena.c: Input should be greater than or equal to 0 (got -1)"),
    ("arena.risk_aversion=0", "arena.risk_aversion: Input should be greater than 0 (got 0)"),
    ("stress.c=-0.5", "stress.c: Input should be greater than or equal to 0 (got -0.5)"),
    ("arena.seed=-3", "arena.seed: Input should be greater than or equal to 0 (got -3)"),
])
def test_scoring_parameters_out_of_range_are_named_at_load(override, named) -> None:
    """Pins ``ArenaSpec``'s and ``StressSpec``'s field bounds (``c >= 0``, ``risk_aversion > 0``,
    ``seed >= 0``): refused when the config is read, naming the key and the allowed range,
    not later when a benchmark is built from it (after the run folder exists), and naming the
    value given (the bound's own digits, as in ``greater than 0 (got 0)``, used to hide it).

    Kills: the bounds dropped or loosened (``c`` unbounded, ``risk_aversion >= 0``).
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=re.escape(named)):
        load_config(None, [override])


def test_the_arena_and_stress_sections_reach_their_settings_unchanged() -> None:
    """Pins ``ArenaSpec.settings`` and ``StressSpec.settings``: every value of the section is
    the one the benchmark (stress report) runs with (expected: the literals given here).

    Kills: ``c`` replaced by the default 1.5 (arena or stress), ``n_paths`` taken from
    ``tune_paths``, ``split``, ``frontier`` or ``risk_limits`` dropped.
    """
    from hedgearena.run_config import load_config

    config = load_config(None, [
        "arena.c=3", "arena.paths=77", "arena.tune_paths=33", "arena.seed=9",
        "arena.frontier=false", "arena.split=2010-01-01", "arena.n_boot=7",
        "arena.risk_aversion=0.02", "stress.c=2.5", "stress.paths=55",
        "stress.risk_limits={max_loss: 1000}",
    ])
    arena_settings = config.arena.settings(progress=False)
    assert (arena_settings.n_paths, arena_settings.tune_paths, arena_settings.seed) == (77, 33, 9)
    assert (arena_settings.c, arena_settings.risk_aversion, arena_settings.n_boot) == (3.0, 0.02, 7)
    assert (arena_settings.frontier, arena_settings.split) == (False, "2010-01-01")
    stress = config.stress.settings(progress=False)
    assert (stress.c, stress.n_paths, stress.risk_limits) == (2.5, 55, {"max_loss": 1000})


# ----------------------------------------------------------------------------- sweeps
def test_a_trial_reports_its_objective_minus_deltas(tmp_path) -> None:
    """Pins ``sweep.trial_metrics``: the agent's numbers from its row of ``scores.json``, delta's
    as ``delta_*``, and ``objective_vs_delta = objective - delta_objective`` (negative: the agent
    is better; here 10.5 - 12.0 = -1.5 by hand).

    Kills: the difference's sign flipped.
    """
    import json

    from hedgearena.sweep import trial_metrics

    rows = [{"hedger": "ppo agent", "objective": 10.5, "objective_se": 0.2, "mean_cost": 8.0,
             "std_cost": 1.0, "expected_shortfall_95": 11.0, "mean_transaction_cost": 0.5,
             "mean_turnover": 3.0},
            {"hedger": "delta", "objective": 12.0, "mean_cost": 9.0, "std_cost": 2.0}]
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"records": rows}))
    out = trial_metrics(path, "ppo agent")
    assert out["objective_vs_delta"] == pytest.approx(-1.5)
    assert (out["delta_objective"], out["delta_mean_cost"], out["delta_std_cost"]) == (12, 9, 2)
    assert (out["objective"], out["mean_turnover"]) == (10.5, 3.0)


@pytest.mark.parametrize(("mode", "order"), [("min", ["b", "c", "a", "d"]),
                                             ("max", ["a", "c", "b", "d"])])
def test_the_results_table_puts_the_best_trial_first(mode, order, tmp_path) -> None:
    """Pins ``sweep.results_table``'s order (ascending for ``mode: min``, descending for
    ``max``; unfinished trials last) and its status column.

    Kills: the sort direction flipped.
    """
    from types import SimpleNamespace

    from hedgearena.run_config import SweepSpec
    from hedgearena.sweep import results_table

    results = [SimpleNamespace(path=str(tmp_path / t), metrics=m, error=None) for t, m in [
        ("a", {"objective": 3.0}), ("b", {"objective": 1.0}), ("c", {"objective": 2.0}),
        ("d", {})]]
    spec = SweepSpec(space={"seed": [0, 1, 2, 3]}, mode=mode)
    configs = {t: {"seed": i} for i, t in enumerate("abcd")}
    table = results_table(results, configs, spec, tmp_path)
    assert list(table["trial"]) == order
    assert list(table.set_index("trial").loc[["a", "d"], "status"]) == ["ok", "unfinished"]


def test_a_hedger_stopped_by_a_limit_keeps_no_records_of_the_hedger_before_it() -> None:
    """Pins ``_Runs.out``'s zeroing of the shared scratch arrays (``part.fill(0)``) between
    hedgers: with ``record_paths`` every hedger writes a block's records into the same scratch,
    and :func:`run_hedger` stops writing once every episode of the block has ended. A short ATM
    call unhedged has a book delta near -0.5 per notional, past a 0.02 ``terminate`` limit, so
    no hedge's episodes all end at the first decision; the delta hedger's (run before it, on
    the same paths) end later on some. No hedge holds nothing and trades nothing, so each of its
    records is 0 by definition, at every decision.

    Kills: the scratch arrays not zeroed (no hedge's records after its first decision showed
    delta's positions, trades and costs).
    """
    config = short_call(risk_limits={"delta": 0.02, "action": "terminate"})
    result = run_arena(config, [BlackScholesDelta(), NoHedge()], n_paths=60, seed=2,
                       progress=False, record_paths=list(range(60)))
    no_hedge, delta = result.records["no hedge"], result.records["delta"]
    np.testing.assert_array_equal(no_hedge.totals["end_step"], 1.0)  # all end at once
    assert np.abs(delta.hedge[1:]).max() > 1.0  # delta held something there to leak
    for field in ("hedge", "trade", "cost"):
        np.testing.assert_array_equal(getattr(no_hedge, field), 0.0, err_msg=field)
