"""Each stress scenario does what it says on its paths, reproducibly, and keeps every env finite.

Statistical checks use stated standard errors: a realised variance from N independent squared
normal returns has relative standard error sqrt(2 / N), a realised vol half of it.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.stats import norm

from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.hedger import run_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.gbm import GBM
from hedgearena.envs.heston import Heston
from hedgearena.envs.scenarios import (
    FILL_FIELDS,
    HISTORICAL_WINDOWS,
    SCENARIOS,
    Crowding,
    FlashCrash,
    Gap,
    LiquidityDrought,
    RealisedVsImplied,
    StressWindow,
    VolSpike,
    apply_scenario,
    make_scenario,
)
from hedgearena.envs.vector_env import VecHedgingEnv

DT = 1 / 252
STRESS_COST = {"proportional": 0.0005, "spread": {"half_spread": 0.0005, "vol_sensitivity": 1.0},
               "sqrt_impact": {"coefficient": 1.0, "daily_volume": 2000.0}}


def _pair(model, base, n_paths=2000, n_steps=20, seed=3):
    """The scenario's paths and its base's from the same seed (the base's draws come first)."""
    rng = np.random.default_rng(seed)
    return (model.simulate(n_paths, n_steps, DT, rng),
            base.simulate(n_paths, n_steps, DT, np.random.default_rng(seed)))


# ----------------------------------------------------------------------------------------- gap
def test_gap_adds_log_one_plus_size_to_the_return_across_it_and_nothing_else() -> None:
    base = GBM(sigma=0.2)
    gap, plain = _pair(Gap(base, size=-0.2, step=7), base)
    excess = np.diff(np.log(gap.spot), axis=1) - np.diff(np.log(plain.spot), axis=1)
    assert np.allclose(excess[:, 6], math.log(0.8), atol=1e-12)  # the interval (6, 7]
    assert np.allclose(np.delete(excess, 6, axis=1), 0.0, atol=1e-12)
    # up to the diffusion of that step: the jump's return less log(0.8) is N(0, sigma^2 dt)
    residual = np.diff(np.log(gap.spot), axis=1)[:, 6] - math.log(0.8)
    se = 0.2 * math.sqrt(DT) / math.sqrt(2 * residual.size)
    assert residual.std() == pytest.approx(0.2 * math.sqrt(DT), abs=4 * se)


def test_random_gap_falls_once_per_path_uniformly_over_the_steps() -> None:
    base = GBM(sigma=0.2)
    gap, plain = _pair(Gap(base, size=-0.2), base, n_paths=4000)
    excess = np.diff(np.log(gap.spot), axis=1) - np.diff(np.log(plain.spot), axis=1)
    jumped = np.abs(excess - math.log(0.8)) < 1e-12
    assert (jumped.sum(axis=1) == 1).all()
    counts = jumped.sum(axis=0)  # 4000 gaps over 20 intervals: 200 +- 14 each
    assert counts.min() > 140
    assert counts.max() < 260


def test_gap_vol_multiplier_moves_implied_and_realised_vol_from_the_gap_on() -> None:
    base = GBM(sigma=0.2)
    gap, _ = _pair(Gap(base, size=-0.1, step=5, vol_multiplier=1.5), base, n_paths=20_000)
    atm = gap.implied_vol(gap.spot, 0.1)
    assert np.allclose(atm[:, :5], 0.2)
    assert np.allclose(atm[:, 5:], 0.3)
    after = np.diff(np.log(gap.spot), axis=1)[:, 5:]
    realised = math.sqrt(np.mean((after - after.mean()) ** 2) / DT)
    assert realised == pytest.approx(0.3, abs=4 * 0.3 / math.sqrt(2 * after.size))


def _bs_call(spot, strike, tau, vol):
    """Black-Scholes call (zero rates) from scipy: price, delta, gamma, theta (per year)."""
    root = vol * np.sqrt(tau)
    d1 = np.log(spot / strike) / root + 0.5 * root
    price = spot * norm.cdf(d1) - strike * norm.cdf(d1 - root)
    gamma = norm.pdf(d1) / (spot * root)
    return price, norm.cdf(d1), gamma, -0.5 * spot * norm.pdf(d1) * vol / np.sqrt(tau)


def _gap_config(size: float):
    """ShortCall (20 days, 250 a year, 100 calls), zero costs and rates, a gap over (9, 10]
    (its daily delta hedge: the ``delta_hedge_pnl`` fixture of tests/conftest.py)."""
    return make_config("ShortCall", market=Gap(GBM(mu=0.0, sigma=0.2), size=size, step=10),
                       cost=0.0)


@pytest.mark.parametrize("size", [-0.02, -0.2])
def test_delta_hedge_loss_across_a_gap_is_the_exact_repricing(size: float,
                                                              delta_hedge_pnl) -> None:
    pnl, spot = delta_hedge_pnl(_gap_config(size), 2000)
    before, after = spot[:, 9], spot[:, 10]
    price0, delta0, _, _ = _bs_call(before, 100.0, 11 / 250, 0.2)
    price1, _, _, _ = _bs_call(after, 100.0, 10 / 250, 0.2)
    # short 100 calls, long 100 delta: minus (change in option value - delta dS)
    exact = -100.0 * ((price1 - price0) - delta0 * (after - before))
    assert np.allclose(pnl[9], exact, rtol=1e-9, atol=1e-8)


def test_delta_hedge_loss_across_a_small_gap_is_the_gamma_loss_of_its_size(delta_hedge_pnl) -> None:
    size, sigma, dt = -0.02, 0.2, 1 / 250
    pnl, spot = delta_hedge_pnl(_gap_config(size), 20_000)
    s = spot[:, 9]
    _, _, gamma, theta = _bs_call(s, 100.0, 11 / 250, sigma)
    # E[dS^2 | S] over the gap step: the gap and that step's diffusion (exact for GBM)
    mean_square = s**2 * ((1 + size) ** 2 * math.exp(sigma**2 * dt) - 2 * (1 + size) + 1)
    expected = -100.0 * np.mean(0.5 * gamma * mean_square + theta * dt)
    # Tolerance 4%: the third-order (speed) term is ~1-2% of the gamma term at a 2% move,
    # and the Monte Carlo standard error of the mean P&L is ~1%.
    se = pnl[9].std() / math.sqrt(pnl.shape[1])
    assert se < 0.015 * abs(expected)
    assert pnl[9].mean() == pytest.approx(expected, rel=0.04)


def test_gamma_approximation_overstates_the_loss_of_a_twenty_percent_gap(delta_hedge_pnl) -> None:
    size, dt = -0.2, 1 / 250
    pnl, spot = delta_hedge_pnl(_gap_config(size), 4000)
    s = spot[:, 9]
    _, _, gamma, theta = _bs_call(s, 100.0, 11 / 250, 0.2)
    gamma_loss = 100.0 * np.mean(0.5 * gamma * (s * size) ** 2 + theta * dt)
    # The call dies in a 20% fall: the exact loss grows like delta |dS|, not like dS^2 (it is
    # about 56% of the quadratic estimate for a 10-day ATM call at 20% vol).
    assert 0.4 * gamma_loss < -pnl[9].mean() < 0.75 * gamma_loss


# -------------------------------------------------------------------------- calm and volatile
@pytest.mark.parametrize(("name", "ratio"), [("calm", 0.6), ("volatile", 1.5)])
def test_realised_vol_is_the_ratio_of_the_marked_implied_vol(name: str, ratio: float) -> None:
    config = apply_scenario(make_config("ShortCall", market_kwargs={"mu": 0.0, "sigma": 0.2}), name)
    assert config.market.ratio == ratio
    paths = config.market.simulate(4000, 20, config.dt, np.random.default_rng(5))
    returns = np.diff(np.log(paths.spot), axis=1)
    drift = -0.5 * (ratio * 0.2) ** 2 * config.dt
    realised = math.sqrt(np.mean((returns - drift) ** 2) / config.dt)
    implied = paths.implied_vol(paths.spot[:, :1], 20 * config.dt, step=0)
    assert np.allclose(implied, 0.2)  # the market marks options at 20%
    se = ratio * 0.2 / math.sqrt(2 * returns.size)  # 0.00042 (calm), 0.0011 (volatile)
    assert realised == pytest.approx(ratio * 0.2, abs=4 * se)
    assert np.allclose(paths.variance, (ratio * 0.2) ** 2)


# ----------------------------------------------------------------------------------- vol spike
def test_vol_spike_realises_and_marks_the_decaying_variance() -> None:
    multiplier, half_life, step, sigma = 4.0, 10 / 252, 2, 0.2
    model = VolSpike(GBM(mu=0.0, sigma=sigma), multiplier=multiplier, step=step,
                     half_life=half_life)
    paths = model.simulate(20_000, 30, DT, np.random.default_rng(2))
    kappa = math.log(2) / half_life
    returns = np.diff(np.log(paths.spot), axis=1)
    decay = -math.expm1(-kappa * DT) / (kappa * DT)  # the interval's average of e^{-kappa t}
    for j in (0, 2, 5, 15):  # intervals (j, j + 1]
        excess = (multiplier**2 - 1) * math.exp(-kappa * (j - step) * DT) * decay
        expected = sigma**2 * (1 + excess * (j >= step))
        measured = np.mean(returns[:, j] ** 2) / DT
        se = expected * math.sqrt(2 / returns.shape[0])  # 1% of it
        assert measured == pytest.approx(expected, abs=4 * se + 0.002 * expected)  # + drift^2
    # implied vol: the root of the average variance expected to the option's expiry
    tau, s = 20 / 252, 6
    implied = paths.implied_vol(paths.spot[:, s : s + 1], tau, step=s)
    grid = np.linspace(0, tau, 20_001)
    start = (s - step) * DT
    variance = sigma**2 * (1 + (multiplier**2 - 1) * np.exp(-kappa * (start + grid)))
    average = np.sum((variance[1:] + variance[:-1]) / 2 * np.diff(grid)) / tau
    assert np.allclose(implied, math.sqrt(average), rtol=1e-6)
    before = paths.implied_vol(paths.spot[:, 1:2], tau, step=1)
    assert np.allclose(before, sigma)


def test_vol_spike_needs_a_constant_vol_level() -> None:
    with pytest.raises(ValueError, match=r"VolSpike\.base"):
        VolSpike(Heston()).simulate(4, 5, DT, np.random.default_rng(0))


# --------------------------------------------------------------------------- liquidity drought
def test_liquidity_drought_multiplies_the_liquidity_and_the_spread_while_it_lasts() -> None:
    base = make_config("ShortCall", cost={"spread": {"half_spread": 0.0005}})
    config = apply_scenario(base, "liquidity_drought", start=3, length=5)
    stressed = build_episodes(config, 50, np.random.default_rng(0))
    plain = build_episodes(base, 50, np.random.default_rng(0))
    liquidity = stressed.market.liquidity
    assert np.array_equal(liquidity[:, 3:8], np.full((50, 5), 5.0))
    assert np.array_equal(np.delete(liquidity, range(3, 8), axis=1), np.ones((50, 16)))
    spread_multiple = stressed.episode.linear / plain.episode.linear  # time-major
    assert np.allclose(spread_multiple[3:8], 5.0)
    assert np.allclose(spread_multiple[8:], 1.0)


def test_random_drought_lasts_its_length_in_one_stretch() -> None:
    model = LiquidityDrought(GBM(), length=6)
    stressed = model.simulate(500, 20, DT, np.random.default_rng(1)).liquidity > 1
    assert (stressed.sum(axis=1) == 6).all()
    assert (np.diff(stressed.astype(int), axis=1) == 1).sum() <= 500  # one start per path
    assert stressed[:, 0].any()
    assert stressed[:, -1].any()


def test_stress_window_arrays() -> None:
    liquidity, fraction, cap = StressWindow(5.0, 0.25, 0.2).arrays(np.array([False, True]))
    assert liquidity.tolist() == [1.0, 5.0]
    assert fraction.tolist() == [1.0, 0.25]
    assert cap.tolist() == [np.inf, 0.2]


def test_liquidity_drought_fills_part_of_an_order_while_it_lasts() -> None:
    model = LiquidityDrought(GBM(), start=3, length=5)
    paths = model.simulate(10, 20, DT, np.random.default_rng(0))
    assert np.array_equal(paths.fill_fraction[:, 3:8], np.full((10, 5), 0.25))
    assert np.array_equal(paths.fill_cap[:, 3:8], np.full((10, 5), 0.2))
    assert (np.delete(paths.fill_fraction, range(3, 8), axis=1) == 1.0).all()
    assert np.isinf(np.delete(paths.fill_cap, range(3, 8), axis=1)).all()


def test_unfilled_part_of_a_delta_hedge_stays_as_exposure_in_a_drought() -> None:
    config = apply_scenario(make_config("ShortCall", cost=0.0), "liquidity_drought", start=2,
                            length=4, fill_cap=np.inf)
    env = VecHedgingEnv(num_envs=256, config=config, block=256)
    env.reset(seed=0)
    gaps = []
    for _ in range(config.n_decisions - 1):
        state = env.state
        order = state["model_hedge"] - state["hedge"]
        _, _, _, _, info = env.step_targets(state["model_hedge"][:, None])
        step = int(state["step"][0])
        expected = order * (0.25 if 2 <= step < 6 else 1.0)
        assert np.allclose(info["trade"], expected, atol=1e-9)
        gaps.append(np.abs(info["hedge"] - state["model_hedge"]).max())
    assert gaps[3] > 1.0
    assert gaps[7] < 1e-9


# --------------------------------------------------------------------------------- flash crash
def test_flash_crash_drops_and_recovers_within_the_day_with_spreads_blown_out() -> None:
    base = GBM(sigma=0.2)
    model = FlashCrash(base, start=50)
    n_steps, dt = 78, 1 / (252 * 78)
    crash = model.simulate(200, n_steps, dt, np.random.default_rng(4))
    plain = base.simulate(200, n_steps, dt, np.random.default_rng(4))
    ratio = crash.spot / plain.spot
    assert np.allclose(ratio[:, :51], 1.0)
    assert np.allclose(ratio[:, 53], 0.91)  # the bottom, 15 minutes later: -9%
    assert np.allclose(ratio[:, 57:], math.exp(0.2 * math.log(0.91)))  # 80% recovered
    assert np.array_equal(crash.liquidity[:, 51:58], np.full((200, 7), 20.0))
    assert (np.delete(crash.liquidity, range(51, 58), axis=1) == 1.0).all()
    assert np.allclose(crash.vol_state[:, 53], 0.4)
    assert np.allclose(crash.vol_state[:, :51], 0.2)


def test_flash_crash_scenario_runs_one_day_on_a_five_minute_grid() -> None:
    config = apply_scenario(make_config("ShortCall"), "flash_crash")
    assert config.n_steps == 78
    assert config.days_per_year == 250 * 78
    assert config.book.options[0].expiry_steps == 20 * 78  # the option keeps its 20 days
    paths = config.market.simulate(300, 78, config.dt, np.random.default_rng(0))
    stressed = paths.liquidity == 20.0
    assert (stressed.sum(axis=1) == 7).all()  # 35 minutes of crash and recovery, all in the day
    worst_15_minutes = np.log(paths.spot[:, 3:] / paths.spot[:, :-3]).min(axis=1)
    assert (worst_15_minutes < math.log(0.91) + 0.01).all()  # every path crashes in its day


def test_flash_crash_fills_part_of_an_order_during_the_crash() -> None:
    crash = FlashCrash(GBM(), start=10).simulate(5, 78, 1 / (252 * 78), np.random.default_rng(0))
    assert np.array_equal(crash.fill_fraction[:, 11:18], np.full((5, 7), 0.3))
    assert np.array_equal(crash.fill_cap[:, 11:18], np.full((5, 7), 0.25))
    assert (crash.fill_fraction[:, :11] == 1).all()
    assert np.isinf(crash.fill_cap[:, 18:]).all()


# ------------------------------------------------------------------------------------ crowding
def test_crowd_selling_lowers_prices_against_the_same_paths_without_it() -> None:
    base = GBM(mu=0.0, sigma=0.2)
    model = Crowding(base)
    crowd, plain = _pair(model, base, n_paths=4000, n_steps=20)
    shift = np.log(crowd.spot[:, -1] / plain.spot[:, -1])
    _, weight = model.feedback(plain, DT)  # the crowd's weights on the same base returns
    assert np.allclose(shift, model.impact * (weight[-1] - weight[0]), atol=1e-12)  # exact
    sold = weight[-1] < weight[0]
    assert (crowd.spot[sold, -1] < plain.spot[sold, -1]).all()
    fell = plain.spot[:, -1] < 0.95 * plain.spot[:, 0]
    assert fell.sum() > 100
    assert (crowd.spot[fell, -1] < plain.spot[fell, -1]).all()  # selling into the decline
    # the feedback amplifies moves: the crowd's paths spread wider
    assert np.log(crowd.spot[:, -1]).std() > 1.05 * np.log(plain.spot[:, -1]).std()


def test_crowding_switches_on_the_hedgers_own_permanent_impact() -> None:
    scenario = make_scenario("crowding", permanent_impact=0.02)
    assert scenario.overrides(make_config("ShortCall")) == {"permanent_impact": 0.02}
    assert scenario.mechanics == ("permanent_impact",)


def test_crowding_config_carries_the_permanent_impact() -> None:
    config = apply_scenario(make_config("ShortCall"), "crowding")
    assert config.permanent_impact == 0.01


# ---------------------------------------------------------------------------------- historical
@pytest.mark.parametrize("name", list(HISTORICAL_WINDOWS))
def test_historical_windows_replay_the_sp500_exactly(name: str) -> None:
    from arch.data import sp500, vix

    start, end, _ = HISTORICAL_WINDOWS[name]
    config = make_config("ShortCall", n_steps=20)
    replay = apply_scenario(config, name).market
    paths = replay.simulate(64, 20, config.dt, np.random.default_rng(0))
    closes = sp500.load()["Adj Close"]
    dates = paths.dates.astype("datetime64[ns]")
    assert (dates >= np.datetime64(start)).all()
    assert (dates <= np.datetime64(end)).all()
    assert np.array_equal(paths.spot, closes.reindex(dates.ravel()).to_numpy().reshape(64, 21))
    expected_rows = closes.loc[start:end]
    assert np.array_equal(replay.data["close"].to_numpy(), expected_rows.to_numpy())
    if name == "early_2018":  # VIX covers 2014 onwards: the implied vol is VIX / 100
        implied = vix.load()["vix"].reindex(dates.ravel()).to_numpy().reshape(64, 21) / 100
        assert np.array_equal(paths.vol_state, implied)


# ------------------------------------------------------------------------- every scenario
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_paths_are_reproducible_by_seed(name: str) -> None:
    config = apply_scenario(make_config("ShortCall"), name)
    first, again = (config.market.simulate(32, config.n_steps, config.dt,
                                           np.random.default_rng(9)) for _ in range(2))
    for field in ("spot", "variance", "vol_state", "liquidity", *FILL_FIELDS):
        a, b = getattr(first, field, None), getattr(again, field, None)
        assert (a is None and b is None) or np.array_equal(a, b), field


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_runs_a_delta_hedge_without_nan(name: str) -> None:
    config = apply_scenario(make_config("ShortCall", cost=STRESS_COST), name)
    env = VecHedgingEnv(num_envs=64, config=config, block=64)
    record = run_hedger(env, BlackScholesDelta(), seed=1)
    for key, values in record.totals.items():
        assert np.isfinite(values).all(), key
    assert np.isfinite(record.hedge).all()
    assert np.isfinite(record.cost).all()
    assert np.isfinite(env.batch.observations).all()


# ------------------------------------------------------------------------------ validation
def test_bad_parameters_fail_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"Gap\.size"):
        Gap(size=-1.5)
    with pytest.raises(ValueError, match=r"StressWindow\.fill_fraction"):
        make_scenario("liquidity_drought", fill_fraction=1.5)
    with pytest.raises(ValueError, match=r"FlashCrash\.recovery"):
        make_scenario("flash_crash", recovery=2.0)
    with pytest.raises(ValueError, match=r"Crowding\.floor"):
        make_scenario("crowding", floor=-1.0)
    with pytest.raises(ValueError, match="no parameter"):
        make_scenario("gap", sise=-0.1)
    with pytest.raises(ValueError, match="unknown scenario"):
        make_scenario("meltdown")
    with pytest.raises(ValueError, match=r"Gap\.step must be at most 20"):
        apply_scenario(make_config("ShortCall"), "gap", step=30)


def test_realised_vs_implied_keeps_the_base_marks() -> None:
    model = RealisedVsImplied(GBM(sigma=0.25), ratio=0.5)
    paths = model.simulate(8, 5, DT, np.random.default_rng(0))
    assert np.allclose(paths.vol_state, 0.25)
    assert np.allclose(paths.variance, 0.125**2)


def test_the_crowd_stops_trading_when_its_insurance_expires() -> None:
    """Past the horizon the crowd holds its weight: no more feedback (it kept trading a
    one-day put delta, a digital, and pushed realised vol from 0.20 to 0.28)."""
    from hedgearena.envs.gbm import GBM
    from hedgearena.envs.scenarios import Crowding

    base = GBM(sigma=0.2, mu=0.0)
    crowd = Crowding(base, horizon=10 / 252)
    paths = base.simulate(2_000, 63, 1 / 252, np.random.default_rng(0))
    log_spot, weight = crowd.feedback(paths, 1 / 252)
    moves = np.abs(np.diff(weight, axis=0))
    assert moves[:10].mean() > 1e-3  # it trades until the horizon
    assert np.all(moves[10:] == 0.0)  # and not after
    np.testing.assert_allclose(np.diff(log_spot, axis=0)[10:], np.diff(np.log(paths.spot.T),
                                                                       axis=0)[10:], atol=1e-12)


def test_the_intraday_grid_refuses_the_daily_replay() -> None:
    from hedgearena.baselines.stress import inapplicable

    reason = inapplicable(make_scenario("flash_crash"), make_config("HistoricalReplay"))
    assert reason is not None
    assert "daily closes" in reason


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("gap", {"size": "x"}, "Gap.size must be a finite number > -1.0, got 'x'"),
        ("vol_spike", {"half_life": "0.1"}, "VolSpike.half_life must be a finite number"),
        ("calm", {"ratio": 2.0}, "calm.ratio must be a finite number < 1.0, got 2.0"),
        ("volatile", {"ratio": 0.5}, "volatile.ratio must be a finite number > 1.0, got 0.5"),
        ("flash_crash", {"steps_per_day": 0}, "flash_crash.steps_per_day must be an integer"),
    ],
)
def test_scenario_parameters_are_checked_before_they_are_described(
    name: str, kwargs: dict, message: str
) -> None:
    """A bad value is named (it used to fail formatting the description, or be accepted)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make_scenario(name, **kwargs)


def test_a_flash_crash_longer_than_the_episode_is_refused() -> None:
    """It used to start at step 0 and be cut short, never recovering."""
    with pytest.raises(ValueError, match=re.escape(
            "FlashCrash.crash_steps + recovery_steps (104) must be at most the grid's "
            "n_steps (78)")):
        apply_scenario(make_config("ShortCall"), "flash_crash", crash_steps=100)
