"""The single env's risk limits, stress totals and stories (second mutation round).

Tests written for the mutants of ``envs/hedging_env.py`` (and ``envs/heston_surface.py``) that
the rest of the suite let live. Each test's docstring names the mutants it kills and where its
expected numbers come from: a cash account written out here (1% proportional costs on the
traded value, Black-Scholes-Merton marks in ``scipy.stats.norm``, not the project's pricer) or
the documented behaviour itself.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import norm

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.book import Option, OptionBook
from hedgearena.envs.hedging_env import HedgingEnv

N = 100.0  # ShortCall's notional: 1 contract x 100
COST = 0.01  # ShortCall's proportional cost: 1% of the traded value
LIMIT = 1.5  # ShortCall's position_limit: action_mode="target" holds a * 1.5 * N units


def short_call(**kwargs: Any) -> HedgingEnv:
    """The ShortCall single env, ``action_mode="target"`` (``a`` asks for ``a * 150`` units)."""
    env = gym.make("hedgearena/ShortCall-v0", action_mode="target", **kwargs).unwrapped
    assert isinstance(env, HedgingEnv)
    return env


# ------------------------------------------------------------------ a terminate limit, no unwind
def test_a_terminate_limit_without_unwind_ends_the_episode_keeping_the_positions() -> None:
    """Kills H37 (a ``terminate`` limit sells the positions even with ``unwind=False``) and H30
    (positions kept at the end counted as unfilled units). Expected: the limits' manual ("the
    episode ends there: terminated=True, the positions sold when ``unwind`` is set") and the
    totals' ("``unfilled`` ... per order: the decision's and the sale's at the end"), by hand:
    buying 150 units at S0 breaches the delta limit (net delta ~ +1 N > 0.3 N); the position is
    kept, the only cost is the purchase's 1% x 150 x S0, every order filled (immediate
    execution, no fill limits): 0 unfilled."""
    env = short_call(risk_limits={"delta": 0.3, "action": "terminate"}, unwind=False)
    env.reset(seed=0)
    s0 = env.state["spot"]
    _, _, terminated, truncated, info = env.step(np.array([1.0], np.float32))
    assert (terminated, truncated, info["termination_reason"]) == (True, False, "delta")
    assert info["step"] == 1
    assert info["trade"] == info["hedge"] == 150.0
    assert info["cost"] == pytest.approx(COST * 150.0 * s0, rel=1e-12)
    totals = info["totals"]
    assert totals["breaches"] == 1
    assert totals["unfilled"] == 0.0
    assert totals["cost"] == pytest.approx(COST * 150.0 * s0, rel=1e-12)
    assert totals["terminal_pnl"] == pytest.approx(info["pnl"], rel=1e-12)


def test_positions_held_to_the_end_without_unwind_leave_nothing_unfilled() -> None:
    """Kills H30 at the horizon (a stressed env, here by a risk limit that never breaches,
    counted the hedge still held at the end as unfilled). Expected: the totals' manual (no
    sale without ``unwind``: each order's unfilled units only, 0 with every order filled)."""
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=3, contracts=-1.0),))
    env = short_call(book=book, risk_limits={"delta": 100.0}, unwind=False)
    env.reset(seed=1)
    for _ in range(3):
        *_, info = env.step(np.array([0.4], np.float32))
    assert info["hedge"] == pytest.approx(0.4 * LIMIT * N)  # held, not sold
    assert info["totals"]["unfilled"] == 0.0
    assert info["totals"]["breaches"] == 0


# ------------------------------------------------------------------------------ the path story
STEPS = 4
ACTIONS = [0.25, 1.0, -1.0, -0.125]  # float32-exact: 37.5, 150, -150, -18.75 units
HELD = [a * LIMIT * N for a in ACTIONS]


def test_the_rgb_story_holds_each_decisions_hedge_and_cumulative_cost_then_the_current_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kills H29 (the story's cost the decision's own, not the cumulative cost) and H72 (the
    current step's point left out). Expected: ``story_frame``'s documented ``story``, "(step,
    hedge held after the decision, cumulative cost) of each decision, then the current step's",
    by hand: a decision at step t trading ``HELD[t] - HELD[t-1]`` pays 1% of its value at
    ``S_t``; the unwind at the end sells ``HELD[3]`` at ``S_4`` for 1% more (in the cost)."""
    from hedgearena.envs import rendering

    captured: list[list[tuple[int, float, float]]] = []

    def capture(story: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        captured.append(list(story))
        return np.zeros((2, 2, 3), np.uint8)

    monkeypatch.setattr(rendering, "story_frame", capture)
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=STEPS, contracts=-1.0),))
    env = short_call(book=book, render_mode="rgb_array")
    env.reset(seed=7)
    spots, cost, want = [env.state["spot"]], 0.0, [(0, 0.0, 0.0)]
    held = 0.0
    for t, a in enumerate(ACTIONS):
        env.step(np.array([a], np.float32))
        spots.append(env.state["spot"])
        cost += COST * abs(HELD[t] - held) * spots[t]
        held = HELD[t]
        if t == STEPS - 1:
            cost += COST * abs(held) * spots[t + 1]  # the unwind's sale
        want.append((t, held, cost))
        if t == 1:  # mid-episode: the current step holds the last decision's hedge and cost
            env.render()
            mid = [*want, (2, held, cost)]
    env.render()
    final = [*want, (STEPS, 0.0, cost)]  # after the unwind: nothing held
    assert len(captured) == 2
    for got, expected in zip(captured, (mid, final), strict=True):
        assert [s for s, _, _ in got] == [s for s, _, _ in expected]
        np.testing.assert_allclose([h for _, h, _ in got], [h for _, h, _ in expected],
                                   rtol=1e-12)
        np.testing.assert_allclose([c for *_, c in got], [c for *_, c in expected], rtol=1e-12)
    assert cost > 5.0  # the costs are visible


def test_a_breach_at_the_horizon_is_reported_but_the_reason_stays_expiry() -> None:
    """Kills H35 (a ``terminate`` limit crossed on the last decision names the limit as the
    reason the episode ended). Expected: ``termination_reason`` is "expiry" at the book's
    horizon and a limit's name only "when a ``terminate`` risk limit ends the episode"
    (``EXPIRY``'s docstring); a breach is still reported in ``breach`` (delta's bit, 1) and
    counted. By hand: a deep in-the-money short call (strike 80% of S0) hedged with 93.75
    units has |net delta| ~ 0.06 N, within the 0.3 N limit, until the call settles at the
    horizon (delta 0) with the 93.75 units still held (``unwind=False``): 0.94 N."""
    book = OptionBook(options=(Option(moneyness=0.8, expiry_steps=3, contracts=-1.0),))
    env = short_call(book=book, risk_limits={"delta": 0.3, "action": "terminate"},
                     unwind=False)
    env.reset(seed=0)
    outcomes = []
    for _ in range(3):
        _, _, terminated, _, info = env.step(np.array([0.625], np.float32))  # 93.75 units
        outcomes.append((terminated, info["termination_reason"], info["breach"]))
    assert outcomes == [(False, "", 0), (False, "", 0), (True, "expiry", 1)]
    assert info["hedge"] == 93.75
    assert info["totals"]["breaches"] == 1


def test_two_limits_crossed_on_one_decision_count_two_breaches() -> None:
    """Kills H38 (a decision's breaches counted once however many limits it crosses).
    Expected: ``breaches`` is "a count" of breaches, one per limit crossed (the limits'
    manual: each limit's crossing is a breach, reported as a bit: delta 1, gamma 2). By hand
    (``scipy`` Black-Scholes, 20% vol): the unhedged at-the-money short call 3 steps from expiry
    has |delta| ~ N(d1) ~ 0.5 N > 0.3 N and gamma N phi(d1) / (S sigma sqrt(tau)) * S * 1% / N
    ~ 0.18 > 0.05; the exposures stay over the limits, so no later breach."""
    tau = 3 / 250
    d1 = 0.5 * 0.2 * math.sqrt(tau)
    assert norm.cdf(d1) > 0.3
    assert norm.pdf(d1) / (0.2 * math.sqrt(tau)) * 0.01 > 0.05
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=3, contracts=-1.0),))
    env = short_call(book=book, risk_limits={"delta": 0.3, "gamma": 0.05})
    env.reset(seed=2)
    *_, info = env.step(np.array([0.0], np.float32))
    assert info["breach"] == 1 | 2
    for _ in range(2):
        *_, info = env.step(np.array([0.0], np.float32))
    assert info["totals"]["breaches"] == 2


# ---------------------------------------------------------------- a book that holds stock
def bs_call(spot: float, strike: float, tau: float, sigma: float = 0.2) -> float:
    """Black-Scholes call on one unit, r = q = 0 (ShortCall's market); the payoff at 0."""
    if tau == 0.0:
        return max(spot - strike, 0.0)
    s = sigma * math.sqrt(tau)
    d1 = math.log(spot / strike) / s + 0.5 * s
    return float(spot * norm.cdf(d1) - strike * norm.cdf(d1 - s))


def test_wealth_counts_the_books_stock_and_terminal_pnl_is_its_change() -> None:
    """Kills H54 (``info["wealth"]`` measured from the initial wealth) and H56
    (``terminal_pnl`` the final wealth, not its change): equivalent only while the initial
    wealth is 0, which a book holding stock is not. Expected: the manual's ``wealth`` = ``B + h
    S + g O + cash`` with ``B`` the book's value, here by hand the short call at ``scipy``
    Black-Scholes (20% vol, r = q = 0; settled in cash at expiry) plus the book's 30 units of
    stock; ``terminal_pnl`` = "final minus initial wealth, which equals the sum of ``pnl``".
    The initial wealth is the stock's 30 S0 (the call's premium is in the cash)."""
    stock, steps = 30.0, 3
    book = OptionBook(options=(Option(moneyness=1.0, expiry_steps=steps, contracts=-1.0),),
                      stock=stock)
    env = short_call(book=book)
    _, info = env.reset(seed=3)
    s0 = env.state["spot"]
    assert info["wealth"] == pytest.approx(stock * s0, rel=1e-12)
    assert info["cash"] == pytest.approx(N * bs_call(s0, s0, steps / 250), rel=1e-9)
    pnl = 0.0
    for t in range(1, steps + 1):
        *_, info = env.step(np.array([-0.2], np.float32))
        pnl += info["pnl"]
        s = info["spot"]
        book_value = stock * s - (N * bs_call(s, s0, (steps - t) / 250) if t < steps else 0.0)
        want = book_value + info["hedge"] * s + info["cash"]
        assert info["wealth"] == pytest.approx(want, rel=1e-9), t
    assert info["totals"]["terminal_pnl"] == pytest.approx(info["wealth"] - stock * s0,
                                                           rel=1e-9)
    assert info["totals"]["terminal_pnl"] == pytest.approx(pnl, rel=1e-9)
    assert abs(pnl) > 1.0


# ------------------------------------------------------------------------- Heston's surface
def test_an_unresolvable_heston_row_takes_the_root_of_the_cir_average_variance() -> None:
    """Kills E25 (the unresolved rows' fallback ``sqrt(v)``, the spot variance, instead of the
    short-time limit). Expected: ``finish_table``'s documented fallback, "the short-time limit,
    flat at the surface's root of average variance", written out here from the CIR mean (Cox,
    Ingersoll and Ross 1985): ``E[(1/tau) int_0^tau v dt] = theta + (v0 - theta) (1 - e^{-k
    tau}) / (k tau)``, at ``v0 = 0``: ``theta (k tau + expm1(-k tau)) / (k tau)``. With the
    long-run vol of 1.2% of ``test_tiny_variances_tabulate`` and a 1e-6-year expiry node, no
    price rises above the noise (a total vol of about 1e-8), so the row is the fallback."""
    from hedgearena.envs.heston_surface import HestonGrid, HestonSurface

    kappa, theta = 2.0, 0.0001373291015625
    grid = HestonGrid(max_tau=0.01, n_tau=11, n_vol=2, n_z=5)  # tau nodes 0, 1e-6, 1.6e-5, ...
    surface = HestonSurface(kappa=kappa, theta=theta, xi=0.5, rho=-0.7, grid=grid)
    tau = 0.01 * 0.1**4
    x = kappa * tau
    want = math.sqrt(theta * (x + math.expm1(-x)) / x)  # 1.17e-5
    vols = surface.implied_vol(100.0, np.array([99.99, 100.0, 100.01]), tau, 0.0, 100.0, 0.0,
                               0.0)
    np.testing.assert_allclose(vols, want, rtol=1e-6)


# ------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("actions", [np.array([[True], [False]]), np.array([[1 + 0j], [0j]])])
def test_boolean_and_complex_actions_are_refused_by_the_vector_env(actions: np.ndarray) -> None:
    """Kills H13 (the dtype check reduced to objects, strings, bytes and voids: booleans and
    complex numbers taken as numbers). Expected: ``NUMERIC_KINDS``' documented "floats and
    integers (not booleans, strings, bytes)" and ``check_actions``' ``ValueError`` naming "a
    non-numeric action"."""
    from hedgearena.envs.vector_env import VecHedgingEnv

    env = VecHedgingEnv(num_envs=2, preset="ShortCall")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="array of numbers"):
        env.step(actions)


def test_a_config_and_keyword_fields_together_are_refused() -> None:
    """Kills H65 (keywords beside ``config=`` silently ignored). Expected: the documented
    either-or of ``HedgingEnv(**kwargs)`` / ``config=EnvConfig(...)``: a ``ValueError``."""
    from hedgearena.envs.config import make_config

    with pytest.raises(ValueError, match="either config"):
        HedgingEnv(config=make_config("ShortCall"), cost=0.1)
