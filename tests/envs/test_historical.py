from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch.data import sp500, vix

from hedgearena.envs.historical import (
    MIN_GARCH_ROWS,
    HistoricalReplay,
    _garch_one_step,
    garch_implied_vol,
    garch_refits,
)
from hedgearena.envs.market import MarketModel, MarketPaths
from hedgearena.envs.vol_surface import FlatVol

DT = 1 / 252


@pytest.fixture(scope="module")
def replay() -> HistoricalReplay:
    return HistoricalReplay.sp500()


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """The arch data joined independently of the module under test."""
    closes = sp500.load()["Adj Close"]
    return pd.DataFrame({"close": closes, "vix": vix.load()["vix"].reindex(closes.index)})


def synthetic(n: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "px": 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n))),
            "iv": rng.uniform(0.1, 0.4, n),
        },
        index=pd.bdate_range("2021-03-01", periods=n, name="day"),
    )


# ------------------------------------------------------------------------------------ replay


def test_is_a_market_model(replay: HistoricalReplay) -> None:
    assert isinstance(replay, MarketModel)
    assert isinstance(replay.surface, FlatVol)


def test_sp500_sources(replay: HistoricalReplay, raw: pd.DataFrame) -> None:
    data = replay.data
    assert len(data) == 5031
    assert data.index[0] == pd.Timestamp("1999-01-04")
    assert data.index[-1] == pd.Timestamp("2018-12-31")
    np.testing.assert_array_equal(data["close"].to_numpy(), raw["close"].to_numpy())
    has_vix = raw["vix"].notna().to_numpy()
    np.testing.assert_array_equal(data["vol_estimated"].to_numpy(), ~has_vix)
    np.testing.assert_array_equal(
        data["implied_vol"].to_numpy()[has_vix], raw["vix"].to_numpy()[has_vix] / 100
    )
    assert has_vix.sum() == 1257  # VIX 2014-01-03..2018-12-31 on S&P trading days


def test_window_reproduces_data_exactly(replay: HistoricalReplay, raw: pd.DataFrame) -> None:
    start = int(raw.index.searchsorted(pd.Timestamp("2015-08-17")))  # Aug 2015 sell-off
    paths = replay.window([start, start + 7], n_steps=10, dt=DT)
    assert isinstance(paths, MarketPaths)
    assert paths.spot.shape == (2, 11)
    for i, s in enumerate((start, start + 7)):
        rows = raw.iloc[s : s + 11]
        np.testing.assert_array_equal(paths.spot[i], rows["close"].to_numpy())
        np.testing.assert_array_equal(paths.vol_state[i], rows["vix"].to_numpy() / 100)
        np.testing.assert_array_equal(paths.variance[i], (rows["vix"].to_numpy() / 100) ** 2)
        np.testing.assert_array_equal(
            paths.dates[i], rows.index.to_numpy().astype("datetime64[D]")
        )
    assert paths.dates[0, 0] == np.datetime64("2015-08-17")
    np.testing.assert_allclose(paths.times, np.arange(11) / 252, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(paths.liquidity, np.ones((2, 11)))


def test_simulate_seeds_reproduce(replay: HistoricalReplay) -> None:
    a = replay.simulate(64, 21, DT, np.random.default_rng(7))
    b = replay.simulate(64, 21, DT, np.random.default_rng(7))
    c = replay.simulate(64, 21, DT, np.random.default_rng(8))
    np.testing.assert_array_equal(a.spot, b.spot)
    np.testing.assert_array_equal(a.dates, b.dates)
    assert not np.array_equal(a.spot, c.spot)


def test_simulate_windows_are_consecutive_rows(replay: HistoricalReplay) -> None:
    paths = replay.simulate(200, 5, DT, np.random.default_rng(1))
    index = replay.data.index.to_numpy().astype("datetime64[D]")
    starts = np.searchsorted(index, paths.dates[:, 0])
    np.testing.assert_array_equal(paths.dates, index[starts[:, None] + np.arange(6)])
    rows = starts[:, None] + np.arange(6)
    np.testing.assert_array_equal(paths.spot, replay.data["close"].to_numpy()[rows])
    assert len(np.unique(starts)) > 150  # random starts, not one repeated window


def test_simulate_reaches_both_ends() -> None:
    replay = HistoricalReplay.from_frame(synthetic(5), price_column="px", vol_column="iv")
    paths = replay.simulate(400, 3, DT, np.random.default_rng(0))
    firsts = set(paths.spot[:, 0])
    assert firsts == set(replay.data["close"].iloc[:2])  # starts 0 and 1 only, both drawn


def test_walk_forward_covers_series_in_order(replay: HistoricalReplay) -> None:
    n_steps = 21
    starts = replay.walk_forward_starts(n_steps)
    np.testing.assert_array_equal(np.diff(starts), n_steps)
    assert starts[0] == 0
    assert starts[-1] + n_steps <= len(replay) - 1 < starts[-1] + 2 * n_steps
    paths = replay.window(starts, n_steps, DT)
    # each window starts where the previous ended: every daily move is replayed exactly once
    np.testing.assert_array_equal(paths.dates[1:, 0], paths.dates[:-1, -1])
    steps = paths.dates[:, 1:].ravel()
    assert len(np.unique(steps)) == len(steps) == len(starts) * n_steps
    assert np.all(np.diff(steps.astype(np.int64)) > 0)


def test_walk_forward_disjoint_rows_and_dates(replay: HistoricalReplay) -> None:
    starts = replay.walk_forward_starts(10, stride=11, start="2008-01-01", end="2009-06-30")
    paths = replay.window(starts, 10, DT)
    rows = paths.dates.ravel()
    assert len(np.unique(rows)) == rows.size
    assert rows.min() >= np.datetime64("2008-01-01")
    assert rows.max() <= np.datetime64("2009-06-30")
    crisis = replay.between("2008-01-01", "2009-06-30")
    assert starts[0] == replay.data.index.get_loc(crisis.data.index[0])
    assert len(starts) == (len(crisis) - 10 - 1) // 11 + 1


def test_between(replay: HistoricalReplay) -> None:
    flash = replay.between("2010-05-01", "2010-05-31")
    assert flash.data.index[0] == pd.Timestamp("2010-05-03")
    assert flash.data.index[-1] == pd.Timestamp("2010-05-28")
    assert len(flash) == 20
    assert flash.rate == replay.rate
    assert flash.surface == replay.surface
    paths = flash.simulate(3, 19, DT, np.random.default_rng(0))
    np.testing.assert_array_equal(paths.spot[0], flash.data["close"].to_numpy())
    with pytest.raises(ValueError, match=r"n_steps \+ 1 = 21 rows, the series has 20"):
        flash.simulate(1, 20, DT, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"keeps 0 row\(s\).*1999-01-04 to 2018-12-31"):
        replay.between("2030-01-01")


def test_data_is_protected(replay: HistoricalReplay) -> None:
    paths = replay.window([0], 3, DT)
    paths.spot[0, 0] = -1.0
    assert replay.window([0], 3, DT).spot[0, 0] == pytest.approx(1228.099976)


def test_from_csv_round_trip(tmp_path) -> None:
    frame = synthetic(8).reset_index()
    frame["day"] = frame["day"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "my_index.csv"
    frame.to_csv(path, index=False)
    replay = HistoricalReplay.from_csv(path, date_column="day", price_column="px", vol_column="iv")
    assert replay.name == "my_index"
    paths = replay.window([2], 4, DT)
    np.testing.assert_allclose(paths.spot[0], frame["px"].to_numpy()[2:7], rtol=1e-15)
    np.testing.assert_allclose(paths.vol_state[0], frame["iv"].to_numpy()[2:7], rtol=1e-15)
    assert str(paths.dates[0, 0]) == frame["day"][2]
    assert not replay.data["vol_estimated"].any()


def test_from_frame_vol_scale_and_fill() -> None:
    frame = synthetic(300)
    frame["iv_pct"] = frame["iv"] * 100
    frame.loc[frame.index[5], "iv_pct"] = np.nan
    replay = HistoricalReplay.from_frame(
        frame, price_column="px", vol_column="iv_pct", vol_scale=0.01, fill_missing_vol=True
    )
    estimated = replay.data["vol_estimated"].to_numpy()
    assert estimated.sum() == 1
    assert estimated[5]
    np.testing.assert_allclose(
        replay.data["implied_vol"].to_numpy()[~estimated], frame["iv"].to_numpy()[~estimated]
    )
    garch = garch_implied_vol(frame["px"])
    assert replay.data["implied_vol"].iloc[5] == garch.iloc[5]


def test_from_frame_without_vol_uses_garch() -> None:
    frame = synthetic(400)
    replay = HistoricalReplay.from_frame(frame, price_column="px")
    assert replay.data["vol_estimated"].all()
    pd.testing.assert_series_equal(
        replay.data["implied_vol"], garch_implied_vol(frame["px"]), check_names=False
    )


# ------------------------------------------------------------------------------------- GARCH


def test_garch_plausible_and_agrees_with_vix(raw: pd.DataFrame) -> None:
    estimate = garch_implied_vol(raw["close"])
    values = estimate.to_numpy()
    assert np.isfinite(values).all()
    assert (values > 0).all()
    assert 0.05 < np.median(values) < 0.60
    assert values.min() > 0.05
    assert values.max() < 1.5
    overlap = raw["vix"].notna().to_numpy()
    implied = raw["vix"].to_numpy()[overlap] / 100
    # measured (fitted in real time): correlation 0.858 over 1257 days, mean 13.9% vs VIX 14.9%
    assert np.corrcoef(values[overlap], implied)[0, 1] > 0.8
    assert abs(np.mean(values[overlap]) / np.mean(implied) - 1) < 0.15
    # the 2008 crisis shows in the estimate: Oct-Nov 2008 far above 2006
    assert estimate["2008-10-01":"2008-11-30"].mean() > 2.5 * estimate["2006"].mean()


def _first_row_of(close: pd.Series, year: int) -> int:
    return int(np.flatnonzero(close.index.year == year)[0])


@pytest.mark.parametrize("year", [2001, 2008, 2018])
def test_garch_is_arch_forecast_fitted_on_the_years_before(raw: pd.DataFrame, year: int) -> None:
    """A year's estimate is arch's own analytic forecast from a fit on the returns before it.

    arch (``fit(last_obs=...)``, then ``forecast`` past the fitted sample, Sheppard's
    out-of-sample forecasts) is the independent reference for the multi-step mean and the filter.
    """
    from arch import arch_model

    close = raw["close"]
    lo, hi = _first_row_of(close, year), _first_row_of(close, year + 1) if year < 2018 else len(
        close)
    returns = 100 * np.diff(np.log(close.to_numpy()[:hi]))
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1)
    result = model.fit(disp="off", last_obs=lo - 1)  # the returns before the year's first close
    forecast = result.forecast(horizon=21, start=lo - 1, reindex=False).variance.to_numpy()
    expected = np.sqrt(252 * forecast.mean(axis=1)) / 100  # made at closes lo .. hi - 1
    ours = garch_implied_vol(close).to_numpy()[lo:hi]
    np.testing.assert_allclose(ours, expected, rtol=1e-9)


def test_garch_one_step_filter_is_archs_recursion(raw: pd.DataFrame) -> None:
    """On the fitted returns the filter reproduces arch's conditional variances."""
    from arch import arch_model

    close = raw["close"].to_numpy()[:2001]
    returns = 100 * np.diff(np.log(close))
    result = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")
    next_var, _, _ = _garch_one_step(close, len(close))
    np.testing.assert_allclose(next_var[:-1], result.conditional_volatility**2, rtol=1e-12)
    one_step = garch_implied_vol(raw["close"].iloc[:400], horizon=1).to_numpy()  # one fit
    np.testing.assert_allclose(
        one_step, np.sqrt(252 * _garch_one_step(close[:400], 400)[0]) / 100, rtol=1e-12
    )


@pytest.mark.parametrize("row", [700, 1000, 2500, 4000])
def test_garch_estimate_sees_no_later_close(raw: pd.DataFrame, row: int) -> None:
    """Moving every close after ``row`` changes no estimate up to ``row`` (after the burn-in)."""
    close = raw["close"].copy()
    base = garch_implied_vol(close).to_numpy()
    close.iloc[row + 1 :] *= 1.3
    np.testing.assert_array_equal(garch_implied_vol(close).to_numpy()[: row + 1], base[: row + 1])


def test_garch_estimate_dated_on_the_close_it_has_seen(raw: pd.DataFrame) -> None:
    """A shock at the close of row 1000 raises the estimate of row 1000, not of earlier rows."""
    close = raw["close"].iloc[:1500].copy()
    base = garch_implied_vol(close).to_numpy()
    close.iloc[1000:] *= 1.05  # a 5% jump on row 1000
    vol = garch_implied_vol(close).to_numpy()
    assert vol[1000] / vol[999] > 1.2  # measured: 0.1998 -> 0.2466
    np.testing.assert_array_equal(vol[:1000], base[:1000])


def test_garch_refits_once_a_year_after_the_burn_in(raw: pd.DataFrame) -> None:
    refits = garch_refits(raw.index)
    first = _first_row_of(raw["close"], 2001)  # 1999-2000 hold the first 500 returns
    assert refits[0] == (0, first, first)
    assert [lo for lo, _, _ in refits[1:]] == [
        _first_row_of(raw["close"], year) for year in range(2001, 2019)
    ]
    assert all(fit == lo for lo, _, fit in refits[1:])
    short = synthetic(400)  # 399 returns: no real-time year, one fit on everything
    assert garch_refits(short.index) == [(0, 400, 400)]


def test_garch_needs_dates() -> None:
    with pytest.raises(ValueError, match=r"indexed by dates .* got a RangeIndex"):
        garch_implied_vol(synthetic(300)["px"].reset_index(drop=True))


# -------------------------------------------------------------------------------- validation


def make(frame: pd.DataFrame, **kwargs) -> HistoricalReplay:
    kwargs.setdefault("price_column", "px")
    kwargs.setdefault("vol_column", "iv")
    return HistoricalReplay.from_frame(frame, **kwargs)


def with_value(column: str, row: int, value) -> pd.DataFrame:
    frame = synthetic()
    frame[column] = frame[column].astype(object)
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (with_value("px", 3, np.nan), r"'px' has a missing value \(nan\) on 2021-03-04 \(row 3\)"),
        (with_value("px", 4, -1.0), r"'px' has a non-positive .* \(-1.0\) on 2021-03-05 \(row 4\)"),
        (with_value("px", 2, 0.0), r"'px' has a non-positive .* 2021-03-03 \(row 2\); prices must"),
        (with_value("px", 1, np.inf), r"'px' has a non-positive or infinite price \(inf\)"),
        (with_value("px", 6, "n/a"), r"'px' has a non-numeric value 'n/a' on 2021-03-09 \(row 6\)"),
        (with_value("iv", 5, np.nan), r"'iv' has a missing value on 2021-03-08 \(row 5\).*fill_"),
        (with_value("iv", 2, 0.0), r"vol 0.0 .* 2021-03-03 \(row 2\); allowed: .*\(0, 5.0\]"),
        (with_value("iv", 7, 25.0), r"implied vol 25.0 .*\(row 7\).*vol_scale=0.01"),
        (with_value("iv", 1, -0.2), r"implied vol -0.2"),
    ],
)
def test_value_errors(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(frame)


def test_date_errors() -> None:
    frame = synthetic()
    unsorted = frame.iloc[[0, 1, 3, 2, 4]]
    with pytest.raises(ValueError, match=r"unsorted .* date 2021-03-03 at row 3; dates must be"):
        make(unsorted)
    duplicated = frame.iloc[[0, 1, 2, 2, 3]]
    with pytest.raises(ValueError, match=r"duplicate date 2021-03-03 at row 3"):
        make(duplicated)
    with pytest.raises(ValueError, match=r"DatetimeIndex, got RangeIndex \(first value 0\); pass"):
        make(frame.reset_index(drop=True))
    bad_dates = frame.reset_index()
    bad_dates["day"] = bad_dates["day"].dt.strftime("%Y-%m-%d").astype(object)
    bad_dates.loc[4, "day"] = "not a date"
    with pytest.raises(ValueError, match=r"'day' has a missing or unparsable date at row 4: 'not"):
        make(bad_dates, date_column="day")
    with pytest.raises(ValueError, match=r"has 1 row\(s\); a replay needs at least 2"):
        make(frame.iloc[:1])


def test_missing_columns_listed() -> None:
    with pytest.raises(ValueError, match=r"\['price'\] not found; available columns: \['px', 'iv"):
        make(synthetic(), price_column="price")
    with pytest.raises(ValueError, match=r"\['vix'\] not found"):
        make(synthetic(), vol_column="vix")
    with pytest.raises(ValueError, match=r"data is missing the column\(s\) \['implied_vol'"):
        HistoricalReplay(synthetic().rename(columns={"px": "close"}))


def test_too_few_rows_for_garch() -> None:
    with pytest.raises(ValueError, match=rf"at least {MIN_GARCH_ROWS} closes, got 10"):
        make(synthetic(), vol_column=None)


def test_window_errors() -> None:
    replay = make(synthetic(10))
    with pytest.raises(ValueError, match=r"n_steps \+ 1 = 10 rows, the series has 9"):
        make(synthetic(9)).window([0], 9, DT)
    with pytest.raises(ValueError, match=r"start row 2 is out of range: .* start in \[0, 1\]"):
        replay.window([0, 2], 8, DT)
    with pytest.raises(ValueError, match=r"start row -1 is out of range"):
        replay.window([-1], 8, DT)
    with pytest.raises(ValueError, match=r"dt must be a finite number of years per row > 0"):
        replay.window([0], 3, 0.0)
    with pytest.raises(ValueError, match=r"n_steps must be an integer >= 1, got 0"):
        replay.simulate(2, 0, DT, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"n_paths must be an integer >= 1, got 0"):
        replay.simulate(0, 2, DT, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"stride must be an integer >= 1, got 0"):
        replay.walk_forward_starts(3, stride=0)
    with pytest.raises(ValueError, match=r"starts must be a 1-d array of integer rows"):
        replay.window([0.5], 3, DT)


def test_rate_errors() -> None:
    with pytest.raises(ValueError, match=r"rate must be a finite number per year, got nan"):
        make(synthetic(), rate=float("nan"))


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"cannot read the CSV file '.*missing.csv'"):
        HistoricalReplay.from_csv(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"cannot read the CSV file '.*empty.csv'"):
        HistoricalReplay.from_csv(empty)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81date,close\n\x00\x00")
    with pytest.raises(ValueError, match=r"cannot read the CSV file"):
        HistoricalReplay.from_csv(binary)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("Date,Close\n2020-01-01,1\n2020-01-02,2\n")
    expected = r"\['close', 'date'\] not found; available columns: \['Date', 'Close'\]"
    with pytest.raises(ValueError, match=expected):
        HistoricalReplay.from_csv(wrong)


def test_gym_make_replays_a_users_csv_from_keywords(tmp_path) -> None:
    """``market_kwargs={"csv": ...}`` reaches :meth:`HistoricalReplay.load` through gym.make.

    Every episode's spot path is a window of consecutive CSV closes dated within the cut.
    """
    import gymnasium as gym

    import hedgearena  # noqa: F401  (registers the ids)

    frame = synthetic(200, seed=3)
    path = tmp_path / "series.csv"
    frame.rename_axis("day").reset_index().to_csv(path, index=False)
    kwargs = {"csv": str(path), "date_column": "day", "price_column": "px", "vol_column": "iv",
              "start": "2021-04-01"}
    env = gym.make_vec("hedgearena/HistoricalReplay-v0", num_envs=4,
                       vectorization_mode="vector_entry_point", market_kwargs=kwargs)
    env.reset(seed=0)
    kept = frame.loc["2021-04-01":, "px"].to_numpy()
    for spot in env.unwrapped.batch.market.spot:
        first = int(np.flatnonzero(kept == spot[0])[0])
        np.testing.assert_array_equal(spot, kept[first:first + len(spot)])
    assert env.unwrapped.config.market.name == "series"
    assert env.unwrapped.config.market.data.index[0] == pd.Timestamp("2021-04-01")


def test_load_names_series_and_refuses_csv_options_without_a_csv() -> None:
    assert HistoricalReplay.load(series="nasdaq", end="1999-01-31").name == "NASDAQ Composite"
    with pytest.raises(ValueError, match=r"series must be one of \['sp500', 'nasdaq'\]"):
        HistoricalReplay.load(series="dax")
    with pytest.raises(ValueError, match=r"\['vol_column'\] apply to a CSV file only"):
        HistoricalReplay.load(vol_column="vix")


def test_default_reward_scale_is_the_median_premium_of_the_replays_windows() -> None:
    """The replay's windows start at any level of the index (1998: 1,000; 2018: 2,800): its
    reward scale is the median at-the-money premium of its starting states, not one window's.

    Over 2,000 episodes the scale must sit between the 40th and 60th percentiles of the
    episodes' own premiums ``0.4 sigma_0 sqrt(T) S_0 N``.
    """
    import gymnasium as gym

    import hedgearena  # noqa: F401  (registers the ids)

    env = gym.make_vec("hedgearena/HistoricalReplay-v0", num_envs=2_000,
                       vectorization_mode="vector_entry_point")
    env.reset(seed=11)
    core = env.unwrapped
    market, config = core.batch.market, core.config
    premium = (0.4 * np.sqrt(market.variance[:, 0]) * np.sqrt(config.n_steps * config.dt)
               * market.spot[:, 0] * config.book.notional)
    low, high = np.percentile(premium, [40, 60])
    assert low < core.reward_scale < high


def _timed(tz: str | None = None) -> HistoricalReplay:
    """Six daily closes stamped at 4 pm (in ``tz``, if given)."""
    index = pd.date_range("2020-01-01 16:00", periods=6, freq="D", tz=tz)
    frame = pd.DataFrame({"close": np.arange(100.0, 106.0), "iv": [0.2] * 6}, index=index)
    return HistoricalReplay.from_frame(frame, vol_column="iv")


@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_date_ranges_compare_calendar_days(tz: str | None) -> None:
    """An inclusive end keeps its day whatever the rows' time of day or time zone."""
    replay = _timed(tz)
    kept = replay.between("2020-01-02", "2020-01-04").data.index
    assert [str(day.date()) for day in kept] == ["2020-01-02", "2020-01-03", "2020-01-04"]
    np.testing.assert_array_equal(replay.walk_forward_starts(2, start="2020-01-02"), [1, 3])
    np.testing.assert_array_equal(
        replay.walk_forward_starts(1, start="2020-01-02", end="2020-01-04"), [1, 2]
    )


def test_walk_forward_names_a_bad_n_steps() -> None:
    for bad in (-3, 2.5):
        with pytest.raises(ValueError, match=f"n_steps must be an integer >= 1, got {bad}"):
            _timed().walk_forward_starts(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_steps": 6000}, {"market_kwargs": {"start": "2008-09-01", "end": "2008-09-20"}}],
)
def test_a_window_longer_than_the_series_is_refused_at_make(kwargs: dict) -> None:
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"a window of n_steps=\d+ needs .* rows, the series has"):
        gym.make("hedgearena/HistoricalReplay-v0", **kwargs)
