"""A user's journey with the run checks, the stress report's notes and the hedger specs.

- "A refused config leaves no run folder": ``train.py`` (and ``evaluate``, ``stress``) refuse
  ``paths`` and ``tune_paths`` whose arena results would not fit in memory before they train
  or write, naming the setting, its size and what fits. The bound is the arena's own
  (``hedgearena.baselines.arena.result_bytes``), checked without simulating; it used to be met
  at scoring time only, after the agent had trained (or the tuning had run) and the folder
  was written. The byte counts below are worked out by hand from what a result keeps: 18
  float64 episode totals a path and hedger, 10 attribution terms a path and recorded hedger,
  7 records a decision of a kept path and recorded hedger, and the spot and the model hedge
  (``n_steps + 1`` each) of a kept path.
- The stress report's ``(tuned)`` and ``(fitted)`` lines say the choice was made on the
  unstressed env and is used unchanged in every scenario (the benchmark's lines do not).
- An unknown hedger's message lists the specs the benchmark resolves too (``ww:best``...,
  ``mv_delta:fit[:edge...]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before the CLI, as the CLI's tests do)
from hedgearena.baselines.benchmark import (
    BenchmarkSettings,
    benchmark,
    report_note,
    tune_family,
    tuned_family,
)
from hedgearena.baselines.minimum_variance import fit_spec_edges
from hedgearena.baselines.registry import FAMILIES, parse_hedger
from hedgearena.baselines.stress import StressSettings, stress_test
from hedgearena.cli import main
from hedgearena.envs.config import make_config
from hedgearena.run_config import load_config
from hedgearena.training import check_arena, evaluate_run

TINY = {"steps": 2, "batch_size": 32, "n_train": 64, "n_valid": 32, "eval_every": 1,
        "hidden": [4]}
"""A deep hedger trained in a second (the checks under test come before it trains)."""
N_STEPS = 20
"""ShortCall-v0's steps (and decisions) an episode."""
HUGE = 10**12
"""Paths no machine holds the results of (more than a petabyte for any hedger)."""


def _bytes(n_paths: int, n_hedgers: int, n_recorded: int, n_kept: int) -> int:
    """A ShortCall-v0 result's bytes, worked out by hand (see the module docstring)."""
    per_path = n_hedgers * 18 * 8 + n_recorded * 10 * 8
    per_kept = n_recorded * 7 * 8 * N_STEPS + 2 * 8 * (N_STEPS + 1)
    return n_paths * per_path + n_kept * per_kept


def _gib(n_bytes: int) -> str:
    return f"about {n_bytes / 2**30:,.1f} GiB"


def _train(tmp_path: Path, *settings: str) -> list[str]:
    argv = ["train", "--out", str(tmp_path), "--name", "run", "--no-progress",
            "--set", f"agent.hyperparams={json.dumps(TINY)}"]
    return argv + [arg for setting in settings for arg in ("--set", setting)]


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make training fail loudly: a check that lets a run through reaches it."""
    def train_agent(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the run trained: the check let it through")

    monkeypatch.setattr("hedgearena.training.train_agent", train_agent)


def _memory(monkeypatch: pytest.MonkeyPatch, n_bytes: int) -> None:
    """The machine's memory as the arena reads it."""
    monkeypatch.setattr("hedgearena.baselines.arena.physical_memory", lambda: n_bytes)


# ------------------------------------------------------------------ 1. refused before writing
def test_train_refuses_scoring_paths_beyond_memory_before_it_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 8 default hedgers and the agent, recorded (their attribution, the drawn path's
    # records), and the frontier's 31 band-family members by their totals: it used to train
    # and then fail in the benchmark, the run folder written.
    _no_training(monkeypatch)
    err = _refused(_train(tmp_path, f"arena.paths={HUGE}"), capsys)
    n_frontier = sum(len(grid) for _, grid in FAMILIES.values())
    assert n_frontier == 31
    need = _bytes(HUGE, 8 + 1 + n_frontier, 9, 1)
    assert f"arena.paths={HUGE:,} would keep {_gib(need)} of results for 40 hedger(s)" in err
    assert "use fewer paths (about" in err
    assert "fit in half of it)" in err
    assert not (tmp_path / "run").exists()


def test_train_refuses_tuning_paths_of_a_best_family_beyond_memory_before_it_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ww:best's tuning runs its 11 members on every tuning path, by their totals, each path's
    # spot and model hedge kept: 1,920 bytes a path.
    _no_training(monkeypatch)
    err = _refused(_train(tmp_path, "arena.paths=16", f"arena.tune_paths={HUGE}",
                          "arena.hedgers=[delta, 'ww:best']"), capsys)
    need = _bytes(HUGE, 11, 0, HUGE)
    assert need == HUGE * 1_920
    assert (f"arena.tune_paths: 'ww:best' is tuned on all of them (11 members of its grid): "
            f"arena.tune_paths={HUGE:,} would keep {_gib(need)} of results for 11 hedger(s)") in err
    assert "record_paths" not in err  # no per-decision records to cut (it said "0 bytes")
    assert not (tmp_path / "run").exists()


def test_the_check_and_the_tuning_run_share_their_bound_to_the_byte(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # 64 tuning paths of ww:best take 64 x 1,920 bytes: refused one byte short, by the check
    # and by the tuning run itself; at that memory both go through.
    config = load_config(overrides=["arena.paths=1", "arena.tune_paths=64",
                                    "arena.hedgers=[delta, 'ww:best']"])
    need = _bytes(64, 11, 0, 64)
    settings = config.arena.settings(False)
    _memory(monkeypatch, need - 1)
    with pytest.raises(ValueError, match=r"arena.tune_paths: 'ww:best' is tuned on all of them"):
        check_arena(config)
    with pytest.raises(ValueError, match=r"n_paths=64 would keep"):
        tune_family(config.env.config(), "ww", settings)
    _memory(monkeypatch, need)
    check_arena(config)
    tune_family(config.env.config(), "ww", settings)


def test_the_benchmark_command_counts_no_agent_to_the_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # train.py benchmark scores arena.hedgers alone: one hedger, recorded, the drawn path's
    # records kept. One byte short it is refused before its folder (it used to be refused by
    # the benchmark, run_config.yaml written); at the bound it runs, the arena agreeing.
    argv = ["benchmark", "--out", str(tmp_path), "--name", "bench", "--no-progress",
            "--set", "arena.paths=100", "--set", "arena.frontier=false",
            "--set", "arena.hedgers=[delta]", "--set", "arena.n_boot=10"]
    need = _bytes(100, 1, 1, 1)
    _memory(monkeypatch, need - 1)
    err = _refused(argv, capsys)
    assert not (tmp_path / "bench").exists()
    assert "arena.paths=100 would keep about 0.0 GiB of results for 1 hedger(s)" in err
    _memory(monkeypatch, need)
    main(argv)
    assert (tmp_path / "bench" / "scores.csv").is_file()


def test_evaluate_refuses_scoring_paths_beyond_memory_before_it_writes(tmp_path: Path) -> None:
    # The agent is loaded after the checks: none is needed for the refusal (it used to be the
    # missing model that was named, or with one, the benchmark after loading it).
    run = tmp_path / "run"
    load_config(overrides=[f"out={tmp_path}", "name=run"]).dump(run / "config.yaml")
    config = load_config(run / "config.yaml", [f"arena.paths={HUGE}"])
    with pytest.raises(ValueError, match=rf"^arena.paths={HUGE:,} would keep about"):
        evaluate_run(run, config, progress=False)
    assert not (run / "evaluation").exists()


def _stress(tmp_path: Path, *settings: str) -> list[str]:
    argv = ["stress", "--env", "hedgearena/ShortCall-v0", "--scenarios", "base", "calm",
            "--out", str(tmp_path), "--name", "stressed", "--no-progress"]
    return argv + [arg for setting in settings for arg in ("--set", setting)]


def test_stress_refuses_paths_beyond_memory_before_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One hedger, every path's records kept: it used to fail in the first scenario's run,
    # run_config.yaml written, naming n_paths.
    err = _refused(_stress(tmp_path, "stress.hedgers=[delta]", f"stress.paths={HUGE}"), capsys)
    assert not (tmp_path / "stressed").exists()
    need = _bytes(HUGE, 1, 1, HUGE)
    assert f"scenario 'base': stress.paths={HUGE:,} would keep {_gib(need)} of results" in err


def test_stress_refuses_tuning_paths_beyond_memory_before_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(_stress(tmp_path, "stress.hedgers=[delta, 'zakamouline:best']",
                           "stress.paths=8", f"stress.tune_paths={HUGE}"), capsys)
    assert not (tmp_path / "stressed").exists()
    need = _bytes(HUGE, 11, 0, HUGE)
    assert (f"stress.tune_paths: 'zakamouline:best' is tuned on all of them (11 members of its "
            f"grid): stress.tune_paths={HUGE:,} would keep {_gib(need)} of results") in err


def test_the_python_api_refuses_before_it_tunes(monkeypatch: pytest.MonkeyPatch) -> None:
    # benchmark() and stress_test() check every run before the first tuning: a family tuned
    # first used to run before a later run was refused.
    def tune(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tuned before the memory check")

    monkeypatch.setattr("hedgearena.baselines.benchmark.tune_family", tune)
    config = make_config("ShortCall")
    with pytest.raises(ValueError, match=rf"^tune_paths: 'ww:best' .* tune_paths={HUGE:,}"):
        benchmark(config, ["delta", "ww:best"],
                  BenchmarkSettings(n_paths=8, tune_paths=HUGE, frontier=False, progress=False))
    with pytest.raises(ValueError, match=rf"^scenario 'base': n_paths={HUGE:,} would keep"):
        stress_test(config, ["delta", "ww:best"], ["base"],
                    StressSettings(n_paths=HUGE, worst_paths=False, progress=False))


# ------------------------------------------------------------------ 2. the stress report's notes
def test_the_stress_notes_say_the_choice_is_the_unstressed_envs(tmp_path: Path) -> None:
    config = make_config("ShortCall")
    specs = ["delta", "band:best", "mv_delta:fit"]
    settings = StressSettings(n_paths=64, tune_paths=256, n_boot=10, worst_paths=False,
                              progress=False)
    report = stress_test(config, specs, ["base", "calm"], settings, out_dir=tmp_path)
    tuned, fitted = report.notes
    assert tuned.startswith("(tuned): ")
    assert tuned.endswith(". Each parameter was chosen on the unstressed env and is used "
                          "unchanged in every scenario.")
    assert fitted.startswith("(fitted): ")
    assert fitted.endswith(". The coefficients were fitted on the unstressed env and are used "
                           "unchanged in every scenario.")
    text = (tmp_path / "stress.md").read_text()
    assert tuned in text
    assert fitted in text
    scored = benchmark(config, specs, BenchmarkSettings(n_paths=64, tune_paths=256, n_boot=10,
                                                        frontier=False, progress=False))
    note = report_note(scored, BenchmarkSettings(n_paths=64, tune_paths=256))
    assert note is not None
    assert "(tuned): " in note
    assert "(fitted): " in note
    assert "unstressed" not in note  # the benchmark's lines as they were
    assert "scenario" not in note


# ------------------------------------------------------------------ 3. unknown hedgers
def test_an_unknown_hedger_lists_the_specs_the_benchmark_resolves() -> None:
    with pytest.raises(ValueError, match=r"^unknown hedger 'wq' in 'wq:best'; known: ") as refused:
        parse_hedger("wq:best")
    message = str(refused.value)
    assert "known: no_hedge, delta[:every]" in message  # the builders' usages, as before
    assert message.endswith("; and, resolved by the benchmark on its tuning paths: ww:best, "
                            "zakamouline:best, band:best (tuned), mv_delta:fit[:edge...] "
                            "(fitted)")
    for family in FAMILIES:  # each form listed is one the benchmark resolves
        assert tuned_family(f"{family}:best") == family
    assert fit_spec_edges("mv_delta:fit") == ()
    assert fit_spec_edges("mv_delta:fit:0.1") == (0.1,)
