"""The arena at scale: memory that does not grow beyond what the report needs, clear refusals.

A user runs ``train.py benchmark --paths 1000000``: every hedger on the same paths, block by
block. These tests force many blocks on small runs (``PATH_BLOCK`` monkeypatched) and check
what a big run relies on: the totals are not held twice, hedger-independent and zero totals
take one array or none, the records can be kept for the drawn paths only, the hedgers share
their envs without seeing each other's positions, a run too big for the machine is refused
before anything is allocated, and the progress bar says which block is being built.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from hedgearena.baselines import arena
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.hedger import Hedger
from hedgearena.envs.config import make_config


class Fraction(Hedger):
    """Hold ``fraction`` of the model's positions (state only; the option's too with one)."""

    uses_observations = False

    def __init__(self, fraction: float, name: str | None = None) -> None:
        self.fraction, self.name = fraction, name or f"{fraction:g} delta"

    def reset(self, env) -> None:
        self.keys = ["model_hedge", "model_option"][:env.config.action_dim]

    def positions(self, state, obs):
        return self.fraction * np.column_stack([state[key] for key in self.keys])


class Remembering(Hedger):
    """Keeps per-path memory (its last targets), sized in ``reset`` for every block, and
    checks at each decision that the env's position is the one it asked for (its own rows)."""

    uses_observations = False

    def __init__(self, fraction: float, name: str) -> None:
        self.fraction, self.name = fraction, name
        self.blocks: list[int] = []
        self.mismatches = 0

    def reset(self, env) -> None:
        self.last = np.zeros(env.num_envs)
        self.blocks.append(env.num_envs)

    def positions(self, state, obs):
        self.mismatches += int(not np.allclose(state["hedge"], self.last))
        self.last = self.fraction * state["model_hedge"]
        return self.last[:, None]


def test_totals_of_many_hedgers_are_written_in_place_not_held_twice(monkeypatch) -> None:
    """40 totals-only hedgers (a benchmark's frontier) on 6 blocks: the old arena kept every
    block's 18 totals per hedger and concatenated them at the end (two copies of all); now
    each total is written into one array, the zero ones (no hedging option, no fills, no
    limits) take no memory and the hedger-independent ones (the premium, the book's
    mark-to-market, the end step) one array for all hedgers."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 500)
    config, n = make_config("ShortCall", n_steps=5), 3_000
    hedgers = [Fraction(1.0, "delta")] + [Fraction(f) for f in np.linspace(0.0, 0.95, 40)]
    names = [h.name for h in hedgers[1:]]
    run_arena(config, hedgers[:2], n_paths=300, seed=1, progress=False)  # warm caches
    tracemalloc.start()
    result = run_arena(config, hedgers, n_paths=n, seed=1, progress=False, totals_only=names)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    one_set = 41 * 18 * 8 * n  # every total of every hedger once: 17.7 MB
    assert peak < 0.7 * one_set, f"peak {peak / 1e6:.1f} MB"  # old code: > 2 sets, 37 MB
    totals = result.totals(names[3])
    assert totals["option_turnover"].strides == (0,)  # zeros taking no memory
    assert np.shares_memory(totals["initial_premium"], result.totals("delta")["initial_premium"])
    assert not totals["initial_premium"].flags.writeable  # shared: read-only
    # the same numbers as a run of that hedger alone on the same paths (and as float64 arrays)
    alone = run_arena(config, [hedgers[4]], n_paths=n, seed=1, progress=False)
    for key, values in alone.records[names[3]].totals.items():
        np.testing.assert_array_equal(totals[key], values, err_msg=key)
        assert totals[key].shape == (n,)
        assert totals[key].dtype == np.float64


def test_a_total_that_differs_in_a_later_block_gets_its_own_array(monkeypatch) -> None:
    """A hedger whose total equals the first hedger's on the first blocks only (it hedges
    differently on the later paths) shares until then and copies the shared part then."""

    class Late(Hedger):
        uses_observations = False
        name = "late"

        def reset(self, env) -> None:
            self.block = getattr(self, "block", -1) + 1

        def positions(self, state, obs):
            return (0.5 if self.block >= 2 else 1.0) * state["model_hedge"][:, None]

    monkeypatch.setattr(arena, "PATH_BLOCK", 100)
    config = make_config("ShortCall")
    result = run_arena(config, [Fraction(1.0, "delta"), Late()], n_paths=350, seed=2,
                       progress=False)
    delta, late = result.records["delta"].totals, result.records["late"].totals
    np.testing.assert_array_equal(late["cost"][:200], delta["cost"][:200])
    assert not np.array_equal(late["cost"][200:], delta["cost"][200:])
    assert not np.shares_memory(late["cost"], delta["cost"])
    assert late["cost"].flags.writeable
    alone = run_arena(config, [Fraction(0.5, "half")], n_paths=350, seed=2, progress=False)
    np.testing.assert_array_equal(late["cost"][200:], alone.records["half"].totals["cost"][200:])


def test_records_of_chosen_paths_only(monkeypatch) -> None:
    """``record_paths``: the per-decision records, spot, model hedge and strike of the drawn
    paths only (a path story needs one), the same numbers as a full run's columns; totals,
    attribution and scores over every path."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 200)
    config = make_config("OptionBook", hedge_option=True, n_steps=10,
                         book={"client_flow": {"expiry_steps": [5, 10]}})
    hedgers = [Fraction(1.0, "delta"), Fraction(0.5)]
    full = run_arena(config, hedgers, n_paths=500, seed=4, progress=False)
    kept = [450, 3, 201]
    lean = run_arena(config, hedgers, n_paths=500, seed=4, progress=False, record_paths=kept)
    assert lean.n_paths == full.n_paths == 500
    np.testing.assert_array_equal(lean.record_paths, kept)
    assert lean.spot.shape == (3, 11)
    assert lean.model_hedge.shape == (3, 11)
    np.testing.assert_array_equal(lean.spot, full.spot[kept])
    np.testing.assert_array_equal(lean.model_hedge, full.model_hedge[kept])
    np.testing.assert_array_equal(lean.strike, full.strike[kept])
    for name in ("delta", "0.5 delta"):
        for field in ("hedge", "option", "trade", "cost"):
            np.testing.assert_array_equal(getattr(lean.records[name], field),
                                          getattr(full.records[name], field)[:, kept])
        for key, values in full.records[name].totals.items():
            np.testing.assert_array_equal(lean.records[name].totals[key], values)
        for term, values in full.attribution[name].items():
            np.testing.assert_array_equal(lean.attribution[name][term], values)
        np.testing.assert_array_equal(lean.cost(name), full.cost(name))
    assert lean.column(201) == 2
    assert full.column(201) == 201
    with pytest.raises(ValueError, match=r"path 7's records were not kept"):
        lean.column(7)
    for bad, why in (([], "non-empty"), ([500], r"\[0, n_paths=500\)"), ([1, 1], "distinct"),
                     ([0.5], "integers"), ("0", "integers")):
        with pytest.raises(ValueError, match=why):
            run_arena(config, hedgers, n_paths=500, progress=False, record_paths=bad)


def test_hedgers_share_envs_and_still_see_their_own_rows(monkeypatch) -> None:
    """Hedgers of one view of the env share one env a block size (the old arena made one per
    hedger and size: 8 MB each a 16,384-path block); each hedger, keeping per-path memory
    across decisions, sees its own positions on its rows, sized anew on each block, and its
    totals are those of a run of its own."""
    made = []
    original = arena.VecHedgingEnv

    def counting(*args, **kwargs):
        made.append(kwargs["num_envs"])
        return original(*args, **kwargs)

    monkeypatch.setattr(arena, "VecHedgingEnv", counting)
    monkeypatch.setattr(arena, "PATH_BLOCK", 64)
    config = make_config("ShortCall", cost=0.002)
    hedgers = [Remembering(f, f"remember {f:g}") for f in (1.0, 0.5, 0.0, 0.8)]
    result = run_arena(config, hedgers, n_paths=150, seed=5, progress=False)
    assert made == [64, 22]  # one env for the full blocks, one for the last
    for hedger in hedgers:
        assert hedger.mismatches == 0
        assert hedger.blocks == [64, 64, 22]
    monkeypatch.setattr(arena, "VecHedgingEnv", original)
    for f in (0.5, 0.8):
        alone = run_arena(config, [Fraction(f, "x")], n_paths=150, seed=5, progress=False)
        np.testing.assert_array_equal(result.records[f"remember {f:g}"].totals["terminal_pnl"],
                                      alone.records["x"].totals["terminal_pnl"])


@pytest.mark.parametrize("n_paths", [10**10, 10**12])
def test_a_run_too_big_for_the_machine_is_refused_before_allocating(n_paths) -> None:
    """10**12 paths: the old arena listed 6 * 10**7 blocks (6.5 GB, 35 s) and then died in
    numpy's MemoryError; now a ValueError names the paths, the memory and what fits, at once."""
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"n_paths=1[0,]+ would keep about .* "
                                         r"GiB of results .* use fewer paths"):
        run_arena(make_config("ShortCall"), [Fraction(1.0)], n_paths=n_paths, progress=False)
    assert time.perf_counter() - start < 2.0


def test_the_memory_check_suggests_record_paths_and_counts_them(monkeypatch) -> None:
    """The estimate (:func:`result_bytes`) counts the records of the kept paths only, and the
    refusal says to keep a few paths' records when those are what does not fit."""
    config = make_config("ShortCall")  # 20 decisions, 21 market steps
    full = arena.result_bytes(config, 100_000, 3, 2, 100_000)
    assert full == 100_000 * (3 * 144 + 2 * 80) + 100_000 * (2 * 7 * 8 * 20 + 2 * 8 * 21)
    lean = arena.result_bytes(config, 100_000, 3, 2, 1)
    monkeypatch.setattr(arena, "physical_memory", lambda: (full + lean) // 2)
    with pytest.raises(ValueError, match=r"record_paths=\[\.\.\.\]"):
        arena.check_result_memory(config, 100_000, 3, 2, 100_000)
    arena.check_result_memory(config, 100_000, 3, 2, 1)  # fits


def test_the_progress_bar_names_the_block_being_built(monkeypatch, capsys) -> None:
    """A block of a long book takes tens of seconds to build (OptionBook-v0: 20 s a block of
    16,384 paths here, 90 s at 252 steps) with no decision to count: the bar says so."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 40)
    run_arena(make_config("ShortCall"), [Fraction(1.0)], n_paths=100, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "building block 3/3" in err


# ------------------------------------------------------------------------------ benchmark
def _bench(tmp_path, keep_records: bool):
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark

    settings = BenchmarkSettings(n_paths=600, tune_paths=200, n_boot=10, frontier=False,
                                 story_path=5, keep_records=keep_records, progress=False)
    return benchmark(make_config("ShortCall"), ["no_hedge", "delta"], settings,
                     tmp_path / str(keep_records))


def test_a_benchmark_keeps_the_drawn_paths_records_only_and_scores_alike(tmp_path) -> None:
    """``train.py benchmark`` drew one path of the per-decision records it kept for all
    (900 MB for 8 hedgers at 100,000 paths of 20 decisions): by default only the story path's
    are kept now; the scores (from totals and attribution) and the picture are the same."""
    lean, full = _bench(tmp_path, False), _bench(tmp_path, True)
    record = lean.arena.records["delta"]
    assert record.hedge.shape == (20, 1)
    assert lean.arena.record_paths.tolist() == [5]
    assert lean.arena.n_paths == 600
    np.testing.assert_array_equal(record.hedge[:, 0], full.arena.records["delta"].hedge[:, 5])
    np.testing.assert_array_equal(lean.arena.spot[0], full.arena.spot[5])
    for name in ("no hedge", "delta"):
        assert lean.scores[name].keys() == full.scores[name].keys()
        for key, value in lean.scores[name].items():
            assert value == full.scores[name][key] or (value != value and full.scores[name][key]
                                                       != full.scores[name][key]), key
    story = (tmp_path / "False" / "path_story.png").read_bytes()
    assert story == (tmp_path / "True" / "path_story.png").read_bytes()  # "path 5" on both


def test_a_benchmark_too_big_is_refused_before_tuning(monkeypatch) -> None:
    """The memory check runs before the ``:best`` families are tuned (about 20 s of work at
    20,000 tuning paths were done before the arena refused the run)."""
    from hedgearena.baselines import benchmark as bench
    from hedgearena.baselines.benchmark import BenchmarkSettings

    def tuned(*args, **kwargs):
        raise AssertionError("tuned before the memory check")

    monkeypatch.setattr(arena, "physical_memory", lambda: 2**20)
    monkeypatch.setattr(bench, "tune_family", tuned)
    with pytest.raises(ValueError, match=r"GiB of results"):
        bench.benchmark(make_config("ShortCall"), ["delta", "ww:best"],
                        BenchmarkSettings(n_paths=10**6, progress=False))


def test_keep_records_must_be_a_bool() -> None:
    from hedgearena.baselines.benchmark import BenchmarkSettings

    with pytest.raises(ValueError, match=r"keep_records must be True or False, got 'yes'"):
        BenchmarkSettings(keep_records="yes")  # type: ignore[arg-type]
