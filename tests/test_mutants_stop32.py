"""Tests that kill mutants the suite let live (mutation testing of the stop-31/32 input checks:
env bounds, replay closes, the RLlib observation normaliser, saved agents' scoring check, run
names and ``out``, ``python:`` and ``mv_delta`` hedger specs).

Each test names the code it pins and the mutation that survived every other test. The
references are independent of the code under test: the documented bounds (``[MIN_CLOSE,
MAX_CLOSE]``, ``|stock| <= MAX_LIMIT`` notionals, ``NAME_BYTES`` bytes of UTF-8, ``MIN_STD``),
numpy's standard deviation, Python's ``str.encode``, the line a syntax error is written on.
No Ray is needed (the normaliser is plain numpy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hedgearena.agents.rllib import MIN_STD, OBS_NORMALIZER, ObservationNormalizer
from hedgearena.agents.saved import check_out_of_sample
from hedgearena.baselines.registry import parse_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.core import MAX_LIMIT
from hedgearena.envs.historical import MAX_CLOSE, MIN_CLOSE, HistoricalReplay
from hedgearena.run_config import NAME_BYTES, folder_name_problem, load_config
from hedgearena.training import check_hedgers


# ------------------------------------------------------------------------- env config bounds
def test_a_short_stock_beyond_the_bound_is_refused_like_a_long_one() -> None:
    """``EnvConfig._validate_sizes``: the book's stock is within ``+-MAX_LIMIT`` notionals, short
    positions too (killed ``abs(stock) > ...`` turned into ``stock > ...``, which let a stock of
    -1e300 units through to overflow the float32 observations). At the bound, short, it is
    accepted."""
    notional = 100.0  # one option of the default size
    with pytest.raises(ValueError, match=r"the book's stock must be within \+-1e\+09 notionals"
                                         r".*got -1e\+300"):
        make_config("ShortCall", book={"options": [{}], "stock": -1e300})
    with pytest.raises(ValueError, match=r"the book's stock must be within"):
        make_config("ShortCall", book={"options": [{}], "stock": -2 * MAX_LIMIT * notional})
    config = make_config("ShortCall", book={"options": [{}], "stock": -MAX_LIMIT * notional})
    assert config.book.stock == -1e11


# ----------------------------------------------------------------------------- replay closes
@pytest.mark.parametrize("bound", [MIN_CLOSE, MAX_CLOSE])
def test_closes_at_the_documented_bounds_are_accepted(bound: float) -> None:
    """``historical._check_plausible``: closes in ``[MIN_CLOSE, MAX_CLOSE]`` (1e-15 to 1e15,
    both ends included, as the docstring and the message say) are accepted (killed
    ``prices < MIN_CLOSE`` turned into ``<=`` and ``prices > MAX_CLOSE`` into ``>=``, which
    refused a series touching its bound); a close 1% past either bound is refused."""
    dates = pd.bdate_range("2020-01-02", periods=6)
    inside = 1.5 if bound == MIN_CLOSE else 0.6  # moves well within the factor of 10
    closes = [bound * inside, bound, bound * inside, bound, bound, bound * inside]
    replay = HistoricalReplay.from_frame(
        pd.DataFrame({"close": closes, "iv": 0.2}, index=dates), vol_column="iv")
    np.testing.assert_array_equal(replay.data["close"].to_numpy(), closes)
    past = bound * (0.99 if bound == MIN_CLOSE else 1.01)
    with pytest.raises(ValueError, match=r"allowed: closes in \[1e-15, 1e\+15\]"):
        HistoricalReplay.from_frame(
            pd.DataFrame({"close": [*closes[:3], past, *closes[4:]], "iv": 0.2}, index=dates),
            vol_column="iv")


# ----------------------------------------------------------------- RLlib observation normaliser
def test_an_entry_with_a_std_below_min_std_is_shifted_not_scaled() -> None:
    """``ObservationNormalizer.fit``: an entry whose standard deviation is below ``MIN_STD``
    (1e-8) is taken for a constant and gets a std of 1 (killed ``std < MIN_STD`` turned into
    ``std <= 0``: a rounding-noise entry of std 5e-11 was scaled up by 2e10 into +-1, the
    largest feature of the standardised observation). The reference is numpy's population std
    of the other entry."""
    rows = np.array([[0.0, 1.0], [1.0, 1.0 + 1e-10], [3.0, 1.0]])
    assert 0.0 < rows[:, 1].std() < MIN_STD
    normalizer = ObservationNormalizer.fit(rows)
    assert normalizer.std[1] == 1.0
    np.testing.assert_allclose(normalizer.std[0], np.std([0.0, 1.0, 3.0]), rtol=1e-15)
    out = normalizer(rows)
    assert np.abs(out[:, 1]).max() < 1e-9  # shifted only: the noise stays noise


def test_a_normaliser_dict_with_an_unknown_key_is_refused() -> None:
    """``ObservationNormalizer.from_json``: the dict holds exactly ``mean``, ``std`` and
    ``clip`` (killed ``set(data) != {...}`` loosened to "holds at least these keys", which read a
    dict of another writer, an extra ``count`` key, as this normaliser)."""
    good = {"mean": [0.0, 1.0], "std": [1.0, 2.0], "clip": 10.0}
    assert ObservationNormalizer.from_json(good, "rllib.json") == ObservationNormalizer(
        mean=(0.0, 1.0), std=(1.0, 2.0), clip=10.0)
    with pytest.raises(ValueError, match=rf"^rllib.json: {OBS_NORMALIZER} must be a mapping "
                                         r"\{mean: .*got .*'count': 5"):
        ObservationNormalizer.from_json({**good, "count": 5}, "rllib.json")


# ------------------------------------------------------------- saved agents: the split's day
def test_a_replay_from_the_split_day_on_is_out_of_sample() -> None:
    """``saved.check_out_of_sample``: an agent learnt on the history *before* ``arena.split``;
    a replay whose first day is the split day is scored (killed ``first < split`` turned into
    ``first <= split``, which refused the very start the message advises, "score it from
    <split> on"); a replay from the trading day before is refused."""
    config = load_config(None, ["arena.split=2010-01-04", "seed=0"])
    on_split = make_config("HistoricalReplay", market_kwargs={"start": "2010-01-04"})
    assert on_split.market.data.index[0] == pd.Timestamp("2010-01-04")
    check_out_of_sample(Path("run"), config, False, 5, on_split)
    before = make_config("HistoricalReplay", market_kwargs={"start": "2009-12-31"})
    with pytest.raises(ValueError, match=r"learnt on the history before arena.split = 2010-01-04:"
                                         r" scoring it on a replay from 2009-12-31"):
        check_out_of_sample(Path("run"), config, False, 5, before)


# ------------------------------------------------------------------------ run name and out
def test_folder_names_allow_spaces_and_refuse_del() -> None:
    """``run_config.folder_name_problem``: control characters are code points below 32 and 127
    (DEL); a space (32) is an ordinary character of a folder name (killed ``ord(c) < 32`` turned
    into ``<= 32``, which refused ``name: my run``, and dropping ``ord(c) == 127``, which let
    DEL into a folder name)."""
    assert folder_name_problem("my run") is None
    assert load_config(None, ["name=my run"]).run_name == "my run"
    assert folder_name_problem("a\x7fb") == "it holds the control character '\\x7f' (got 'a\\x7fb')"
    with pytest.raises(ValueError, match=r"name must be a folder name inside out: it holds the "
                                         r"control character '\\x7f'"):
        load_config(None, name="a\x7fb")


def test_a_name_is_measured_in_utf8_bytes() -> None:
    """``run_config.folder_name_problem``: the limit is ``NAME_BYTES`` (255) bytes of UTF-8, as
    file systems count, not characters (killed ``len(name.encode(...))`` turned into
    ``len(name)``: 128 "é" are 128 characters but 256 bytes, which ext4 refuses)."""
    fits, too_long = "é" * 127, "é" * 128
    assert len(fits.encode("utf-8")) == 254 <= NAME_BYTES < len(too_long.encode("utf-8")) == 256
    assert folder_name_problem(fits) is None
    assert folder_name_problem(too_long) == ("it is 256 bytes long (UTF-8), longer than file "
                                             "systems allow (255 bytes)")
    with pytest.raises(ValueError, match=r"name must be a folder name inside out: it is 256 bytes"):
        load_config(None, name=too_long)


def test_out_may_hold_control_characters_other_than_nul() -> None:
    """``RunConfig._folder_path``: ``out`` is refused for a NUL byte and over-long folder names
    only (``folder_name_problem(part, control=False)``); a tab in an existing path is the
    user's to keep, unlike in the run's own ``name`` (killed ``control=False`` turned into
    ``control=True``, which refused the out path ``runs/a<TAB>b``)."""
    assert load_config(None, out="runs/a\tb").out == "runs/a\tb"
    with pytest.raises(ValueError, match=r"name must be a folder name inside out: it holds the "
                                         r"control character '\\t'"):
        load_config(None, name="a\tb")
    with pytest.raises(ValueError, match=r"out must be a folder path without NUL bytes"):
        load_config(None, out="runs/a\0b")


def test_quoted_optional_integers_are_named_as_integers() -> None:
    """``_Section._no_booleans_for_numbers``: a field typed ``int | None`` (``ray.num_cpus``)
    given text asks for an integer, as ``int`` fields do (killed ``field.annotation in (int,
    int | None)`` narrowed to ``is int``, which asked for "a number")."""
    with pytest.raises(ValueError, match=r"ray.num_cpus: Value error, must be an integer, not "
                                         r"text: got '4'"):
        load_config(None, ['ray.num_cpus="4"'])
    assert load_config(None, ["ray.num_cpus=4"]).ray.num_cpus == 4


# ------------------------------------------------------------------------------ hedger specs
def test_mv_delta_names_keep_every_significant_digit() -> None:
    """``registry._mv_delta``: the hedger is named by its coefficients written with 15
    significant digits, so two sets differing in the fourth digit are two hedgers (killed
    ``{a:.15g}`` turned into ``{a:.3g}``: ``mv_delta:0.1234:0:0`` and ``mv_delta:0.1235:0:0``
    were both "MV delta 0.123:0:0", refused as the same hedger)."""
    assert parse_hedger("mv_delta:0.12345:-0.0625:1.5").name == "MV delta 0.12345:-0.0625:1.5"
    specs = ["mv_delta:0.1234:0:0", "mv_delta:0.1235:0:0"]
    check_hedgers(make_config("ShortCall"), specs)
    assert [parse_hedger(spec).name for spec in specs] == ["MV delta 0.1234:0:0",
                                                          "MV delta 0.1235:0:0"]


def test_a_syntax_error_in_a_python_hedger_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``registry._import_hedger_module``: a module with a syntax error is named with its file
    and the line of the error (killed dropping ``, line {error.lineno}``). The reference is the
    line the test writes the error on (3)."""
    (tmp_path / "stop32_broken_hedger.py").write_text("import math\n\ndef f(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="failed") as refused:
        parse_hedger("python:stop32_broken_hedger.X")
    message = str(refused.value)
    assert f"({tmp_path / 'stop32_broken_hedger.py'}, line 3) failed: SyntaxError" in message
