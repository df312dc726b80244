"""A new user's journey through the README (stop 31): what was found and fixed.

- The GARCH look-ahead warning of a CSV without implied vols advises ``start='<date>'`` for
  out-of-sample work; following the advice did not silence it (it was raised before the series
  was cut to ``[start, end]``).
- CPPI on a book without a put said "... but the book has none: give floor=" and stopped.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgearena.envs.historical import HistoricalReplay


def _csv(tmp_path: Path) -> Path:
    """Closes of 2005-2012 (business days), no vol column: the GARCH estimate is used."""
    dates = pd.bdate_range("2005-01-03", "2012-12-31")
    returns = np.random.default_rng(0).normal(0.0, 0.01, len(dates))
    path = tmp_path / "prices.csv"
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"),
                  "close": 100 * np.exp(np.cumsum(returns))}).to_csv(path, index=False)
    return path


def _look_ahead(**kwargs: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HistoricalReplay.load(**kwargs)  # type: ignore[arg-type]
    return [str(w.message) for w in caught if "look-ahead" in str(w.message)]


def test_the_look_ahead_warning_is_silenced_by_the_start_it_advises(tmp_path):
    csv = _csv(tmp_path)
    (message,) = _look_ahead(csv=csv)
    advised = re.search(r"start='(\d{4}-\d\d-\d\d)'", message)
    assert advised is not None, message
    assert _look_ahead(csv=csv, start=advised.group(1)) == []
    assert _look_ahead(csv=csv, start=advised.group(1), end="2011-06-30") == []
    last = re.search(r"fitted on the closes to (\d{4}-\d\d-\d\d)", message)
    assert last is not None, message
    assert _look_ahead(csv=csv, start=last.group(1)) == [message]  # one burn-in row kept
    assert _look_ahead(csv=csv, end="2011-06-30") == [message]  # no start: all burn-in kept


def test_cppi_without_a_floor_on_a_book_without_a_put_names_both_spellings():
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.portfolio_insurance import CPPI
    from hedgearena.envs.config import make_config

    with pytest.raises(ValueError, match=r"but the book has none: give the floor as a fraction "
                                         r"of the initial spot, CPPI\(floor=0.9\) in Python or "
                                         r"the hedger spec cppi:4:0.9"):
        run_arena(make_config("ShortCall"), [CPPI()], n_paths=4, seed=0, progress=False)


def test_a_stress_of_saved_agents_under_stress_cost_says_whose_cost_they_pay(tmp_path, capsys):
    """``train.py stress --agent`` scores every hedger under ``stress.cost`` (fee, spread,
    impact), not the 1% the agent trained on and observes: the ranking can flip (the audit's
    PPO run: 404.8 against delta's 361.7 under stress.cost, 512 against 592 under its own), and
    neither the console nor the report said so. Both now do; with stress.cost null, nothing."""
    import json

    from tiny_runs import PPO_TINY, train_tiny

    from hedgearena.cli import main

    run = train_tiny("ppo", PPO_TINY, tmp_path / "runs")
    args = ["stress", "--agent", str(run), "--scenarios", "base", "--paths", "200", "--hedgers",
            "delta", "--set", "stress.n_boot=10", "--set", "stress.worst_paths=false",
            "--no-progress", "--out", str(tmp_path)]
    main([*args, "--name", "stressed"])
    said = " ".join(capsys.readouterr().out.split())
    notes = json.loads((tmp_path / "stressed" / "stress.json").read_text())["notes"]
    note = ("The agents (ppo agent) trained on the env's cost ProportionalCost(rate=0.01); like "
            "every hedger here they pay stress.cost, CompositeCost(")
    assert notes[0].startswith(note)
    assert notes[0].endswith("--set stress.cost=null stresses them under their own.")
    assert note in said
    assert notes[0] in (tmp_path / "stressed" / "stress.md").read_text()
    main([*args, "--name", "own", "--set", "stress.cost=null"])
    notes = json.loads((tmp_path / "own" / "stress.json").read_text())["notes"]
    assert not any(n.startswith("The agents") for n in notes)


# ------------------------------------------------ saved agents scored from Python, in sample
@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """A tiny PPO run on ShortCall-v0 (seed 0) and one on the replay learnt before 2010."""
    from tiny_runs import PPO_TINY, TINY_ARENA, train_tiny

    from hedgearena.cli import main

    out = tmp_path_factory.mktemp("runs")
    short_call = train_tiny("ppo", PPO_TINY, out)
    params = {**PPO_TINY, "n_steps": 21, "n_timesteps": 336, "batch_size": 48}  # 21-day episodes
    main(["train", "--agent", "ppo", "--env", "hedgearena/HistoricalReplay-v0", "--out",
          str(out), "--set", "arena.split=2010-01-01", "--set", "agent.eval_paths=64",
          "--set", f"agent.hyperparams={json.dumps(params)}", *TINY_ARENA])
    return {"short_call": short_call, "replay": out / "ppo-HistoricalReplay-seed0"}


def test_the_python_api_refuses_scoring_a_saved_agent_on_its_training_paths(saved_runs):
    """The README's route (load_saved_agent, then benchmark or run_arena) scored a seed-0 agent
    on seed 0, its training paths (the defaults of both), silently; the CLI refuses it."""
    from hedgearena.agents.saved import load_saved_agent
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark
    from hedgearena.envs.config import make_config

    agent = load_saved_agent(saved_runs["short_call"])
    trained = (r"the agent of .*ppo-ShortCall-seed0: the SB3 training env's seed equals the "
               r"scoring seed \(run_arena's seed, BenchmarkSettings.seed\) \(0\)")
    with pytest.raises(ValueError, match=trained):
        run_arena(make_config("ShortCall"), [agent], n_paths=8, progress=False)
    with pytest.raises(ValueError, match=trained):
        benchmark(make_config("ShortCall"), ["delta", agent],
                  BenchmarkSettings(n_paths=8, progress=False, frontier=False))
    result = run_arena(make_config("ShortCall"), [agent], n_paths=8, seed=5, progress=False)
    assert np.isfinite(result.totals(agent.name)["pnl"]).all()


def test_the_python_api_refuses_a_replay_of_the_history_before_the_agents_split(saved_runs):
    from hedgearena.agents.saved import load_saved_agent
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark
    from hedgearena.envs.config import make_config

    agent = load_saved_agent(saved_runs["replay"])
    before = (r"learnt on the history before arena.split = 2010-01-01: scoring it on a replay "
              r"from 1999-\d\d-\d\d would replay days it trained on; score it from 2010-01-01 "
              r"on \(BenchmarkSettings\(split='2010-01-01'\)")
    with pytest.raises(ValueError, match=before):
        run_arena(make_config("HistoricalReplay"), [agent], n_paths=8, seed=5, progress=False)
    settings = BenchmarkSettings(n_paths=8, seed=5, progress=False, frontier=False,
                                 split="2010-01-01")
    report = benchmark(make_config("HistoricalReplay"), ["delta", agent], settings)
    assert agent.name in set(report.table.index)
    later = make_config("HistoricalReplay", market_kwargs={"start": "2012-01-03"})
    run_arena(later, [agent], n_paths=8, seed=5, progress=False)  # a later start: out of sample


def test_an_rllib_agent_refuses_its_env_runners_seeds():
    """An RLlib run's env runner k resets with seed + k (k = 0 .. num_env_runners)."""
    from hedgearena.agents.saved import check_out_of_sample
    from hedgearena.envs.config import make_config
    from hedgearena.run_config import load_config

    config = load_config(None, ["seed=7", "rllib.num_env_runners=2"])
    for seed in (7, 8, 9):
        with pytest.raises(ValueError, match=rf"the agent of run: the scoring seed .* \({seed}\) "
                                             r"is one of the RLlib agent's env runner seeds"):
            check_out_of_sample(Path("run"), config, True, seed, make_config("ShortCall"))
    check_out_of_sample(Path("run"), config, True, 10, make_config("ShortCall"))
    check_out_of_sample(Path("run"), config, False, 8, make_config("ShortCall"))  # SB3: 7 only


def test_the_memory_refusal_counts_the_frontier_plots_members_aloud(capsys):
    """``benchmark --hedgers delta`` with too many paths said "results for 33 hedger(s)": the
    frontier plot's band members were counted, unnamed (arena.frontier=false drops them)."""
    from cli_refusal import refused

    said = refused(["benchmark", "--hedgers", "delta", "--paths", "100000000000",
                    "--no-progress"], capsys)
    assert re.search(r"results for (\d+) hedger\(s\) \(1 scored and the frontier plot's \d+ band "
                     r"members: frontier=False, arena.frontier=false, drops those\)", said), said
    said = refused(["benchmark", "--hedgers", "delta", "--paths", "100000000000",
                    "--set", "arena.frontier=false", "--no-progress"], capsys)
    assert "results for 1 hedger(s), more than" in said


def test_hints_give_the_command_lines_spelling_and_the_adapters_keyword():
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.delta_gamma import DeltaGamma
    from hedgearena.envs.config import make_config
    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    with pytest.raises(ValueError, match=r"--set env.kwargs.hedge_option=true"):
        run_arena(make_config("ShortCall"), [DeltaGamma()], n_paths=4, seed=1, progress=False)
    env = make_sb3_vec_env("hedgearena/ShortCall-v0", 2)
    with pytest.raises(ValueError, match=r"make_sb3_vec_env\(env_id, num_envs, "
                                         r"reward_scale=\.\.\.\)"):
        env.set_attr("reward_scale", 2.0)


def test_a_rerun_may_spell_out_an_env_default_but_not_change_it(tmp_path, capsys):
    """Resuming compared the env's keywords as written: ``--set env.kwargs.cost=0.01`` on
    ShortCall-v0 (whose cost is 0.01) was refused as "unset -> 0.01". Equal env configs now
    resume; another cost is still refused."""
    from cli_refusal import refused
    from tiny_runs import PPO_TINY, TINY_ARENA, train_tiny

    from hedgearena.cli import main

    train_tiny("ppo", PPO_TINY, tmp_path)
    again = ["train", "--agent", "ppo", "--out", str(tmp_path), "--set",
             f"agent.hyperparams={json.dumps(PPO_TINY)}", "--set", "agent.eval_paths=128",
             *TINY_ARENA]
    main([*again, "--set", "env.kwargs.cost=0.01"])  # the default, written out
    said = refused([*again, "--set", "env.kwargs.cost=0.02"], capsys)
    assert "holds checkpoints trained with other settings (" in said
    assert "env.kwargs.cost: 0.01 -> 0.02)" in said  # (and the auto view calibrated anew)


def test_sb3s_own_refusal_prints_every_hyperparameter_given():
    """The fallback message left policy_kwargs out of the hyperparameters it printed."""
    from hedgearena.agents.sb3 import build_model
    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    venv = make_sb3_vec_env("hedgearena/ShortCall-v0", 2)
    given = {"n_steps": 1, "batch_size": 1, "policy_kwargs": "dict(net_arch=[8])"}
    with pytest.raises(ValueError, match=re.escape(f"ppo rejected its hyperparameters {given}: "
                                                   "`batch_size` must be greater than 1")):
        build_model("ppo", venv, given, seed=0)
