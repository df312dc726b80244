"""Tests written against the mutants that survived the second half of a mutation round over the
scoring and sweep plumbing: ``baselines/arena.py`` (the envs a run keeps, its memory check),
``baselines/benchmark.py`` (its settings' checks, what reaches the scoring run, the scores and the
report), ``hedgearena/run_config.py`` (the checks made when a run config is read) and
``hedgearena/sweep.py`` (the checks made before Ray starts).

Each test names the code it pins and the mutant it kills. Every expected value is written out
here (the blocks a run of 130 paths is cut into with ``PATH_BLOCK`` monkeypatched to 50, the
counts of hedgers, frontier members and kept paths, the settings and messages given), never
taken from running the code under test a second time; where a test pins what one function
hands another (a seed, an overlap, a count), it records the call and compares it with the
value the settings imply.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from hedgearena.baselines import arena
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.envs.config import make_config


def short_call(**kwargs):
    """ShortCall on 5 daily steps."""
    return make_config("ShortCall", n_steps=5, book={"options": [
        {"moneyness": 1.0, "expiry_steps": 5, "contracts": -1.0}]}, **kwargs)


# ------------------------------------------------------------------------ arena.py: the envs
class _StateOnlyDelta(BlackScholesDelta):
    """Black-Scholes delta that says it reads no observations and notes the ones it is given."""

    uses_observations = False

    def __init__(self) -> None:
        super().__init__()
        self.obs_sizes: list[int] = []

    def positions(self, state, obs):
        self.obs_sizes.append(int(np.asarray(obs).size))
        return super().positions(state, obs)


def test_a_state_only_hedger_is_stepped_through_a_state_only_env(small_blocks) -> None:
    """Pins ``_Envs.get``'s key ``(id(config), uses_observations(hedger))``: a hedger that says
    ``uses_observations = False`` gets an env built with ``observations=False``, which builds
    and writes no observations (its ``obs`` is empty, ``VecHedgingEnv``'s documented state-only
    mode), saving the observation arrays of every block.

    Kills: the key ``(id(config), True)`` (every hedger got an observation env: obs of
    ``(paths, obs_dim)`` built and written for a hedger that never reads them).
    """
    hedger = _StateOnlyDelta()
    run_arena(short_call(), [hedger], n_paths=130, seed=1, progress=False)
    assert len(hedger.obs_sizes) == 3 * 5  # 3 blocks x 5 decisions
    assert set(hedger.obs_sizes) == {0}


def test_each_blocks_envs_are_closed_before_the_next_block_is_built(small_blocks,
                                                                    monkeypatch) -> None:
    """Pins ``run_arena``'s ``envs.close()`` at the top of every block: the last block's paths
    are released before the next block is built (the memory bound the module documents: one
    block's full arrays at a time). A run of 130 paths in blocks of 50 has 3 blocks, so 3 calls.

    Kills: the call dropped (every env kept the previous block's paths while the next was built).
    """
    calls = []
    close = arena._Envs.close

    def counting(self):
        calls.append(len(self._envs))
        close(self)

    monkeypatch.setattr(arena._Envs, "close", counting)
    run_arena(short_call(), [BlackScholesDelta(), NoHedge()], n_paths=130, seed=1,
              progress=False)
    # block 0: no env yet; blocks 1 and 2: the one state-only env both hedgers share
    assert calls == [0, 1, 1]


def test_the_memory_check_counts_only_the_recorded_hedgers(monkeypatch) -> None:
    """Pins ``run_arena``'s call ``check_result_memory(config, n_paths, len(names),
    len(names) - len(set(totals_only)), n_kept)``: hedgers kept by their totals alone hold no
    per-decision records, so a run that fits only because of ``totals_only`` is not refused.
    Here 3 hedgers, 2 of them totals-only (one named twice), 40 paths, 2 kept: (40, 3, 1, 2).

    Kills: the recorded count ``len(names)`` (totals-only hedgers counted as recorded).
    """
    seen = []
    monkeypatch.setattr(arena, "check_result_memory", lambda *args: seen.append(args[1:]))
    hedgers = [BlackScholesDelta(), NoHedge(), BlackScholesDelta()]
    hedgers[2].name = "delta again"
    run_arena(short_call(), hedgers, n_paths=40, seed=1, progress=False,
              totals_only=["no hedge", "delta again", "no hedge"], record_paths=[3, 7])
    assert seen == [(40, 3, 1, 2)]


# ------------------------------------------------------------------- run_config.py: at load
@pytest.mark.parametrize(("override", "named"), [
    ("env.id=hedgearena/Nope-v0", r"env\.id must be one of \[.*'hedgearena/ShortCall-v0'.*\], "
                                  r"got 'hedgearena/Nope-v0'"),
    ("agent.algo=a2c", r"agent\.algo must be one of \('deep_hedging', .*'ppo'.*\), got 'a2c'"),
    ("agent.env_kwargs={cost: 0.1}", r"agent\.env_kwargs may only set .*, got \['cost'\]"),
])
def test_an_unknown_env_algo_or_agent_view_key_is_named_when_the_config_is_read(
        override, named) -> None:
    """Pins ``EnvSpec._known_id``, ``AgentSpec._known_algo`` and
    ``_LearnerSpec._agent_view_only``: refused by ``load_config`` (before any run folder
    exists), naming the key, what is allowed and the value given.

    Kills: each check dropped (the unknown env id failed later in ``EnvSpec.config`` with a
    ``KeyError``, an unknown algo when the agent was built, and a market key such as ``cost``
    in the agent's view was accepted).
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=named):
        load_config(None, [override])


def test_an_empty_stress_scenario_list_is_named_when_the_config_is_read() -> None:
    """Pins ``StressSpec._known_scenarios``'s empty-list check: ``stress.scenarios: []`` would
    run a stress report of no scenario; it is refused at load, naming the key.

    Kills: the check dropped (``[]`` accepted).
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"stress\.scenarios must name at least one scenario"):
        load_config(None, ["stress.scenarios=[]"])


def test_the_stress_cost_replaces_the_envs_cost() -> None:
    """Pins ``StressSpec.env_config``: the stress runs on the env with ``stress.cost`` (here a
    proportional 0.004, written out) instead of the env's own (ShortCall's 0.01); with
    ``stress.cost: null`` the env's own cost stays.

    Kills: ``stress.cost`` ignored (the stress ran at the env's cost).
    """
    from hedgearena.run_config import load_config

    config = load_config(None, ["stress.cost=0.004"])
    assert config.env.config().cost.rate == 0.01
    assert config.stress.env_config(config.env).cost.rate == 0.004
    config = load_config(None, ["stress.cost=null"])
    assert config.stress.env_config(config.env).cost.rate == 0.01


def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path) -> None:
    """Pins ``_read_config_file``'s top-level check: a YAML file holding a list (or a bare
    number) is refused naming the file and what it must hold.

    Kills: the check dropped (the list reached pydantic, whose error names no file).
    """
    from hedgearena.run_config import load_config

    for text in ("- arena\n- agent\n", "3\n"):
        path = tmp_path / "run.yml"
        path.write_text(text)
        with pytest.raises(ValueError, match=rf"config file '{re.escape(str(path))}' must hold "
                                             r"a mapping at the top"):
            load_config(path)


@pytest.mark.parametrize(("axis", "named"), [
    ("{uniform: [0.01, 0.01]}", r"uniform must be \[low, high\], finite numbers with low < "
                                r"high, got \[0\.01, 0\.01\]"),
    ("{randint: [3, 3]}", r"randint must be \[low, high\], finite numbers with low < high"),
    ("{loguniform: [0, 0.1]}", r"loguniform must be \[low, high\], finite numbers with 0 < low "
                               r"< high, got \[0, 0\.1\]"),
    ("{uniform: [0, .inf]}", r"uniform must be \[low, high\], finite numbers .*got \[0, inf\]"),
    ("{loguniform: [1e-4, .inf]}", r"loguniform must be \[low, high\], finite numbers"),
])
def test_an_empty_or_log_of_zero_range_is_named_when_the_config_is_read(axis, named) -> None:
    """Pins ``_check_axis``'s ``values[0] < values[1]`` (a range ``[a, a]`` holds no draw, and
    ``randint: [3, 3]`` none at all: Tune's high end is excluded) and ``loguniform``'s
    ``low > 0`` (``log 0`` is ``-inf``).

    Kills: ``values[0] <= values[1]`` and ``loguniform``'s ``values[0] < 0``.
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=named):
        load_config(None, [f"sweep.space={{env.kwargs.cost: {axis}}}"])


def test_a_randint_of_fractions_is_named_when_the_config_is_read() -> None:
    """Pins ``_check_axis``'s randint check: ``randint: [0.5, 3]`` draws integers only, so its
    bounds must be integers (Tune would truncate them).

    Kills: the check dropped (fractional bounds accepted).
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"sweep\.space\.seed\.randint takes integers "
                                         r"\[low, high\), got \[0\.5, 3\]"):
        load_config(None, ["sweep.space={seed: {randint: [0.5, 3]}}"])


@pytest.mark.parametrize("key", ["ray.num_cpus", "out", "stress.paths", "sweep.seed"])
def test_the_sweeps_own_sections_cannot_be_swept(key) -> None:
    """Pins ``_check_dotted_key``'s ``NOT_SWEPT`` check: ``sweep``, ``ray``, ``out``, ``name``,
    ``rllib`` and ``stress`` belong to the sweep (or are not used by a trial), so a key in them
    is refused, naming the sections.

    Kills: the check dropped (``ray.num_cpus`` or ``out`` accepted as swept keys: every trial
    would have run with the sweep's own values regardless).
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=rf"sweep\.space: '{key}' cannot be swept \(the "
                                         r"sections \('sweep', 'ray', 'out', 'name', 'rllib', "
                                         r"'stress'\) belong to the sweep\)"):
        load_config(None, [f"sweep.space={{{key}: [1, 2]}}"])


@pytest.mark.parametrize("key", ["arena", "agent", "env"])
def test_a_whole_section_cannot_be_swept(key) -> None:
    """Pins ``_check_dotted_key``'s last line: a key naming a section (``arena``) rather than
    one of its fields (``arena.c``) is refused, naming the key.

    Kills: the ``raise`` replaced by ``return`` (``sweep.space={arena: [1, 2]}`` accepted: each
    trial would have replaced the whole section by a number).
    """
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=rf"sweep\.space: '{key}' is a section: name one of its "
                                         r"fields"):
        load_config(None, [f"sweep.space={{{key}: [1, 2]}}"])


# -------------------------------------------------------------------------- benchmark.py
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"c": float("inf")}, r"c must be a finite number >= 0, got inf"),
    ({"c": float("nan")}, r"c must be a finite number >= 0, got nan"),
    ({"c": -0.5}, r"c must be a finite number >= 0, got -0\.5"),
    ({"risk_aversion": 0.0}, r"risk_aversion must be > 0 \(per currency\), got 0\.0"),
    ({"seed": 4, "tune_seed": 4}, r"tune_seed must differ from seed \(both 4\)"),
    ({"n_paths": 10, "story_path": 10}, r"story_path must be in \[0, n_paths\), got 10"),
])
def test_bad_benchmark_settings_are_named(kwargs, named) -> None:
    """Pins ``BenchmarkSettings.__post_init__``: ``c`` finite and ``>= 0`` (Y = mean + c std:
    ``c = inf`` makes every objective inf or nan), ``risk_aversion > 0`` (the exponential
    utility's ``lambda``: 0 divides by zero), a tuning seed other than the scoring seed (else
    the ``:best`` members are tuned on the scoring paths) and ``story_path < n_paths``.

    Kills: ``c`` not checked finite, ``risk_aversion >= 0``, ``tune_seed == seed`` accepted
    and ``story_path <= n_paths``.
    """
    from hedgearena.baselines.benchmark import BenchmarkSettings

    with pytest.raises(ValueError, match=named):
        BenchmarkSettings(**kwargs)


@pytest.mark.parametrize("value", ["2010-01-01 12:00", "2010-01-01T00:00:01"])
def test_a_split_with_a_time_of_day_is_refused(value) -> None:
    """Pins ``split_date``'s ``stamp != stamp.normalize()``: the split is a day (the first
    scoring day); a time of day in it is refused, naming the value, not silently cut to the
    day.

    Kills: the check dropped (``'2010-01-01 12:00'`` read as ``'2010-01-01'``).
    """
    from hedgearena.baselines.benchmark import split_date

    assert split_date("2010-01-01") == "2010-01-01"
    with pytest.raises(ValueError, match=rf"split must be a date such as '2010-01-01' \(the "
                                         rf"first scoring day\), got '{value}'"):
        split_date(value)


def test_a_dated_run_is_scored_with_its_overlap(monkeypatch) -> None:
    """Pins ``score_hedger``'s ``overlap=None if conditional else result.overlap``: the replay's
    overlapping windows reach ``metrics.score`` (long-run standard errors and block
    bootstraps), except in the conditional reading (the stress report's).

    Kills: ``overlap=None`` always (independent-path errors on overlapping windows: too small).
    """
    from hedgearena.baselines import benchmark, metrics

    result = run_arena(make_config("HistoricalReplay"), [NoHedge()], n_paths=40, seed=1,
                       progress=False)
    assert result.overlap is not None
    seen = []
    monkeypatch.setattr(metrics, "score", lambda *args, **kwargs: seen.append(kwargs["overlap"]))
    for conditional in (False, True):
        benchmark.score_hedger(result, "no hedge", c=1.5, risk_aversion=0.01, reference=None,
                               n_boot=5, seed=0, conditional=conditional)
    assert seen[0] is result.overlap
    assert seen[1] is None


def test_the_benchmark_scores_every_path_and_bootstraps_with_its_seed(monkeypatch) -> None:
    """Pins ``benchmark``'s scoring run ``run_arena(scoring, everyone, settings.n_paths,
    settings.seed, ...)`` on more paths than one block (16,400 > ``PATH_BLOCK`` = 16,384, the
    default block kept here) and ``_score_all``'s ``seed=settings.seed`` (the bootstrap's seed:
    a report is reproduced from its settings, and two seeds give two bootstraps).

    Kills: the scoring paths capped at one block (``min(n_paths, 16_384)``: 16 paths never
    scored) and the bootstrap seed fixed at 0.
    """
    from hedgearena.baselines import benchmark

    seeds = []
    score = benchmark.score_hedger

    def seen_seed(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return score(*args, **kwargs)

    monkeypatch.setattr(benchmark, "score_hedger", seen_seed)
    settings = benchmark.BenchmarkSettings(n_paths=16_400, seed=7, n_boot=2, frontier=False,
                                           progress=False)
    report = benchmark.benchmark(short_call(), ["delta"], settings)
    assert report.arena.n_paths == 16_400
    assert report.arena.totals("delta")["terminal_pnl"].shape == (16_400,)
    assert seeds == [7]


def test_the_report_files_state_the_c_the_scores_used(tmp_path) -> None:
    """Pins ``_write_files``'s ``write_tables(..., c=settings.c, ...)``: ``scores.json``'s
    metadata states the ``c`` of Y = mean + c std the table was scored with (3 here, not the
    default 1.5), with the run's risk aversion, paths and seed (the literals given).

    Kills: the metadata's ``c`` fixed at the default 1.5 (a report scored at c = 3 said 1.5).
    """
    import json

    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark

    settings = BenchmarkSettings(n_paths=20, seed=3, c=3.0, risk_aversion=0.02, n_boot=2,
                                 frontier=False, progress=False)
    benchmark(short_call(), ["delta"], settings, out_dir=tmp_path)
    metadata = json.loads((tmp_path / "scores.json").read_text())["metadata"]
    assert (metadata["c"], metadata["risk_aversion"]) == (3.0, 0.02)
    assert (metadata["n_paths"], metadata["seed"]) == (20, 3)


@pytest.mark.parametrize(("frontier", "hedgers_held"), [(True, 2 + 31), (False, 2)])
def test_the_benchmarks_memory_check_counts_the_frontier(frontier, hedgers_held,
                                                        monkeypatch) -> None:
    """Pins ``benchmark``'s ``check_result_memory(scoring, n_paths, len(hedgers) + n_frontier,
    len(hedgers), n_kept)`` before tuning: the frontier's members (11 Whalley-Wilmott and 11
    Zakamouline risk aversions, 9 band widths: 31) hold their totals over every path too, so
    they count as hedgers held, not as recorded ones; with the story path's records only,
    one path is kept.

    Kills: the frontier left out of the count (a run that would not fit passed the check).
    """
    from hedgearena.baselines import benchmark

    class CheckedError(Exception):
        pass

    seen = []

    def check(*args, **kwargs):
        seen.append(args[1:])
        raise CheckedError

    monkeypatch.setattr(benchmark, "check_result_memory", check)
    settings = benchmark.BenchmarkSettings(n_paths=20, frontier=frontier, keep_records=False,
                                           progress=False)
    with pytest.raises(CheckedError):
        benchmark.benchmark(short_call(), ["delta", "no_hedge"], settings)
    assert seen == [(20, hedgers_held, 2, 1)]


def test_the_frontiers_members_keep_their_totals_only() -> None:
    """Pins ``benchmark``'s ``run_arena(..., totals_only=frontier_names, ...)``: the frontier's
    31 members (11 + 11 + 9, see above) keep their totals alone, no per-decision records (7
    arrays of ``n_decisions x paths`` each, 31 times); the hedgers asked for keep theirs.

    Kills: ``totals_only=()`` (every frontier member fully recorded).
    """
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark

    settings = BenchmarkSettings(n_paths=20, tune_paths=20, seed=3, n_boot=2, frontier=True,
                                 progress=False)
    report = benchmark(short_call(), ["delta"], settings)
    assert list(report.arena.records) == ["delta"]
    assert len(report.arena.totals_only) == 31
    assert "frontier: fixed band 0.01" in report.arena.totals_only
    assert report.arena.totals_only["frontier: fixed band 0.01"]["terminal_pnl"].shape == (20,)


def test_c_zero_scores_by_the_mean_cost_alone() -> None:
    """Pins ``BenchmarkSettings``'s ``c >= 0``: ``c = 0`` (rank by the mean cost alone, the
    risk-neutral objective) is allowed, as are the edge values ``story_path = n_paths - 1`` and
    a ``tune_seed`` of its own.

    Kills: ``c > 0`` (``c = 0`` refused).
    """
    from hedgearena.baselines.benchmark import BenchmarkSettings

    settings = BenchmarkSettings(c=0.0, n_paths=10, story_path=9, seed=4, tune_seed=5)
    assert (settings.c, settings.story_path, settings.tuning_seed) == (0.0, 9, 5)


# -------------------------------------------------------------------- sweep.py: before Ray
def test_each_swept_split_is_checked_against_the_history() -> None:
    """Pins ``check_trial``'s cache key ``[env, arena.hedgers, arena.split]``: the arena check
    of one combination is reused only for the same env, hedgers and split. A split of
    2018-12-30 leaves one day of the replay's history (it ends 2018-12-31) to score on, less
    than an episode of 21 steps, so that value must be named even after 2010-01-01 passed.

    Kills: the split left out of the key (2018-12-30 reused 2010-01-01's check and passed).
    """
    from hedgearena.run_config import load_config
    from hedgearena.sweep import check_space

    config = load_config(None, ["env.id=hedgearena/HistoricalReplay-v0",
                                "sweep.space={arena.split: ['2010-01-01', '2018-12-30']}"])
    with pytest.raises(ValueError, match=r"1 of 2 combinations of values are invalid") as error:
        check_space(config)
    assert "sweep.space.arena.split: the value '2018-12-30' fails: split (2018-12-30)" in str(
        error.value)
    assert "'2010-01-01' fails" not in str(error.value)
