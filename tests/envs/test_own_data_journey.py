"""A quant's journey with their own daily series, as the README tells it.

``market_kwargs={"csv": ..., "date_column": ..., "price_column": ..., "vol_column": ...}`` on
``hedgearena/HistoricalReplay-v0`` (single env, native vector env, ``train.py benchmark``) and
``--set arena.split=...``. Good files must replay exactly the numbers in the file; bad files must
be refused naming the file, the column and what is allowed; nothing is sorted, filled or dropped.

The unit tests of :mod:`hedgearena.envs.historical` are in ``test_historical.py`` and the split's
in ``tests/baselines/test_split.py``; this file goes through the files and the public entry points.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from arch.data import sp500, vix
from scipy.stats import norm

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.config import make_config
from hedgearena.envs.historical import (
    GARCH_BURN_IN_RETURNS,
    MAX_GAP_DAYS,
    MIN_SCALED_VOL,
    HistoricalReplay,
)

ENV_ID = "hedgearena/HistoricalReplay-v0"


@pytest.fixture(scope="module")
def vix_era() -> pd.DataFrame:
    """S&P 500 closes and VIX (percent) on the days both exist: 2014-01-03..2018-12-31."""
    close = sp500.load()["Adj Close"]
    frame = pd.DataFrame({"close": close, "vix": vix.load()["vix"].reindex(close.index)})
    return frame.dropna().rename_axis("date")


@pytest.fixture(scope="module")
def files(tmp_path_factory, vix_era: pd.DataFrame) -> dict[str, Path]:
    """The user's CSVs: VIX in percent, in decimals (other column names), and broken copies."""
    folder = tmp_path_factory.mktemp("own_data")
    out: dict[str, Path] = {}

    def write(name: str, frame: pd.DataFrame, **kwargs) -> None:
        out[name] = folder / f"{name}.csv"
        frame.to_csv(out[name], index=False, **kwargs)

    iso = vix_era.reset_index()
    iso["date"] = iso["date"].dt.strftime("%Y-%m-%d")
    write("pct", iso)
    write("dec", iso.assign(iv=iso["vix"] / 100).drop(columns="vix")
          .rename(columns={"date": "Day", "close": "Close"}))
    write("desc", iso.iloc[::-1])
    write("dup", pd.concat([iso.iloc[:50], iso.iloc[49:]]))
    write("nan_close", iso.assign(close=iso["close"].where(iso.index != 10)))
    write("zero", iso.assign(close=iso["close"].where(iso.index != 12, 0.0)))
    write("neg", iso.assign(close=iso["close"].where(iso.index != 12, -5.0)))
    write("nan_vol", iso.assign(vix=iso["vix"].where(iso.index != 10)))
    write("thousands", iso.assign(close=iso["close"].map(lambda x: f"{x:,.2f}")))
    write("semicolon", iso, sep=";", decimal=",")
    write("bom", iso, encoding="utf-8-sig")
    write("spaces", iso.rename(columns={"close": " Close"}))
    write("short", iso.iloc[:15])
    day_first = vix_era.reset_index()
    day_first["date"] = day_first["date"].dt.strftime("%d/%m/%Y")
    write("day_first", day_first)
    return out


PCT = {"date_column": "date", "price_column": "close", "vol_column": "vix", "vol_scale": 0.01}
DEC = {"date_column": "Day", "price_column": "Close", "vol_column": "iv"}


def _kwargs(files: dict[str, Path], name: str, **extra) -> dict:
    base = DEC if name == "dec" else PCT
    return {"csv": str(files[name]), **base, **extra}


def _rows(index: pd.DatetimeIndex, dates: np.ndarray) -> np.ndarray:
    """Row numbers of ``dates`` (``datetime64[D]``, any shape) in ``index``; each must exist."""
    days = index.to_numpy().astype("datetime64[D]")
    rows = np.searchsorted(days, dates)
    np.testing.assert_array_equal(days[rows], dates)
    return rows


# ------------------------------------------------------------------------- good files replay


def test_single_env_replays_the_files_closes_and_vols(files, vix_era) -> None:
    """Every step's spot is the file's close of that day and the implied vol its VIX / 100
    (``vol_scale=0.01``, the README's unit), bit for bit up to the scale's rounding."""
    env = gym.make(ENV_ID, market_kwargs=_kwargs(files, "pct"))
    close, implied = vix_era["close"].to_numpy(), vix_era["vix"].to_numpy()
    for seed in range(5):
        env.reset(seed=seed)
        spots, vols, done = [], [], False
        while True:
            spots.append(env.unwrapped.state["spot"])
            vols.append(env.unwrapped.state["implied_vol"])
            if done:
                break
            obs, reward, term, trunc, _ = env.step(env.action_space.sample())
            assert np.isfinite(obs).all()
            assert np.isfinite(reward)
            done = term or trunc
        assert len(spots) == 22  # 21 steps: 22 consecutive rows
        start = int(np.flatnonzero(close == spots[0])[0])
        np.testing.assert_array_equal(spots, close[start:start + 22])
        np.testing.assert_allclose(vols, implied[start:start + 22] / 100, rtol=1e-15, atol=0)


def test_vector_env_percent_and_decimal_files_replay_the_same_windows(files, vix_era) -> None:
    """The vector env's paths are the file's rows on the dates they carry; the file in percent
    with ``vol_scale=0.01`` and the file in decimals (other column names) give the same paths."""
    markets = []
    for name in ("pct", "dec"):
        venv = gym.make_vec(ENV_ID, num_envs=256, vectorization_mode="vector_entry_point",
                            market_kwargs=_kwargs(files, name))
        venv.reset(seed=0)
        markets.append(venv.unwrapped.batch.market)
    pct, dec = markets
    rows = _rows(vix_era.index, pct.dates)
    np.testing.assert_array_equal(pct.spot, vix_era["close"].to_numpy()[rows])
    np.testing.assert_allclose(pct.vol_state, vix_era["vix"].to_numpy()[rows] / 100, rtol=1e-15)
    np.testing.assert_array_equal(np.diff(rows, axis=1), 1)  # consecutive rows, no gaps
    np.testing.assert_array_equal(dec.dates, pct.dates)
    np.testing.assert_array_equal(dec.spot, pct.spot)
    np.testing.assert_allclose(dec.vol_state, pct.vol_state, rtol=1e-15)


def test_unhedged_pnl_and_realised_vol_against_direct_computations(files, vix_era) -> None:
    """Along one episode of the file: the unhedged short call's P&L is the Black-Scholes premium
    (Hull, Options, Futures and Other Derivatives, eq. 15.20, r = q = 0, K = S_0) at the file's
    first VIX less the payoff at its last close, times 100; the realised-vol feature is pandas'
    EWMA of r^2 / dt (adjust=False, alpha = 1 - 2^(-1/10)) started at the first implied vol."""
    env = gym.make(ENV_ID, market_kwargs=_kwargs(files, "pct"), action_mode="target")
    env.reset(seed=7)
    state = env.unwrapped.state
    start = int(np.flatnonzero(vix_era["close"].to_numpy() == state["spot"])[0])
    window = vix_era.iloc[start:start + 22]
    realised, done = [state["realised_vol"]], False
    while not done:
        _, _, term, trunc, info = env.step(np.zeros(env.action_space.shape, np.float32))
        realised.append(env.unwrapped.state["realised_vol"])
        done = term or trunc
    s0, s_t, sigma = window["close"].iloc[0], window["close"].iloc[-1], window["vix"].iloc[0] / 100
    d1 = 0.5 * sigma * np.sqrt(21 / 252)
    premium = 100 * s0 * (norm.cdf(d1) - norm.cdf(-d1))
    totals = info["totals"]
    assert totals["initial_premium"] == pytest.approx(premium, rel=1e-12)
    assert totals["pnl"] == pytest.approx(premium - 100 * max(s_t - s0, 0.0), rel=1e-12)
    assert totals["cost"] == 0.0
    squared = np.log(window["close"]).diff() ** 2 * 252
    squared.iloc[0] = sigma**2
    ewma = np.sqrt(squared.ewm(alpha=1 - 0.5 ** (1 / 10), adjust=False).mean().to_numpy())
    np.testing.assert_allclose(realised, ewma, rtol=1e-12)


def test_a_bom_file_reads_like_the_plain_one(files) -> None:
    plain = HistoricalReplay.load(**_kwargs(files, "pct")).data
    pd.testing.assert_frame_equal(HistoricalReplay.load(**_kwargs(files, "bom")).data, plain)


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%z"])
def test_dates_with_summer_and_winter_offsets_keep_their_written_day(tmp_path, fmt) -> None:
    """A New York close stamped with its offset (-05:00 in winter, -04:00 in summer) is read at
    its local time as written: pandas refuses the mixed offsets ("Mixed timezones detected")."""
    stamps = pd.date_range("2020-03-02 16:00", "2020-03-13 16:00", freq="B", tz="America/New_York")
    path = tmp_path / "ny.csv"
    pd.DataFrame({"date": [s.strftime(fmt) for s in stamps], "close": np.arange(100.0, 110.0),
                  "iv": 0.2}).to_csv(path, index=False)
    replay = HistoricalReplay.load(csv=path, vol_column="iv", start="2020-03-06",
                                   end="2020-03-09")  # DST began on Sunday 2020-03-08
    assert [str(day.date()) for day in replay.data.index] == ["2020-03-06", "2020-03-09"]
    assert replay.data.index[0].hour == 16
    np.testing.assert_array_equal(replay.data["close"], [104.0, 105.0])


# --------------------------------------------------------------------------- dates and splits


def test_start_and_end_are_inclusive_calendar_days_of_the_file(files, vix_era) -> None:
    """``start`` / ``end`` keep their own days (2015-01-02 is the year's first trading day,
    2015-12-31 its last); a weekend bound keeps the next / previous trading day."""
    kept = HistoricalReplay.load(**_kwargs(files, "pct"), start="2015-01-02", end="2015-12-31")
    expected = vix_era.loc["2015-01-02":"2015-12-31"]
    assert len(kept) == len(expected) == 252
    np.testing.assert_array_equal(kept.data["close"], expected["close"])
    weekend = HistoricalReplay.load(**_kwargs(files, "pct"), start="2015-01-03", end="2015-12-27")
    assert (str(weekend.data.index[0].date()), str(weekend.data.index[-1].date())) == (
        "2015-01-05", "2015-12-24")


@pytest.mark.parametrize("split", ["2016-01-04", "2016-01-02"])  # a trading day, a Saturday
def test_a_split_of_the_file_keeps_every_window_on_its_side(files, vix_era, split) -> None:
    """Tuning windows end before the split's day and scoring windows start on or after it; the
    two parts are the file's rows (none lost but the cut, none shared)."""
    from hedgearena.baselines.arena import run_arena
    from hedgearena.baselines.benchmark import parse_hedger, split_configs
    from hedgearena.envs.config import make_config

    config = make_config("HistoricalReplay", market_kwargs=_kwargs(files, "pct"))
    tune, score = split_configs(config, split)
    assert str(tune.market.data.index[-1].date()) == "2015-12-31"
    assert str(score.market.data.index[0].date()) == "2016-01-04"
    assert len(tune.market) + len(score.market) == len(vix_era)
    for part, seed in ((tune, 1), (score, 0)):
        result = run_arena(part, [parse_hedger("delta")], 2_000, seed=seed, progress=False,
                           keep_batches=True)
        dates = result.batch.market.dates
        rows = _rows(vix_era.index, dates)
        np.testing.assert_array_equal(result.batch.market.spot, vix_era["close"].to_numpy()[rows])
        if part is tune:
            assert dates.max() <= np.datetime64("2015-12-31")
        else:
            assert dates.min() >= np.datetime64("2016-01-04")
        # the windows reach both ends of their part (2,000 draws of about 500 / 750 starts)
        assert dates.min() == part.market.data.index[0].to_datetime64().astype("datetime64[D]")
        assert dates.max() == part.market.data.index[-1].to_datetime64().astype("datetime64[D]")


def test_gym_make_vector_env_and_benchmark_cli_read_the_same_kwargs(files, tmp_path,
                                                                     monkeypatch) -> None:
    """The README's three doors take one ``market_kwargs`` dict and replay the same history:
    ``gym.make``, ``gym.make_vec`` and ``train.py benchmark --set env.kwargs.market_kwargs=...
    --set arena.split=...`` (which scores on the file's rows from the split on)."""
    from hedgearena.baselines import benchmark as bench_module
    from hedgearena.cli import main

    kwargs = _kwargs(files, "dec")
    single = gym.make(ENV_ID, market_kwargs=kwargs).unwrapped.config.market.data
    vector = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point",
                          market_kwargs=kwargs).unwrapped.config.market.data
    direct = HistoricalReplay.load(**kwargs).data
    pd.testing.assert_frame_equal(single, direct)
    pd.testing.assert_frame_equal(vector, direct)

    seen, run_arena = [], bench_module.run_arena

    def spy(config, hedgers, n_paths, seed, **options):
        seen.append(config.market.data)
        return run_arena(config, hedgers, n_paths, seed, **options)

    monkeypatch.setattr(bench_module, "run_arena", spy)
    setting = "{" + ", ".join(f"{k}: {v}" for k, v in kwargs.items()) + "}"
    main(["benchmark", "--env", ENV_ID, "--set", f"env.kwargs.market_kwargs={setting}",
          "--set", "arena.split=2017-01-01", "--paths", "300", "--hedgers", "delta",
          "--out", str(tmp_path), "--name", "mine", "--no-progress"])
    (scored,) = seen  # no tuned family: only the scoring run
    pd.testing.assert_frame_equal(scored, direct.loc["2017-01-01":])
    assert (tmp_path / "mine" / "scores.csv").exists()


# ------------------------------------------------------------------------------ GARCH (no vol)


def _daily(n: int, start: str = "2019-01-01", seed: int = 0) -> pd.DataFrame:
    days = pd.bdate_range(start, periods=n)
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"date": days.strftime("%Y-%m-%d"),
                         "close": 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))})


def test_garch_vols_of_a_file_see_no_later_close_after_the_burn_in(tmp_path) -> None:
    """Without a vol column, raising the file's closes from a date on leaves every estimate
    before it unchanged once the burn-in has passed (a real-time fit), and moves those of the
    burn-in rows before it (the look-ahead the warning names)."""
    frame = _daily(800)  # 2019-01-01..2022-01-24: 2021 is the first real-time year
    path, moved = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"'a': the GARCH vol estimate of 523 row\(s\) "
                                         r"\(2019-01-01..2020-12-31\) is fitted on the closes "
                                         r"to 2020-12-31 \(look-ahead.*start='2021-01-01'"):
        base = HistoricalReplay.load(csv=path).data["implied_vol"].to_numpy()
    for row in (650, 400):
        frame.assign(close=frame["close"] * np.where(np.arange(800) > row, 1.3, 1.0)).to_csv(
            moved, index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            vol = HistoricalReplay.load(csv=moved).data["implied_vol"].to_numpy()
        if row > GARCH_BURN_IN_RETURNS:
            np.testing.assert_array_equal(vol[:row + 1], base[:row + 1])
        else:
            assert np.abs(vol[:row + 1] / base[:row + 1] - 1).max() > 0.01


def test_a_file_too_short_for_a_real_time_fit_says_so(tmp_path) -> None:
    path = tmp_path / "two_years.csv"
    _daily(300).to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"'two_years': the GARCH vol estimate of 300 row.*"
                                         r"too short for a real-time fit: give a vol_column"):
        HistoricalReplay.load(csv=path)


def test_flat_closes_name_the_price_column_not_a_vol_scale(tmp_path) -> None:
    """Closes that never move were fitted (arch warning of divisions by zero) to an estimate of
    0, refused as "column 'implied_vol' ... for vols in percent pass vol_scale=0.01"."""
    path = tmp_path / "flat.csv"
    _daily(300).assign(close=100.0).to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before arch is asked to fit
        with pytest.raises(ValueError, match=r"flat.csv': column 'close' never moves \(100.0 on "
                                             r"every row\): no GARCH vol estimate .* vol_column"):
            HistoricalReplay.load(csv=path)


# ------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nan_close", r"column 'close' has a missing value \(nan\) on 2014-01-17 \(row 10\)"),
        ("zero", r"column 'close' has a non-positive or infinite price \(0.0\) on 2014-01-22"),
        ("neg", r"column 'close' has a non-positive or infinite price \(-5.0\) on 2014-01-22"),
        ("nan_vol", r"column 'vix' has a missing value on 2014-01-17 \(row 10\); .*fill_missing"),
        ("thousands", r"column 'close' has a non-numeric value '1,831.37' on 2014-01-03"),
        ("desc", r"date_column 'date' has an unsorted .* date 2018-12-28 at row 1; dates must be "
                 r"strictly increasing"),
        ("dup", r"date_column 'date' has a duplicate date 2014-03-17 at row 50"),
    ],
)
def test_bad_files_are_refused_naming_the_file_column_and_row(files, name, message) -> None:
    """Nothing is sorted, deduplicated, filled or clipped; the message starts with the file."""
    with pytest.raises(ValueError, match=rf"^CSV file '.*{name}.csv': {message}"):
        gym.make(ENV_ID, market_kwargs=_kwargs(files, name))


def test_vols_in_decimals_scaled_as_percent_are_refused(files) -> None:
    """``vol_scale=0.01`` on a column in decimals made the S&P's vol 0.14%, silently."""
    with pytest.raises(ValueError, match=rf"column 'iv' after vol_scale=0.01 has a median implied "
                                         rf"vol of 0.001372 \(0.137%\); allowed: at least "
                                         rf"{MIN_SCALED_VOL} .* then drop vol_scale"):
        HistoricalReplay.load(**_kwargs(files, "dec", vol_scale=0.01))


def test_percent_vols_without_scale_are_refused(files) -> None:  # (was right; via the file)
    with pytest.raises(ValueError, match=r"pct.csv': column 'vix' has implied vol 13.76 \(after "
                                         r"vol_scale=1.0\) on 2014-01-03.*pass vol_scale=0.01"):
        HistoricalReplay.load(**_kwargs(files, "pct", vol_scale=1.0))


def test_two_rows_on_one_calendar_day_are_refused(tmp_path) -> None:
    """Intraday rows were replayed as days (the replay is daily: dt is a trading day)."""
    path = tmp_path / "intraday.csv"
    pd.DataFrame({"date": ["2020-01-02 10:00", "2020-01-02 16:00", "2020-01-03 16:00"],
                  "close": [1.0, 2.0, 3.0], "iv": 0.2}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"intraday.csv': date_column 'date' has two rows on the "
                                         r"calendar day 2020-01-02 \(rows 0 and 1\); a replay "
                                         r"takes one row per trading day"):
        HistoricalReplay.load(csv=path, vol_column="iv")


def test_a_semicolon_file_is_named_as_such(files) -> None:
    with pytest.raises(ValueError, match=r"semicolon.csv': the file has one column "
                                         r"'date;close;vix': its fields seem separated by "
                                         r"semicolons; allowed: comma-separated"):
        HistoricalReplay.load(**_kwargs(files, "semicolon"))


def test_day_first_dates_get_a_hint_and_date_format_reads_them(files) -> None:
    with pytest.raises(ValueError, match=r"unparsable date at row 6: '13/01/2014'.*\(day first\? "
                                         r"write ISO dates .* date_format='%d/%m/%Y', beside "
                                         r"date_column\)"):
        HistoricalReplay.load(**_kwargs(files, "day_first"))
    plain = HistoricalReplay.load(**_kwargs(files, "pct")).data
    options = {k: v for k, v in PCT.items() if k != "date_column"}
    replay = HistoricalReplay.from_csv(files["day_first"], date_format="%d/%m/%Y", **options)
    pd.testing.assert_frame_equal(replay.data, plain)
    # and through market_kwargs (gym.make, run configs), as load's keyword
    kwargs = {**_kwargs(files, "day_first"), "date_format": "%d/%m/%Y"}
    pd.testing.assert_frame_equal(HistoricalReplay.load(**kwargs).data, plain)
    config = make_config("HistoricalReplay", market_kwargs=kwargs)
    pd.testing.assert_frame_equal(config.market.data, plain)
    with pytest.raises(ValueError, match=r"\['date_format'\] apply to a CSV file only"):
        HistoricalReplay.load(date_format="%d/%m/%Y")


def test_near_miss_column_names_are_suggested(files, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"\['close'\] not found; available columns: \['date', "
                                         r"' Close', 'vix'\]; .*did you mean 'close' -> ' Close'"):
        HistoricalReplay.load(**_kwargs(files, "spaces"))
    path = tmp_path / "indexed.csv"
    pd.DataFrame({"close": [1.0, 2.0]}, index=pd.bdate_range("2020-01-01", periods=2)).to_csv(path)
    with pytest.raises(ValueError, match=r"'Unnamed: 0' is a column without a header"):
        HistoricalReplay.load(csv=path)


def test_a_series_next_to_a_csv_is_refused(files) -> None:
    """``series`` was ignored silently when ``csv`` came too."""
    with pytest.raises(ValueError, match=r"series='nasdaq' and csv='.*dec.csv' name two histories"):
        gym.make(ENV_ID, market_kwargs=_kwargs(files, "dec", series="nasdaq"))
    assert HistoricalReplay.load(series="sp500", end="1999-02-01").name == "S&P 500"


def test_a_history_shorter_than_an_episode_names_the_file(files) -> None:
    with pytest.raises(ValueError, match=r"needs n_steps \+ 1 = 22 rows, the series has 15 "
                                         r"\('short', 2014-01-03..2014-01-24\)"):
        gym.make(ENV_ID, market_kwargs=_kwargs(files, "short"))


def test_a_relative_path_names_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=rf"'prices.csv' \(relative to {tmp_path}\): "):
        gym.make(ENV_ID, market_kwargs={"csv": "prices.csv"})


# --------------------------------------------------------------------------- calendar warnings


def test_a_calendar_day_file_filled_forward_is_named(tmp_path, vix_era) -> None:
    """Weekend rows repeating Friday's close made each week 7 steps of 1/252 year, silently."""
    path = tmp_path / "calendar.csv"
    vix_era.iloc[:40].asfreq("D").ffill().reset_index().to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"'calendar': 18 row\(s\) fall on a Saturday or Sunday "
                                         r"and repeat the previous 'close' \(the first "
                                         r"2014-01-04\).*days_per_year=365"):
        HistoricalReplay.load(csv=path, vol_column="vix", vol_scale=0.01)


def test_a_gap_in_the_file_is_named(tmp_path, vix_era) -> None:
    path = tmp_path / "gap.csv"
    vix_era.drop(vix_era.loc["2016-03-01":"2016-03-31"].index).reset_index().to_csv(path,
                                                                                    index=False)
    with pytest.warns(UserWarning, match=rf"'gap': 1 gap\(s\) of more than {MAX_GAP_DAYS} calendar "
                                         r"days between rows, the longest 32 days from 2016-02-29 "
                                         r"to 2016-04-01"):
        HistoricalReplay.load(csv=path, vol_column="vix", vol_scale=0.01)


def test_the_shipped_series_warn_of_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HistoricalReplay.sp500()
        HistoricalReplay.nasdaq()
