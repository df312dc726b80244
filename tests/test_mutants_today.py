"""Tests that kill mutants the suite let live (hand-made mutation testing of one day's changes).

Each test names the code it pins and the mutation that survived every other test: flipping,
dropping or widening the check it covers made no test fail before. All are small, synthetic
inputs (no training, no GARCH fit), so the file runs in seconds.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgearena.agents import saved
from hedgearena.envs.historical import MIN_SCALED_VOL, HistoricalReplay
from hedgearena.run_config import RunConfig


def _frame(dates: list[str] | pd.DatetimeIndex, close: object = None,
           iv: object = 0.2) -> pd.DataFrame:
    n = len(dates)
    close = np.linspace(100.0, 100.0 + n - 1, n) if close is None else close
    return pd.DataFrame({"date": [str(d) for d in dates], "close": close, "iv": iv})


# ------------------------------------------------------------------ envs/historical.py
def test_a_missing_date_in_a_datetime_index_is_named_as_missing() -> None:
    """_check_index's NaT check (mutant: dropped; the NaT then read as a step back in time and
    was refused as "unsorted", naming no missing date)."""
    index = pd.DatetimeIndex(["2020-01-02", None, "2020-01-06", "2020-01-07"])
    frame = pd.DataFrame({"close": [1.0, 2.0, 3.0, 4.0], "iv": 0.2}, index=index)
    with pytest.raises(ValueError, match=r"has a missing date \(NaT\) at row 1$"):
        HistoricalReplay.from_frame(frame, vol_column="iv")


def test_small_vols_without_a_vol_scale_are_accepted() -> None:
    """_check_vol_scale only questions a vol_scale other than 1 (mutant: ``scale != 1.0``
    dropped, so a genuinely calm series given in fractions, median 0.4% < MIN_SCALED_VOL, was
    refused as if it were scaled twice)."""
    dates = pd.bdate_range("2020-01-02", periods=10)
    vol = 0.8 * MIN_SCALED_VOL
    replay = HistoricalReplay.from_frame(_frame(dates, iv=vol), vol_column="iv",
                                         date_column="date")
    np.testing.assert_array_equal(replay.data["implied_vol"], vol)


def test_the_vol_scale_check_reads_the_median_not_one_spike() -> None:
    """_check_vol_scale on the median (mutant: the max): vols in decimals (0.2) scaled by 0.01
    are 0.2% on most rows; one spiked row (0.9 -> 0.9%) must not let the column through."""
    dates = pd.bdate_range("2020-01-02", periods=9)
    iv = [0.2] * 8 + [0.9]
    with pytest.raises(ValueError, match=r"column 'iv' after vol_scale=0.01 has a median implied "
                                         r"vol of 0.002 "):
        HistoricalReplay.from_frame(_frame(dates, iv=iv), vol_column="iv", vol_scale=0.01,
                                    date_column="date")


def test_weekend_rows_that_move_are_not_called_filled_forward() -> None:
    """_warn_calendar warns of weekend rows that *repeat* the previous close (mutant: the price
    comparison dropped, so a market trading on weekends, every close new, was told its series
    looked filled forward)."""
    dates = pd.date_range("2020-01-01", periods=14, freq="D")  # two weekends, every day
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HistoricalReplay.from_frame(_frame(dates), vol_column="iv", date_column="date")
    filled = np.linspace(100.0, 113.0, 14)
    filled[3] = filled[2]  # 2020-01-04, a Saturday, repeats Friday's close
    with pytest.warns(UserWarning, match=r"1 row\(s\) fall on a Saturday or Sunday and repeat "
                                         r"the previous 'close' \(the first 2020-01-04\)"):
        HistoricalReplay.from_frame(_frame(dates, close=filled), vol_column="iv",
                                    date_column="date")


@pytest.mark.parametrize(("sep", "label"), [("\t", "tabs"), ("|", "bars")])
def test_tab_and_bar_separated_files_are_named_as_such(tmp_path: Path, sep: str,
                                                       label: str) -> None:
    """_check_separator's tabs and bars (mutant: only semicolons checked; a tab-separated file
    got "column(s) ['date'] not found")."""
    path = tmp_path / "prices.csv"
    _frame(pd.bdate_range("2020-01-02", periods=5)).to_csv(path, sep=sep, index=False)
    with pytest.raises(ValueError, match=rf"the file has one column .*: its fields seem "
                                         rf"separated by {label}; allowed: comma-separated"):
        HistoricalReplay.load(csv=path, vol_column="iv")


def test_mixed_offset_dates_are_read_with_the_given_date_format(tmp_path: Path) -> None:
    """_date_index's mixed-offset branch parses each date with ``date_format`` (mutant: with
    pandas' inference, so day-first 06/03/2020 became June 3rd and the file was refused as
    unsorted). New York closes, -05:00 before 2020-03-08 and -04:00 after."""
    stamps = pd.date_range("2020-03-02 16:00", "2020-03-13 16:00", freq="B",
                           tz="America/New_York")
    path = tmp_path / "ny_dayfirst.csv"
    pd.DataFrame({"date": [s.strftime("%d/%m/%Y %H:%M:%S%z") for s in stamps],
                  "close": np.arange(100.0, 110.0), "iv": 0.2}).to_csv(path, index=False)
    replay = HistoricalReplay.load(csv=path, vol_column="iv",
                                   date_format="%d/%m/%Y %H:%M:%S%z")
    assert [str(d.date()) for d in replay.data.index] == [
        str(s.date()) for s in stamps]
    assert set(replay.data.index.hour) == {16}


# ------------------------------------------------------------------ agents/saved.py
def _model(run: Path, name: str, content: dict) -> Path:
    (run / "model").mkdir(parents=True)
    (run / "model" / name).write_text(json.dumps(content))
    return run


def test_an_rllib_model_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    """check_saved_agent's RLlib branch (mutant: the algo comparison dropped: an APPO model in a
    PPO run passed). The comparison ignores case (RLlib writes ``PPO``, configs may say ppo)."""
    run = _model(tmp_path / "run", "rllib.json", {"algo": "APPO"})
    config = RunConfig()
    assert config.rllib.algo == "PPO"
    with pytest.raises(ValueError, match=r"model/rllib.json holds an RLlib APPO agent, "
                                         r"rllib.algo is PPO: .*different runs"):
        saved.check_saved_agent(run, config)
    same = _model(tmp_path / "same", "rllib.json", {"algo": "ppo"})
    saved.check_saved_agent(same, config)


def _dh_config(**hyperparams: object) -> RunConfig:
    config = RunConfig()
    assert config.agent.algo == "deep_hedging"
    return config.model_copy(update={"agent": config.agent.model_copy(
        update={"hyperparams": hyperparams})})


def test_a_settings_file_without_a_policy_description_is_named(tmp_path: Path) -> None:
    """_check_policy's ``policy`` must be a mapping (mutant: the check dropped, so a settings.json
    whose policy is text failed with an AttributeError instead of naming the file)."""
    run = _model(tmp_path / "run", "settings.json", {"policy": "mlp"})
    with pytest.raises(ValueError, match=r"deep-hedging settings '.*settings.json' hold no policy "
                                         r"description"):
        saved.check_saved_agent(run, _dh_config(hidden=[8]))


def test_network_fields_the_model_does_not_record_are_read_at_defaults(tmp_path: Path) -> None:
    """_check_policy reads a field missing from the model's description at the default the
    loader gives it (``PolicySpec.from_dict``), not as None (mutant: None, which refused a
    matching model); a recorded field that differs is still named. (Until stop 22 a missing
    field was not compared at all, so ``output: band`` passed against a model running the
    default ``shifted_band``: see test_mutants_deep_hedging.py.)"""
    run = _model(tmp_path / "run", "settings.json", {"policy": {"hidden": [8]}})
    saved.check_saved_agent(run, _dh_config(hidden=[8], output="shifted_band"))
    with pytest.raises(ValueError, match=r"hidden: \[8\] in the model, \[16\] in the config"):
        saved.check_saved_agent(run, _dh_config(hidden=[16], output="shifted_band"))


def test_a_view_read_from_json_and_from_python_compares_equal() -> None:
    """_differences compares JSON's lists with a config's tuples as one sequence (mutant: plain
    ``!=``: ``[0.1, 0.2]`` in agent.json against ``(0.1, 0.2)`` given from Python differed)."""
    view = {"risk_aversion": 1.5, "levels": [0.1, 0.2], "nested": {"a": [1, 2]}}
    given = {"risk_aversion": 1.5, "levels": (0.1, 0.2), "nested": {"a": (1, 2)}}
    assert saved._differences(view, given) == []
    assert saved._differences(view, {**given, "levels": (0.1, 0.3)}) == [
        "levels: [0.1, 0.2] in the model, (0.1, 0.3) in the config"]


# ------------------------------------------------------------------ agents/sb3.py
def test_a_large_constant_entry_of_a_short_training_is_centred() -> None:
    """ObsNormalizer's constant-entry rule for a constant c = 1,000 seen 384 times (3 rollouts
    of 128). SB3's RunningMeanStd starts at mean 0, variance 1, weight 1e-4, so its variance is
    exactly 1e-4 (1 + c^2 n / (n + 1e-4)) / (n + 1e-4) = 0.2604168, which exceeds
    1e-4 (1 + mean^2) / count (mean = c n / (n + 1e-4)) by 6.8e-8, more than CONSTANT_VARIANCE:
    the 1% slack covers it. Mutants killed: the slack dropped (1.0), and the leak's ``mean^2``
    dropped (2.6e-7): either divides a move of 1 by std 0.51 (1.96, not 1)."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    from hedgearena.agents.sb3 import CONSTANT_VARIANCE, ObsNormalizer

    c, n = 1000.0, 384
    rms = RunningMeanStd(shape=(1,))
    for _ in range(3):
        rms.update(np.full((128, 1), c))
    eps = 1e-4
    assert rms.var[0] == pytest.approx(1e-4 * (1 + c * c * n / (n + eps)) / (n + eps), rel=1e-9)
    assert rms.var[0] - 1e-4 * (1 + rms.mean[0] ** 2) / rms.count > 5 * CONSTANT_VARIANCE
    normalizer = ObsNormalizer(rms.mean, rms.var, clip=10.0, epsilon=1e-8, count=rms.count)
    out = normalizer(np.array([[c + 1.0]], dtype=np.float32))
    assert out[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_keys_on_one_side_of_a_view_are_named() -> None:
    """_differences over the keys of both views (mutants: only the model's keys, or only the
    config's): a key the model was trained with and the config lacks, and one the config adds,
    are both differences; ``auto`` in the config is not. Not a mapping on either side: compared
    whole (mutant: always equal)."""
    assert saved._differences({"cost": 0.001}, {}) == [
        "cost: 0.001 in the model, None in the config"]
    assert saved._differences({}, {"cost": 0.002}) == [
        "cost: None in the model, 0.002 in the config"]
    assert saved._differences({}, {"risk_aversion": "auto"}) == []
    assert saved._differences(None, {"cost": 0.002}) == ["None vs {'cost': 0.002}"]
    assert saved._differences([1, 2], (1, 2)) == []


# ------------------------------------------------------------------ hedgearena/sweep.py
def test_a_range_whose_interior_point_is_whole_tries_a_fraction() -> None:
    """axis_values moves a whole-number interior point to the next float (mutant: kept whole, so
    an integer field swept with that range passed the checks, then failed on Tune's draws).
    uniform [0, 1 / INTERIOR]: INTERIOR * (1 / INTERIOR) is exactly 1.0 in floating point."""
    from hedgearena.sweep import INTERIOR, axis_values

    high = 1.0 / INTERIOR
    assert INTERIOR * high == 1.0
    low, inside, top = axis_values({"uniform": [0, high]})
    assert (low, top) == (0, high)
    assert inside == math.nextafter(1.0, high)
    assert not inside.is_integer()
    assert axis_values({"randint": [0, 5]}) == [0, 4]  # the high end excluded


def test_the_randint_hint_is_given_only_for_whole_number_errors(tmp_path: Path) -> None:
    """check_space's hint "an integer field is swept with randint" (mutant: given for any failing
    range): a range over a float field that fails for another reason (a negative learning rate)
    gets the field's own error, no integer hint."""
    from hedgearena.run_config import load_config
    from hedgearena.sweep import check_space

    config = load_config(None, ["sweep.space={agent.hyperparams.learning_rate: "
                                "{uniform: [-1, -0.5]}}", f"out={tmp_path}",
                                "agent.hyperparams.steps=2", "arena.paths=200"])
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0") as err:
        check_space(config)
    assert "randint" not in str(err.value)


def test_a_repeated_grid_value_suggests_sweeping_the_seed_unless_it_is_the_seed(
        tmp_path: Path) -> None:
    """check_repeats' advice (mutant: the seed test flipped, so a repeated seed was told to sweep
    the seed, and a repeated cost was not)."""
    from hedgearena.run_config import load_config
    from hedgearena.sweep import check_repeats

    def spec(space: str) -> object:
        return load_config(None, [f"sweep.space={space}", f"out={tmp_path}"]).sweep

    with pytest.raises(ValueError, match=r"give each value once \(for replicates, sweep the "
                                         r"seed\)$"):
        check_repeats(spec("{env.kwargs.cost: [0.001, 0.001]}"))
    with pytest.raises(ValueError, match=r"give each value once$"):
        check_repeats(spec("{seed: [3, 3]}"))


# ------------------------------------------------------------------ hedgearena/run_config.py
def test_only_keys_under_a_command_line_key_are_blamed_on_the_command_line(
        tmp_path: Path) -> None:
    """_explain's origin: a key set on the command line, or one under a section set there
    (mutant: exact keys only, so ``--set arena={paths: 0}`` blamed the file); a key that merely
    starts with the same letters is the file's (mutant: a prefix without the dot, so the
    file's bad arena.paths was blamed on ``--set arena.path=...``)."""
    from hedgearena.run_config import load_config

    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text("arena: {paths: 1000}\n")
    bad.write_text("arena: {paths: 0}\n")
    with pytest.raises(ValueError, match=r"arena.paths: .* \(got 0\) \[given on the command "
                                         r"line as arena=\{'paths': 0\} "):
        load_config(good, ["arena={paths: 0}"])
    with pytest.raises(ValueError, match=r"invalid run config in '.*bad.yml'") as err:
        load_config(bad, ["arena.path=3"])
    lines = str(err.value).splitlines()
    paths = [line for line in lines if line.strip().startswith("arena.paths:")]
    typo = [line for line in lines if line.strip().startswith("arena.path:")]
    assert len(paths) == 1, lines
    assert "command line" not in paths[0]
    assert len(typo) == 1, lines
    assert "given on the command line as arena.path=3" in typo[0]


def test_without_a_file_nothing_is_said_about_the_file() -> None:
    """_explain names the command line as the origin only over a file (mutant: ``path`` dropped
    from the condition, so ``load_config(None, ['arena.paths=0'])`` said "not in the file" when
    there was no file)."""
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"invalid run config:\n  arena.paths: .*\(got 0\)$"):
        load_config(None, ["arena.paths=0"])


# ------------------------------------------------------------------ envs/market.py
def test_market_paths_refuse_times_of_another_length_than_the_spots() -> None:
    """MarketPaths' times must have one entry per spot column (mutant: the shape check dropped:
    4 times for 3 spot columns were taken, so the book read a time to expiry off by a step)."""
    from hedgearena.envs.market import MarketPaths
    from hedgearena.envs.vol_surface import FlatVol

    shape = (2, 3)
    with pytest.raises(ValueError, match=r"times must have shape \(3,\), got \(4,\)"):
        MarketPaths(times=np.array([0.0, 0.1, 0.2, 0.3]), spot=np.full(shape, 100.0),
                    variance=np.full(shape, 0.04), vol_state=np.full(shape, 0.2),
                    surface=FlatVol())


# ------------------------------------------------------------------ agents/deep_hedging.py
def test_the_trainer_splits_the_history_at_its_own_valid_history() -> None:
    """DeepHedgingTrainer passes TrainerConfig.valid_history to validation_split (mutant: the
    default 0.2 passed instead: valid_history=0.5 validated on the last fifth, and 0 still cut
    the history). Checked on the validation paths' spots: closes of the part's days only."""
    from hedgearena.agents.deep_hedging import DeepHedgingTrainer, TrainerConfig
    from hedgearena.baselines.benchmark import validation_split
    from hedgearena.envs.config import make_config

    config = make_config("HistoricalReplay", market_kwargs={"start": "2010-01-01",
                                                            "end": "2013-12-31"})
    to32 = lambda values: {float(np.float32(x)) for x in values}  # noqa: E731 (float32 paths)
    for share in (0.5, 0.0):
        trainer = DeepHedgingTrainer(
            config, config=TrainerConfig(steps=1, batch_size=32, n_train=64, n_valid=64,
                                         valid_history=share), progress=False)
        valid = validation_split(config, share)[1]
        first = valid.market.data.index[0]
        assert first == (config.market.data.index[0] if share == 0 else
                         config.market.data.index[len(config.market.data) // 2])
        spots = to32(trainer.validation_paths.episode.spot.numpy().ravel().tolist())
        assert spots <= to32(valid.market.data["close"].to_numpy().tolist())
        if share == 0:  # the whole history: closes before the middle are drawn too
            middle = config.market.data["close"].iloc[: len(config.market.data) // 2]
            assert spots & to32(middle.to_numpy().tolist())


def test_a_share_too_small_for_one_day_names_valid_history() -> None:
    """validation_split keeps the cut on the history's last day (mutant: ``min(len - 1, ...)``
    dropped: valid_history=1e-6 of 5,000 days rounds to the row past the end, an IndexError)."""
    from hedgearena.baselines.benchmark import validation_split
    from hedgearena.envs.config import make_config

    config = make_config("HistoricalReplay")
    last = config.market.data.index[-1].date()
    with pytest.raises(ValueError, match=rf"valid_history = 1e-06 cuts the history \(.* to "
                                         rf"{last}\) at {last} for validation"):
        validation_split(config, 1e-6)
