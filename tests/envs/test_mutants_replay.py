"""Tests written against the mutants that survived a mutation round over ``historical.py`` (the
S&P 500 replay, the GARCH vol estimate, the replay windows and date cuts) and the plumbing of
``vector_env.py`` and ``sb3_adapter.py`` (autoreset, final observations and infos, totals,
seeding).

Every expected number comes from an independent source: the GARCH(1,1) recursion and its
multi-step forecast written out here in numpy (Bollerslev 1986, eq. 5 and the forecast
``sigma^2_{t+k|t} = vbar + (alpha + beta)^(k-1) (sigma^2_{t+1|t} - vbar)``), the Gaussian
log-likelihood of that recursion set against ``arch.arch_model``'s own, hand counts of rows
and dates, or the contracts of Gymnasium's and stable-baselines3's vector envs. Each test's
docstring names the code it pins and the mutant it kills.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hedgearena.envs import historical
from hedgearena.envs.historical import (
    MAX_GAP_DAYS,
    MAX_VOL,
    MIN_GARCH_ROWS,
    HistoricalReplay,
    garch_implied_vol,
    garch_refits,
)

# ------------------------------------------------------------------------------------ helpers


def _closes(n: int, seed: int = 0, start: str = "2021-01-04") -> pd.Series:
    """``n`` business-day closes of a 1%-a-day log random walk."""
    rng = np.random.default_rng(seed)
    steps = np.concatenate([[0.0], 0.01 * rng.standard_normal(n - 1)])
    return pd.Series(100 * np.exp(np.cumsum(steps)), index=pd.bdate_range(start, periods=n))


def _bollerslev_mean_variance(
    next_var: np.ndarray, omega: float, persistence: float, horizon: int
) -> np.ndarray:
    """Mean of ``sigma^2_{t+k|t}``, k = 1..horizon, term by term (Bollerslev 1986).

    ``sigma^2_{t+k|t} = vbar + p^(k-1) (sigma^2_{t+1|t} - vbar)``, ``vbar = omega / (1 - p)``;
    written as an explicit sum over k, not as the code's closed-form weight.
    """
    vbar = omega / (1.0 - persistence)
    terms = [vbar + persistence ** (k - 1) * (next_var - vbar) for k in range(1, horizon + 1)]
    return np.mean(terms, axis=0)


# ------------------------------------------------------------------------- GARCH formulas


def test_multi_step_mean_and_annualisation_against_the_forecast_written_out(monkeypatch):
    """garch_implied_vol's ``weight``/``long_run``/``mean_var`` and ``sqrt(252 v) / 100``.

    With the one-step forecasts, omega and alpha + beta given (``_garch_one_step`` replaced),
    the estimate must be ``sqrt(252 * mean_k sigma^2_{t+k|t}) / 100`` with the mean written out
    term by term. Kills: weights k instead of k-1, ``1 + p`` in vbar, swapped weights, the
    percent-to-decimal ``/ 100`` moved inside the root, a 365-day year.
    """
    close = _closes(150)
    next_var = np.linspace(0.4, 3.0, 150)  # percent^2 per day
    omega, persistence = 0.05, 0.93
    monkeypatch.setattr(historical, "_garch_one_step",
                        lambda values, fit: (next_var[: len(values)], omega, persistence))
    for horizon in (1, 5, 21):
        got = garch_implied_vol(close, horizon=horizon).to_numpy()
        mean = _bollerslev_mean_variance(next_var, omega, persistence, horizon)
        np.testing.assert_allclose(got, np.sqrt(252 * mean) / 100, rtol=1e-13)
    # a hand value: horizon 2, s = 1, vbar = 0.05 / 0.07: mean = (1 + vbar + 0.93 (1 - vbar)) / 2
    vbar = 0.05 / 0.07
    hand = np.sqrt(252 * (1 + vbar + 0.93 * (1 - vbar)) / 2) / 100
    monkeypatch.setattr(historical, "_garch_one_step",
                        lambda values, fit: (np.ones(len(values)), omega, persistence))
    assert garch_implied_vol(close, horizon=2).iloc[0] == pytest.approx(hand, rel=1e-14)


@pytest.mark.parametrize("persistence", [1.0, 1.02])
def test_non_stationary_fit_uses_the_one_step_forecast(monkeypatch, persistence: float):
    """garch_implied_vol with ``alpha + beta >= 1``: the documented one-step forecast.

    No long-run variance exists then; the docstring says the one-step forecast is used, i.e.
    ``sqrt(252 sigma^2_{t+1|t}) / 100`` whatever the horizon. Kills: the weight 0 (instead of
    1) in the ``persistence >= 1`` branch, which returns ``sqrt(252 * 0) = 0``.
    """
    close = _closes(120)
    next_var = np.linspace(0.5, 2.0, 120)
    monkeypatch.setattr(historical, "_garch_one_step",
                        lambda values, fit: (next_var[: len(values)], 0.01, persistence))
    got = garch_implied_vol(close, horizon=21).to_numpy()
    np.testing.assert_allclose(got, np.sqrt(252 * next_var) / 100, rtol=1e-14)


def test_one_step_filter_is_bollerslevs_recursion_and_maximises_archs_likelihood():
    """_garch_one_step: percent log returns, arch's fit, the recursion written out in numpy.

    The parameters of ``arch_model(100 diff log S, mean="Constant", vol="GARCH", p=1, q=1)`` are
    the reference; the test runs ``s_{t+1} = omega + alpha (r_t - mu)^2 + beta s_t`` itself from
    arch's first conditional variance, and the Gaussian log-likelihood
    ``-1/2 sum(log 2 pi + log s_t + e_t^2 / s_t)`` of the code's variances must equal arch's
    maximised one. Also the variances past the fit sample (the real-time filter). Kills: simple
    instead of log returns, no factor 100, the mean dropped from the shock, the sign of beta,
    persistence = beta.
    """
    from arch import arch_model
    from arch.data import sp500

    close = sp500.load()["Adj Close"].to_numpy(np.float64)[2300:3000]  # 2008-10: clustering
    fit_closes = 400
    returns = 100 * np.diff(np.log(close))  # as arch's examples write it (bit-identical fits)
    result = arch_model(returns[: fit_closes - 1], mean="Constant", vol="GARCH", p=1, q=1,
                        dist="normal").fit(disp="off")
    mu, omega, alpha, beta = (float(result.params[k]) for k in ("mu", "omega", "alpha[1]",
                                                               "beta[1]"))
    s = np.empty(len(close))
    s[0] = float(result.conditional_volatility[0]) ** 2
    for t in range(len(returns)):
        s[t + 1] = omega + alpha * (returns[t] - mu) ** 2 + beta * s[t]
    next_var, got_omega, got_persistence = historical._garch_one_step(close, fit_closes)
    assert alpha > 0.02  # real ARCH effects: the shocks move the variance
    np.testing.assert_allclose(next_var, s, rtol=1e-10)
    assert got_omega == pytest.approx(omega, rel=1e-12)
    assert got_persistence == pytest.approx(alpha + beta, rel=1e-12)
    e = returns[: fit_closes - 1] - mu
    var = next_var[: fit_closes - 1]
    loglik = -0.5 * np.sum(np.log(2 * np.pi) + np.log(var) + e**2 / var)
    assert loglik == pytest.approx(result.loglikelihood, rel=1e-9)


def test_horizon_below_one_day_is_refused():
    """garch_implied_vol's ``horizon < 1`` check. Kills: ``horizon < 0`` (horizon 0 gave the
    mean of no forecasts, NaN vols, instead of an error naming the horizon)."""
    with pytest.raises(ValueError, match=r"horizon must be >= 1 trading day, got 0"):
        garch_implied_vol(_closes(150), horizon=0)


def test_min_garch_rows_is_inclusive():
    """garch_implied_vol accepts exactly ``MIN_GARCH_ROWS`` = 100 closes and refuses 99.

    Kills: ``len(close) <= MIN_GARCH_ROWS``.
    """
    assert MIN_GARCH_ROWS == 100
    assert len(garch_implied_vol(_closes(100))) == 100
    with pytest.raises(ValueError, match=r"needs at least 100 closes, got 99"):
        garch_implied_vol(_closes(99))


# ------------------------------------------------------------------- real-time refits


def _two_years(rows_before: int) -> pd.DatetimeIndex:
    """``rows_before`` business days ending 2000-12-29, then 200 from 2001-01-01 (to October)."""
    return pd.bdate_range(end="2000-12-29", periods=rows_before).append(
        pd.bdate_range("2001-01-01", periods=200))


def test_burn_in_is_500_returns_before_the_year_counted_exactly():
    """garch_refits' ``lo - 1 >= GARCH_BURN_IN_RETURNS``: a year is fitted in real time once
    500 *returns* (501 closes) precede it.

    By hand: 501 closes before 2001 hold 500 returns, so 2001 (rows 501..700) is real time,
    fitted on the 501 closes before it, and the rows before are one burn-in block fitted on
    themselves: ``[(0, 501, 501), (501, 701, 501)]``. With 500 closes (499 returns) no year
    qualifies: one fit on all 700 rows. Kills: ``lo >= 500`` (closes counted) and
    ``lo - 1 > 500``.
    """
    assert garch_refits(_two_years(501)) == [(0, 501, 501), (501, 701, 501)]
    assert garch_refits(_two_years(500)) == [(0, 700, 700)]


# ---------------------------------------------------------------- checks of the estimate


def _wild_then_calm(n: int = 300) -> pd.Series:
    """150 days of 60%-a-day moves (about 950% a year), then calm 0.5%-a-day closes."""
    rng = np.random.default_rng(1)
    steps = np.concatenate([[0.0], 0.6 * rng.standard_normal(150),
                            0.005 * rng.standard_normal(n - 151)])
    return pd.Series(100 * np.exp(np.cumsum(steps)), index=pd.bdate_range("2021-01-04",
                                                                          periods=n))


def test_a_garch_estimate_above_max_vol_is_named_as_the_garch_estimates():
    """_garch's ``(0, MAX_VOL]`` check of the estimate, named for the price column.

    Daily moves of 60% are about 0.6 sqrt(252) = 950% a year, far above MAX_VOL = 500%: the
    estimate of those rows cannot be a vol, and the error must say that the GARCH estimate
    from column 'px' is out of range (not blame an 'implied_vol' column the user never gave).
    Kills: the ``values <= MAX_VOL`` part of the check dropped.
    """
    frame = pd.DataFrame({"px": _wild_then_calm()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"the GARCH vol estimate from column 'px' is "
                                             r"[\d.]+ on .*allowed: \(0, 5.0\]"):
            HistoricalReplay.from_frame(frame, price_column="px")


def test_filled_rows_only_are_checked_against_max_vol():
    """_garch checks the estimate on the rows it fills only (``rows``), not on rows that carry
    the user's own vol. The wild rows have a given vol; the one missing vol is on the last,
    calm row (0.5% a day, about 8% a year, far inside the range). Kills: ``used = vol``
    (every row's estimate checked, refusing a valid file)."""
    close = _wild_then_calm()
    iv = pd.Series(0.9, index=close.index)
    iv.iloc[-1] = np.nan
    frame = pd.DataFrame({"px": close, "iv": iv})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        replay = HistoricalReplay.from_frame(frame, price_column="px", vol_column="iv",
                                             fill_missing_vol=True)
    assert replay.data["vol_estimated"].sum() == 1
    np.testing.assert_array_equal(replay.data["implied_vol"].to_numpy()[:-1], 0.9)
    assert 0.0 < replay.data["implied_vol"].iloc[-1] < 1.0


def test_max_vol_itself_is_accepted():
    """_check_vols' range ``(0, MAX_VOL]`` is closed on the right: 5.0 (500%) is accepted,
    5.000001 refused. Kills: ``vols < MAX_VOL``."""
    index = pd.bdate_range("2020-01-02", periods=4)
    frame = pd.DataFrame({"close": [100.0, 101.0, 102.0, 103.0], "iv": [0.2, MAX_VOL, 0.2, 0.2]},
                         index=index)
    assert HistoricalReplay.from_frame(frame, vol_column="iv").data["implied_vol"].max() == 5.0
    frame.loc[index[1], "iv"] = MAX_VOL + 1e-6
    with pytest.raises(ValueError, match=r"has implied vol 5.000001 .* on 2020-01-03 \(row 1\)"):
        HistoricalReplay.from_frame(frame, vol_column="iv")


# -------------------------------------------------------------------------------- windows


def test_window_times_follow_the_given_day_count():
    """HistoricalReplay.window's ``times = dt * arange(n_steps + 1)`` for any ``dt``.

    A market trading every day (``days_per_year = 365``): ``dt = 1/365`` must give times
    ``k / 365`` years. Kills: times built with the 252-day year whatever ``dt``.
    """
    index = pd.date_range("2020-01-01", periods=8, freq="D")
    frame = pd.DataFrame({"close": np.arange(100.0, 108.0), "iv": 0.3}, index=index)
    paths = HistoricalReplay.from_frame(frame, vol_column="iv").window([1], 5, 1 / 365)
    np.testing.assert_allclose(paths.times, np.arange(6) / 365, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(paths.spot[0], np.arange(101.0, 107.0))


# ------------------------------------------------------------------------- calendar warnings


def _daily(dates: pd.DatetimeIndex, close: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"close": close, "iv": 0.2}, index=dates)


def test_a_friday_repeating_thursdays_close_is_no_weekend_row():
    """_warn_calendar's weekday ``(days + 3) % 7`` (1970-01-01 a Thursday, 0 = Monday).

    2020-01-03 is a Friday: repeating Thursday's close there is a quiet day, not a filled
    weekend, so no warning; 2020-01-05 is a Sunday, which must be named. Kills: the weekday
    shifted by one (Friday read as Saturday).
    """
    dates = pd.date_range("2020-01-01", periods=6, freq="D")  # Wed..Mon
    assert [d.day_name() for d in dates[:5]] == [
        "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    friday = np.array([100.0, 101.0, 101.0, 102.0, 103.0, 104.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HistoricalReplay.from_frame(_daily(dates, friday), vol_column="iv")
    sunday = np.array([100.0, 101.0, 102.0, 103.0, 103.0, 104.0])
    with pytest.warns(UserWarning, match=r"1 row\(s\) fall on a Saturday or Sunday .* \(the "
                                         r"first 2020-01-05\)"):
        HistoricalReplay.from_frame(_daily(dates, sunday), vol_column="iv")


def test_a_gap_of_max_gap_days_is_no_warning_one_more_is():
    """_warn_calendar's ``gaps > MAX_GAP_DAYS``: 14 calendar days between rows pass silently,
    15 draw the warning with the gap's dates. Kills: ``>=``."""
    assert MAX_GAP_DAYS == 14
    first = pd.bdate_range("2020-01-01", periods=4)  # Wed 1 .. Mon 6 January
    for gap, warns in ((14, False), (15, True)):
        dates = first.append(pd.DatetimeIndex([first[-1] + pd.Timedelta(days=gap)]))
        frame = _daily(dates, np.arange(100.0, 105.0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            HistoricalReplay.from_frame(frame, vol_column="iv")
        messages = [str(w.message) for w in caught]
        assert any(f"the longest {gap} days from 2020-01-06" in m for m in messages) == warns, (
            gap, messages)


# =================================================================== vector env and SB3 adapter


def _replay_vec(n: int, mode: str, **kwargs):
    """The native vector env of HistoricalReplay-v0 (21 steps; each window its own spots)."""
    from hedgearena.envs.vector_env import VecHedgingEnv

    return VecHedgingEnv(num_envs=n, preset="HistoricalReplay", autoreset_mode=mode, **kwargs)


def test_reset_after_ended_episodes_starts_a_transition_not_an_autoreset():
    """VecHedgingEnv.reset clears ``_done``: after every row ended (NEXT_STEP), a ``reset()``
    starts new episodes, and the next step is their first decision (step 1, the action
    traded), not the autoreset step Gymnasium's NEXT_STEP convention reserves for the step
    after an ending. Kills: reset leaving ``_done`` set (the first step after the reset
    ignored every action, returned step 0 and reward 0: a lost transition).
    """
    env = _replay_vec(3, "next_step")
    env.reset(seed=0)
    for _ in range(21):
        _, _, terminated, _, _ = env.step(np.zeros((3, 1), dtype=np.float32))
    assert terminated.all()
    env.reset(seed=1)
    _, rewards, terminated, truncated, info = env.step(np.ones((3, 1), dtype=np.float32))
    np.testing.assert_array_equal(info["step"], 1)
    assert (info["trade"] > 0).all()  # the action (target = +1 notional) was traded
    assert (rewards != 0).all()
    assert not (terminated | truncated).any()


def test_adapter_episode_return_and_length_count_from_the_last_reset():
    """SB3VecEnv.reset zeroes the running returns and lengths (Monitor's ``episode`` entry).

    Five steps, then ``reset()`` (SB3 does so between ``learn`` calls and in
    ``evaluate_policy``), then a whole 21-step episode: its ``episode`` entry must hold the
    sum of the 21 rewards since the reset and ``l = 21``, as SB3's ``Monitor`` would. Kills:
    the reset keeping the abandoned episode's partial return and length.
    """
    from hedgearena.envs.sb3_adapter import SB3VecEnv

    adapter = SB3VecEnv(_replay_vec(2, "same_step"))
    adapter.seed(0)
    adapter.reset()
    rng = np.random.default_rng(3)
    for _ in range(5):
        adapter.step(rng.uniform(-1, 1, (2, 1)).astype(np.float32))
    adapter.reset()
    total = np.zeros(2)
    for t in range(21):
        _, rewards, dones, infos = adapter.step(rng.uniform(-1, 1, (2, 1)).astype(np.float32))
        total += rewards.astype(np.float64)
        assert dones.all() == (t == 20)
    for i in range(2):
        assert infos[i]["episode"]["l"] == 21
        assert infos[i]["episode"]["r"] == pytest.approx(total[i], rel=1e-6, abs=1e-6)


def test_adapter_seed_applies_to_the_next_reset_only():
    """SB3VecEnv.reset consumes the seeds of ``seed()`` (``_reset_seeds``), as SB3's
    ``DummyVecEnv`` does: the reset after a seeded one continues the generator and replays
    other windows; seeding again replays the first ones. Kills: the seeds kept, so that every
    later ``reset()`` replayed the same windows (an agent evaluated on one batch of paths).
    """
    from hedgearena.envs.sb3_adapter import SB3VecEnv

    adapter = SB3VecEnv(_replay_vec(4, "same_step"))
    adapter.seed(7)
    adapter.reset()
    first = adapter.venv.batch.market.spot.copy()
    adapter.reset()
    second = adapter.venv.batch.market.spot.copy()
    assert not np.array_equal(first, second)
    adapter.seed(7)
    adapter.reset()
    np.testing.assert_array_equal(adapter.venv.batch.market.spot, first)


def test_time_limit_counts_only_a_rows_own_decisions_after_an_autoreset():
    """VecHedgingEnv._step's ``self._decisions[rows] += 1``: the NEXT_STEP reset step of a row
    is no decision and does not count toward ``max_episode_steps`` (Gymnasium's ``TimeLimit``
    counts the steps of an episode, and the reset step belongs to none).

    Row 0 holds -1 notional against a short call (net delta about -1.5 > the 0.3 limit) and is
    stopped by the ``terminate`` limit while row 1 (near the model delta) goes on, so row 0
    autoresets while row 1 steps. The reference counts each row's decisions by hand: 0 on its
    reset step, +1 on every other; ``truncated`` must be ``count >= 5``. Kills: every row's
    count raised on every step (row 0's new episode cut after 4 decisions).
    """
    from hedgearena.envs.vector_env import VecHedgingEnv

    env = VecHedgingEnv(num_envs=2, preset="ShortCall", autoreset_mode="next_step",
                        max_episode_steps=5,
                        risk_limits={"delta": 0.3, "action": "terminate"})
    env.reset(seed=0)
    count, previous_done, stopped_early = np.zeros(2, dtype=int), np.zeros(2, bool), False
    for step in range(14):
        actions = np.array([[-1.0 if step < 3 else 0.5], [0.5]], dtype=np.float32)
        _, _, terminated, truncated, info = env.step(actions)
        count = np.where(previous_done, 0, count + 1)
        np.testing.assert_array_equal(truncated, count >= 5, err_msg=f"step {step}")
        stopped_early |= bool(terminated[0] and info["termination_reason"][0] == "delta")
        previous_done = terminated | truncated
    assert stopped_early
