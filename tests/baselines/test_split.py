"""Out-of-sample tuning on the historical replay: ``split`` cuts the history in two.

Without it, the ``:best`` bands are tuned on windows of the same history as the scoring windows
(another seed draws other windows of the same days): the selection is in sample. With it, no
tuning window shares a day with a scoring window, and agents learn before the split too.
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from hedgearena.baselines import benchmark as bench_module
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.benchmark import (
    BenchmarkSettings,
    benchmark,
    split_configs,
    split_date,
)
from hedgearena.envs.config import make_config
from hedgearena.run_config import RunConfig
from hedgearena.training import training_config

SPLIT = "2010-01-01"


def _days(result) -> tuple[np.datetime64, np.datetime64]:
    """The first and last calendar day any path of an arena run replays."""
    dates = result.batch.market.dates
    return dates.min(), dates.max()


def test_split_configs_cut_the_history_so_no_window_shares_a_day() -> None:
    config = make_config("HistoricalReplay")
    tune, score = split_configs(config, SPLIT)
    split = np.datetime64(SPLIT)
    tuned = run_arena(tune, [bench_module.parse_hedger("delta")], 3_000, seed=1,
                      progress=False, keep_batches=True)
    scored = run_arena(score, [bench_module.parse_hedger("delta")], 3_000, seed=0,
                       progress=False, keep_batches=True)
    first_tuned, last_tuned = _days(tuned)
    first_scored, last_scored = _days(scored)
    assert last_tuned < split <= first_scored
    # each part is used, not just its edge: windows spread over years on both sides
    assert last_tuned - first_tuned > np.timedelta64(5 * 365, "D")
    assert last_scored - first_scored > np.timedelta64(5 * 365, "D")
    # the whole history is the union of the parts (no day dropped but the cut)
    assert len(tune.market) + len(score.market) == len(config.market)
    assert split_configs(config, None) == (config, config)


def test_split_errors_name_the_setting_and_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"split \(2010-01-01\) cuts a dated market.*GBM"):
        split_configs(make_config("ShortCall"), SPLIT)
    replay = make_config("HistoricalReplay")
    with pytest.raises(ValueError, match=r"split \(1990-01-01\): the history before it cannot "
                                         r"hold an episode of 21 steps"):
        split_configs(replay, "1990-01-01")
    with pytest.raises(ValueError, match=r"history from it cannot hold an episode of 21 steps"):
        split_configs(replay, "2018-12-20")
    for bad in ("not a date", "2010-01-01 12:00", 2010, None):
        with pytest.raises(ValueError, match="split must be a date such as '2010-01-01'"):
            split_date(bad)
    with pytest.raises(ValueError, match="split must be a date"):
        BenchmarkSettings(split="yesterday")
    assert BenchmarkSettings(split=datetime.date(2010, 1, 1)).split == SPLIT  # YAML's dates


def test_benchmark_tunes_before_the_split_and_scores_after(monkeypatch) -> None:
    seen = []

    def spy(config, hedgers, n_paths, seed, **kwargs):
        seen.append((config.market.data.index[0], config.market.data.index[-1], seed))
        return run_arena(config, hedgers, n_paths, seed, **kwargs)

    monkeypatch.setattr(bench_module, "run_arena", spy)
    settings = BenchmarkSettings(n_paths=2_000, tune_paths=2_000, seed=3, n_boot=20,
                                 frontier=False, progress=False, split=SPLIT)
    out = benchmark(make_config("HistoricalReplay"), ["delta", "band:best"], settings)
    (_, tune_last, tune_seed), (score_first, _, score_seed) = seen
    assert (tune_seed, score_seed) == (4, 3)
    assert tune_last < np.datetime64(SPLIT) <= score_first
    assert out.arena.overlap is not None
    assert out.arena.overlap.start.min() >= np.datetime64(SPLIT).astype(np.int64)
    note = bench_module.report_note(out, settings)
    assert "of the history before 2010-01-01" in note
    assert "(out of sample)" in note


def test_without_a_split_the_replay_note_says_tuning_is_in_sample() -> None:
    settings = BenchmarkSettings(n_paths=1_000, tune_paths=1_000, n_boot=20, frontier=False,
                                 progress=False)
    out = benchmark(make_config("HistoricalReplay"), ["delta", "band:best"], settings)
    note = bench_module.report_note(out, settings)
    assert "sharing days with them (in sample" in note
    gbm = benchmark(make_config("ShortCall"), ["delta", "band:best"], settings)
    assert "in sample" not in bench_module.report_note(gbm, settings)


def _run_config(**arena) -> RunConfig:
    return RunConfig.model_validate({
        "env": {"id": "hedgearena/HistoricalReplay-v0",
                "kwargs": {"market_kwargs": {"start": "2005-01-01"}}},
        "arena": arena,
    })


def _deep_hedging_run(tmp_path) -> RunConfig:
    """A deep-hedging run on the replay with the split, in ``tmp_path / "run"``."""
    return RunConfig.model_validate({
        "env": {"id": "hedgearena/HistoricalReplay-v0"}, "agent": {"algo": "deep_hedging"},
        "arena": {"split": SPLIT}, "out": str(tmp_path), "name": "run",
    })


def _with_split(config: RunConfig, split: str | None) -> RunConfig:
    """``config`` with ``arena.split`` replaced."""
    return config.model_copy(update={"arena": config.arena.model_copy(update={"split": split})})


def test_agents_learn_on_the_history_before_the_split() -> None:
    config = _run_config(split=datetime.date(2010, 1, 1))  # as YAML reads 2010-01-01
    assert config.arena.split == SPLIT
    learning = training_config(config)
    assert learning.env.kwargs["market_kwargs"] == {"start": "2005-01-01", "end": "2009-12-31"}
    market = learning.env.config().market
    assert (str(market.data.index[0].date()), str(market.data.index[-1].date())) == (
        "2005-01-03", "2009-12-31")
    assert config.env.kwargs["market_kwargs"] == {"start": "2005-01-01"}  # not changed
    earlier = RunConfig.model_validate({
        "env": {"id": "hedgearena/HistoricalReplay-v0",
                "kwargs": {"market_kwargs": {"end": "2008-06-30"}}},
        "arena": {"split": SPLIT},
    })
    assert training_config(earlier).env.kwargs["market_kwargs"] == {"end": "2008-06-30"}
    assert training_config(_run_config()) == _run_config()
    with pytest.raises(ValueError, match=r"arena\.split"):
        _run_config(split="soon")


def test_train_run_trains_before_the_split_and_keeps_the_run_config(monkeypatch, tmp_path) -> None:
    import hedgearena.training as training

    trained = {}

    def fake_train(config, env_config, run_dir, progress):
        trained["config"], trained["env"] = config, env_config
        return {"algo": "deep_hedging"}

    monkeypatch.setattr(training, "train_agent", fake_train)
    config = _deep_hedging_run(tmp_path)
    saved, _ = training.train_run(config, progress=False)
    assert trained["env"].market.data.index[-1] < np.datetime64(SPLIT)
    assert trained["config"].env.kwargs["market_kwargs"]["end"] == "2009-12-31"
    assert "market_kwargs" not in saved.env.kwargs  # the run's config keeps the whole history
    gbm = config.model_copy(update={"env": config.env.model_copy(
        update={"id": "hedgearena/ShortCall-v0"})})
    with pytest.raises(ValueError, match="paths have no dates"):
        training.train_run(gbm.model_copy(update={"name": "gbm"}), progress=False)
    assert not (tmp_path / "gbm").exists()


def test_a_refused_split_leaves_no_benchmark_folder(tmp_path, capsys) -> None:
    from hedgearena.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--set", "arena.split=2010-01-01", "--out", str(tmp_path / "out"),
              "--no-progress"])
    assert exit_info.value.code != 0
    assert "split (2010-01-01) cuts a dated market's history" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_resume_under_another_split_is_refused(monkeypatch, tmp_path) -> None:
    import hedgearena.training as training

    monkeypatch.setattr(training, "train_agent", lambda *args: {"algo": "deep_hedging"})
    config = _deep_hedging_run(tmp_path)
    training.train_run(config, progress=False)
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / "step_10.pt").write_bytes(b"weights")
    training.train_run(config, progress=False)  # the same split resumes
    later = _with_split(config, "2012-01-01")
    with pytest.raises(ValueError, match=r"arena\.split: '2010-01-01' -> '2012-01-01'"):
        training.train_run(later, progress=False)


def test_evaluating_an_agent_on_history_it_learnt_on_is_refused(monkeypatch, tmp_path) -> None:
    import hedgearena.training as training

    monkeypatch.setattr(training, "train_agent", lambda *args: {"algo": "deep_hedging"})
    config = _deep_hedging_run(tmp_path)
    training.train_run(config, progress=False)
    run_dir = tmp_path / "run"

    def evaluate(split):
        training.evaluate_run(run_dir, _with_split(config, split), False)

    for earlier in (None, "2009-06-01"):
        with pytest.raises(ValueError, match=r"learnt on the history before arena\.split = "
                                             r"2010-01-01: scoring it with arena\.split = "):
            evaluate(earlier)
    for later in (SPLIT, "2012-01-01"):  # out of sample: refused only for the missing model
        with pytest.raises(ValueError, match="has no trained model"):
            evaluate(later)
