"""The batched core: accounting identity, P&L components, action modes, costs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.envs.book import ClientFlow, HedgeOption, Option, OptionBook
from hedgearena.envs.config import make_config
from hedgearena.envs.core import (
    ARRAY_OPS,
    PNL_COMPONENTS,
    SCALAR_OPS,
    CoreConfig,
    Episode,
    HedgeState,
    StepResult,
    target_position,
    transition,
)
from hedgearena.envs.frictions import cost_polynomial, round_to_lot
from hedgearena.envs.vector_env import VecHedgingEnv


def run_random_episode(env: VecHedgingEnv, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run one episode of random actions; return the summed info components and the totals."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    sums = {name: np.zeros(env.num_envs) for name in (*PNL_COMPONENTS, "pnl")}
    while True:
        actions = rng.uniform(-1, 1, size=env.action_space.shape)
        _, _, terminated, _, infos = env.step(actions)
        for name in sums:
            sums[name] += infos[name]
        if terminated.all():
            return sums, infos["totals"]["terminal_pnl"]


BOOK = OptionBook(
    options=(Option(1.0, 30, -2.0), Option(0.9, 10, 1.0, is_call=False)),
    stock=50.0,
    client_flow=ClientFlow(rate=500.0, expiry_steps=(5, 15, 45)),
)


@pytest.mark.parametrize("action_mode", ["target", "trade", "fraction", "band"])
def test_accounting_identity_every_path(action_mode: str) -> None:
    """Sum of per-step P&L components == final minus initial wealth, 1e-9 relative, every path.

    A hard case on purpose: nonzero r and q, a book with stock, calls and puts that expire and
    settle inside the episode, client flow, a hedging option, rebalancing every 2 steps, lots,
    fixed and impact costs, and the unwind at the end.
    """
    env = VecHedgingEnv(
        num_envs=64,
        market="heston",
        market_kwargs={
            "kappa": 1.5,
            "theta": 0.05,
            "xi": 0.6,
            "rho": -0.6,
            "v0": 0.04,
            "rate": 0.03,
            "dividend": 0.01,
        },
        book=BOOK,
        n_steps=30,
        rebalance_every=2,
        hedge_option=HedgeOption(expiry_steps=60),
        cost={
            "proportional": 0.002,
            "fixed": {"ticket": 1.0},
            "linear_impact": {"eta": 0.1, "daily_volume": 1e4},
        },
        lot_size=1.0,
        action_mode=action_mode,
    )
    sums, terminal = run_random_episode(env, seed=3)
    components = sum(sums[name] for name in PNL_COMPONENTS if name != "cost") - sums["cost"]
    scale = np.maximum(np.abs(terminal), 1.0)
    np.testing.assert_array_less(np.abs(components - terminal) / scale, 1e-9)
    np.testing.assert_array_less(np.abs(sums["pnl"] - terminal) / scale, 1e-9)
    assert np.all(sums["cost"] > 0)


def test_short_call_no_hedge_pnl_is_premium_minus_payoff() -> None:
    """Unhedged short call with r = 0: terminal P&L = premium - 100 * max(S_T - K, 0) exactly."""
    env = VecHedgingEnv(num_envs=32, preset="ShortCall", cost=0.0, action_mode="target")
    env.reset(seed=1)
    premium = env.batch.initial_cash.copy()
    spot_t = env.batch.episode.spot[-1].copy()
    strike = env.batch.instruments.strike[:, 0]
    for _ in range(20):
        _, _, terminated, _, infos = env.step(np.zeros((32, 1)))
    assert terminated.all()
    expected = premium - 100.0 * np.maximum(spot_t - strike, 0.0)
    np.testing.assert_allclose(infos["totals"]["terminal_pnl"], expected, rtol=1e-12, atol=1e-9)


def test_carry_books_interest_and_dividends() -> None:
    """Holding h shares for one step at rates r, q: carry = cash (e^{r dt}-1) + h S (e^{q dt}-1)."""
    env = VecHedgingEnv(
        num_envs=4,
        preset="ShortCall",
        cost=0.0,
        market_kwargs={"sigma": 0.2, "rate": 0.05, "dividend": 0.02},
    )
    env.reset(seed=0)
    cash0 = env.batch.initial_cash.copy()
    spot0 = env.batch.episode.spot[0].copy()
    _, _, _, _, infos = env.step(np.full((4, 1), 0.5))  # target 0.5 * 1.5 * 100 = 75 shares
    dt = 1 / 250
    expected = (cash0 - 75 * spot0) * (math.exp(0.05 * dt) - 1) + 75 * spot0 * (
        math.exp(0.02 * dt) - 1
    )
    np.testing.assert_allclose(infos["carry"], expected, rtol=1e-12)


def test_target_modes_scalar_and_array_agree() -> None:
    config = CoreConfig(notional=100.0)
    rng = np.random.default_rng(0)
    a, pos, model = rng.uniform(-1, 1, 50), rng.normal(0, 50, 50), rng.normal(0, 50, 50)
    for mode in ("target", "trade", "fraction", "band"):
        vector = target_position(mode, a, pos, model, config, ARRAY_OPS)
        scalar = [
            target_position(mode, *x, config, SCALAR_OPS) for x in zip(a, pos, model, strict=True)
        ]
        np.testing.assert_allclose(vector, scalar, rtol=0, atol=0)


def test_band_mode_keeps_position_inside_band_and_fraction_limits() -> None:
    config = CoreConfig(notional=100.0, band_limit=0.5)
    assert target_position("band", 1.0, 40.0, 50.0, config, SCALAR_OPS) == 40.0  # inside [0, 100]
    assert target_position("band", -1.0, 40.0, 50.0, config, SCALAR_OPS) == 50.0  # zero width
    assert target_position("fraction", 1.0, 40.0, 50.0, config, SCALAR_OPS) == 50.0
    assert target_position("fraction", -1.0, 40.0, 50.0, config, SCALAR_OPS) == 40.0


def test_cost_polynomial_and_lots_on_floats_and_arrays() -> None:
    """The single env costs floats, the vector env arrays: same formula, same numbers."""
    assert cost_polynomial(0.0, 1.0, 1.0, 1.0, 5.0) == 0.0
    assert cost_polynomial(4.0, 0.5, 0.25, 1.0, 2.0) == pytest.approx(0.5 * 4 + 0.25 * 16 + 8 + 2)
    trades = np.array([-4.0, 0.0, 2.5])
    np.testing.assert_array_equal(
        cost_polynomial(trades, 0.5, 0.25, 1.0, 2.0),
        [cost_polynomial(float(q), 0.5, 0.25, 1.0, 2.0) for q in trades],
    )
    assert round_to_lot(149.0, 100.0) == 100.0
    np.testing.assert_array_equal(
        round_to_lot(np.array([149.0, 151.0, -50.0, 250.0]), 100.0), [100, 200, -0.0, 200]
    )


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="action_mode must be one of"):
        make_config("ShortCall", action_mode="teleport")
    with pytest.raises(ValueError, match="rebalance_every"):
        make_config("ShortCall", rebalance_every=3)  # 20 steps
    with pytest.raises(ValueError, match="unknown env keyword"):
        make_config("ShortCall", strike=100)
    with pytest.raises(ValueError, match="market must be one of"):
        make_config("ShortCall", market="bachelier")
    with pytest.raises(ValueError, match=r"hedge_option\.expiry_steps"):
        make_config("ShortCall", hedge_option={"expiry_steps": 10})


DEFAULT_PATH_ZEROS = ("impact_pnl", "unfilled", "option_unfilled", "slippage")
"""StepResult fields the default path leaves at 0.0 (no impact, fills or child orders)."""


def _random_episode(rng: np.random.Generator, n_steps: int, n_paths: int, rates: bool) -> Episode:
    """An Episode of random time-major arrays; cost terms are zero at some steps, not others."""
    shape = (n_steps + 1, n_paths)
    sparse = [rng.uniform(0, 0.1, shape) * (rng.random((n_steps + 1, 1)) < 0.5) for _ in range(4)]
    return Episode(
        spot=rng.uniform(80, 120, shape),
        option_price=rng.uniform(1, 5, shape),
        model_hedge=rng.normal(0, 50, shape),
        model_option=rng.normal(0, 1, shape),
        book_value=rng.normal(0, 100, shape),
        option_mtm=rng.normal(0, 10, shape),
        cash_flow=rng.normal(0, 10, shape),
        spread_income=rng.uniform(0, 1, shape),
        linear=rng.uniform(0, 1, shape),
        quadratic=sparse[0],
        three_halves=sparse[1],
        fixed=sparse[2],
        option_linear=sparse[3],
        stock=rng.normal(0, 10, n_paths),
        rate_growth=math.exp(0.03 / 250) if rates else 1.0,
        dividend_growth=math.exp(0.01 / 250) if rates else 1.0,
    )


def _one_path(episode: Episode, p: int) -> Episode:
    return Episode(
        *(v[:, p].tolist() if np.ndim(v) == 2 else float(v[p]) if np.ndim(v) == 1 else v
          for v in episode)
    )


@pytest.mark.parametrize("rates", [False, True])
@pytest.mark.parametrize("rebalance_every", [1, 2])
def test_transition_on_arrays_equals_transition_on_floats(
    rates: bool, rebalance_every: int
) -> None:
    """The vector path (which skips cost terms and carry that are 0) books what the scalar does."""
    rng = np.random.default_rng(11)
    n_steps, n_paths = 6, 5
    episode = _random_episode(rng, n_steps, n_paths, rates)
    config = CoreConfig(rebalance_every=rebalance_every, lot_size=0.5)
    state = HedgeState(
        rng.normal(0, 50, n_paths), rng.normal(0, 1, n_paths), rng.normal(0, 99, n_paths)
    )
    for step in range(0, n_steps, rebalance_every):
        h, g = rng.normal(0, 50, n_paths), rng.normal(0, 1, n_paths) * (step % 4 != 0)
        vector = transition(episode, step, n_steps, state, h, g, config)
        for p in range(n_paths):
            one = HedgeState(*(float(np.broadcast_to(x, (n_paths,))[p]) for x in state))
            scalar = transition(_one_path(episode, p), step, n_steps, one, float(h[p]), float(g[p]),
                                config)
            for name, got, want in zip(StepResult._fields, vector, scalar, strict=True):
                if name == "state":
                    got = [np.broadcast_to(x, (n_paths,))[p] for x in got]
                    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-12)
                elif name in DEFAULT_PATH_ZEROS:  # the default path has none of these
                    assert got == want == 0.0, name
                else:
                    assert np.shape(got) == (n_paths,), name
                    assert got[p] == pytest.approx(want, rel=1e-13, abs=1e-12), name
        state = vector.state


def test_transition_on_torch_tensors_matches_numpy() -> None:
    """The deep-hedging trainer's path: tensors in, tensors of the batch's shape out."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    episode = _random_episode(rng, 4, 3, rates=False)
    tensors = Episode(
        *(torch.as_tensor(v) if isinstance(v, np.ndarray) else v for v in episode)
    )
    config = CoreConfig(lot_size=0.0)
    state = HedgeState(*(rng.normal(0, 10, 3) for _ in range(3)))
    h = rng.normal(0, 50, 3)
    g = rng.normal(0, 1, 3)
    want = transition(episode, 3, 4, state, h, g, config)
    got = transition(
        tensors, 3, 4, HedgeState(*(torch.as_tensor(x) for x in state)), torch.as_tensor(h),
        torch.as_tensor(g), config,
    )
    for name, a, b in zip(StepResult._fields[1:], got[1:], want[1:], strict=True):
        if name in DEFAULT_PATH_ZEROS:
            assert a == b == 0.0, name
            continue
        assert isinstance(a, torch.Tensor), name
        assert tuple(a.shape) == (3,), name
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-13, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("rates", [False, True])
def test_skipping_the_absent_hedging_option_books_the_same_numbers(rates: bool) -> None:
    """``with_option=False`` skips the option's terms; where they are 0 nothing changes, bit
    for bit (the skipped terms add exact zeros), on arrays and on floats alike."""
    rng = np.random.default_rng(5)
    n_steps, n_paths = 6, 4
    full = _random_episode(rng, n_steps, n_paths, rates)._replace(
        option_price=np.zeros((n_steps + 1, n_paths)), model_option=np.zeros((n_steps + 1, n_paths))
    )
    lean = full._replace(with_option=False)
    config = CoreConfig(rebalance_every=2)
    state = HedgeState(rng.normal(0, 50, n_paths), np.zeros(n_paths), rng.normal(0, 99, n_paths))
    for step in range(0, n_steps, 2):
        h = rng.normal(0, 50, n_paths)
        want = transition(full, step, n_steps, state, h, np.zeros(n_paths), config)
        got = transition(lean, step, n_steps, state, h, np.zeros(n_paths), config)
        for name, a, b in zip(StepResult._fields[1:], got[1:], want[1:], strict=True):
            np.testing.assert_array_equal(np.broadcast_to(a, (n_paths,)), b, err_msg=name)
        for a, b in zip(got.state, want.state, strict=True):
            np.testing.assert_array_equal(np.broadcast_to(a, (n_paths,)), b)
        one = HedgeState(*(float(np.broadcast_to(x, (n_paths,))[0]) for x in state))
        scalar = transition(_one_path(lean, 0), step, n_steps, one, float(h[0]), 0.0, config)
        assert scalar.pnl == want.pnl[0]
        assert scalar.state.cash == want.state.cash[0]
        state = want.state
