"""Fourth input audit (sweep, stress and saved-agent configs): each test names what went wrong.

- ``evaluate`` and ``stress --agent`` scored a model on whatever env an edited ``config.yaml``
  built (another cost, another env id), and on a deep-hedging model copied from another run,
  with no warning: the run's own record of its env (``env.yaml``, and the policy's
  ``model/settings.json``) is now compared with the env the config builds.
- A sweep over a list-valued key (``agent.hyperparams.hidden: [[8], [16, 16]]``) trained
  every trial and then crashed in the summary (``TypeError: unhashable type: 'list'``), for
  good: ``--resume`` crashed alike.
- ``stress.hedgers=[]`` without ``--agent`` was refused only after its folder was written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_refusal import refused
from tiny_runs import DH_TINY, PPO_TINY, TINY_ARENA, train_tiny

from hedgearena.agents.saved import check_saved_agent
from hedgearena.run_config import SweepSpec, load_config
from hedgearena.sweep import RUN_COLUMNS, TRIAL_METRICS, summary_table


@pytest.fixture(scope="module")
def dh_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny deep-hedging run on ShortCall-v0 (cost 0.01), trained once for the module."""
    return train_tiny("deep_hedging", DH_TINY, tmp_path_factory.mktemp("runs"))


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def _edit_config(run: Path, **env_kwargs: object) -> None:
    """Set ``env.kwargs`` of the run's ``config.yaml`` as a user editing the file would."""
    path = run / "config.yaml"
    tree = yaml.safe_load(path.read_text())
    tree["env"]["kwargs"] = {**(tree["env"].get("kwargs") or {}), **env_kwargs}
    path.write_text(yaml.safe_dump(tree))


def test_the_run_as_trained_passes(dh_run: Path) -> None:
    check_saved_agent(dh_run, load_config(dh_run / "config.yaml"))


def test_evaluate_refuses_a_config_edited_to_another_cost(
    dh_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Trained at ProportionalCost(rate=0.01); config.yaml edited to 0.05 was scored at 0.05."""
    run = _copy(dh_run, tmp_path)
    _edit_config(run, cost=0.05)
    message = refused(["evaluate", str(run), "--no-progress"], capsys)
    assert "config.yaml' builds another env than the run trained on" in message
    assert "cost: ProportionalCost(rate=0.01) then, ProportionalCost(rate=0.05) now" in message
    assert "restore the run's own model/ or config.yaml" in message
    assert not (run / "evaluation").exists()
    message = refused(["stress", "--agent", str(run), "--scenarios", "base", "--paths", "64",
                       "--out", str(tmp_path / "stress"), *TINY_ARENA[-1:]], capsys)
    assert "builds another env than the run trained on" in message
    assert not (tmp_path / "stress").exists()


def test_evaluate_refuses_a_config_edited_to_another_env_id(
    dh_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = _copy(dh_run, tmp_path)
    tree = yaml.safe_load((run / "config.yaml").read_text())
    tree["env"] = {"id": "hedgearena/PortfolioInsurance-v0"}
    (run / "config.yaml").write_text(yaml.safe_dump(tree))
    message = refused(["evaluate", str(run), "--no-progress"], capsys)
    assert "builds another env than the run trained on" in message
    assert "book: OptionBook(" in message  # the first differing keys, in order


def test_a_policy_copied_from_another_run_is_refused(dh_run: Path, tmp_path: Path) -> None:
    """model/ swapped for another run's deep hedger (its settings.json records its own env)."""
    run = _copy(dh_run, tmp_path)
    settings = json.loads((run / "model" / "settings.json").read_text())
    settings["env"]["cost"] = "ProportionalCost(rate=0.001)"
    (run / "model" / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match=r"model/settings.json's policy was trained on another "
                                         r"env \(cost: ProportionalCost\(rate=0.001\) then, "
                                         r"ProportionalCost\(rate=0.01\) now\)"):
        check_saved_agent(run, load_config(run / "config.yaml"))


def test_an_sb3_model_records_its_env_and_a_copy_from_another_run_is_refused(
    tmp_path: Path,
) -> None:
    """agent.json held the algorithm and the view only: a PPO model of another env (the same
    observation shape) loaded and was scored as this run's agent."""
    run = train_tiny("ppo", PPO_TINY, tmp_path / "runs")
    view = json.loads((run / "model" / "agent.json").read_text())
    config = load_config(run / "config.yaml")
    assert view["env"] == yaml.safe_load((run / "env.yaml").read_text())  # the run's env
    check_saved_agent(run, config)
    view["env"]["cost"] = "ProportionalCost(rate=0.001)"
    (run / "model" / "agent.json").write_text(json.dumps(view))
    with pytest.raises(ValueError, match=r"model/agent.json's SB3 agent was trained on another "
                                         r"env \(cost: ProportionalCost\(rate=0.001\) then"):
        check_saved_agent(run, config)
    del view["env"]  # saved before agent.json recorded it
    (run / "model" / "agent.json").write_text(json.dumps(view))
    check_saved_agent(run, config)


def test_older_records_are_compared_on_the_keys_they_hold(dh_run: Path, tmp_path: Path) -> None:
    """A folder without env.yaml, or a record without a later setting, is not refused."""
    run = _copy(dh_run, tmp_path)
    config = load_config(run / "config.yaml")
    record = yaml.safe_load((run / "env.yaml").read_text())
    del record["risk_limits"]  # a setting added after the run was trained
    (run / "env.yaml").write_text(yaml.safe_dump(record))
    check_saved_agent(run, config)
    (run / "env.yaml").unlink()
    check_saved_agent(run, config)


def test_a_sweep_over_a_list_valued_key_is_summarised_by_its_text() -> None:
    """The summary's groupby raised ``TypeError: unhashable type: 'list'`` after training."""
    spec = SweepSpec(space={"agent.hyperparams.hidden": [[8], [16, 16]], "seed": [0, 1]})
    table = pd.DataFrame({
        "status": ["ok"] * 4, "agent.hyperparams.hidden": [[8], [8], [16, 16], [16, 16]],
        "seed": [0, 1, 0, 1], "objective": [500.0, 510.0, 490.0, 494.0],
        **{k: [1.0] * 4 for k in [*TRIAL_METRICS, *RUN_COLUMNS] if k != "objective"}})
    summary = summary_table(table, spec)
    assert summary["agent.hyperparams.hidden"].tolist() == ["[16, 16]", "[8]"]
    np.testing.assert_allclose(summary["objective"], [492.0, 505.0])
    assert summary["trials"].tolist() == [2, 2]


def test_stress_with_no_hedger_and_no_agent_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    message = refused(["stress", "--paths", "64", "--scenarios", "base", "--set",
                       "stress.hedgers=[]", "--out", str(tmp_path / "out"), "--no-progress"],
                      capsys)
    assert "nothing to stress: stress.hedgers is empty and no --agent is given" in message
    assert not (tmp_path / "out").exists()


def test_a_scenario_given_parameters_that_do_not_fit_is_refused_not_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """``{gap: {step: 100}}`` on 20 steps ran without the gap, listed as 'not applicable to
    this env' (skip_inapplicable is for scenarios named bare, e.g. a window the env outlasts)."""
    message = refused(["stress", "--paths", "64", "--hedgers", "delta", "--set",
                       "stress.scenarios=[base, {gap: {step: 100}}]", "--out",
                       str(tmp_path / "out"), "--no-progress"], capsys)
    assert ("stress.scenarios gives parameters that do not fit this env: gap: Gap.step must be "
            "at most 20 on a grid of n_steps=20, got 100") in message
    assert not (tmp_path / "out").exists()
