"""Deep hedging on a dated history validates on days it does not train on.

Rolling windows of one history overlap: with the replay's ~5,000 days, a training set of 2^17
windows holds every start day ~30 times, and a validation set drawn from the same days is the
training set again, so "the best validated weights" were picked on the data they were fitted
to. The trainer now validates on the history's last ``valid_history`` share of days (0.2) and
trains on the days before (the arena's own split rule, ``split_configs``); 0 keeps the whole
history for both.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.agents.deep_hedging import DeepHedgingTrainer, TrainerConfig
from hedgearena.baselines.benchmark import validation_split
from hedgearena.envs.config import make_config


def _days(config: object) -> np.ndarray:
    return config.market.data.index.to_numpy()  # type: ignore[attr-defined]


def test_the_replay_trains_before_the_days_it_validates_on() -> None:
    config = make_config("HistoricalReplay")
    train, valid = validation_split(config, 0.2)
    days, t, v = _days(config), _days(train), _days(valid)
    assert t[-1] < v[0]  # no day in both parts
    assert len(t) + len(v) == len(days)  # every day in one
    assert len(v) == len(days) - round(0.8 * len(days))
    assert train.market.window_starts(train.n_steps) >= 1


def test_the_trainers_paths_come_from_their_parts() -> None:
    """The training paths' spots are closes of the training days only, the validation paths'
    of the validation days only (float closes: a day's close names the day)."""
    config = make_config("HistoricalReplay")
    trainer = DeepHedgingTrainer(
        config, config=TrainerConfig(steps=1, batch_size=64, n_train=256, n_valid=256,
                             valid_history=0.2),
        progress=False,
    )
    train, valid = validation_split(config, 0.2)
    train_closes = set(train.market.data["close"].to_numpy().tolist())
    valid_closes = set(valid.market.data["close"].to_numpy().tolist())
    train_spots = trainer.training_paths.episode.spot.numpy().ravel().tolist()
    valid_spots = trainer.validation_paths.episode.spot.numpy().ravel().tolist()
    to32 = lambda values: {float(np.float32(x)) for x in values}  # noqa: E731 (float32 paths)
    assert to32(train_spots) <= to32(train_closes)
    assert to32(valid_spots) <= to32(valid_closes)
    assert not to32(valid_spots) & (to32(train_closes) - to32(valid_closes))


def test_zero_and_simulated_markets_keep_one_config() -> None:
    assert TrainerConfig().valid_history == 0.2
    replay = make_config("HistoricalReplay")
    assert validation_split(replay, 0.0) == (replay, replay)
    gbm = make_config("ShortCall")
    assert validation_split(gbm, 0.2) == (gbm, gbm)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan, math.inf, True, "0.2", None])
def test_valid_history_outside_zero_one_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"valid_history must be a number in \[0, 1\)"):
        TrainerConfig(valid_history=bad)  # type: ignore[arg-type]


def test_a_validation_part_too_short_for_an_episode_names_valid_history() -> None:
    short = make_config("HistoricalReplay", market_kwargs={"start": "2018-10-01",
                                                           "end": "2018-12-31"})
    with pytest.raises(ValueError, match=r"valid_history = 0.2 cuts the history \(2018-10-01 to "
                                         r"2018-12-31\) at 2018-12-\d\d for validation"):
        validation_split(short, 0.2)


def test_train_py_refuses_a_history_too_short_to_split_before_writing(tmp_path, capsys) -> None:
    """A deep hedger on a replay too short for a validation part is refused by the run's checks
    (nothing written), naming valid_history and how to turn it off."""
    from hedgearena.cli import main

    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", "hedgearena/HistoricalReplay-v0", "--set",
              "env.kwargs.market_kwargs={start: 2018-10-01, end: 2018-12-31}", "--out", str(out),
              "--no-progress"])
    assert exit_info.value.code == 2
    assert not out.exists()
    err = " ".join(capsys.readouterr().err.split())
    assert "valid_history = 0.2 cuts the history (2018-10-01 to 2018-12-31)" in err
    assert "(0 validates on the whole history)" in err
