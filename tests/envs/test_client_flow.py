"""Client order flow of the market-maker book: Poisson arrivals, strikes, sides, capacity."""

from __future__ import annotations

import numpy as np
import pytest

from hedgearena.envs.book import ClientFlow, ClientFlowCapacityWarning, sample_client_flow
from hedgearena.envs.gbm import GBM

DT = 1.0 / 252.0
N_STEPS = 60


def _flow(flow: ClientFlow, n_paths: int, seed: int = 0):
    market = GBM(mu=0.0, sigma=0.2, spot0=100.0).simulate(n_paths, N_STEPS, DT,
                                                          np.random.default_rng(seed))
    return sample_client_flow(flow, market, np.random.default_rng(seed + 1)), market


def test_arrivals_are_poisson_with_the_stated_rate_per_year() -> None:
    """Trades per path over steps 1..59 are Poisson(rate * dt * 59): mean and dispersion.

    Mean 58.5 at the default 250 a year; its standard error over 20,000 paths is 0.054. The
    variance-to-mean ratio of a Poisson count is 1 (standard error about sqrt(2 / n) = 0.01);
    arrivals thinned to one a step would give a mean of 37 and a ratio of 0.37.
    """
    n_paths = 20_000
    flow = ClientFlow()
    paths, _ = _flow(flow, n_paths)
    counts = (paths.quantity != 0).sum(axis=1)
    expected = flow.rate * DT * (N_STEPS - 1)
    assert abs(counts.mean() - expected) < 4 * np.sqrt(expected / n_paths)
    assert abs(counts.var() / counts.mean() - 1.0) < 0.05
    assert counts.max() < flow.max_trades  # the default capacity holds the default flow


def test_trades_arrive_inside_the_episode_in_time_order_several_at_a_step() -> None:
    paths, market = _flow(ClientFlow(rate=2_000.0, max_trades=600), 500)  # 468 expected
    live = paths.quantity != 0
    starts = np.where(live, paths.start, N_STEPS)
    assert starts[live].min() >= 1
    assert starts[live].max() <= N_STEPS - 1
    assert np.all(np.diff(starts, axis=1) >= 0)  # slots fill in time order, unused ones last
    assert np.all(live[:, :-1] | ~live[:, 1:])  # no gap before a used slot
    same_step = np.diff(starts, axis=1) == 0
    assert np.any(same_step & live[:, 1:])  # rate * dt = 7.9: several trades a step
    # strikes within the moneyness range of the spot at arrival, rounded to the strike step
    rows, slots = np.nonzero(live)
    spot = market.spot[rows, paths.start[rows, slots]]
    strike = paths.strike[rows, slots]
    assert np.all(strike >= np.floor(0.9 * spot) - 1)
    assert np.all(strike <= np.ceil(1.1 * spot) + 1)
    np.testing.assert_array_equal(strike, np.round(strike))
    lags = paths.expiry[rows, slots] - paths.start[rows, slots]
    assert set(np.unique(lags)) == {20, 40, 60}


def test_trades_past_the_capacity_are_dropped_latest_first() -> None:
    full, _ = _flow(ClientFlow(rate=1_000.0, max_trades=400), 200, seed=3)
    with pytest.warns(ClientFlowCapacityWarning, match=r"dropped \d+ client trades \(the "
                      r"latest\) on 200 of 200 paths, which expect 234.1 each"):
        capped, _ = _flow(ClientFlow(rate=1_000.0, max_trades=5), 200, seed=3)
    assert np.all((capped.quantity != 0).sum(axis=1) == 5)
    np.testing.assert_array_equal(capped.start, full.start[:, :5])
