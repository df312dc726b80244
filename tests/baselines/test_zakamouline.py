"""Zakamouline's band against his published fits, QuantLib's delta and the arena.

Reference: Zakamouline (2006), "Efficient analytic approximation of the optimal hedging
strategy for a European call option with transaction costs", Quantitative Finance 6(5),
435-445; the fitted band as quoted by Sinclair, *Volatility Trading*, 2nd ed. (2013), ch. 7:
``H_0 = lambda / (gamma S sigma^2 T)``, ``H_1 = 1.12 lambda^0.31 T^0.05 (e^{-rT}/sigma)^0.25
(|Gamma|/gamma)^0.5``, ``K = -4.76 lambda^0.78 T^-0.02 (e^{-rT}/sigma)^0.25 (gamma S^2
|Gamma|)^0.15`` and the centre the delta at ``sigma^2 (1 - K)`` for a short option.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)

from hedgearena.baselines import BlackScholesDelta, Hedger, WhalleyWilmott, run_hedger
from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark, tuned_family
from hedgearena.baselines.hedger import State
from hedgearena.baselines.registry import parse_hedger
from hedgearena.baselines.zakamouline import (
    Zakamouline,
    zakamouline_half_width,
    zakamouline_vol,
)
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv


class Recorder(Hedger):
    """Keeps each state a hedger saw and the positions it returned."""

    def __init__(self, inner: Hedger) -> None:
        self.inner, self.name = inner, inner.name
        self.seen: list[tuple[dict[str, Any], np.ndarray]] = []

    def reset(self, env: VecHedgingEnv) -> None:
        self.inner.reset(env)
        self.seen = []

    def positions(self, state: State, obs: np.ndarray) -> np.ndarray:
        out = self.inner.positions(state, obs)
        self.seen.append(({k: np.copy(v) for k, v in state.items()}, np.array(out, copy=True)))
        return out


def published_band(lam: float, risk: float, spot: float, sigma: float, tau: float, rate: float,
                   gamma: float) -> tuple[float, float]:
    """``(H_0 + H_1, sigma_m)`` of a short gamma position, written from the formulas above."""
    scale = (math.exp(-rate * tau) / sigma) ** 0.25
    h0 = lam / (risk * spot * sigma**2 * tau)
    h1 = 1.12 * lam**0.31 * tau**0.05 * scale * math.sqrt(abs(gamma) / risk)
    k = -4.76 * lam**0.78 / tau**0.02 * scale * (risk * spot**2 * abs(gamma)) ** 0.15
    return h0 + h1, sigma * math.sqrt(1.0 - k)


def quantlib_call_delta(spot: float, strike: float, tau: float, vol: float, rate: float) -> float:
    """QuantLib's Black-Scholes delta of a call (no dividends)."""
    forward = spot * math.exp(rate * tau)
    calculator = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call, strike), forward,
                                    vol * math.sqrt(tau), math.exp(-rate * tau))
    return calculator.delta(spot)


def test_positions_are_the_published_band_around_quantlibs_delta() -> None:
    """Every decision of a short call book at 1% cost and r = 3%, path by path."""
    risk = 0.02
    env = VecHedgingEnv(num_envs=5, preset="ShortCall",
                        market_kwargs={"rate": 0.03, "sigma": 0.25})
    recorder = Recorder(Zakamouline(risk))
    run_hedger(env, recorder, seed=3)
    strike = float(env.batch.instruments.strike[0, 0])
    quantity = float(env.batch.instruments.quantity[0, 0])  # -100: one short contract
    checked = 0
    for state, target in recorder.seen:
        for i in range(5):
            tau, spot = float(state["tau"][i]), float(state["spot"][i])
            lam = float(state["cost_linear"][i]) / spot
            width, vol_m = published_band(lam, risk, spot, 0.25, tau, 0.03,
                                          float(state["book_gamma"][i]))
            centre = -quantity * quantlib_call_delta(spot, strike, tau, vol_m, 0.03)
            expected = min(max(float(state["hedge"][i]), centre - width), centre + width)
            assert target[i, 0] == pytest.approx(expected, rel=1e-9, abs=1e-9)
            checked += 1
    assert checked == 5 * env.config.n_decisions


def test_at_zero_cost_it_is_the_delta_hedge() -> None:
    """lambda = 0: no band, no vol change (H_0 = H_1 = K = 0)."""
    env = VecHedgingEnv(num_envs=64, preset="ShortCall", cost=0.0)
    delta = run_hedger(env, BlackScholesDelta(), seed=5)
    band = run_hedger(env, Zakamouline(0.05), seed=5)
    np.testing.assert_allclose(band.hedge, delta.hedge, rtol=1e-12, atol=1e-10)


def test_the_band_scales_as_published() -> None:
    """``H_1 ~ lambda^0.31 |Gamma|^0.5 / sqrt(gamma)``; ``H_0 ~ lambda / gamma``."""
    args = dict(spot=100.0, vol=0.2, tau=0.25)
    h0 = zakamouline_half_width(0.01, 0.0, 0.01, **args)  # no gamma: H_0 alone
    assert h0 == pytest.approx(1.0)
    assert zakamouline_half_width(0.02, 0.0, 0.01, **args) == pytest.approx(2 * h0)
    h1 = zakamouline_half_width(0.01, 2.0, 0.01, **args) - h0
    assert zakamouline_half_width(0.01, 8.0, 0.01, **args) - h0 == pytest.approx(2 * h1)
    assert (zakamouline_half_width(0.08, 2.0, 0.01, **args) - 8 * h0
            == pytest.approx(8**0.31 * h1))
    assert (zakamouline_half_width(0.01, 2.0, 0.04, **args) - h0 / 4
            == pytest.approx(h1 / 2))


def test_a_long_position_hedges_at_a_lower_vol() -> None:
    """K < 0: a writer's vol rises, a holder's falls; no cost leaves sigma."""
    short = zakamouline_vol(0.2, 0.01, 2.0, 0.01, 100.0, 0.25, short=True)
    long = zakamouline_vol(0.2, 0.01, 2.0, 0.01, 100.0, 0.25, short=False)
    assert long < 0.2 < short
    assert short**2 - 0.04 == pytest.approx(0.04 - long**2)
    assert zakamouline_vol(0.2, 0.0, 2.0, 0.01, 100.0, 0.25) == 0.2


def test_best_zakamouline_beats_daily_delta_under_one_percent_cost() -> None:
    """Tuned on other paths, it lowers Y = mean + 1.5 std of the cost well below delta's."""
    settings = BenchmarkSettings(n_paths=4096, tune_paths=4096, seed=5, n_boot=20,
                                 frontier=False, progress=False)
    report = benchmark(make_config("ShortCall"), ["delta", "zakamouline:best", "ww:best"],
                       settings)
    scores = report.scores
    tuned = next(name for name in scores if name.startswith("Zakamouline"))
    assert scores["delta"]["objective"] - scores[tuned]["objective"] > 40
    assert scores[tuned]["objective_diff_high"] < 0
    assert 1e-4 < report.tuned["zakamouline"] < 10


def test_specs_and_bad_inputs() -> None:
    assert parse_hedger("zakamouline:0.01").name == "Zakamouline 0.01"
    assert tuned_family("zakamouline:best") == "zakamouline"
    for bad in (0.0, math.nan, True, "0.1"):  # True was a risk aversion of 1
        with pytest.raises(ValueError, match="risk_aversion must be > 0"):
            Zakamouline(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="risk_aversion must be > 0"):
            WhalleyWilmott(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cost_rate must be >= 0"):
        zakamouline_half_width(-0.01, 1.0, 0.01, 100.0, 0.2, 0.25)
    with pytest.raises(ValueError, match="risk_aversion must be a finite number > 0"):
        zakamouline_vol(0.2, 0.01, 1.0, math.nan, 100.0, 0.25)


def test_both_utility_bands_are_a_few_shares_wide_on_the_default_book() -> None:
    """A check of units: at the same risk aversion (per currency) on a 100-share book, neither
    band is a fraction of a share nor wider than half the book."""
    env = VecHedgingEnv(num_envs=256, preset="ShortCall")
    env.reset(seed=1)
    zak, ww = Zakamouline(0.01), WhalleyWilmott(0.01)
    zak.reset(env)
    ww.reset(env)
    state = env.state
    zak_width, ww_width = zak.half_width(state), ww.half_width(state)
    assert np.all((zak_width > 1) & (zak_width < 50))
    assert np.all((ww_width > 1) & (ww_width < 50))
