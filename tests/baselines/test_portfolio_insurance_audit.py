"""Audit of the portfolio-insurance baselines against their continuous-time closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.baselines import CPPI, SyntheticPut, run_hedger
from hedgearena.envs.book import Option, OptionBook
from hedgearena.envs.vector_env import VecHedgingEnv

N_UNITS, FLOOR, S0, RATE, SIGMA, T = 100.0, 0.9, 100.0, 0.02, 0.2, 0.25
LEPO_STRIKE = 1e-6 * S0


def _env(n_paths: int, n_steps: int, dividend: float = 0.0) -> VecHedgingEnv:
    """The PortfolioInsurance book over 3 months cut into ``n_steps`` steps, at zero cost."""
    book = OptionBook(options=(
        Option(moneyness=FLOOR, expiry_steps=n_steps, contracts=-1.0, is_call=False),
        Option(moneyness=1e-6, expiry_steps=n_steps, contracts=-1.0),
    ))
    return VecHedgingEnv(
        num_envs=n_paths, preset="PortfolioInsurance", cost=0.0, n_steps=n_steps, book=book,
        days_per_year=n_steps / T, market_kwargs={"dividend": dividend},
    )


def _terminal_assets(env: VecHedgingEnv, terminal_pnl: np.ndarray) -> np.ndarray:
    """Assets at T from the P&L (= assets - N max(S_T, K) - the LEPO's strike)."""
    promise = N_UNITS * np.maximum(env.batch.market.spot[:, -1], FLOOR * S0)
    return terminal_pnl + promise - N_UNITS * LEPO_STRIKE


def _cppi_error(n_steps: int, multiplier: float, dividend: float) -> np.ndarray:
    """(discrete CPPI's A_T - the continuous closed form) / C_0 on 400 paths, no leverage cap."""
    env = _env(400, n_steps, dividend)
    record = run_hedger(env, CPPI(multiplier, leverage=1e9), seed=11)
    s_t = env.batch.market.spot[:, -1]
    assets_0 = record.totals["initial_premium"]
    cushion_0 = assets_0 - N_UNITS * FLOOR * S0 * math.exp(-RATE * T)
    m = multiplier
    closed = N_UNITS * FLOOR * S0 + cushion_0 * (s_t / S0) ** m * np.exp(
        ((1 - m) * (RATE + m * SIGMA**2 / 2) + m * dividend) * T
    )
    return (_terminal_assets(env, record.totals["terminal_pnl"]) - closed) / cushion_0


@pytest.mark.parametrize("dividend", [0.0, 0.03])
def test_cppi_converges_to_the_black_perold_closed_form(dividend):
    """Black and Perold (1992), "Theory of constant proportion portfolio insurance", J. Econ.
    Dynamics and Control 16: with continuous trading and no cap, the cushion is
    C_T = C_0 (S_T / S_0)^m exp((1 - m)(r + m sigma^2 / 2) T) (times e^{m q T} when the index
    pays its dividend yield q into the account), and the assets F_T + C_T with F_T = N K.

    The discrete strategy's error relative to C_0 shrinks like 1 / sqrt(steps): measured RMS
    0.0124 at 63 steps and 0.0030 at 1008 (m = 4, seed 11, q = 0; 0.0127 and 0.0031 with
    q = 3%); the mean error at 1008 steps is 0.00015 (SE 0.00015). Bounds: RMS < 0.006 at 1008
    steps, the RMS ratio > 2.5 (theory 4), and the mean within 4 SE of 0 plus 0.001.
    """
    coarse, fine = _cppi_error(63, 4.0, dividend), _cppi_error(1008, 4.0, dividend)
    rms_coarse, rms_fine = (math.sqrt(np.mean(e * e)) for e in (coarse, fine))
    assert rms_fine < 0.006
    assert rms_coarse / rms_fine > 2.5
    assert abs(fine.mean()) < 4 * fine.std() / math.sqrt(len(fine)) + 0.001


def test_cppi_gap_shortfall_is_kept_and_the_strategy_goes_to_cash():
    """Sigma 90% and m = 10: some paths fall more than 1/m in a day. Below the floor the
    exposure is 0 (Perold and Sharpe 1988: max(m C, 0)), the assets then earn the rate, and
    the terminal shortfall below N K is reported, not clipped."""
    env = VecHedgingEnv(num_envs=300, preset="PortfolioInsurance", cost=0.0,
                        market_kwargs={"sigma": 0.9})
    hedger = CPPI(10.0)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Watch(CPPI):
        def reset(self, env: VecHedgingEnv) -> None:
            hedger.reset(env)
            super().reset(env)

        def positions(self, state, obs):
            out = hedger.positions(state, obs)
            seen.append((hedger.assets(state) < hedger.floor_value(state), out[:, 0].copy()))
            return out

    record = run_hedger(env, Watch(10.0), seed=3)
    below_any = np.zeros(300, dtype=bool)
    for below, hedge in seen:
        assert np.all(hedge[below] == 0.0)
        below_any |= below
    assert below_any.sum() > 10  # the gap was exercised
    assets_t = _terminal_assets(env, record.totals["terminal_pnl"])
    assert np.all(np.isfinite(assets_t))
    assert np.all(assets_t[below_any] < N_UNITS * FLOOR * S0)


def test_synthetic_put_converges_to_the_insured_payoff():
    """Rubinstein and Leland (1981): at zero cost the replicating portfolio's terminal value
    tends to N max(S_T, K); the miss's std shrinks like 1 / sqrt(steps) (Boyle and Emanuel
    1980). Measured std 12.4 and 7.1 at 252 and 1008 steps (currency, N S_0 = 10000; 300
    paths, seed 5; 14.2 and 6.8 on 1000 paths), means -0.33 and -0.32 (SE 0.71 and 0.41).
    Bounds: std ratio > 1.5 (theory 2), fine std < 0.15% of N S_0, means within 4 SE."""
    stds, means = [], []
    for n_steps in (252, 1008):
        env = _env(300, n_steps)
        record = run_hedger(env, SyntheticPut(), seed=5)
        promise = N_UNITS * np.maximum(env.batch.market.spot[:, -1], FLOOR * S0)
        miss = _terminal_assets(env, record.totals["terminal_pnl"]) - promise
        stds.append(miss.std())
        means.append((miss.mean(), miss.std() / math.sqrt(len(miss))))
    assert stds[0] / stds[1] > 1.5
    assert stds[1] < 0.0015 * N_UNITS * S0
    for mean, se in means:
        assert abs(mean) < 4 * se


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"multiplier": "4"}, "multiplier"),
        ({"multiplier": None}, "multiplier"),
        ({"multiplier": True}, "multiplier"),
        ({"floor": "0.9"}, "floor"),
        ({"leverage": None}, "leverage"),
    ],
)
def test_cppi_bad_parameters_name_the_field(kwargs, name):
    # Before: math.isfinite raised "TypeError: must be real number, not str" (no field named),
    # and multiplier=True was taken as 1.
    with pytest.raises(ValueError, match=rf"{name} must be > 0"):
        CPPI(**kwargs)
