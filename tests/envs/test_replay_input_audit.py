"""Bad CSV input to the historical replay, from the input-validation audit.

Each test feeds :class:`~hedgearena.envs.historical.HistoricalReplay` (``from_csv``,
``from_frame``, ``load`` or ``gym.make``'s ``market_kwargs``) one bad setting or file and checks
the ``ValueError`` names the setting or the file, the value and what is allowed. ``ValueError``
is what ``train.py`` turns into a one-line error; a ``KeyError`` or ``TypeError`` reached the
user as a traceback, and an outlier close reached them as ``inf`` observations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.historical import MAX_CLOSE, MAX_DAILY_MOVE, MIN_CLOSE, HistoricalReplay

ENV_ID = "hedgearena/HistoricalReplay-v0"


def _frame(n: int = 12, close: float = 100.0) -> pd.DataFrame:
    """``n`` business days from 2020-01-02 as a CSV would hold them: text dates, closes, vols."""
    dates = pd.bdate_range("2020-01-02", periods=n)
    moves = 1.0 + 0.01 * np.sin(np.arange(n))  # small, deterministic daily moves
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "close": close * moves,
                         "iv": np.full(n, 0.2)})


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "series") -> Path:
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


# ------------------------------------------------ finding 1: column settings of the wrong type
@pytest.mark.parametrize(
    ("setting", "value", "allowed"),
    [
        ("price_column", None, "a column name (a non-empty string)"),
        ("price_column", "", "a column name (a non-empty string)"),
        ("vol_column", 2, "a column name (a non-empty string) or None (the GARCH vol estimate)"),
        ("vol_column", {"a": 1}, "a column name (a non-empty string) or None"),
        ("date_column", ["date"], "a column name (a non-empty string)"),
        ("date_column", None, "a column name (a non-empty string)"),  # a CSV's dates: a column
    ],
)
def test_a_column_setting_of_the_wrong_type_is_named(
    tmp_path: Path, setting: str, value: Any, allowed: str
) -> None:
    """Before: KeyError None / '', AttributeError 'int' has no 'strip', TypeError unhashable."""
    path = _csv(tmp_path, _frame())
    kwargs: dict[str, Any] = {"vol_column": "iv", setting: value}
    message = re.escape(f"{setting} must be {allowed}") + r".*, got " + re.escape(repr(value))
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.from_csv(path, **kwargs)
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.load(csv=str(path), **kwargs)


def test_a_column_setting_of_the_wrong_type_is_named_by_from_frame_and_gym_make(
    tmp_path: Path,
) -> None:
    """The frame API and ``gym.make``'s market_kwargs (the CLI's path) say the same."""
    frame = _frame()
    with pytest.raises(ValueError, match=r"vol_column must be a column name .*, got 2$"):
        HistoricalReplay.from_frame(frame, vol_column=2, date_column="date")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"date_column must be .* or None \(the frame's "
                                         r"DatetimeIndex\), got \['date'\]$"):
        HistoricalReplay.from_frame(frame, vol_column="iv", date_column=["date"])  # type: ignore[arg-type]
    kwargs = {"csv": str(_csv(tmp_path, frame)), "vol_column": "iv", "date_column": ["date"]}
    with pytest.raises(ValueError, match=r"date_column must be a column name"):
        gym.make(ENV_ID, market_kwargs=kwargs)


def test_price_and_vol_column_must_differ(tmp_path: Path) -> None:
    """Before: the vols (about 0.2) were replayed as closes."""
    path = _csv(tmp_path, _frame())
    with pytest.raises(ValueError, match=r"price_column and vol_column name the same column "
                                         r"'iv'; allowed: a column of its own for each"):
        HistoricalReplay.from_csv(path, price_column="iv", vol_column="iv")
    with pytest.raises(ValueError, match=r"price_column and date_column name the same column"):
        HistoricalReplay.from_frame(_frame(), price_column="date", date_column="date")


# ----------------------------------------------------- finding 2: implausible closes at load
def test_an_outlier_close_is_refused_naming_the_file_date_and_value(tmp_path: Path) -> None:
    """Before: accepted, and the pnl observation was inf from the outlier's step on."""
    frame = _frame()
    frame.loc[5, "close"] = 1e50
    path = _csv(tmp_path, frame, "jump")
    message = (r"CSV file '.*jump\.csv': column 'close' has a price of 1e\+50 on 2020-01-09 "
               r"\(row 5\); allowed: closes in \[1e-15, 1e\+15\]")
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.from_csv(path, vol_column="iv")
    with pytest.raises(ValueError, match=message):
        gym.make(ENV_ID, n_steps=10, book={"options": [{"expiry_steps": 10}]}, observe_pnl=True,
                 market_kwargs={"csv": str(path), "vol_column": "iv"})


@pytest.mark.parametrize("close", [MAX_CLOSE * 10, MIN_CLOSE / 10])
def test_closes_out_of_the_float_range_are_refused_even_without_a_jump(
    tmp_path: Path, close: float
) -> None:
    """A whole series at 1e16 (or 1e-16): before, accepted silently."""
    path = _csv(tmp_path, _frame(close=close))
    with pytest.raises(ValueError, match=r"column 'close' has a price of .* on 2020-01-02 "
                                         r"\(row 0\); allowed: closes in"):
        HistoricalReplay.from_csv(path, vol_column="iv")


def test_a_typo_among_hundreds_is_refused_naming_both_days(tmp_path: Path) -> None:
    """A close of 10000 typed for 100: before, accepted without a warning."""
    frame = _frame()
    frame.loc[4, "close"] = 10000.0
    path = _csv(tmp_path, frame, "typo")
    previous = frame.loc[3, "close"]
    message = (rf"CSV file '.*typo\.csv': column 'close' moves from {previous:g} on 2020-01-07 "
               r"\(row 3\) to 10000 on 2020-01-08 \(row 4\), a factor of 9\d\.\d in one row; "
               rf"allowed: moves within a factor of {MAX_DAILY_MOVE:g} up or down")
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.from_csv(path, vol_column="iv")


@pytest.mark.parametrize("factor", [10.5, 0.095])
def test_the_move_bound_is_a_factor_of_ten_either_way(tmp_path: Path, factor: float) -> None:
    """A move by a factor of 10 up or down loads (the bound is inclusive); 10.5 and 1/10.5 not."""
    assert MAX_DAILY_MOVE == 10.0  # the docstrings and messages say 10
    for edge in (10.0, 0.1):
        frame = _frame()
        frame["close"] = [100.0] * 6 + [100.0 * edge] * 6  # 100 -> 1000 (or 10) exactly
        assert len(HistoricalReplay.from_csv(_csv(tmp_path, frame), vol_column="iv")) == 12
    frame = _frame()
    frame["close"] = [100.0] * 6 + [100.0 * factor] * 6
    with pytest.raises(ValueError, match=rf"moves from 100 on 2020-01-09 \(row 5\) to "
                                         rf"{100 * factor:g} on 2020-01-10 \(row 6\), a factor "
                                         rf"of {factor:.3g} in one row"):
        HistoricalReplay.from_csv(_csv(tmp_path, frame), vol_column="iv")


def test_one_typo_in_the_real_sp500_is_refused_and_the_real_history_loads() -> None:
    """The bound holds for the embedded history (largest daily move +12%) and refuses a
    tenfold typo on 2008-10-13 in it; the constructor checks it too, not only the loaders."""
    data = HistoricalReplay.sp500().data
    assert len(HistoricalReplay(data)) == len(data)
    typo = data.copy()
    day = pd.Timestamp("2008-10-13")
    typo.loc[day, "close"] = typo.loc[day, "close"] * 11
    with pytest.raises(ValueError, match=r"column 'close' moves from .* on 2008-10-10 \(row "
                                         r"\d+\) to .* on 2008-10-13 \(row \d+\), a factor of "):
        HistoricalReplay(typo)


# ---------------------------------------------------------- finding 4: fill_missing_vol types
@pytest.mark.parametrize("value", ["no", 1, 0, None, "False"])
def test_fill_missing_vol_must_be_a_boolean(tmp_path: Path, value: Any) -> None:
    """Before: "no" and 1 silently filled the missing vol with the GARCH estimate."""
    frame = _frame(120)
    frame.loc[50, "iv"] = np.nan
    path = _csv(tmp_path, frame)
    message = rf"fill_missing_vol must be True or False, got {re.escape(repr(value))}$"
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.from_csv(path, vol_column="iv", fill_missing_vol=value)
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.load(csv=str(path), vol_column="iv", fill_missing_vol=value)
    with pytest.raises(ValueError, match=message):  # without a csv: 0 was taken for False
        HistoricalReplay.load(fill_missing_vol=value)


# --------------------------------------------------------- finding 10: boolean CSV cells
@pytest.mark.parametrize("column", ["close", "iv"])
def test_a_boolean_column_is_refused_naming_it(tmp_path: Path, column: str) -> None:
    """Before: True read as 1.0 (a close of 1, a vol of 100%)."""
    frame = _frame()
    frame[column] = True
    path = _csv(tmp_path, frame)
    with pytest.raises(ValueError, match=rf"column '{column}' has a boolean True on 2020-01-02 "
                                         r"\(row 0\); allowed: numbers"):
        HistoricalReplay.from_csv(path, vol_column="iv")


def test_a_boolean_among_numbers_is_refused_naming_its_date() -> None:
    """A frame's object column mixing numbers and a boolean: before, True read as 1.0."""
    frame = _frame()
    frame["iv"] = frame["iv"].astype(object)
    frame.loc[3, "iv"] = np.True_
    with pytest.raises(ValueError, match=r"column 'iv' has a boolean True on 2020-01-07 "
                                         r"\(row 3\)"):
        HistoricalReplay.from_frame(frame, vol_column="iv", date_column="date")


# -------------------------------------------------------------------------------- nitpicks
def test_vol_scale_true_without_a_csv_is_refused() -> None:
    """Before: True == 1.0 passed the CSV-only check and was ignored."""
    with pytest.raises(ValueError, match=r"\['vol_scale'\] apply to a CSV file only"):
        HistoricalReplay.load(vol_scale=True)
    assert HistoricalReplay.load(vol_scale=1, end="1999-01-31").name == "S&P 500"


def test_vol_scale_without_a_vol_column_is_refused(tmp_path: Path) -> None:
    """Before: vol_scale=0.01 with no vol_column scaled nothing (every vol the GARCH estimate)."""
    path = _csv(tmp_path, _frame(120))
    with pytest.raises(ValueError, match=r"vol_scale=0.01 scales vol_column, and none is given"):
        HistoricalReplay.from_csv(path, vol_scale=0.01)
    with pytest.raises(ValueError, match=r"vol_scale must be finite and > 0, got True"):
        HistoricalReplay.from_csv(path, vol_scale=True)


def test_a_date_in_another_format_names_the_format_inferred_from_the_first_row(
    tmp_path: Path,
) -> None:
    """Before: '2020-01-14' was called unreadable by pandas.to_datetime, which reads it."""
    frame = _frame()
    dates = pd.to_datetime(frame["date"])
    frame["date"] = [d.strftime("%m/%d/%Y") if i < 8 else d.strftime("%Y-%m-%d")
                     for i, d in enumerate(dates)]
    path = _csv(tmp_path, frame)
    message = (r"date_column 'date' has a date at row 8, '2020-01-14', in another format than "
               r"the one \('%m/%d/%Y'\) pandas.to_datetime inferred from the first date "
               r"'01/02/2020' \(row 0\)")
    with pytest.raises(ValueError, match=message):
        HistoricalReplay.from_csv(path, vol_column="iv")
