"""Tests that kill mutants the suite let live (mutation testing of the scale journey, the faster
single env, the plugging journey and the learners' validation split).

Each test names the code it pins and the mutation that survived every other test. The
references are independent of the code under test: the per-decision records summed by numpy
(written by another path than the totals), the documented memory bound recomputed by hand,
the documented limits of a view (``position_limit``), Python's ``issubclass``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from hedgearena.baselines import arena
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.hedger import Hedger
from hedgearena.envs.config import make_config


class Masked(Hedger):
    """Holds the model's hedge on the paths ``on(block, row)`` says (1) and nothing elsewhere."""

    uses_observations = False

    def __init__(self, name: str, on, overrides: dict | None = None) -> None:
        self.name, self.on, self.block = name, on, -1
        if overrides:
            self.env_overrides = overrides

    def reset(self, env) -> None:
        self.block += 1

    def positions(self, state, obs):
        rows = np.arange(len(state["model_hedge"]))
        return (self.on(self.block, rows) * state["model_hedge"])[:, None]


def _everywhere(block, rows):
    return np.ones(len(rows))


# ----------------------------------------------------------------------------- arena totals
def test_totals_with_zero_paths_and_late_starters_are_the_records_sums(monkeypatch) -> None:
    """``_PathColumns``: a hedger's total is the sum of its per-decision records on every path
    (numpy over ``record.cost``, written by another path than the totals), also when

    - its first block is 0 on some paths only (``sparse``: killed ``block.all()`` for
      ``block.any()``, which dropped such a block as all zeros),
    - it is 0 on the first block and equal to the first hedger's on the later ones (``late``:
      killed dropping ``lo == 0`` from the sharing test, which shared the first hedger's
      array, non-zero on the first block, and ``np.empty`` for ``np.zeros`` in ``_allocate``,
      whose paths before the block are then not zeros)."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 100)
    config = make_config("ShortCall", cost=0.002)
    hedgers = [Masked("delta", _everywhere),
               Masked("sparse", lambda block, rows: (rows % 2).astype(float)),
               Masked("late", lambda block, rows: np.full(len(rows), float(block >= 1)))]
    result = run_arena(config, hedgers, n_paths=300, seed=3, progress=False)
    for name in ("delta", "sparse", "late"):
        record = result.records[name]
        np.testing.assert_array_equal(record.totals["cost"], record.cost.sum(axis=0),
                                      err_msg=name)
    sparse = result.records["sparse"].totals["cost"]
    assert (sparse[0::2] == 0).all()
    assert (sparse[1::2] > 0).all()
    late = result.records["late"].totals["cost"]
    assert (late[:100] == 0).all()
    assert (late[100:] > 0).all()
    np.testing.assert_array_equal(late[100:], result.records["delta"].totals["cost"][100:])


def test_hedgers_with_their_own_view_get_their_own_env(monkeypatch) -> None:
    """``_Envs`` keys the shared env by the hedger's config: a hedger whose ``env_overrides``
    add the P&L to its observations (``observe_pnl``: one more feature, documented) sees it,
    even after a hedger of the plain view made an env for the block size (killed keying by a
    constant: the second hedger ran on the plain env and saw one feature fewer)."""

    class Watching(Masked):
        uses_observations = True

        def positions(self, state, obs):
            self.widths.add(obs.shape[1])
            return super().positions(state, obs)

    monkeypatch.setattr(arena, "PATH_BLOCK", 64)
    config = make_config("ShortCall")
    plain, with_pnl = Watching("plain", _everywhere), Watching(
        "with pnl", _everywhere, overrides={"observe_pnl": True})
    plain.widths, with_pnl.widths = set(), set()
    run_arena(config, [plain, with_pnl], n_paths=100, seed=1, progress=False)
    width = gym.make("hedgearena/ShortCall-v0").observation_space.shape[0]
    assert plain.widths == {width}
    assert with_pnl.widths == {width + 1}


def test_a_kept_path_on_a_block_boundary_is_its_blocks_row_0(monkeypatch) -> None:
    """``_Runs._kept_in``: path ``hi`` (the first path of the next block) is not a path of the
    block ``[lo, hi)`` (killed ``kept <= hi``: it was taken as row ``hi - lo`` of the block,
    out of its range). The kept columns equal a full run's (which keeps every path)."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 50)
    config = make_config("ShortCall", cost=0.002)
    hedgers = [Masked("delta", _everywhere)]
    full = run_arena(config, hedgers, n_paths=120, seed=2, progress=False)
    hedgers = [Masked("delta", _everywhere)]
    kept = [100, 50, 49]
    lean = run_arena(config, hedgers, n_paths=120, seed=2, progress=False, record_paths=kept)
    np.testing.assert_array_equal(lean.spot, full.spot[kept])
    np.testing.assert_array_equal(lean.records["delta"].hedge, full.records["delta"].hedge[:, kept])


def test_kept_records_of_a_block_ended_early_are_zero_after_its_end() -> None:
    """With ``record_paths`` every hedger writes a block's records into shared scratch arrays,
    zeroed for each hedger: a hedger whose every path ends at its first decisions (no hedge on
    a short call: net delta beyond the ``terminate`` limit) has no position, trade or cost on
    any later decision (killed dropping the zeroing: the decisions after its end held the
    delta hedger's records, run before it on the block)."""
    config = make_config("ShortCall", cost=0.002,
                         risk_limits={"delta": 0.3, "action": "terminate"})
    hedgers = [Masked("delta", _everywhere),
               Masked("none", lambda block, rows: np.zeros(len(rows)))]
    lean = run_arena(config, hedgers, n_paths=30, seed=1, progress=False, record_paths=[4, 17])
    none = lean.records["none"]
    assert none.totals["end_step"].max() <= 2  # every path ended by its second decision
    assert np.abs(lean.records["delta"].hedge[1:]).max() > 0  # the delta hedged after it
    for field in ("hedge", "trade", "cost"):
        np.testing.assert_array_equal(getattr(none, field), 0.0, err_msg=field)


def test_column_refuses_a_path_past_the_last() -> None:
    """``ArenaResult.column`` with every path kept: ``n_paths`` is not a path (killed
    ``path <= n_paths``, which returned column ``n_paths``, out of the arrays)."""
    result = run_arena(make_config("ShortCall"), [Masked("delta", _everywhere)], n_paths=5,
                       seed=0, progress=False)
    assert result.column(4) == 4
    for bad in (5, -1):
        with pytest.raises(ValueError, match=r"path must be in \[0, 5\)"):
            result.column(bad)


# ----------------------------------------------------------------------------- memory check
def _bound(n_paths: int, n_hedgers: int, n_recorded: int, n_kept: int) -> int:
    """The documented bound (``result_bytes``) by hand, for ShortCall (20 decisions, 21 steps):
    18 float64 totals per hedger and path, 10 attribution terms per recorded hedger and path,
    7 per-decision fields per recorded hedger and kept path, a kept path's spot and model
    hedge."""
    return (n_paths * (n_hedgers * 18 * 8 + n_recorded * 10 * 8)
            + n_kept * (n_recorded * 7 * 8 * 20 + 2 * 8 * 21))


def test_the_refusal_counts_the_paths_that_fit_in_half_the_memory(monkeypatch) -> None:
    """Memory for a quarter of the results: about an eighth of the paths fit in half of it
    (killed dropping the ``// 2``, which counted the paths that fill all of it)."""
    config = make_config("ShortCall")
    need = _bound(100_000, 3, 2, 100_000)
    monkeypatch.setattr(arena, "physical_memory", lambda: need // 4)
    with pytest.raises(ValueError, match=r"about 12,500 fit in half of it"):
        arena.check_result_memory(config, 100_000, 3, 2, 100_000)


def test_run_arena_counts_totals_only_and_kept_paths_in_its_memory_check(monkeypatch) -> None:
    """``run_arena``'s check counts the recorded hedgers (not the totals-only ones) and the kept
    paths (not every path): with the memory of exactly that bound the run goes through
    (killed counting every hedger as recorded, or every path as kept, which refused it)."""
    config = make_config("ShortCall")
    hedgers = [Masked("delta", _everywhere), Masked("other", _everywhere),
               Masked("third", _everywhere)]
    monkeypatch.setattr(arena, "physical_memory", lambda: _bound(200, 3, 1, 200))
    result = run_arena(config, hedgers, n_paths=200, seed=0, progress=False,
                       totals_only=["other", "third"])
    assert set(result.records) == {"delta"}
    monkeypatch.setattr(arena, "physical_memory", lambda: _bound(200, 3, 3, 2))
    result = run_arena(config, hedgers, n_paths=200, seed=0, progress=False,
                       record_paths=[7, 3])
    assert result.records["delta"].hedge.shape == (20, 2)
    monkeypatch.setattr(arena, "physical_memory", lambda: _bound(200, 3, 3, 2) - 1)
    with pytest.raises(ValueError, match=r"GiB of results"):
        run_arena(config, hedgers, n_paths=200, seed=0, progress=False, record_paths=[7, 3])


def test_the_benchmark_counts_the_frontier_before_tuning(monkeypatch) -> None:
    """The benchmark's check before tuning counts the frontier's members as totals-only
    hedgers (killed dropping them: the check passed, the ``:best`` family was tuned, and only
    the arena refused the run, after the tuning's work)."""
    from hedgearena.baselines import benchmark as bench
    from hedgearena.baselines.benchmark import BenchmarkSettings
    from hedgearena.baselines.registry import FAMILIES

    def tuned(*args, **kwargs):
        raise AssertionError("tuned before the memory check")

    n_frontier = sum(len(grid) for _, grid in FAMILIES.values())
    assert n_frontier > 0
    without = _bound(1000, 2, 2, 1)
    assert _bound(1000, 2 + n_frontier, 2, 1) > without
    monkeypatch.setattr(arena, "physical_memory", lambda: without)
    monkeypatch.setattr(bench, "tune_family", tuned)
    with pytest.raises(ValueError, match=r"GiB of results"):
        bench.benchmark(make_config("ShortCall"), ["delta", "ww:best"],
                        BenchmarkSettings(n_paths=1000, progress=False, frontier=True))


def test_a_lean_benchmark_is_checked_with_its_one_kept_path(monkeypatch, tmp_path) -> None:
    """Without ``keep_records`` the benchmark keeps the story path's records only, and its
    check counts that one path (killed counting every path: a run that fits was refused)."""
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark

    monkeypatch.setattr(arena, "physical_memory", lambda: _bound(300, 2, 2, 1))
    settings = BenchmarkSettings(n_paths=300, tune_paths=100, n_boot=10, frontier=False,
                                 story_path=4, progress=False)
    report = benchmark(make_config("ShortCall"), ["no_hedge", "delta"], settings, tmp_path)
    assert report.arena.records["delta"].hedge.shape == (20, 1)


def test_story_path_must_be_below_n_paths() -> None:
    """``story_path = n_paths`` is no path (killed ``<=``)."""
    from hedgearena.baselines.benchmark import BenchmarkSettings

    with pytest.raises(ValueError, match=r"story_path must be in \[0, n_paths\), got 10"):
        BenchmarkSettings(n_paths=10, tune_paths=10, story_path=10)
    BenchmarkSettings(n_paths=10, tune_paths=10, story_path=9)


# ----------------------------------------------------------------------------- SB3 adapter
def test_env_is_wrapped_answers_as_a_row_in_a_monitor_would() -> None:
    """``isinstance`` semantics (documented): a row in a ``Monitor`` is an instance of
    ``Monitor`` and of its base classes (``gym.Wrapper``, ``gym.Env``), not of a subclass of
    ``Monitor`` nor of another wrapper (killed ``issubclass(wrapper_class, Monitor)``, which
    answered the other way round)."""
    from stable_baselines3.common.monitor import Monitor

    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    class OwnMonitor(Monitor):
        pass

    adapter = make_sb3_vec_env("hedgearena/ShortCall-v0", 2, seed=0)
    for cls in (Monitor, gym.Wrapper, gym.Env, OwnMonitor, gym.wrappers.TimeLimit):
        expected = issubclass(Monitor, cls)  # what isinstance(Monitor(env), cls) says
        assert adapter.env_is_wrapped(cls) == [expected, expected], cls
    assert adapter.env_is_wrapped(gym.Wrapper) == [True, True]
    assert adapter.env_is_wrapped(OwnMonitor) == [False, False]


def test_set_attr_refuses_class_attributes_and_properties_too() -> None:
    """``set_attr`` refuses any attribute the env has, also one of its class (``metadata``)
    or a property (``np_random``, ``unwrapped``), not only its instance's own (killed
    ``attr_name in vars(env)``: the properties were overwritten or raised AttributeError)."""
    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    adapter = make_sb3_vec_env("hedgearena/ShortCall-v0", 2, seed=0)
    for name in ("metadata", "np_random", "unwrapped", "reward_scale"):
        with pytest.raises(ValueError, match=rf"set_attr\('{name}'\) would overwrite"):
            adapter.set_attr(name, {})
    assert "render_modes" in adapter.venv.metadata


# ----------------------------------------------------------------------------- stress
def test_one_path_of_a_run_that_kept_some_paths_is_that_paths_column() -> None:
    """``stress.one_path`` on a run with ``record_paths``: path 3 is the run's second kept
    column; the cut holds that path's spot and records, as a full run's column 3 (killed
    slicing row ``index`` instead of ``result.column(index)``: an empty or wrong row)."""
    from hedgearena.baselines.stress import one_path

    config = make_config("ShortCall", cost=0.002)
    full = run_arena(config, [Masked("delta", _everywhere)], n_paths=10, seed=6, progress=False)
    lean = run_arena(config, [Masked("delta", _everywhere)], n_paths=10, seed=6, progress=False,
                     record_paths=[7, 3])
    cut = one_path(lean, ["delta"], 3)
    np.testing.assert_array_equal(cut.spot, full.spot[3:4])
    np.testing.assert_array_equal(cut.model_hedge, full.model_hedge[3:4])
    np.testing.assert_array_equal(cut.records["delta"].hedge, full.records["delta"].hedge[:, 3:4])
    assert cut.n_paths == 1
    assert cut.column(0) == 0


# ----------------------------------------------------------------------------- report
def test_a_path_storys_title_names_its_label_or_else_its_row(monkeypatch, tmp_path) -> None:
    """``plot_path_story``'s default title is "path <label>" with a label (the path's number
    in the run) and "path <index>" without one (documented: ``label`` defaults to ``index``;
    killed always writing the label: "path None")."""
    from hedgearena.baselines import report
    from hedgearena.envs import rendering

    titles = []
    real = rendering.path_story_figure

    def spy(*args, **kwargs):
        titles.append(kwargs["title"])
        return real(*args, **kwargs)

    monkeypatch.setattr(rendering, "path_story_figure", spy)
    times = np.linspace(0.0, 0.1, 4)
    spot = np.full((5, 4), 100.0)
    hedge = np.full((5, 4), 0.5)
    report.plot_path_story(3, times, spot, hedge, {"delta": hedge}, tmp_path / "a.png")
    report.plot_path_story(0, times, spot[:1], hedge[:1], {"delta": hedge[:1]},
                           tmp_path / "b.png", label=17)
    assert titles == ["path 3: spot, positions and transaction costs",
                      "path 17: spot, positions and transaction costs"]


# ----------------------------------------------------------------------------- learners
REPLAY = {"env": {"id": "hedgearena/HistoricalReplay-v0"}, "arena": {"split": "2010-01-01"}}
VIEW = {"action_mode": "band", "reward_mode": "terminal_mean_variance",
        "risk_aversion": "auto", "pnl_reference": "auto"}


@pytest.mark.parametrize("learner", ["agent", "rllib"])
def test_the_auto_view_is_calibrated_on_the_learners_own_fitting_days(learner: str) -> None:
    """``resolve_view`` / ``resolve_rllib_view`` calibrate ``auto`` on the days the learner
    fits on, cut by its own ``valid_history`` (0.1 here): the same numbers as calibrating on
    those days alone (killed passing 0: calibrated on the whole learning history)."""
    from hedgearena.agents.training import calibrated_view, resolve_rllib_view, resolve_view
    from hedgearena.baselines.benchmark import validation_start
    from hedgearena.run_config import RunConfig
    from hedgearena.training import history_before, training_config

    spec = {"env_kwargs": VIEW, "eval_paths": 128, "valid_history": 0.1}
    if learner == "agent":
        spec["algo"] = "ppo"
    config = training_config(RunConfig.model_validate({**REPLAY, learner: spec}))
    resolve = resolve_view if learner == "agent" else resolve_rllib_view
    resolved = getattr(resolve(config), learner).env_kwargs
    first = validation_start(config.env.config(), 0.1)
    assert first is not None
    alone = calibrated_view(dict(VIEW), history_before(config, first), 128, 0.0)
    whole = calibrated_view(dict(VIEW), config, 128, 0.0)
    assert resolved == alone
    assert resolved != whole


SHORT_LEARNING = {"env": {"id": "hedgearena/HistoricalReplay-v0",
                          "kwargs": {"market_kwargs": {"start": "2010-01-01",
                                                       "end": "2011-12-31"}}},
                  "arena": {"split": "2010-05-01"}}


@pytest.mark.parametrize("learner", ["agent", "deep_hedging", "rllib"])
def test_the_checks_cut_the_share_of_the_days_before_the_split(learner: str) -> None:
    """``check_agent`` (SB3, deep hedging) and ``check_rllib`` cut the history the agent may
    learn on (before ``arena.split``: four months, whose last fifth holds no 30-day episode),
    not the whole history (two years, which would hold one): killed checking on the whole env,
    or ``learning_env`` returning the whole env."""
    from hedgearena.run_config import RunConfig

    if learner == "rllib":
        pytest.importorskip("ray.rllib")
        from hedgearena.agents.rllib import check_rllib as check
        spec = {"num_env_runners": 0}
    else:
        from hedgearena.training import check_agent as check
        spec = {"algo": "ppo" if learner == "agent" else "deep_hedging"}
    config = RunConfig.model_validate({**SHORT_LEARNING, "rllib" if learner == "rllib" else
                                       "agent": spec})
    with pytest.raises(ValueError, match=r"valid_history = 0.2 cuts the history \(2010-01-"
                                         r"\d\d to 2010-04-30\)"):
        check(config)


def test_set_attr_sets_ones_own_attribute_again() -> None:
    """The refusal says "set an attribute of your own": a curriculum callback sets its level
    again and again (``env.set_attr("level", k)``); only the env's own settings are refused
    (the check was ``hasattr`` at call time: the first set made the second one refused)."""
    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    adapter = make_sb3_vec_env("hedgearena/ShortCall-v0", 2, seed=0)
    adapter.set_attr("curriculum_level", 1)
    adapter.set_attr("curriculum_level", 2)
    assert adapter.get_attr("curriculum_level") == [2, 2]
