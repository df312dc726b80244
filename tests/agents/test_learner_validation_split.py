"""SB3 and RLlib agents on a dated history validate on days they do not train on.

Rolling windows of one history overlap: an SB3 or RLlib agent on the replay drew its validation
paths from the days it trained on (the windows of a few thousand start days again), so "the
best validated model" was picked in sample, as deep hedging's was before ``valid_history``.
Now ``agent.valid_history`` / ``rllib.valid_history`` (0.2) keep the last fifth of the days
the agent may learn on (before ``arena.split``) for validation and train on the days before
(the arena's split rule, :func:`hedgearena.baselines.benchmark.split_configs`); the ``auto``
view is calibrated on the training days. Simulated markets are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hedgearena.baselines.benchmark import validation_start
from hedgearena.run_config import RunConfig, load_config
from hedgearena.training import check_agent, fitting_parts, history_before, training_config

REPLAY = {"env": {"id": "hedgearena/HistoricalReplay-v0"}, "arena": {"split": "2010-01-01"}}


class StopError(Exception):
    """Raised by a patched collaborator once it has recorded what it was given."""


def _replay(**agent: Any) -> RunConfig:
    return RunConfig.model_validate({**REPLAY, "agent": {"algo": "ppo", **agent}})


def _days(env_config: Any) -> pd.DatetimeIndex:
    return env_config.market.data.index


def _check_parts(learning: RunConfig, seen: dict[str, Any]) -> None:
    """The training env's kwargs end the day before the validation's first day, and the
    validation env replays the days from it to the split's eve (``seen``: what was recorded)."""
    first = validation_start(learning.env.config(), 0.2)
    assert first is not None
    end = seen["kwargs"]["market_kwargs"]["end"]
    assert pd.Timestamp(end) == pd.Timestamp(first) - pd.Timedelta(days=1)
    validation = _days(seen["validation"])
    assert str(validation[0].date()) == first
    assert str(validation[-1].date()) <= "2009-12-31"


def test_the_fitting_history_ends_before_the_validation_days() -> None:
    """On the replay split at 2010: training days 1999.. then validation days ..2009-12-31."""
    learning = training_config(_replay())
    env_config = learning.env.config()
    fitting, valid = fitting_parts(learning, env_config, 0.2)
    days, fit, val = _days(env_config), _days(fitting.env.config()), _days(valid)
    assert fit[-1] < val[0]  # no day in both
    assert val[-1] == days[-1]
    assert str(val[-1].date()) <= "2009-12-31"  # the split's side
    assert fit[0] == days[0]
    assert len(fit) + len(val) == len(days)  # every learning day in one part
    assert str(val[0].date()) == validation_start(env_config, 0.2)
    assert len(val) == len(days) - round(0.8 * len(days))


def test_simulated_markets_and_zero_keep_one_history() -> None:
    config = RunConfig.model_validate({"agent": {"algo": "ppo"}})
    env_config = config.env.config()
    assert fitting_parts(config, env_config, 0.2) == (config, env_config)
    replay = _replay()
    replay_env = replay.env.config()
    assert fitting_parts(replay, replay_env, 0.0) == (replay, replay_env)


def test_sb3_trains_and_validates_on_their_own_days(monkeypatch, tmp_path: Path) -> None:
    """The SB3 training env replays the days before the validation's; the evaluation callback
    replays the validation days (the old code gave both the whole pre-split history)."""
    from hedgearena.agents import training

    seen: dict[str, Any] = {}
    real_env = training.make_training_env

    def training_env(env_id: str, kwargs: dict[str, Any], *args: Any) -> Any:
        seen["kwargs"] = kwargs
        return real_env(env_id, kwargs, *args)

    def evaluation(env_config: Any, *args: Any, **kwargs: Any) -> Any:
        seen["validation"] = env_config
        raise StopError

    monkeypatch.setattr(training, "make_training_env", training_env)
    monkeypatch.setattr(training, "HedgingEvalCallback", evaluation)
    config = _replay(env_kwargs={"action_mode": "band"},
                     hyperparams={"n_timesteps": 64, "n_envs": 2, "n_steps": 32,
                                  "batch_size": 64})
    learning = training_config(config)
    with pytest.raises(StopError):
        training.train_sb3(learning, learning.env.config(), tmp_path, progress=False)
    _check_parts(learning, seen)


def test_sb3_auto_view_is_calibrated_on_the_training_days() -> None:
    """``auto`` is matched on the band's P&L of the fitting days: equal to calibrating on
    those days alone, not on the whole learning history."""
    from hedgearena.agents.training import calibrated_view

    view = {"action_mode": "band", "reward_mode": "terminal_mean_variance",
            "risk_aversion": "auto", "pnl_reference": "auto"}
    learning = training_config(_replay())
    first = validation_start(learning.env.config(), 0.2)
    assert first is not None
    split = calibrated_view(view, learning, 256, 0.2)
    alone = calibrated_view(view, history_before(learning, first), 256, 0.0)
    whole = calibrated_view(view, learning, 256, 0.0)
    assert split == alone
    assert split != whole


def test_rllib_trains_and_validates_on_their_own_days(monkeypatch, tmp_path: Path) -> None:
    """RLlib's env runners get the fitting days' market, its validation the last days."""
    pytest.importorskip("ray.rllib")
    from hedgearena.agents import rllib

    seen: dict[str, Any] = {}

    class FakeAlgo:
        def train(self) -> dict[str, Any]:
            return {"env_runners": {"num_env_steps_sampled_lifetime": 10**9}}

        def stop(self) -> None:
            pass

    class FakeConfig:
        def build_algo(self) -> FakeAlgo:
            return FakeAlgo()

    def algorithm_config(spec: Any, env_id: str, env_kwargs: dict[str, Any], seed: int) -> Any:
        seen["kwargs"] = env_kwargs
        return FakeConfig()

    def validate(algo: Any, config: Any, env_config: Any, *args: Any) -> None:
        seen["validation"] = env_config
        raise StopError

    monkeypatch.setattr(rllib, "register_rllib_envs", lambda: None)
    monkeypatch.setattr(rllib, "algorithm_config", algorithm_config)
    monkeypatch.setattr(rllib, "_validate", validate)
    config = RunConfig.model_validate({**REPLAY, "rllib": {"n_timesteps": 100}})
    learning = training_config(config)
    with pytest.raises(StopError):
        rllib.train_rllib(learning, learning.env.config(), tmp_path, progress=False)
    _check_parts(learning, seen)


SHORT = {"env": {"id": "hedgearena/HistoricalReplay-v0",
                 "kwargs": {"market_kwargs": {"start": "2010-01-01", "end": "2010-04-30"}}}}


def test_a_share_leaving_no_episode_is_named_before_training() -> None:
    """Four months of days, 30-day episodes: a fifth (17 days) holds no validation episode."""
    config = RunConfig.model_validate({**SHORT, "agent": {"algo": "ppo"}})
    with pytest.raises(ValueError, match=r"valid_history = 0.2 cuts the history"):
        check_agent(config)
    check_agent(config.model_copy(update={"agent": config.agent.model_copy(
        update={"valid_history": 0.0})}))


def test_rllib_checks_its_share_before_ray_starts() -> None:
    pytest.importorskip("ray.rllib")
    from hedgearena.agents.rllib import check_rllib

    config = RunConfig.model_validate({**SHORT, "rllib": {"num_env_runners": 0}})
    with pytest.raises(ValueError, match=r"valid_history = 0.2 cuts the history"):
        check_rllib(config)


@pytest.mark.parametrize(("value", "reason"), [
    ("1.0", "less than 1"), ("-0.1", "greater than or equal to 0"), ("true", "boolean"),
])
def test_valid_history_out_of_range_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=rf"agent.valid_history[\s\S]*{reason}"):
        load_config(None, ["agent.algo=ppo", f"agent.valid_history={value}"])


def test_the_deep_hedger_names_its_own_setting() -> None:
    with pytest.raises(ValueError, match=r"agent.hyperparams.valid_history"):
        RunConfig.model_validate({"agent": {"valid_history": 0.1}})
