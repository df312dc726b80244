"""Historical replay: market paths cut from a real daily series of closes and implied vols.

An episode of ``n_steps`` steps is a window of ``n_steps + 1`` consecutive rows of the series;
the step length ``dt`` is the environment's day-count convention (years per row, e.g. 1/252), so
``times = dt * arange(n_steps + 1)`` whatever the calendar gaps (weekends, holidays) between rows.
Windows are drawn at random (:meth:`HistoricalReplay.simulate`), chosen explicitly
(:meth:`HistoricalReplay.window`) or laid end to end through the series
(:meth:`HistoricalReplay.walk_forward_starts`); :meth:`HistoricalReplay.between` restricts the
series to a date range (crisis windows: 2008, May 2010, Aug 2011, early 2018).

The implied vol of a row is either given (VIX/100 for the S&P 500, or the user's column) or,
where none exists, estimated by :func:`garch_implied_vol`. The column ``vol_estimated`` of
:attr:`HistoricalReplay.data` says which rows carry an estimate.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from hedgearena.envs.checks import is_integer, is_number, is_real, require_bool, require_surface
from hedgearena.envs.market import FloatArray, MarketPaths, VolSurface
from hedgearena.envs.vol_surface import FlatVol

TRADING_DAYS_PER_YEAR = 252
"""Trading days per year used to annualise daily variances."""

GARCH_HORIZON_DAYS = 21
"""Trading days averaged by the GARCH vol estimate: 30 calendar days, the VIX's horizon."""

MAX_VOL = 5.0
"""Largest annualised implied vol accepted (500%); larger values are taken for a unit error."""

MIN_GARCH_ROWS = 100
"""Fewest rows of closes from which a GARCH(1,1) is fitted."""

GARCH_BURN_IN_RETURNS = 500
"""Returns (about two years) before the GARCH estimate is fitted in real time, on past returns
only (see :func:`garch_implied_vol`)."""

MIN_SCALED_VOL = 0.005
"""Smallest median implied vol (0.5%) accepted after a ``vol_scale`` other than 1: below it the
column was in fractions already (0.14 read as 0.14%)."""

MIN_CLOSE = 1e-15
"""Smallest close accepted, currency (far below any quoted price; see :data:`MAX_CLOSE`)."""

MAX_CLOSE = 1e15
"""Largest close accepted, currency: far above any quoted price (a hyperinflation's index
included), and a series within ``[MIN_CLOSE, MAX_CLOSE]`` keeps the float32 observations and the
P&L finite; beyond it a close is taken for a typo or a unit error."""

MAX_DAILY_MOVE = 10.0
"""Largest factor between consecutive closes accepted, up or down (a close more than 10 times
the previous one, or less than a tenth of it is refused). Index closes and split-adjusted stock
closes do not move so much in one day (the S&P 500's worst, 19 October 1987, was -20%), so such
a move is taken for a typo, a unit change or an unadjusted split."""

MAX_GAP_DAYS = 14
"""Calendar days between consecutive rows above which a replay warns of a gap in the data (the
S&P 500's longest closure, after 11 September 2001, is 7; some markets' new-year holidays 11)."""

_LOOK_AHEAD = ".*GARCH vol estimate.*look-ahead"
"""The start of the warning :meth:`HistoricalReplay.from_frame` gives for the burn-in rows."""

_CSV_ERRORS = (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)

COLUMNS = ("close", "implied_vol", "vol_estimated")
"""Columns of :attr:`HistoricalReplay.data`."""
SERIES = ("sp500", "nasdaq")
"""The embedded series (shipped with ``arch``) that :meth:`HistoricalReplay.load` names."""


@dataclass(frozen=True, eq=False)
class HistoricalReplay:
    """Replays windows of a daily series of closes and implied vols as :class:`MarketPaths`.

    Build one with :meth:`sp500` (the embedded default), :meth:`from_frame` or :meth:`from_csv`.
    Each replayed path has ``spot`` = the closes of its window, ``vol_state`` = the implied vols
    (the level of ``surface``, at-the-money vol for :class:`FlatVol`), ``variance`` = the implied
    vol squared, ``liquidity`` = 1 and ``dates`` = the window's calendar dates.

    Implausible closes are refused when the series is loaded, naming the date(s) and the value: a
    close outside ``[MIN_CLOSE, MAX_CLOSE]`` (1e-15 to 1e15) or a day-to-day move by a factor of
    more than ``MAX_DAILY_MOVE`` (10, up or down) from one row to the next, which index and
    split-adjusted stock closes do not make (a typo, a unit change or an unadjusted split).

    Attributes:
        data: the validated series: a sorted, duplicate-free ``DatetimeIndex`` and the columns
            ``close`` (currency, > 0), ``implied_vol`` (annualised, in ``(0, MAX_VOL]``) and
            ``vol_estimated`` (bool: True where ``implied_vol`` is the GARCH estimate).
        rate: continuously compounded risk-free rate, per year.
        dividend: continuous dividend yield, per year.
        surface: the implied-volatility surface, driven by ``implied_vol``.
        name: a label for reports (e.g. ``"S&P 500"``).

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame(
        ...     {"close": [100.0, 101.0, 99.0, 102.0], "iv": [0.2, 0.21, 0.22, 0.2]},
        ...     index=pd.date_range("2020-01-01", periods=4),
        ... )
        >>> replay = HistoricalReplay.from_frame(frame, price_column="close", vol_column="iv")
        >>> paths = replay.window([1], n_steps=2, dt=1 / 252)
        >>> paths.spot
        array([[101.,  99., 102.]])
        >>> paths.dates[0, 0]
        np.datetime64('2020-01-02')
    """

    data: pd.DataFrame = field(repr=False)
    rate: float = 0.0
    dividend: float = 0.0
    surface: VolSurface = field(default_factory=FlatVol)
    name: str = "custom"
    _close: FloatArray = field(init=False, repr=False)
    _vol: FloatArray = field(init=False, repr=False)
    _dates: NDArray[np.datetime64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_frame(self.data, "data")
        missing = [c for c in COLUMNS if c not in self.data.columns]
        if missing:
            raise ValueError(
                f"data is missing the column(s) {missing}; it has {list(self.data.columns)}, "
                f"needs {list(COLUMNS)}"
            )
        _check_index(self.data.index, "data index")
        _check_prices(self.data["close"], "close")
        _check_vols(self.data["implied_vol"], "implied_vol")
        for name in ("rate", "dividend"):
            value = getattr(self, name)
            if not is_number(value):
                raise ValueError(f"{name} must be a finite number per year, got {value!r}")
        require_surface("HistoricalReplay", self.surface, variance_level=False)
        data = self.data.loc[:, list(COLUMNS)].copy()
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_close", _readonly(data["close"].to_numpy(np.float64)))
        object.__setattr__(self, "_vol", _readonly(data["implied_vol"].to_numpy(np.float64)))
        object.__setattr__(self, "_dates", _readonly(_as_days(pd.DatetimeIndex(data.index))))

    def __repr__(self) -> str:
        first, last = self.data.index[0].date(), self.data.index[-1].date()
        return (
            f"HistoricalReplay(name={self.name!r}, rows={len(self)}, {first}..{last}, "
            f"estimated_vol_rows={int(self.data['vol_estimated'].sum())}, rate={self.rate}, "
            f"dividend={self.dividend}, surface={self.surface!r})"
        )

    def __len__(self) -> int:
        """Number of rows (trading days) in the series."""
        return len(self.data)

    # ----------------------------------------------------------------------------- constructors

    @classmethod
    def sp500(
        cls, *, rate: float = 0.0, dividend: float = 0.0, surface: VolSurface | None = None
    ) -> HistoricalReplay:
        """S&P 500 daily closes 1999-01-04..2018-12-31 with VIX/100 as implied vol where known.

        The closes are ``arch.data.sp500``'s "Adj Close", which for this price index equals
        "Close" (no dividend adjustment: use ``dividend`` for the yield). The implied vol is
        ``arch.data.vix`` / 100 on the dates it covers (2014-01-03 onwards, 1257 rows) and the
        :func:`garch_implied_vol` estimate elsewhere (1999-2013 and 2014-01-02; ``vol_estimated``
        marks them). Beware that the estimate is a physical-measure forecast of the realised vol,
        fitted in real time (on the returns before each year; 1999-2000 on their own): it carries
        no variance risk premium (1999-2013: 18.8% on average against 17.8% realised over the
        next 21 days; VIX in 2014-2018: 14.7% against 11.7%), and the marks step where VIX takes
        over (2014-01-02 11.9%, 2014-01-03 13.8%). VIX is the 30-day variance-swap level, which
        the skew puts above the at-the-money vol, and has no term structure: a short-dated option
        is marked at it all the same. The series is loaded and fitted once per process.

        Args:
            rate: risk-free rate, per year.
            dividend: dividend yield, per year.
            surface: the implied-vol surface (default :class:`FlatVol`).
        """
        return cls(_sp500_frame(), rate, dividend, surface or FlatVol(), "S&P 500")

    @classmethod
    def nasdaq(
        cls, *, rate: float = 0.0, dividend: float = 0.0, surface: VolSurface | None = None
    ) -> HistoricalReplay:
        """NASDAQ Composite daily closes 1999-2018 ("Adj Close" of ``arch.data.nasdaq``).

        No implied-vol index ships with ``arch``, so every row carries the
        :func:`garch_implied_vol` estimate. Arguments as for :meth:`sp500`.
        """
        return cls(_nasdaq_frame(), rate, dividend, surface or FlatVol(), "NASDAQ Composite")

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        price_column: str = "close",
        vol_column: str | None = None,
        date_column: str | None = None,
        date_format: str | None = None,
        vol_scale: float = 1.0,
        fill_missing_vol: bool = False,
        rate: float = 0.0,
        dividend: float = 0.0,
        surface: VolSurface | None = None,
        name: str = "custom",
    ) -> HistoricalReplay:
        """A replay of the user's daily series, its rows and values as given.

        Nothing is sorted, filled, clipped or dropped: unsorted or duplicated dates, two rows on
        one calendar day, missing, boolean or out-of-range values and implausible closes (outside
        ``[MIN_CLOSE, MAX_CLOSE]``, or a move by a factor of more than :data:`MAX_DAILY_MOVE` from
        one row to the next) are refused, naming the column, the first offending date and what
        is allowed. Each row is one step of the env's ``dt``
        whatever the calendar gap to the next (weekends, holidays); a ``UserWarning`` names
        gaps longer than :data:`MAX_GAP_DAYS` calendar days, weekend rows that repeat the
        previous close (a calendar-day series filled forward) and GARCH-estimated rows of the
        burn-in (fitted on later closes too, see :func:`garch_implied_vol`).

        Args:
            frame: one row per trading day.
            price_column: column of closing prices, currency (> 0, no missing values). Column
                names are non-empty strings, a different column for each of the three.
            vol_column: column of annualised implied vols; None estimates all of them with
                :func:`garch_implied_vol` (needs at least ``MIN_GARCH_ROWS`` rows).
            date_column: column of dates; None uses the frame's index, which must then be a
                ``DatetimeIndex``. Dates with UTC offsets that differ between rows (a time
                zone's summer and winter time) are read at their local time as written.
            date_format: the ``strftime`` format of ``date_column`` (e.g. ``"%d/%m/%Y"`` for
                day-first dates); None lets ``pandas.to_datetime`` infer it.
            vol_scale: factor applied to ``vol_column``: 0.01 for vols quoted in percent (VIX).
                With a factor other than 1 the median scaled vol must be at least
                :data:`MIN_SCALED_VOL` (else the column was in fractions already); a factor
                other than 1 needs a ``vol_column``.
            fill_missing_vol: True or False: estimate missing values of ``vol_column`` with the
                GARCH estimate instead of rejecting them.
            rate: risk-free rate, per year.
            dividend: dividend yield, per year.
            surface: the implied-vol surface (default :class:`FlatVol`).
            name: a label for reports.

        Raises:
            ValueError: a column setting that is no column name, a missing column, a
                non-datetime, unsorted or duplicated date, a missing, boolean, non-positive or
                absurd value, an implausible close or move; the message names the first
                offending date.
        """
        _check_frame(frame, "frame")
        _check_column_names(price_column, vol_column, date_column)
        _check_vol_options(vol_column, vol_scale, fill_missing_vol)
        _check_columns(frame, [c for c in (price_column, vol_column, date_column) if c])
        index = _date_index(frame, date_column, date_format)
        close = pd.Series(frame[price_column].to_numpy(), index=index, name=price_column)
        _check_index(index, f"date_column {date_column!r}" if date_column else "index")
        _check_prices(close, price_column)
        close = close.astype(np.float64)
        if vol_column is None:
            vol, estimated = _garch(close, price_column), pd.Series(True, index=index)
            _warn_look_ahead(estimated, name)
        else:
            raw = pd.Series(frame[vol_column].to_numpy(), index=index, name=vol_column)
            vol = pd.Series(_numeric(raw, vol_column) * vol_scale, index=index)
            estimated = vol.isna()
            if fill_missing_vol and estimated.any():
                garch = _garch(close, price_column, estimated)
                _warn_look_ahead(estimated, name)
                vol = vol.where(~estimated, garch)
            _check_vols(vol, vol_column, vol_scale)
            _check_vol_scale(vol[~estimated], vol_column, vol_scale)
        _warn_calendar(close, price_column, name)
        data = pd.DataFrame(
            {"close": close, "implied_vol": vol.astype(np.float64), "vol_estimated": estimated}
        )
        return cls(data, rate, dividend, surface or FlatVol(), name)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        date_column: str = "date",
        price_column: str = "close",
        vol_column: str | None = None,
        **kwargs: Any,
    ) -> HistoricalReplay:
        """A replay of a CSV file with one row per trading day (see :meth:`from_frame`).

        The file is comma-separated with a header row (a UTF-8 byte-order mark is read);
        numbers are plain (``1234.5``: no thousands separators, no decimal comma).

        Args:
            path: the CSV file.
            date_column: column of dates (any format ``pandas.to_datetime`` reads, one format
                for every row, or the ``date_format`` of :meth:`from_frame`).
            price_column: column of closing prices, currency.
            vol_column: column of annualised implied vols, or None for the GARCH estimate.
            **kwargs: the other keyword arguments of :meth:`from_frame`.

        Raises:
            ValueError: a column setting that is no column name (before the file is read), the
                file cannot be read, or its content is invalid; the message then starts with the
                file's path.
        """
        if not isinstance(path, str | os.PathLike):
            raise ValueError(f"path must be a CSV file's path (str or Path), got {path!r}")
        _check_column_names(price_column, vol_column, date_column, csv=True)
        try:
            frame = pd.read_csv(path)
        except _CSV_ERRORS as err:
            where = "" if Path(path).is_absolute() else f" (relative to {os.getcwd()})"
            raise ValueError(f"cannot read the CSV file {str(path)!r}{where}: {err}") from err
        kwargs.setdefault("name", Path(path).stem)
        try:
            _check_separator(frame)
            return cls.from_frame(
                frame, price_column=price_column, vol_column=vol_column, date_column=date_column,
                **kwargs,
            )
        except ValueError as err:
            raise ValueError(f"CSV file {str(path)!r}: {err}") from None

    @classmethod
    def load(
        cls,
        *,
        series: str | None = None,
        csv: str | Path | None = None,
        start: Any = None,
        end: Any = None,
        date_column: str = "date",
        date_format: str | None = None,
        price_column: str = "close",
        vol_column: str | None = None,
        vol_scale: float = 1.0,
        fill_missing_vol: bool = False,
        rate: float = 0.0,
        dividend: float = 0.0,
        surface: VolSurface | None = None,
    ) -> HistoricalReplay:
        """The replay of ``market="historical"``: an embedded series or the user's CSV, dated.

        Plain keywords, so YAML run configs and ``gym.make(..., market_kwargs=...)`` reach it;
        the series is cut to ``[start, end]``.

        Args:
            series: ``"sp500"`` (:meth:`sp500`, the default) or ``"nasdaq"``
                (:meth:`nasdaq`); not with ``csv``.
            csv: a CSV file of the user's daily series (read by :meth:`from_csv`).
            date_column: the CSV's column of dates, ISO (``2014-01-13``) or month first (CSV
                only, like the next five).
            date_format: the ``strftime`` format of the dates (e.g. ``"%d/%m/%Y"`` for day
                first); None lets ``pandas.to_datetime`` infer it.
            price_column: the CSV's column of closing prices, currency.
            vol_column: the CSV's column of annualised implied vols (None: GARCH estimate).
            vol_scale: factor applied to ``vol_column`` (0.01 for vols in percent).
            fill_missing_vol: True or False: estimate the CSV's missing vols with GARCH.
            start: first date kept (inclusive; None = from the start), see :meth:`between`.
            end: last date kept (inclusive; None = to the end).
            rate: risk-free rate, per year.
            dividend: dividend yield, per year.
            surface: the implied-vol surface (default :class:`FlatVol`).

        Raises:
            ValueError: an unknown ``series``, ``series`` with ``csv``, CSV options without
                ``csv``, or what :meth:`from_csv` and :meth:`between` raise.

        Examples:
            >>> HistoricalReplay.load(start="2008-09-01", end="2008-09-30").name
            'S&P 500'
            >>> len(HistoricalReplay.load(start="2008-09-01", end="2008-09-30"))
            21
        """
        carry = {"rate": rate, "dividend": dividend, "surface": surface}
        require_bool("HistoricalReplay", "fill_missing_vol", fill_missing_vol)  # "no" is no False
        if csv is not None:
            if series is not None:
                raise ValueError(
                    f"series={series!r} and csv={str(csv)!r} name two histories: give one"
                )
            with warnings.catch_warnings():  # warned below if the rows kept include them
                if start is not None:
                    warnings.filterwarnings("ignore", message=_LOOK_AHEAD, category=UserWarning)
                replay = cls.from_csv(
                    csv, date_column=date_column, date_format=date_format,
                    price_column=price_column, vol_column=vol_column, vol_scale=vol_scale,
                    fill_missing_vol=fill_missing_vol, **carry,
                )
            if start is not None:
                kept = replay.between(start, end)
                if _look_ahead_kept(replay, kept):
                    _warn_look_ahead(replay.data["vol_estimated"], replay.name)
                return kept
        else:
            _check_no_csv_options(date_column, date_format, price_column, vol_column, vol_scale,
                                  fill_missing_vol)
            series = "sp500" if series is None else series
            if series not in SERIES:
                raise ValueError(
                    f"series must be one of {list(SERIES)} (or give csv=<path>), got {series!r}"
                )
            replay = getattr(cls, series)(**carry)
        return replay if start is None and end is None else replay.between(start, end)

    # ------------------------------------------------------------------------ window selection

    def between(self, start: Any = None, end: Any = None) -> HistoricalReplay:
        """A replay of the rows dated within ``[start, end]`` (inclusive; None = unbounded).

        Examples:
            >>> len(HistoricalReplay.sp500().between("2008-09-01", "2008-09-30"))
            21
        """
        dates = self.data.index
        days = _as_days(dates)
        lo = days[0] if start is None else _day("start", start)
        hi = days[-1] if end is None else _day("end", end)
        mask = (days >= lo) & (days <= hi)
        if mask.sum() < 2:
            raise ValueError(
                f"between({start!r}, {end!r}) keeps {int(mask.sum())} row(s), at least 2 are "
                f"needed; the series {self.name!r} runs from {dates[0].date()} to "
                f"{dates[-1].date()}"
            )
        return dataclasses.replace(self, data=self.data.loc[mask])

    def window_starts(self, n_steps: int) -> int:
        """Number of distinct windows of ``n_steps`` steps: valid starts are ``0..result-1``."""
        _check_n_steps(n_steps)
        if len(self) < n_steps + 1:
            raise ValueError(
                f"a window of n_steps={n_steps} needs n_steps + 1 = {n_steps + 1} rows, the series "
                f"has {len(self)} ({self.name!r}, {self.data.index[0].date()}.."
                f"{self.data.index[-1].date()})"
            )
        return len(self) - n_steps

    def walk_forward_starts(
        self, n_steps: int, stride: int | None = None, *, start: Any = None, end: Any = None
    ) -> NDArray[np.int64]:
        """Start rows of windows laid end to end through the series, in date order.

        With the default ``stride = n_steps`` each window starts on the row where the previous
        one ended, so every daily move of the series is replayed exactly once (no two windows
        share a step); ``stride = n_steps + 1`` also keeps their rows disjoint. A tail shorter
        than a window is dropped.

        Args:
            n_steps: steps per window.
            stride: rows between consecutive starts (>= 1); default ``n_steps``.
            start: first date a window may cover (None = the series' first).
            end: last date a window may cover (None = the series' last).

        Returns:
            ``(n_windows,)`` row indices into :attr:`data`, for :meth:`window`.

        Examples:
            >>> HistoricalReplay.sp500().walk_forward_starts(21, start="2008-09-01")[:3]
            array([2430, 2451, 2472])
        """
        _check_n_steps(n_steps)
        stride = n_steps if stride is None else stride
        if not (is_integer(stride) and stride >= 1):
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        days = _as_days(self.data.index)
        first = 0 if start is None else int(days.searchsorted(_day("start", start), "left"))
        stop = len(self) if end is None else int(days.searchsorted(_day("end", end), "right"))
        sub = self.between(start, end) if (start, end) != (None, None) else self
        sub.window_starts(n_steps)
        return np.arange(first, stop - n_steps, stride, dtype=np.int64)

    def window(self, starts: Any, n_steps: int, dt: float) -> MarketPaths:
        """The paths of the windows starting at the rows ``starts``.

        Args:
            starts: ``(n_paths,)`` row indices into :attr:`data`, each in ``[0, len - n_steps)``.
            n_steps: steps per window (the window has ``n_steps + 1`` rows).
            dt: years per row (the day-count convention, e.g. 1/252).

        Returns:
            :class:`MarketPaths` of shape ``(n_paths, n_steps + 1)`` with ``dates`` filled.
        """
        n_starts = self.window_starts(n_steps)
        _check_dt(dt)
        starts = np.asarray(starts)
        if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer):
            raise ValueError(f"starts must be a 1-d array of integer rows, got {starts!r}")
        bad = (starts < 0) | (starts >= n_starts)
        if bad.any():
            raise ValueError(
                f"start row {int(starts[bad][0])} is out of range: windows of n_steps={n_steps} "
                f"start in [0, {n_starts - 1}] for a series of {len(self)} rows"
            )
        rows = starts[:, None] + np.arange(n_steps + 1)
        vol = self._vol[rows]
        return MarketPaths(
            times=dt * np.arange(n_steps + 1, dtype=np.float64), spot=self._close[rows],
            variance=vol**2, vol_state=vol, surface=self.surface, rate=self.rate,
            dividend=self.dividend, dates=self._dates[rows],
        )

    def simulate(
        self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator
    ) -> MarketPaths:
        """``n_paths`` windows with starts drawn uniformly (with replacement) from ``rng``.

        Examples:
            >>> import numpy as np
            >>> replay = HistoricalReplay.sp500()
            >>> replay.simulate(4, 10, 1 / 252, np.random.default_rng(0)).spot.shape
            (4, 11)
        """
        if not (is_integer(n_paths) and n_paths >= 1):  # True is no path count
            raise ValueError(f"n_paths must be an integer >= 1, got {n_paths!r}")
        starts = rng.integers(0, self.window_starts(n_steps), size=n_paths)
        return self.window(starts, n_steps, dt)


# --------------------------------------------------------------------------- GARCH vol estimate


def garch_implied_vol(close: pd.Series, horizon: int = GARCH_HORIZON_DAYS) -> pd.Series:
    """A VIX-like vol estimate: GARCH(1,1)'s mean forecast variance over the next ``horizon`` days.

    A GARCH(1,1) with constant mean and normal innovations (Bollerslev 1986) is fitted by
    ``arch.arch_model`` to the percent log returns ``r_t = 100 log(S_t / S_{t-1})``. On each date
    ``t`` it forecasts the variance of the next ``horizon`` returns::

        sigma2[t+k | t] = vbar + (alpha + beta)^(k-1) * (sigma2[t+1 | t] - vbar),
        vbar = omega / (1 - alpha - beta)      (Bollerslev 1986),

    and the estimate is ``sqrt(252 * mean_k sigma^2_{t+k|t}) / 100``, the annualised vol expected
    over ``horizon`` trading days (21 = the 30 calendar days of the VIX). With
    ``alpha + beta >= 1`` the one-step forecast is used.

    In real time, as a trader on date ``t`` could have computed it: the estimate of a date in
    calendar year ``Y`` comes from parameters fitted on the returns before ``Y`` (refitted once
    a year), the filter run forward through the returns up to that date. The years before
    :data:`GARCH_BURN_IN_RETURNS` returns have passed take the first real-time year's
    parameters (fitted on those years' own returns: the estimate's only look-ahead); a series too
    short for any real-time year is fitted once, on all of it. On the first date the one-step
    forecast is the fit's back-cast variance.

    Args:
        close: daily closes (> 0, at least ``MIN_GARCH_ROWS``) indexed by date (a
            ``DatetimeIndex``: the calendar years set the refits).
        horizon: trading days averaged (>= 1).

    Returns:
        Annualised vols (0.2 = 20%), indexed like ``close``.
    """
    if len(close) < MIN_GARCH_ROWS:
        raise ValueError(
            f"the GARCH vol estimate needs at least {MIN_GARCH_ROWS} closes, got {len(close)}; "
            "give a vol column instead"
        )
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 trading day, got {horizon}")
    if not isinstance(close.index, pd.DatetimeIndex):
        raise ValueError(
            "close must be indexed by dates (a DatetimeIndex): the GARCH estimate is refitted "
            f"each calendar year; got a {type(close.index).__name__}"
        )
    values = close.to_numpy(np.float64)
    out = np.empty(len(values))
    for lo, hi, fit_closes in garch_refits(close.index):
        next_var, omega, persistence = _garch_one_step(values[:hi], fit_closes)
        weight = float(np.mean(persistence ** np.arange(horizon))) if persistence < 1 else 1.0
        long_run = omega / (1 - persistence) if persistence < 1 else 0.0
        mean_var = (1 - weight) * long_run + weight * next_var[lo:hi]
        out[lo:hi] = np.sqrt(TRADING_DAYS_PER_YEAR * mean_var) / 100
    return pd.Series(out, index=close.index)


def garch_refits(dates: pd.DatetimeIndex) -> list[tuple[int, int, int]]:
    """The rows each GARCH fit estimates: ``(lo, hi, fit_closes)`` per calendar year.

    Rows ``lo`` to ``hi`` (a calendar year) are estimated with the parameters fitted on the
    first ``fit_closes`` closes: those before the year, once :data:`GARCH_BURN_IN_RETURNS`
    returns precede it. The years before that are one block, fitted like the first real-time
    year (on their own closes); a series with no real-time year is one block fitted on all of it.

    Examples:
        >>> dates = pd.bdate_range("2000-01-03", "2003-12-31")  # about 261 business days a year
        >>> garch_refits(dates)
        [(0, 521, 521), (521, 782, 521), (782, 1043, 782)]
    """
    years = np.asarray(dates.year)
    starts = [0, *(int(i) + 1 for i in np.flatnonzero(years[1:] != years[:-1]))]
    first = next((lo for lo in starts if lo - 1 >= GARCH_BURN_IN_RETURNS), None)
    if first is None:
        return [(0, len(dates), len(dates))]
    bounds = [lo for lo in starts if lo >= first] + [len(dates)]
    return [(0, first, first)] + [(lo, hi, lo) for lo, hi in itertools.pairwise(bounds)]


def _garch_one_step(close: FloatArray, fit_closes: int) -> tuple[FloatArray, float, float]:
    """GARCH(1,1) one-step forecast variances ``sigma^2_{t+1|t}`` (percent^2), omega, alpha+beta.

    The parameters are fitted on the first ``fit_closes`` closes; the filter runs through all of
    ``close``: ``sigma^2_{t+1|t} = omega + alpha e_t^2 + beta sigma^2_{t|t-1}`` with
    ``e_t = r_t - mu``, from the fit's back-cast variance (arch's own recursion, which it
    reproduces on the fitted returns).
    """
    from arch import arch_model  # imported lazily: arch is slow to import
    from scipy.signal import lfilter

    returns = 100 * np.diff(np.log(close))
    result = arch_model(
        returns[: fit_closes - 1], mean="Constant", vol="GARCH", p=1, q=1, dist="normal"
    ).fit(disp="off")
    mu, omega, alpha, beta = (
        float(result.params[k]) for k in ("mu", "omega", "alpha[1]", "beta[1]")
    )
    first = float(np.asarray(result.conditional_volatility, dtype=np.float64)[0]) ** 2
    shocks = omega + alpha * (returns - mu) ** 2
    forecasts = lfilter([1.0], [1.0, -beta], shocks, zi=[beta * first])[0]
    return np.concatenate([[first], forecasts]), omega, alpha + beta


@functools.cache
def _sp500_frame() -> pd.DataFrame:
    """S&P 500 closes with VIX/100 where known and the GARCH estimate elsewhere (cached)."""
    from arch.data import sp500, vix

    close = sp500.load()["Adj Close"].astype(np.float64)
    implied = vix.load()["vix"].reindex(close.index) / 100
    frame = pd.DataFrame({"close": close, "vix": implied})
    with warnings.catch_warnings():  # its burn-in years are documented in sp500()
        warnings.filterwarnings("ignore", message=_LOOK_AHEAD, category=UserWarning)
        return HistoricalReplay.from_frame(
            frame, price_column="close", vol_column="vix", fill_missing_vol=True
        ).data


@functools.cache
def _nasdaq_frame() -> pd.DataFrame:
    """NASDAQ Composite closes with the GARCH vol estimate on every row (cached)."""
    from arch.data import nasdaq

    frame = nasdaq.load()[["Adj Close"]].astype(np.float64)
    with warnings.catch_warnings():  # its burn-in years are documented in garch_implied_vol()
        warnings.filterwarnings("ignore", message=_LOOK_AHEAD, category=UserWarning)
        return HistoricalReplay.from_frame(frame, price_column="Adj Close").data


# ---------------------------------------------------------------------------------- validation


def _readonly(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only so that replays cannot be altered through their paths."""
    array.flags.writeable = False
    return array


def _as_days(dates: pd.Index) -> NDArray[np.datetime64]:
    """Calendar dates (``datetime64[D]``, local dates for a tz-aware index) of a date index."""
    index = pd.DatetimeIndex(dates)
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.to_numpy().astype("datetime64[D]")


def _check_no_csv_options(
    date_column: str, date_format: str | None, price_column: str, vol_column: str | None,
    vol_scale: float, fill_missing_vol: bool,
) -> None:
    """Raise ``ValueError`` if CSV options of :meth:`HistoricalReplay.load` come without a CSV.

    They would be ignored silently otherwise.
    """
    given = {"date_column": date_column != "date", "date_format": date_format is not None,
             "price_column": price_column != "close",
             "vol_column": vol_column is not None,
             "vol_scale": not (is_real(vol_scale) and vol_scale == 1.0),  # True == 1.0
             "fill_missing_vol": bool(fill_missing_vol)}
    named = sorted(name for name, changed in given.items() if changed)
    if named:
        raise ValueError(f"{named} apply to a CSV file only: give csv=<path> too, or drop them")


_COLUMN_NAME = "a column name (a non-empty string)"
_OPTIONAL_COLUMNS = {
    "vol_column": " or None (the GARCH vol estimate)",
    "date_column": " or None (the frame's DatetimeIndex)",
}
"""What None means for the column settings that may be None (in :meth:`from_frame`)."""


def _check_column_names(
    price_column: Any, vol_column: Any, date_column: Any, *, csv: bool = False
) -> None:
    """Raise unless the column settings are distinct column names (None where optional).

    A column name is a non-empty string; ``vol_column`` may be None, and so may
    ``date_column`` unless the series is a ``csv`` (whose dates are a column).
    """
    given = {"price_column": price_column, "vol_column": vol_column, "date_column": date_column}
    for name, value in given.items():
        optional = _OPTIONAL_COLUMNS.get(name, "")
        if csv and name == "date_column":
            optional = ""  # a CSV's dates are one of its columns
        if not ((isinstance(value, str) and value) or (optional and value is None)):
            raise ValueError(f"{name} must be {_COLUMN_NAME}{optional}, got {value!r}")
    named = [(name, value) for name, value in given.items() if value is not None]
    for (first, column), (second, other) in itertools.combinations(named, 2):
        if column == other:
            raise ValueError(
                f"{first} and {second} name the same column {column!r}; allowed: a column of "
                "its own for each of the closes, the implied vols and the dates"
            )


def _check_vol_options(vol_column: str | None, vol_scale: Any, fill_missing_vol: Any) -> None:
    """Raise unless ``vol_scale`` and ``fill_missing_vol`` are valid for ``vol_column``.

    ``vol_scale`` is a finite number > 0 (1 without a ``vol_column``: it would scale nothing),
    ``fill_missing_vol`` True or False.
    """
    require_bool("HistoricalReplay", "fill_missing_vol", fill_missing_vol)
    if not is_number(vol_scale, gt=0.0):
        raise ValueError(f"vol_scale must be finite and > 0, got {vol_scale!r} (0.01 for vols "
                         "in percent, 1 for annualised fractions)")
    if vol_column is None and vol_scale != 1.0:
        raise ValueError(
            f"vol_scale={vol_scale!r} scales vol_column, and none is given (every vol is then "
            "the GARCH estimate); allowed: 1 without a vol_column: give vol_column or drop "
            "vol_scale"
        )


def _check_frame(frame: Any, what: str) -> None:
    """Raise unless ``frame`` is a pandas DataFrame."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(
            f"{what} must be a pandas DataFrame (one row per trading day), "
            f"got {type(frame).__name__}; read a file with HistoricalReplay.from_csv"
        )


def _day(name: str, value: Any) -> np.datetime64:
    """``value``'s calendar date (``datetime64[D]``; its local date if it has a time zone).

    Ranges compare calendar dates, so an inclusive end keeps its day whatever the series' time of
    day or time zone.
    """
    return np.datetime64(_timestamp(name, value).date(), "D")


def _timestamp(name: str, value: Any) -> pd.Timestamp:
    """``value`` as a timestamp, or an error naming the argument.

    A number is refused: pandas reads ``20080901`` as nanoseconds since 1970, which kept every
    row from the series' start (as :func:`_date_index` refuses a column of numbers).
    """
    try:
        stamp = None if isinstance(value, numbers.Number) else pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise ValueError(
            f"{name} must be a date readable by pandas.Timestamp (e.g. '2008-09-01') or None, "
            f"got {value!r}"
        )
    return stamp


def _check_columns(frame: pd.DataFrame, needed: list[str]) -> None:
    """Raise if a needed column is missing, listing the available ones (and near misses)."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        near = {str(c).strip().casefold(): c for c in frame.columns}
        hints = [f"{c!r} -> {near[c.strip().casefold()]!r}" for c in missing
                 if c.strip().casefold() in near]
        hint = f"; names match exactly (case and spaces): did you mean {', '.join(hints)}?"
        unnamed = "Unnamed: 0" in frame.columns and not hints
        raise ValueError(
            f"column(s) {missing} not found; available columns: {list(frame.columns)}"
            + (hint if hints else "")
            + ("; 'Unnamed: 0' is a column without a header (an index written by "
               "DataFrame.to_csv: name it, or pass its name)" if unnamed else "")
        )


def _check_separator(frame: pd.DataFrame) -> None:
    """Raise if a CSV read with commas came out as one column holding another separator."""
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in header:
                raise ValueError(
                    f"the file has one column {header!r}: its fields seem separated by {label}; "
                    "allowed: comma-separated fields with '.' as the decimal point (re-save "
                    "it, e.g. pd.read_csv(path, sep=';', decimal=',').to_csv(new, index=False))"
                )


def _date_index(
    frame: pd.DataFrame, date_column: str | None, date_format: str | None = None
) -> pd.DatetimeIndex:
    """The dates of ``frame``: parsed from ``date_column``, or its index if that is datetime.

    Dates whose UTC offsets differ between rows (summer and winter time) are read at their local
    time as written (the offsets dropped), so each row keeps the calendar day it names.
    """
    if date_column is None:
        if not isinstance(frame.index, pd.DatetimeIndex):
            first = f" (first value {frame.index[0]!r})" if len(frame.index) else ""
            raise ValueError(
                f"the index must be a DatetimeIndex, got {type(frame.index).__name__}{first}; "
                "pass date_column= to parse a column of dates"
            )
        return frame.index
    column = frame[date_column]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        raise ValueError(
            f"date_column {date_column!r} holds numbers (first {column.iloc[0]}), which "
            "pandas would read as nanoseconds since 1970; give dates as text such as "
            "2021-01-04, or convert the column first (e.g. pd.to_datetime(col.astype(str)))"
        )
    if date_format is not None and not isinstance(date_format, str):
        raise ValueError(f"date_format must be a strftime format such as '%d/%m/%Y' or None, "
                         f"got {date_format!r}")
    try:
        parsed = pd.to_datetime(column, format=date_format, errors="coerce")
    except ValueError:  # offsets that differ between rows: each date at its written local time
        parsed = pd.to_datetime(column.map(lambda x: _local_time(x, date_format)))
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise _date_error(column, date_column, date_format, int(np.argmax(bad)))
    return pd.DatetimeIndex(parsed, name=date_column)


def _date_error(
    column: pd.Series, date_column: str, date_format: str | None, row: int
) -> ValueError:
    """The error for the first date at ``row`` that ``pandas.to_datetime`` could not read.

    Without a ``date_format`` pandas infers the format from the first date and holds every row
    to it: a date readable on its own, written in another format, is named as such.
    """
    value = column.iloc[row]
    day_first = re.fullmatch(r"\s*(1[3-9]|2\d|3[01])[/.-](0?[1-9]|1[0-2])[/.-]\d{2,4}.*",
                             str(value))
    if date_format is None and not day_first:
        mixed = _other_format(column, row)
        if mixed:
            return ValueError(f"date_column {date_column!r} has a date at row {row}, {value!r}, "
                              f"{mixed}")
    hint = (" (day first? write ISO dates such as 2014-01-13, or give the format, "
            "date_format='%d/%m/%Y', beside date_column)"
            if day_first and date_format is None else "")
    how = f"date_format {date_format!r}" if date_format else "pandas.to_datetime"
    return ValueError(
        f"date_column {date_column!r} has a missing or unparsable date at row {row}: "
        f"{value!r}; dates must be readable by {how}{hint}"
    )


def _other_format(column: pd.Series, row: int) -> str | None:
    """Why the date at ``row`` was unreadable, if it reads on its own; else None.

    Without a ``date_format``, pandas infers the format from the first date and applies it to
    every row, so a date in another format is unreadable even where it reads on its own.
    """
    from pandas.tseries.api import guess_datetime_format

    first_row = int(np.argmax(column.notna().to_numpy()))
    value, first = column.iloc[row], column.iloc[first_row]
    if row == first_row or not (isinstance(value, str) and isinstance(first, str)):
        return None
    with warnings.catch_warnings():  # a lone date's own inference warnings are of no interest
        warnings.simplefilter("ignore")
        if pd.isna(pd.to_datetime(value, errors="coerce")):
            return None
    inferred = guess_datetime_format(first)
    fmt = f" ({inferred!r})" if inferred else ""
    return (f"in another format than the one{fmt} pandas.to_datetime inferred from the first "
            f"date {first!r} (row {first_row}) and applies to every row; allowed: one format "
            "on every row: write the dates alike (ISO, such as 2014-01-13), or give date_format")


def _local_time(value: Any, date_format: str | None) -> pd.Timestamp | None:
    """``value`` as a timestamp at its written local time (any UTC offset dropped), or None."""
    stamp = pd.to_datetime(value, format=date_format, errors="coerce")
    if pd.isna(stamp):
        return None
    return stamp.tz_localize(None) if stamp.tz is not None else stamp


def _check_index(index: pd.Index, what: str) -> None:
    """Raise unless ``index`` is a non-empty, strictly increasing ``DatetimeIndex``."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{what} must be a DatetimeIndex, got {type(index).__name__}")
    if len(index) < 2:
        raise ValueError(f"{what} has {len(index)} row(s); a replay needs at least 2")
    if index.hasnans:
        row = int(np.argmax(index.isna()))
        raise ValueError(f"{what} has a missing date (NaT) at row {row}")
    steps = np.diff(index.asi8)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 1
        problem = "duplicate" if steps[row - 1] == 0 else "unsorted (earlier than the row before)"
        article = "a" if problem == "duplicate" else "an"
        raise ValueError(
            f"{what} has {article} {problem} date {index[row].date()} at row {row}; dates must be "
            "strictly increasing (sort the data and drop duplicates)"
        )
    same_day = np.diff(_as_days(index).astype(np.int64)) == 0
    if same_day.any():
        row = int(np.argmax(same_day)) + 1
        raise ValueError(
            f"{what} has two rows on the calendar day {_as_days(index)[row]} (rows {row - 1} and "
            f"{row}); a replay takes one row per trading day (daily closes)"
        )


def _first_bad(values: pd.Series, bad: NDArray[np.bool_]) -> str:
    """'<date> (row <i>)' of the first True in ``bad``."""
    return _row(values, int(np.argmax(bad)))


def _row(values: pd.Series, row: int) -> str:
    """'<date> (row <i>)' of the row ``row`` of ``values``."""
    label = values.index[row]
    where = label.date() if isinstance(label, pd.Timestamp) else repr(label)
    return f"{where} (row {row})"


def _numeric(values: pd.Series, column: str) -> FloatArray:
    """The values as float64, or an error naming the first non-numeric or boolean one.

    Booleans are no numbers (:func:`~hedgearena.envs.checks.is_real`): ``pd.to_numeric``
    would read True as 1.0 (a close of 1, a vol of 100%).
    """
    _check_no_booleans(values, column)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    bad = np.isnan(numbers) & values.notna().to_numpy()
    if bad.any():
        raise ValueError(
            f"column {column!r} has a non-numeric value {values.iloc[int(np.argmax(bad))]!r} "
            f"on {_first_bad(values, bad)}"
        )
    return numbers


def _check_no_booleans(values: pd.Series, column: str) -> None:
    """Raise if ``values`` holds a boolean (a bool column, or True/False among numbers)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        bad = values.notna().to_numpy(bool)
    elif values.dtype == object:
        bad = np.fromiter((isinstance(x, bool | np.bool_) for x in values), bool, len(values))
    else:
        return
    if bad.any():
        raise ValueError(
            f"column {column!r} has a boolean {bool(values.iloc[int(np.argmax(bad))])} on "
            f"{_first_bad(values, bad)}; allowed: numbers (a boolean is not read as 1 or 0): "
            "is it the right column?"
        )


def _check_prices(close: pd.Series, column: str) -> None:
    """Raise on a missing, non-finite or non-positive price, naming the first offending date."""
    prices = _numeric(close, column)
    for bad, problem in (
        (np.isnan(prices), "a missing value"),
        (~np.isfinite(prices) | (prices <= 0), "a non-positive or infinite price"),
    ):
        if bad.any():
            raise ValueError(
                f"column {column!r} has {problem} ({prices[bad][0]}) on {_first_bad(close, bad)}; "
                "prices must be finite and > 0 (fill or drop the row)"
            )
    _check_plausible(close, prices, column)


def _check_plausible(close: pd.Series, prices: FloatArray, column: str) -> None:
    """Raise on an implausible close, naming the date(s) and the value(s).

    A close outside ``[MIN_CLOSE, MAX_CLOSE]``, or more than :data:`MAX_DAILY_MOVE` times the
    row before (or less than its ``1 / MAX_DAILY_MOVE``), is taken for a typo or unit error.
    """
    bad = (prices < MIN_CLOSE) | (prices > MAX_CLOSE)
    if bad.any():
        raise ValueError(
            f"column {column!r} has a price of {prices[bad][0]:g} on {_first_bad(close, bad)}; "
            f"allowed: closes in [{MIN_CLOSE:g}, {MAX_CLOSE:g}] (far beyond any quoted price; "
            "past them the float32 observations and the P&L can overflow): a typo or a unit "
            "error? correct or rescale the column"
        )
    ratio = prices[1:] / prices[:-1]
    jump = (ratio > MAX_DAILY_MOVE) | (ratio < 1 / MAX_DAILY_MOVE)
    if jump.any():
        row = int(np.argmax(jump)) + 1
        raise ValueError(
            f"column {column!r} moves from {prices[row - 1]:g} on {_row(close, row - 1)} to "
            f"{prices[row]:g} on {_row(close, row)}, a factor of "
            f"{ratio[row - 1]:.3g} in one row; allowed: moves within a factor of "
            f"{MAX_DAILY_MOVE:g} up or down (a close from a tenth to 10 times the one before), "
            "which index and split-adjusted stock closes do not make in a day: a typo, a unit "
            "change or an unadjusted split? correct the close (or split-adjust the series)"
        )


def _garch(close: pd.Series, price_column: str, rows: pd.Series | None = None) -> pd.Series:
    """:func:`garch_implied_vol` of ``close``, or an error naming ``price_column`` and the date.

    Closes that never move cannot be fitted; an estimate outside ``(0, MAX_VOL]`` on the
    ``rows`` used (a boolean mask; None: all) is refused.
    """
    if len(close) >= MIN_GARCH_ROWS and not np.diff(close.to_numpy(np.float64)).any():
        raise ValueError(
            f"column {price_column!r} never moves ({close.iloc[0]} on every row): no GARCH vol "
            "estimate can be fitted to it; give a vol_column"
        )
    vol = garch_implied_vol(close)
    used = vol if rows is None else vol[rows]
    values = used.to_numpy(np.float64)
    bad = ~(np.isfinite(values) & (values > 0) & (values <= MAX_VOL))
    if bad.any():
        raise ValueError(
            f"the GARCH vol estimate from column {price_column!r} is {values[bad][0]} on "
            f"{_first_bad(used, bad)}; allowed: (0, {MAX_VOL}]: the closes move too little (or "
            "too wildly) for a GARCH(1,1) fit: give a vol_column"
        )
    return vol


def _check_vol_scale(vol: pd.Series, column: str, scale: float) -> None:
    """Raise if a ``vol_scale`` other than 1 leaves a median vol below :data:`MIN_SCALED_VOL`."""
    if scale != 1.0 and len(vol) and float(np.median(vol.to_numpy())) < MIN_SCALED_VOL:
        median = float(np.median(vol.to_numpy()))
        raise ValueError(
            f"column {column!r} after vol_scale={scale} has a median implied vol of {median:.4g} "
            f"({100 * median:.3g}%); allowed: at least {MIN_SCALED_VOL} after a vol_scale: are "
            "the vols annualised fractions already (0.2 = 20%)? then drop vol_scale"
        )


def _warn_look_ahead(estimated: pd.Series, name: str) -> None:
    """Warn of GARCH-estimated rows fitted on their own closes (:func:`garch_refits`' burn-in).

    Only rows after :data:`GARCH_BURN_IN_RETURNS` returns and a new calendar year are estimated
    in real time; the rows before are fitted on the closes up to the burn-in's end, later ones
    included (the whole series if it is too short for a real-time year).
    """
    dates = pd.DatetimeIndex(estimated.index)
    lo, hi, _ = garch_refits(dates)[0]
    ahead = estimated.to_numpy()[lo:hi]
    if ahead.any():
        rows = np.flatnonzero(ahead)
        after = (f"from {dates[hi].date()} on it is fitted in real time: for out-of-sample "
                 f"work give a vol_column or start='{dates[hi].date()}'" if hi < len(dates)
                 else "the series is too short for a real-time fit: give a vol_column")
        warnings.warn(
            f"series {name!r}: the GARCH vol estimate of {len(rows)} row(s) "
            f"({dates[rows[0]].date()}..{dates[rows[-1]].date()}) is fitted on the closes to "
            f"{dates[hi - 1].date()} (look-ahead: later closes move earlier vols; a real-time fit "
            f"needs {GARCH_BURN_IN_RETURNS} returns before a calendar year starts); {after}",
            UserWarning, stacklevel=3,
        )


def _look_ahead_kept(replay: HistoricalReplay, kept: HistoricalReplay) -> bool:
    """Whether ``kept`` (a window of ``replay``) holds a GARCH row of ``replay``'s burn-in.

    Those rows (:func:`_warn_look_ahead`) are fitted on later closes of the whole series; a
    window starting after them is estimated in real time only.
    """
    dates = replay.data.index
    lo, hi, _ = garch_refits(pd.DatetimeIndex(dates))[0]
    burn_in = dates[lo:hi][replay.data["vol_estimated"].to_numpy()[lo:hi]]
    return bool(((burn_in >= kept.data.index[0]) & (burn_in <= kept.data.index[-1])).any())


def _warn_calendar(close: pd.Series, column: str, name: str) -> None:
    """Warn of gaps longer than :data:`MAX_GAP_DAYS` and of weekend rows repeating a close."""
    days = _as_days(close.index)
    gaps = np.diff(days.astype(np.int64))
    if (gaps > MAX_GAP_DAYS).any():
        row, count = int(np.argmax(gaps)) + 1, int((gaps > MAX_GAP_DAYS).sum())
        warnings.warn(
            f"series {name!r}: {count} gap(s) of more than {MAX_GAP_DAYS} calendar days "
            f"between rows, the longest {int(gaps[row - 1])} days from {days[row - 1]} to "
            f"{days[row]}: each row is one step of the env's dt, so a window across it replays "
            "the gap's whole move as one day",
            UserWarning, stacklevel=3,
        )
    prices = close.to_numpy(np.float64)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    stale = (weekday[1:] >= 5) & (prices[1:] == prices[:-1])
    if stale.any():
        row = int(np.argmax(stale)) + 1
        warnings.warn(
            f"series {name!r}: {int(stale.sum())} row(s) fall on a Saturday or Sunday and repeat "
            f"the previous {column!r} (the first {days[row]}): a calendar-day series filled "
            "forward? Each row is one step of the env's dt (1 / days_per_year): drop those rows, "
            "or for a market that trades every day set days_per_year=365",
            UserWarning, stacklevel=3,
        )


def _check_vols(vol: pd.Series, column: str, scale: float = 1.0) -> None:
    """Raise on a missing, non-positive or absurd implied vol, naming the first offending date."""
    vols = _numeric(vol, column)
    if np.isnan(vols).any():
        bad = np.isnan(vols)
        raise ValueError(
            f"column {column!r} has a missing value on {_first_bad(vol, bad)}; fill it, drop the "
            "row or pass fill_missing_vol=True for the GARCH estimate"
        )
    bad = ~((vols > 0) & (vols <= MAX_VOL))
    if bad.any():
        raise ValueError(
            f"column {column!r} has implied vol {vols[bad][0]} (after vol_scale={scale}) on "
            f"{_first_bad(vol, bad)}; allowed: annualised fractions in (0, {MAX_VOL}] "
            "(0.2 = 20%); for vols in percent pass vol_scale=0.01"
        )


def _check_n_steps(n_steps: int) -> None:
    """Raise unless ``n_steps`` is an integer >= 1."""
    if not (is_integer(n_steps) and n_steps >= 1):  # True is no window of 1 step
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")


def _check_dt(dt: float) -> None:
    """Raise unless ``dt`` (years per row) is finite and > 0."""
    if not is_number(dt, gt=0.0):
        raise ValueError(
            f"dt must be a finite number of years per row > 0 (e.g. 1/252), got {dt!r}"
        )
