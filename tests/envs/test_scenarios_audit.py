"""Audit of the stress scenarios, the S&P 500 replay and Merton's series: each test failed on
the code before its fix.

Monte Carlo checks state their standard errors: the mean of N independent terminal prices has
standard error std / sqrt(N).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from hedgearena.envs.config import make_config
from hedgearena.envs.gbm import GBM
from hedgearena.envs.historical import HistoricalReplay
from hedgearena.envs.merton import merton_call_price
from hedgearena.envs.scenarios import (
    FlashCrash,
    Gap,
    LiquidityDrought,
    RealisedVsImplied,
    StressWindow,
    VolSpike,
    apply_scenario,
    make_scenario,
)

DT = 1 / 252


# ------------------------------------------------------------- stacked scenarios keep the drift
def test_a_wrapper_over_a_wrapper_keeps_the_price_drift() -> None:
    """``scale_returns`` recentres the returns on the base's drift ``mu``. Under a second wrapper
    it read the wrapper's (absent) ``mu`` as ``rate - dividend = 0``: a gap with its vol doubled
    on a calm-market wrapper of GBM(mu=0.5) grew the price at 2 mu (mean terminal price 86.45
    against S0 (1 + size) e^{mu T} = 83.24, SE 0.07, T = 20 days)."""
    gbm = GBM(mu=0.5, sigma=0.2)
    identity = RealisedVsImplied(gbm, ratio=1.0)  # the base's own paths, wrapped
    plain = Gap(gbm, size=-0.2, step=1, vol_multiplier=2.0)
    stacked = Gap(identity, size=-0.2, step=1, vol_multiplier=2.0)
    a = plain.simulate(500, 20, DT, np.random.default_rng(0)).spot
    b = stacked.simulate(500, 20, DT, np.random.default_rng(0)).spot
    np.testing.assert_allclose(b, a, rtol=1e-12)


def test_a_vol_spike_on_a_calm_market_grows_at_mu() -> None:
    """E[S_T] = S0 e^{mu T} (the wrappers keep the price's drift; exact for GBM, see
    ``scale_returns``): it was 113.86 against 104.05 (SE 0.15) on 20,000 paths."""
    mu, n, n_steps = 0.5, 20_000, 20
    model = VolSpike(RealisedVsImplied(GBM(mu=mu, sigma=0.2), ratio=0.8), step=0)
    terminal = model.simulate(n, n_steps, DT, np.random.default_rng(1)).spot[:, -1]
    expected = 100.0 * math.exp(mu * n_steps * DT)
    se = terminal.std() / math.sqrt(n)
    assert abs(terminal.mean() - expected) < 4 * se


def test_a_historical_window_on_a_stressed_market_keeps_its_rate() -> None:
    """The replay takes the base's rate and dividend: under a scenario wrapper they were lost
    (0 instead of PortfolioInsurance's 2%)."""
    calm = apply_scenario(make_config("PortfolioInsurance"), "calm")
    assert calm.market.base.rate == 0.02
    replay = make_scenario("crisis_2008").market(calm.market)
    assert (replay.rate, replay.dividend) == (0.02, 0.0)


# -------------------------------------------------------------------- dates of the S&P 500 replay
def test_a_numeric_date_is_refused_not_read_as_1970() -> None:
    """pandas reads 20080901 as nanoseconds since 1970: crisis_2008 with start=20080901 replayed
    2515 rows of 1999-01-04..2008-12-31 instead of Sep-Dec 2008 (85 rows)."""
    with pytest.raises(ValueError, match=re.escape(
            "crisis_2008.start must be a date readable by pandas.Timestamp (e.g. '2008-09-01') "
            "or None, got 20080901")):
        make_scenario("crisis_2008", start=20080901)
    with pytest.raises(ValueError, match=r"^start must be a date .* got 19990101"):
        HistoricalReplay.sp500().between(19990101, "2008-12-31")
    assert len(make_scenario("crisis_2008").market(GBM())) == 85
    assert len(make_scenario("crisis_2008", start=None).market(GBM())) == 2515  # unbounded


# ------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Gap(step=True), "Gap.step must be None (random) or an integer >= 1, got True"),
        (lambda: VolSpike(step=False),
         "VolSpike.step must be None (random) or an integer >= 0, got False"),
        (lambda: LiquidityDrought(start=True),
         "LiquidityDrought.start must be None (random) or an integer >= 0, got True"),
        (lambda: FlashCrash(start=False),
         "FlashCrash.start must be None (random) or an integer >= 0, got False"),
        (lambda: StressWindow(fill_cap=True),
         "StressWindow.fill_cap must be a number >= 0 (or inf), got True"),
    ],
)
def test_a_boolean_is_no_step_nor_cap(build, message) -> None:
    """``True`` was taken for step 1 (``bool`` is an ``int``)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_numpy_numbers_are_fill_caps() -> None:
    """``np.float32(0.2)`` and ``np.int64(1)`` were refused as "not a number"."""
    assert StressWindow(fill_cap=np.float32(0.2)).arrays(np.array([True]))[2][0] == \
        pytest.approx(0.2)
    assert StressWindow(fill_cap=np.int64(1)).fill_cap == 1


# ---------------------------------------------------------------------------- Merton's series
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_terms": 0}, "merton_call_price.n_terms must be an integer >= 1, got 0"),
        ({"n_terms": -3}, "merton_call_price.n_terms must be an integer >= 1, got -3"),
        ({"jump_mean": float("nan")}, "merton_call_price.jump_mean must be a finite number"),
        ({"rate": float("nan")}, "merton_call_price.rate must be a finite number, got nan"),
        ({"dividend": float("inf")}, "merton_call_price.dividend must be a finite number"),
    ],
)
def test_merton_series_names_a_bad_argument(kwargs, message) -> None:
    """Merton (1976) eq. (16) sums at least its n = 0 term: 0 terms priced the call at 0.0, a NaN
    rate priced it NaN, a NaN jump mean failed with "spot must be finite"."""
    args = {"spot": np.array([100.0]), "strike": 100.0, "tau": 1.0, "sigma": 0.2,
            "jump_intensity": 1.0, "jump_mean": -0.1, "jump_std": 0.15, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        merton_call_price(**args)


@pytest.mark.parametrize("field", ["days", "rebalance_every", "steps_per_day"])
@pytest.mark.parametrize("bad", [0, 1.5, True])
def test_flash_crash_grid_settings_are_checked_when_built(field, bad) -> None:
    """Before, ``days`` and ``rebalance_every`` were only checked when the scenario was applied
    to an env (after a stress config had been accepted)."""
    with pytest.raises(ValueError, match=f"flash_crash.{field} must be an integer >= 1"):
        make_scenario("flash_crash", **{field: bad})
