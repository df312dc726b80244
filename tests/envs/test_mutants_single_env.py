"""The single env, the episode source, the registered ids and Heston's surface (mutation round).

Tests written for the mutants of ``envs/hedging_env.py``, ``envs/source.py``,
``envs/registered.py`` and ``envs/heston_surface.py`` that the rest of the suite let live. Each
test's docstring names the mutants it kills and where its expected numbers come from: a cash
account written out below with Black-Scholes-Merton in ``scipy.stats.norm`` (not the project's
pricer), QuantLib's ``AnalyticHestonEngine``, or the documented behaviour itself.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import norm

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.book import Option, OptionBook
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes, observation_names
from hedgearena.envs.hedging_env import HedgingEnv
from hedgearena.envs.source import EpisodeSource, copy_batch, slice_batch

# ---------------------------------------------------------------- a four-step hand ledger
N = 100.0  # notional: 1 contract x 100
STEPS = 4
DT = 1.0 / 250.0  # ShortCall's day count
SIGMA, RATE, DIVIDEND, COST = 0.2, 0.05, 0.02, 0.01
LIMIT = 1.5  # position_limit (notionals): action_mode="target" holds a * 1.5 * N units
ACTIONS = [0.25, 2.5, -7.0, -0.125]
"""Asked at steps 0..3 (float32-exact); 2.5 and -7 are outside [-1, 1] and clip to +-1."""
HELD = [37.5, 150.0, -150.0, -18.75]
"""The positions the clipped actions ask for: ``clip(a, -1, 1) * 1.5 * 100`` units."""


def ledger_env(**kwargs: Any) -> HedgingEnv:
    """A ShortCall env whose short call expires after 4 steps, with carry and 1% costs."""
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=STEPS, contracts=-1.0),))
    env = gym.make(
        "hedgearena/ShortCall-v0", book=book, cost=COST, action_mode="target",
        market_kwargs={"sigma": SIGMA, "rate": RATE, "dividend": DIVIDEND}, **kwargs,
    ).unwrapped
    assert isinstance(env, HedgingEnv)
    return env


def bs_call(spot: float, strike: float, tau: float) -> float:
    """Black-Scholes-Merton call on one unit; the payoff at ``tau == 0``."""
    if tau == 0.0:
        return max(spot - strike, 0.0)
    s = SIGMA * math.sqrt(tau)
    d1 = (math.log(spot / strike) + (RATE - DIVIDEND) * tau) / s + 0.5 * s
    return float(spot * math.exp(-DIVIDEND * tau) * norm.cdf(d1)
                 - strike * math.exp(-RATE * tau) * norm.cdf(d1 - s))


def bs_delta(spot: float, strike: float, tau: float) -> float:
    s = SIGMA * math.sqrt(tau)
    d1 = (math.log(spot / strike) + (RATE - DIVIDEND) * tau) / s + 0.5 * s
    return float(math.exp(-DIVIDEND * tau) * norm.cdf(d1))


def hand_ledger(spots: list[float], held: list[float]) -> dict[str, Any]:
    """The cash account of the short call hedged with ``held[t]`` units from step t to t+1.

    The accounting of :mod:`hedgearena.envs.core`'s docstring, written out: trade at ``S_t``
    paying 1% of the traded value; over each step the cash earns ``e^{r dt} - 1`` and the shares
    the dividend yield ``e^{q dt} - 1`` on their value at the step's start; the book is marked
    at Black-Scholes (flat 20%) and settles in cash at expiry; the hedge is sold at ``S_4``
    paying 1% (the unwind, a cost but not a ``trade``).
    """
    strike = spots[0]
    marks = [-N * bs_call(s, strike, (STEPS - t) * DT) for t, s in enumerate(spots)]
    cash = -marks[0]  # the premium received
    premium, hedge, rows = cash, 0.0, []
    for t in range(STEPS):
        s0, s1 = spots[t], spots[t + 1]
        trade = held[t] - hedge
        cost = COST * abs(trade) * s0
        cash -= trade * s0 + cost
        hedge = held[t]
        carry = cash * (math.exp(RATE * DT) - 1.0) + hedge * s0 * (math.exp(DIVIDEND * DT) - 1.0)
        cash += carry
        option_mtm = marks[t + 1] - marks[t]  # the last mark is the payoff, settled in cash
        hedge_pnl = hedge * (s1 - s0)
        after = hedge
        if t == STEPS - 1:  # the call settles, the hedge is sold
            cash += marks[t + 1] + hedge * s1 - COST * abs(hedge) * s1
            cost += COST * abs(hedge) * s1
            after = 0.0
        rows.append({
            "trade": trade, "cost": cost, "carry": carry, "option_mtm": option_mtm,
            "hedge_pnl": hedge_pnl, "pnl": option_mtm + hedge_pnl + carry - cost,
            "hedge": after, "cash": cash, "spot": s1, "step": t + 1,
            "wealth": cash + (0.0 if t == STEPS - 1 else marks[t + 1] + hedge * s1),
        })
    model = [N * bs_delta(s, strike, (STEPS - t) * DT) for t, s in enumerate(spots[:STEPS])]
    return {"rows": rows, "premium": premium, "model": model}


def run_ledger_episode(env: HedgingEnv, seed: int) -> tuple[list[float], list[dict], dict]:
    """Step the actions of :data:`ACTIONS` (float32); the spots read from ``env.state``."""
    _, info0 = env.reset(seed=seed)
    spots, infos = [env.state["spot"]], []
    for a in ACTIONS:
        obs, reward, terminated, truncated, info = env.step(np.array([a], np.float32))
        spots.append(env.state["spot"])
        infos.append({**info, "reward": reward, "terminated": terminated,
                      "truncated": truncated, "obs": obs.copy()})
    return spots, infos, info0


def test_every_info_value_of_a_four_step_episode_matches_the_hand_ledger() -> None:
    """Kills: info's cash, model_hedge, spot, carry, step, trade, cost written wrong (H50,
    H51, H52, H55, H66, H69, H70), ``initial_premium`` the initial wealth (H57) and the lower
    clip of the action (H14). Expected: :func:`hand_ledger`, a cash account with ``scipy``
    Black-Scholes marks. (``wealth`` less the initial wealth, H54, and ``terminal_pnl`` without
    it, H56, are invisible here, where the initial wealth is 0; a book holding stock starts at
    ``stock * S0``, which ``test_mutants_single_env_2.py`` checks.)
    """
    env = ledger_env()
    spots, infos, info0 = run_ledger_episode(env, seed=11)
    ledger = hand_ledger(spots, HELD)
    rows = ledger["rows"]
    assert info0["step"] == 0
    assert info0["cash"] == pytest.approx(ledger["premium"], rel=1e-12)
    assert info0["wealth"] == pytest.approx(0.0, abs=1e-9)
    assert info0["model_hedge"] == pytest.approx(ledger["model"][0], rel=1e-9)
    for t, (info, want) in enumerate(zip(infos, rows, strict=True)):
        for key, value in want.items():
            assert info[key] == pytest.approx(value, rel=1e-9, abs=1e-8), (t, key)
        assert info["terminated"] == (t == STEPS - 1)
        assert not info["truncated"]
        assert info["termination_reason"] == ("expiry" if t == STEPS - 1 else "")
        if t < STEPS - 1:  # the model delta at the next decision, N e^{-q tau} N(d1)
            assert info["model_hedge"] == pytest.approx(ledger["model"][t + 1], rel=1e-9)
    totals = infos[-1]["totals"]
    total_pnl = sum(row["pnl"] for row in rows)
    assert totals["terminal_pnl"] == pytest.approx(rows[-1]["cash"] - 0.0, rel=1e-9)
    assert totals["terminal_pnl"] == pytest.approx(total_pnl, rel=1e-9, abs=1e-8)
    assert totals["initial_premium"] == pytest.approx(ledger["premium"], rel=1e-12)
    for key in ("option_mtm", "hedge_pnl", "carry", "cost", "pnl"):
        assert totals[key] == pytest.approx(sum(row[key] for row in rows), rel=1e-9, abs=1e-8)
    assert totals["turnover"] == pytest.approx(37.5 + 112.5 + 300.0 + 131.25)
    assert totals["trades"] == 4
    # the case is not vacuous: the carry, the unwind and the premium are visible
    assert abs(totals["carry"]) > 0.05
    assert totals["initial_premium"] > 50.0


def test_observe_pnl_column_hedge_column_and_rewards_follow_the_ledger() -> None:
    """Kills: the P&L column unscaled or holding the cost (H45, H46), the hedge entry not over
    the notional (H47), the reward scale's formula (H01-H05). Expected: the ledger's P&L summed
    over :func:`hand_ledger`'s steps, divided by the manual's scale ``0.4 sigma sqrt(T) S0 N``
    = 0.4 * 0.2 * sqrt(4 / 250) * 100 * 100 = 101.19 (README, Rewards), written out here.
    """
    env = ledger_env(observe_pnl=True)
    scale = 0.4 * 0.2 * math.sqrt(STEPS / 250.0) * 100.0 * 100.0
    assert env.reward_scale == pytest.approx(scale, rel=1e-12)
    hedge_col = observation_names(env.config).index("hedge")
    spots, infos, _ = run_ledger_episode(env, seed=3)
    rows = hand_ledger(spots, HELD)["rows"]
    so_far = 0.0
    for t, (info, want) in enumerate(zip(infos, rows, strict=True)):
        so_far += want["pnl"]
        assert info["reward"] == pytest.approx(want["pnl"] / scale, rel=1e-9, abs=1e-12), t
        assert info["obs"][-1] == pytest.approx(so_far / scale, rel=1e-6, abs=1e-7), t
        assert info["obs"][hedge_col] == pytest.approx(want["hedge"] / N, rel=1e-6), t
    assert abs(so_far) > 1.0  # the column is not 0 by accident


def test_an_explicit_reward_scale_is_the_scale() -> None:
    """Kills H05 (``reward_scale`` always the default). Expected: the ``reward_scale`` given,
    documented as the currency per unit of reward."""
    env = ledger_env(reward_scale=7.0)
    assert env.reward_scale == 7.0
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.array([0.5], np.float32))
    assert reward == pytest.approx(info["pnl"] / 7.0, rel=1e-12)


@pytest.mark.parametrize("hedge", [-20.0, 35.5])
def test_a_reset_hedge_of_either_sign_is_bought_at_the_initial_spot(hedge: float) -> None:
    """Kills: negative reset hedges refused (H09), the sign flipped (H10), the hedge given for
    free (H21). Expected: the documented reset option ("bought at no cost at the initial
    spot"): cash = premium - hedge * S0 (premium from ``scipy`` Black-Scholes), wealth 0."""
    env = ledger_env()
    _, info = env.reset(seed=4, options={"hedge": hedge})
    s0 = env.state["spot"]
    premium = N * bs_call(s0, s0, STEPS * DT)
    assert info["hedge"] == hedge == env.state["hedge"]
    assert info["cash"] == pytest.approx(premium - hedge * s0, rel=1e-12)
    assert info["wealth"] == pytest.approx(0.0, abs=1e-9)


def test_a_reset_hedge_far_beyond_any_book_is_accepted_up_to_1e15() -> None:
    """Kills H71 (a smaller cap). Expected: ``MAX_POSITION`` = 1e15 as documented."""
    env = ledger_env()
    _, info = env.reset(seed=0, options={"hedge": 1e12})
    assert info["hedge"] == 1e12
    with pytest.raises(ValueError, match="options\\['hedge'\\]"):
        env.reset(seed=0, options={"hedge": 2e15})


def test_reset_with_the_same_seed_replays_the_same_episodes() -> None:
    """Kills H19 (a later ``reset(seed=...)`` ignored). Expected: Gymnasium's contract, a
    seeded reset restarts the episode sequence; an unseeded one continues it."""
    env = ledger_env()

    def spots_of_episode(seed: int | None) -> list[float]:
        env.reset(seed=seed)
        out = [env.state["spot"]]
        for _ in range(STEPS):
            env.step(np.array([0.0], np.float32))
            out.append(env.state["spot"])
        return out

    first, second = spots_of_episode(5), spots_of_episode(None)
    assert first != second
    assert spots_of_episode(6) != first
    assert spots_of_episode(5) == first
    assert spots_of_episode(None) == second


def test_the_second_action_is_clipped_and_checked_like_the_first() -> None:
    """Kills: the option action's upper clip dropped (H15), only the first entry range-checked
    (H16), an infinite second entry accepted (H17), too long actions accepted (H18).
    Expected: the manual (values outside [-1, 1] clipped; NaN or inf raise ``ValueError``;
    shape ``(2,)`` with a hedging option), option ``target`` = a * 10 notionals = 1000 units.
    """
    env = gym.make("hedgearena/ShortCall-v0", hedge_option=True, action_mode="target").unwrapped
    env.reset(seed=0)
    *_, info = env.step(np.array([0.0, 3.0]))
    assert info["option_position"] == pytest.approx(1000.0)
    *_, info = env.step([-4.0, -2.5])
    assert info["option_position"] == pytest.approx(-1000.0)
    assert info["hedge"] == pytest.approx(-150.0)
    for bad in ([0.0, math.inf], [0.0, math.nan], [0.1, 0.2, 0.3], [0.5]):
        with pytest.raises(ValueError, match="action"):
            env.step(np.array(bad))


def test_step_before_reset_and_after_the_end_raise() -> None:
    """Kills H24 (one step past the end allowed). Expected: the documented RuntimeErrors."""
    env = ledger_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0.0], np.float32))
    env.reset(seed=0)
    for _ in range(STEPS):
        env.step(np.array([0.0], np.float32))
    with pytest.raises(RuntimeError, match="ended"):
        env.step(np.array([0.0], np.float32))


# ---------------------------------------------------------------------- the episode source
def _small_config() -> Any:
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=3, contracts=-1.0),))
    return make_config("ShortCall", book=book)


def test_a_source_serves_every_row_of_a_block_in_order_then_builds_the_next() -> None:
    """Kills: a block rebuilt one row early (S02), the cursor moving by 1 whatever ``n``
    (S04). Expected: the module's contract, checked against ``build_episodes`` called on a
    generator of the same seed (blocks of 4: rows 0-3 of the first block, then the second)."""
    config = _small_config()
    source = EpisodeSource(config, np.random.default_rng(9), block=4)
    rng = np.random.default_rng(9)
    first, second = (build_episodes(config, 4, rng) for _ in range(2))
    served = [source.next_rows(1) for _ in range(4)]
    assert all(batch is served[0][0] for batch, _ in served)
    assert [rows.start for _, rows in served] == [0, 1, 2, 3]
    np.testing.assert_array_equal(served[0][0].episode.spot, first.episode.spot)
    batch, rows = source.next_rows(2)
    assert (rows.start, rows.stop) == (0, 2)
    np.testing.assert_array_equal(batch.episode.spot, second.episode.spot)
    batch2, rows = source.next_rows(2)
    assert batch2 is batch
    assert (rows.start, rows.stop) == (2, 4)


def test_a_request_larger_than_the_block_gets_its_own_block() -> None:
    """Kills S03 (the block size whatever the request). Expected: ``block`` is documented as
    "at least the request's size": ``take(6)`` of a source of blocks of 4 has 6 paths."""
    source = EpisodeSource(_small_config(), np.random.default_rng(0), block=4)
    taken = source.take(6)
    assert taken.initial_cash.shape == (6,)
    assert taken.episode.spot.shape == (4, 6)


def test_a_block_below_one_is_refused_and_one_is_accepted() -> None:
    """Kills S01 (``block=0`` accepted). Expected: the documented ``block >= 1``."""
    with pytest.raises(ValueError, match="block must be >= 1, got 0"):
        EpisodeSource(_small_config(), np.random.default_rng(0), block=0)
    assert EpisodeSource(_small_config(), np.random.default_rng(0), block=1).take(1)


def test_source_without_observations_builds_none() -> None:
    """Kills S07 (the ``observations`` flag ignored). Expected: ``build_episodes``' documented
    empty ``(n_steps + 1, n_paths, 0)`` observations."""
    source = EpisodeSource(_small_config(), np.random.default_rng(0), 4, observations=False)
    assert source.take(2).observations.shape == (4, 2, 0)


def test_slices_and_copies_of_a_batch_hold_the_rows_asked_for_and_own_their_arrays() -> None:
    """Kills: per-path 1-D fields left unsliced (S05), a copy sharing its observations with
    the block (S06). Expected: ``slice_batch``'s and ``copy_batch``'s docstrings (the rows'
    values; "every array is its own afterwards")."""
    config = make_config("ShortCall", market_kwargs={"spot0": 100.0})
    batch = build_episodes(config, 5, np.random.default_rng(2))
    part = slice_batch(batch, slice(1, 3))
    assert part.initial_cash.shape == (2,)
    for name, value in batch.episode._asdict().items():
        got = getattr(part.episode, name)
        if np.ndim(value) == 1:
            np.testing.assert_array_equal(got, value[1:3], err_msg=name)
        elif np.ndim(value) == 2:
            np.testing.assert_array_equal(got, value[:, 1:3], err_msg=name)
    copy = copy_batch(part)
    assert not np.shares_memory(copy.observations, batch.observations)
    for name, value in copy.episode._asdict().items():
        if isinstance(value, np.ndarray):
            assert not np.shares_memory(value, batch.episode._asdict()[name]), name


# -------------------------------------------------------------------------- registered ids
@pytest.mark.parametrize(("env_id", "preset"), [
    ("hedgearena/ShortCall-v0", "ShortCall"), ("hedgearena/OptionBook-v0", "OptionBook"),
    ("hedgearena/PortfolioInsurance-v0", "PortfolioInsurance"),
    ("hedgearena/HistoricalReplay-v0", "HistoricalReplay"),
])
def test_each_id_makes_its_presets_single_and_vector_env(env_id: str, preset: str) -> None:
    """Kills: an id's vector entry point another preset's (R01, R04) or the single env class
    (R05), a class on another preset (R03). Expected: the README's table of ids and presets,
    ``make_config(preset)``; ``make_vec`` kwargs reach the config."""
    from hedgearena.envs.vector_env import VecHedgingEnv

    want = make_config(preset)
    single = gym.make(env_id).unwrapped
    assert isinstance(single, HedgingEnv)
    assert repr(single.config) == repr(want)  # (a replayed history compares by identity)
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point",
                        cost=0.003)
    assert isinstance(venv.unwrapped, VecHedgingEnv)
    assert repr(venv.unwrapped.config) == repr(make_config(preset, cost=0.003))
    assert venv.unwrapped.config.n_steps == want.n_steps
    venv.close()


def test_registering_again_changes_nothing_and_warns_nothing() -> None:
    """Kills R02 (ids registered again: Gymnasium warns it overrides them). Expected: the
    docstring's "idempotent"."""
    from hedgearena.envs.registered import register_envs

    spec = gym.spec("hedgearena/ShortCall-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
    assert gym.spec("hedgearena/ShortCall-v0") is spec


def test_manual_states_the_observation_sizes_of_the_running_env() -> None:
    """Kills R06 (the manual's ``n`` off by one). Expected: the running env's Box shapes."""
    from hedgearena.envs.registered import ShortCallEnv

    plain = gym.make("hedgearena/ShortCall-v0").observation_space.shape[0]
    option = gym.make("hedgearena/ShortCall-v0", hedge_option=True).observation_space.shape[0]
    assert f"n = {plain} (or {option} with a hedging option" in " ".join(
        (ShortCallEnv.__doc__ or "").split())


def test_the_default_reward_scale_floors_the_vol_at_one_percent() -> None:
    """Kills H02 (the floor at 0.1%). Expected: ``default_reward_scale``'s documented
    ``0.4 sigma sqrt(T) S0 N`` with ``sigma`` at least 1%: a 0.5% market is scaled as 1%,
    0.4 * 0.01 * sqrt(20 / 250) * 100 * 100 = 11.31."""
    env = gym.make("hedgearena/ShortCall-v0", market_kwargs={"sigma": 0.005}).unwrapped
    assert env.reward_scale == pytest.approx(0.4 * 0.01 * math.sqrt(20 / 250) * 1e4, rel=1e-9)


# ------------------------------------------------------------------- Heston's surface
HESTON = {"kappa": 2.0, "theta": 0.04, "xi": 0.5, "rho": -0.7}  # OptionBook-v0's


def quantlib_heston_vol(strike: float, days: int, v0: float) -> float:
    """Black-Scholes vol of QuantLib's AnalyticHestonEngine call (spot 100, r = q = 0)."""
    import QuantLib as ql  # noqa: N813
    from scipy.optimize import brentq

    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    flat = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, day_count))
    process = ql.HestonProcess(flat, flat, ql.QuoteHandle(ql.SimpleQuote(100.0)), v0,
                               HESTON["kappa"], HESTON["theta"], HESTON["xi"], HESTON["rho"])
    option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, strike),
                              ql.EuropeanExercise(today + days))
    option.setPricingEngine(ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100_000))
    price, tau = option.NPV(), days / 365.0

    def bs(vol: float) -> float:
        s = vol * math.sqrt(tau)
        d1 = math.log(100.0 / strike) / s + 0.5 * s
        return float(100.0 * norm.cdf(d1) - strike * norm.cdf(d1 - s)) - price

    return float(brentq(bs, 1e-4, 3.0, xtol=1e-12))


def test_a_surface_on_a_smaller_variance_axis_still_reads_heston_vols() -> None:
    """Kills E21 (the variance cell scaled by ``max_vol`` instead of its root: the same at
    the default ``max_vol`` of 1). Expected: QuantLib's AnalyticHestonEngine prices inverted
    by ``scipy`` (the class docstring's 3e-4 in vol; 1e-3 allowed here)."""
    from hedgearena.envs.heston_surface import HestonGrid, HestonSurface

    # a coarse grid (1 s to build; within 4e-4 of QuantLib at these three options)
    surface = HestonSurface(**HESTON, grid=HestonGrid(max_vol=0.64, n_tau=21, n_vol=21, n_z=21))
    for strike, days, v0 in [(95.0, 60, 0.04), (100.0, 30, 0.0225), (108.0, 120, 0.09)]:
        got = float(surface.implied_vol(100.0, strike, days / 365, v0, 100.0, 0.0, 0.0))
        assert got == pytest.approx(quantlib_heston_vol(strike, days, v0), abs=1e-3)


def test_negative_variance_counts_as_zero_and_expiry_vol_is_capped_at_max_vol() -> None:
    """Kills E20 (a negative variance not floored at 0), E22 (the vol at expiry not capped).
    Expected: the class docstring ("a negative tau or variance counts as 0"; "at tau == 0 the
    vol is sqrt(v) (up to max_vol)", 1.0 by default)."""
    from hedgearena.envs.heston_surface import HestonGrid, HestonSurface

    surface = HestonSurface(**HESTON, grid=HestonGrid(n_tau=11, n_vol=11, n_z=11))  # fast
    strikes = np.array([90.0, 100.0, 110.0])
    below = surface.implied_vol(100.0, strikes, 0.1, -0.01, 100.0, 0.0, 0.0)
    np.testing.assert_array_equal(below, surface.implied_vol(100.0, strikes, 0.1, 0.0, 100.0,
                                                             0.0, 0.0))
    assert np.isfinite(below).all()
    at_expiry = surface.implied_vol(100.0, strikes, 0.0, np.array([4.0, 0.25, 1.44]), 100.0,
                                    0.0, 0.0)
    np.testing.assert_allclose(at_expiry, [1.0, 0.5, 1.0], rtol=1e-12)


def test_a_variance_axis_needs_two_nodes() -> None:
    """Kills E29 (``n_vol=1`` accepted). Expected: ``HestonGrid``'s documented ``n_vol >= 2``."""
    from hedgearena.envs.heston_surface import HestonGrid

    with pytest.raises(ValueError, match="n_vol"):
        HestonGrid(n_vol=1)
    assert HestonGrid(n_vol=2).vol_axis().tolist() == [0.0, 1.0]


def test_single_env_episodes_are_the_rows_of_its_blocks_in_order() -> None:
    """Kills: a new block's rows read from the first block's lists (H68), a block rebuilt a
    row early (S02). Expected: the source's documented order, against ``build_episodes`` on
    ``np.random.default_rng(seed)`` (Gymnasium's ``np_random(seed)`` is that generator):
    with ``block=2``, episodes 0-1 are rows 0-1 of the first block, 2-3 of the second."""
    config = _small_config()
    env = HedgingEnv(config=config, block=2)
    rng = np.random.default_rng(21)
    blocks = [build_episodes(config, 2, rng).episode.spot for _ in range(3)]
    for k in range(5):
        env.reset(seed=21 if k == 0 else None)
        spots = [env.state["spot"]]
        for _ in range(3):
            *_, info = env.step(np.array([0.0], np.float32))
            spots.append(info["spot"])
        np.testing.assert_array_equal(spots, blocks[k // 2][:, k % 2], err_msg=f"episode {k}")


def test_state_reports_the_steps_cost_rate_and_the_markets_rates() -> None:
    """Kills H58 (``cost_linear`` of step 0 at every step), H59 (``rate`` the dividend).
    Expected: the ``state`` docstring (``cost_linear`` currency per unit traded: 1% of the
    spot here; ``rate``, ``dividend`` the market's 5% and 2%)."""
    env = ledger_env()
    env.reset(seed=1)
    for _ in range(3):
        env.step(np.array([0.5], np.float32))
        s = env.state
        assert s["cost_linear"] == pytest.approx(COST * s["spot"], rel=1e-12)
        assert (s["rate"], s["dividend"], s["dt"]) == (RATE, DIVIDEND, DT)


def test_ansi_render_is_none_before_a_reset_then_the_steps_line_with_its_wealth() -> None:
    """Kills H61 (rendering before a reset), H60 (the line's wealth the initial one).
    Expected: ``render``'s docstring and ``state_line``'s format, the wealth from the step's
    info (the hand ledger's wealth, checked above)."""
    env = ledger_env(render_mode="ansi")
    assert env.render() is None
    env.reset(seed=2)
    env.step(np.array([1.0], np.float32))
    *_, info = env.step(np.array([-1.0], np.float32))
    line = env.render()
    assert isinstance(line, str)
    assert line.startswith("step    2")
    assert line.endswith(f"wealth {info['wealth']:12.4f}")
    assert abs(info["wealth"]) > 1e-3  # not the initial wealth of 0
