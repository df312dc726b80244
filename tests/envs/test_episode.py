"""Episode building: the optimised (time-major, blocked) build against straightforward references.

The references below are written path-major, one instrument or one path at a time, the way the
formulas read; the build must agree with them on small batches of hard configs (a book of calls
and puts that arrive and settle inside the episode, stock, rates, a hedging option).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.envs import book as book_module
from hedgearena.envs import episode as episode_module
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.book import (
    BookMarks,
    BookPaths,
    ClientFlow,
    HedgeOption,
    Option,
    OptionBook,
    mark_book,
    mark_book_time_major,
    mark_hedge_option,
)
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import EpisodeBatch, build_episodes, feature_names
from hedgearena.envs.gbm import GBM
from hedgearena.envs.market import MarketPaths, time_major

BOOK = OptionBook(
    options=(Option(1.0, 30, -2.0), Option(0.9, 10, 1.0, is_call=False)),
    stock=50.0,
    client_flow=ClientFlow(rate=500.0, expiry_steps=(5, 15, 45)),
)


def _configs() -> dict[str, EnvConfig]:
    heston = {"kappa": 1.5, "theta": 0.05, "xi": 0.6, "rho": -0.6, "v0": 0.04, "rate": 0.03,
              "dividend": 0.01}
    return {
        "short_call": make_config("ShortCall"),
        "book": make_config(
            None, market="heston", market_kwargs=heston, book=BOOK, n_steps=30,
            hedge_option=HedgeOption(expiry_steps=60),
            cost={"proportional": 0.002, "spread": {"half_spread": 5e-4}},
        ),
        "client_flow": make_config("OptionBook", n_steps=20),
    }


CONFIGS = _configs()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def built(request: pytest.FixtureRequest) -> tuple[EnvConfig, EpisodeBatch]:
    config = CONFIGS[request.param]
    return config, build_episodes(config, 9, np.random.default_rng(7))


def reference_marks(instruments: BookPaths, market: MarketPaths) -> BookMarks:
    """The book's marks, path-major, one instrument at a time (the definitions, term by term)."""
    steps = np.arange(market.n_steps + 1)[None, :]
    dt = float(market.times[1] - market.times[0])
    sums = {name: np.zeros_like(market.spot) for name in BookMarks._fields}
    for i in range(instruments.strike.shape[1]):
        strike = instruments.strike[:, i : i + 1]
        start, expiry = instruments.start[:, i : i + 1], instruments.expiry[:, i : i + 1]
        quantity = instruments.quantity[:, i : i + 1]
        tau = np.maximum(expiry * dt - market.times[None, :], 0.0)
        vol = market.surface.implied_vol(
            market.spot, strike, tau, market.vol_state, market.spot[:, :1], market.rate,
            market.dividend,
        )
        g = black_scholes_greeks(
            market.spot, strike, tau, vol, market.rate, market.dividend,
            instruments.is_call[:, i : i + 1],
        )
        held = (steps >= start) & (steps < expiry)
        arriving = held & (steps == start)
        for name, greek in zip(BookMarks._fields[:5], g[:5], strict=True):
            sums[name] += greek * held * quantity
        sums["premium"] -= g.price * arriving * quantity
        sums["spread_income"] += (
            g.vega * arriving * np.abs(quantity) * instruments.half_spread_vol[:, i : i + 1]
        )
        sums["settlement"] += g.price * (steps == expiry) * quantity
    return BookMarks(**sums)


def test_book_marks_equal_the_per_instrument_sums(built: tuple[EnvConfig, EpisodeBatch]) -> None:
    config, batch = built
    expected = reference_marks(batch.instruments, batch.market)
    marks = mark_book(batch.instruments, batch.market)
    for name in BookMarks._fields:
        got, want = getattr(marks, name), getattr(expected, name)
        assert got.shape == (9, config.n_steps + 1), name
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9, err_msg=name)
    episode, stock = batch.episode, config.book.stock
    value = expected.value + stock * batch.market.spot
    np.testing.assert_allclose(episode.book_value, value.T, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(batch.features.book_delta, expected.delta + stock, atol=1e-9)
    mtm = np.diff(value, axis=1) + expected.premium[:, 1:] + expected.settlement[:, 1:]
    np.testing.assert_allclose(episode.option_mtm[:-1], mtm.T, rtol=1e-12, atol=1e-9)
    assert not episode.option_mtm[-1].any()
    flows = expected.premium + expected.settlement
    np.testing.assert_allclose(episode.cash_flow, flows.T, rtol=1e-12, atol=1e-9)
    cash = expected.premium[:, 0] + expected.spread_income[:, 0]
    np.testing.assert_allclose(batch.initial_cash, cash, rtol=1e-12, atol=1e-9)


def test_hedge_option_marks_and_model_positions(built: tuple[EnvConfig, EpisodeBatch]) -> None:
    config, batch = built
    episode, features = batch.episode, batch.features
    if config.hedge_option is None:
        for values in (episode.option_price, episode.model_option, episode.option_linear,
                       features.option_delta, features.option_vega):
            assert not values.any()
        np.testing.assert_array_equal(episode.model_hedge, -features.book_delta.T)
        return
    market, option = batch.market, config.hedge_option
    dt = config.dt
    tau = option.expiry_steps * dt - market.times[None, :]
    strike = option.moneyness * market.spot[:, :1]
    vol = market.implied_vol(strike, tau)
    g = black_scholes_greeks(market.spot, strike, tau, vol, market.rate, market.dividend)
    marks = mark_hedge_option(option, market)
    for got, want in zip(marks, (g.price, g.delta, g.gamma, g.vega), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Gamma neutral while the option carries gamma (density of d1 above 1e-4), within 10
    # notionals: the reference written out directly.
    density = g.vega / (market.spot * np.sqrt(tau))
    usable = (density > 1e-4) & (g.gamma > 0)
    model_option = np.where(usable, -features.book_gamma / np.where(usable, g.gamma, 1.0), 0.0)
    cap = config.option_position_limit * config.book.notional
    model_option = np.clip(model_option, -cap, cap)
    np.testing.assert_allclose(episode.model_option, model_option.T, rtol=1e-12, atol=1e-12)
    model_hedge = -(features.book_delta + model_option * g.delta)
    np.testing.assert_allclose(episode.model_hedge, model_hedge.T, rtol=1e-12, atol=1e-9)
    linear = option.half_spread_vol * g.vega * market.liquidity
    np.testing.assert_allclose(episode.option_linear, linear.T, rtol=1e-12)


def test_realised_vol_equals_the_ewma_loop(built: tuple[EnvConfig, EpisodeBatch]) -> None:
    """``v_s = (1 - a) v_{s-1} + a r_s^2 / dt``, path by path, started at the implied vol."""
    config, batch = built
    alpha = 1.0 - 0.5 ** (1.0 / config.realised_vol_halflife)
    spot, implied = batch.market.spot, batch.features.implied_vol
    for p in range(spot.shape[0]):
        variance = implied[p, 0] ** 2
        expected = [math.sqrt(variance)]
        for s in range(config.n_steps):
            r2 = math.log(spot[p, s + 1] / spot[p, s]) ** 2 / config.dt
            variance = (1.0 - alpha) * variance + alpha * r2
            expected.append(math.sqrt(variance))
        np.testing.assert_allclose(batch.features.realised_vol[p], expected, rtol=1e-10)


def test_observations_equal_the_feature_definitions(
    built: tuple[EnvConfig, EpisodeBatch],
) -> None:
    """Every entry of every observation, computed directly from its definition (path-major)."""
    config, batch = built
    f, ep, market = batch.features, batch.episode, batch.market
    notional, spot = config.book.notional, market.spot
    sigma = np.maximum(f.implied_vol, 1e-8)
    root_t = math.sqrt(config.n_steps * config.dt)
    strike = batch.instruments.strike[:, :1] if config.book.options else spot[:, :1]
    time_left = 1.0 - np.arange(config.n_steps + 1) / config.n_steps
    expected = {
        "time_left": np.broadcast_to(time_left, spot.shape),
        "log_moneyness": np.log(spot / strike),
        "book_delta": f.book_delta / notional,
        "book_gamma": f.book_gamma * spot * sigma * root_t / notional,
        "book_vega": f.book_vega / (notional * spot * root_t),
        "book_theta": f.book_theta * root_t / (notional * spot * sigma),
        "model_hedge": ep.model_hedge.T / notional,
        "implied_vol": f.implied_vol,
        "realised_vol": f.realised_vol,
        "cost_rate": 100.0 * ep.linear.T / spot,
        "liquidity": f.liquidity,
        "model_option": ep.model_option.T / notional,
        "option_delta": f.option_delta,
        "option_gamma": f.option_gamma * spot * sigma * root_t,
        "option_vega": f.option_vega / (spot * root_t),
        "hedge": np.zeros(spot.shape),
        "option_position": np.zeros(spot.shape),
    }
    names = feature_names(config.hedge_option is not None)
    obs = batch.observations
    assert obs.shape == (config.n_steps + 1, 9, len(names))
    assert obs.dtype == np.float32
    assert obs.flags.c_contiguous
    for i, name in enumerate(names):
        want = expected[name].T.astype(np.float32)
        np.testing.assert_allclose(obs[:, :, i], want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_linear_cost_coefficient_is_the_cost_models(built: tuple[EnvConfig, EpisodeBatch]) -> None:
    config, batch = built
    market = batch.market
    c = config.cost.coefficients(
        market.spot, vol=batch.features.implied_vol, liquidity=market.liquidity
    )
    for name in ("linear", "quadratic", "three_halves", "fixed"):
        want = np.broadcast_to(getattr(c, name), market.spot.shape).T
        np.testing.assert_allclose(getattr(batch.episode, name), want, rtol=1e-12, err_msg=name)


def test_layouts_time_major_episode_and_path_major_views(
    built: tuple[EnvConfig, EpisodeBatch],
) -> None:
    config, batch = built
    shape = (config.n_steps + 1, 9)
    for name, value in batch.episode._asdict().items():
        if np.ndim(value) == 2:
            assert value.shape == shape, name
            assert value.flags.c_contiguous, name
    for name, value in batch.features._asdict().items():
        assert value.shape == shape[::-1], name
    np.testing.assert_array_equal(batch.episode.spot, batch.market.spot.T)
    assert batch.episode.stock.shape == (9,)


def test_blocks_and_chunks_do_not_change_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny pricing blocks, observation blocks and path chunks give the same numbers."""
    config = CONFIGS["book"]
    reference = build_episodes(config, 9, np.random.default_rng(3))
    monkeypatch.setattr(book_module, "_BLOCK", 5)
    monkeypatch.setattr(episode_module, "_BLOCK", 7)
    monkeypatch.setattr(episode_module, "_MARK_CHUNK", 4 * 40)  # a few paths per chunk
    blocked = build_episodes(config, 9, np.random.default_rng(3))
    for group in ("episode", "features"):
        for name, value in getattr(reference, group)._asdict().items():
            np.testing.assert_allclose(
                getattr(getattr(blocked, group), name), value, rtol=1e-12, atol=1e-12,
                err_msg=f"{group}.{name}",
            )
    np.testing.assert_array_equal(blocked.observations, reference.observations)


def test_mark_book_is_the_transpose_of_the_time_major_marks() -> None:
    batch = build_episodes(CONFIGS["client_flow"], 5, np.random.default_rng(1))
    path_major = mark_book(batch.instruments, batch.market)
    for got, want in zip(
        path_major, mark_book_time_major(batch.instruments, batch.market), strict=True
    ):
        np.testing.assert_array_equal(got, want.T)


def test_gbm_paths_are_time_major_blocks_drawn_step_by_step() -> None:
    """GBM stores ``(n_steps + 1, n_paths)`` blocks: ``time_major`` is free, draws go by step."""
    model = GBM(mu=0.05, sigma=0.3, spot0=50.0)
    paths = model.simulate(7, 12, 0.01, np.random.default_rng(0))
    assert np.shares_memory(time_major(paths.spot), paths.spot)
    assert np.shares_memory(time_major(paths.liquidity), paths.liquidity)
    z = np.random.default_rng(0).standard_normal((12, 7)).T
    steps = (0.05 - 0.5 * 0.3**2) * 0.01 + 0.3 * math.sqrt(0.01) * z
    log_spot = np.concatenate([np.zeros((7, 1)), np.cumsum(steps, axis=1)], axis=1)
    np.testing.assert_allclose(paths.spot, 50.0 * np.exp(log_spot), rtol=1e-14)
