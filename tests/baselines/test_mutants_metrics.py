"""Metrics against exact references (tests found by mutation testing).

The references are bootstrap distributions that can be written down: with two paths there are
four equally likely resamples; a sum of 0/1 values resampled with replacement is binomial.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from hedgearena.baselines import metrics
from hedgearena.baselines.hedger import Hedger, run_hedger
from hedgearena.envs.vector_env import VecHedgingEnv


def test_paired_objective_interval_uses_the_sample_std_of_each_resample() -> None:
    """Costs (0, 1) against (0, 0), c = 1.5: the resamples of two paths are (0, 0), (1, 1)
    (probability 1/4 each) and (0, 1) in either order (1/2), whose objective is
    ``0.5 + c std`` with the sample std (``ddof = 1``, as the point estimate) ``1 / sqrt(2)``.

    So the 97.5% bootstrap quantile is ``0.5 + 1.5 / sqrt(2)``, the objective itself, and the
    2.5% quantile is 0 (the reference's objective is 0 on every resample).
    """
    out = metrics.paired_comparison([0.0, 1.0], [0.0, 0.0], c=1.5, n_boot=400, seed=3)
    expected = 0.5 + 1.5 / math.sqrt(2.0)
    assert out["objective_diff"] == pytest.approx(expected, rel=1e-14)
    assert out["objective_diff_high"] == pytest.approx(expected, rel=1e-14)
    assert out["objective_diff_low"] == 0.0


def test_bootstrap_interval_is_the_central_95_percent_of_the_resamples() -> None:
    """Fifty ones and fifty zeros: a resample's sum is Binomial(100, 1/2).

    The 95% percentile interval is its 2.5% and 97.5% quantiles, 40 and 60
    (``scipy.stats.binom.ppf``); a 90% interval would give 42 and 58.
    """
    x = np.repeat([1.0, 0.0], 50)
    ci = metrics.bootstrap_interval(x, lambda rows: rows.sum(axis=-1), n_boot=50_000, seed=0)
    assert ci.value == 50.0
    assert ci.low == stats.binom.ppf(0.025, 100, 0.5) == 40.0
    assert ci.high == stats.binom.ppf(0.975, 100, 0.5) == 60.0


class _BreachOnEvenRows(Hedger):
    """Holds 150 units on even rows (a delta breach that ends the episode), the model hedge on
    odd rows."""

    name = "breach on even rows"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        rows = np.arange(len(state["spot"]))
        return np.where(rows % 2 == 0, 150.0, state["model_hedge"])[:, None]


def test_attribution_terms_are_the_taylor_sums_up_to_each_paths_end() -> None:
    """Each greek term against a direct loop over the paths and market steps ``s < end_step``.

    The formulas of :func:`metrics.pnl_attribution`'s docstring (Hull, ch. 19): the greeks at
    the start ``s`` of each interval times the changes over ``(s, s+1]``. SABR paths (the
    implied vol moves, so the vega term is not 0); a delta limit ends the even rows' episodes
    after their first decision.
    """
    env = VecHedgingEnv(num_envs=6, preset="ShortCall", market="sabr", cost=0.0,
                        risk_limits={"delta": 0.5, "action": "terminate"})
    record = run_hedger(env, _BreachOnEvenRows(), seed=2)
    batch = env.batch
    f, spot, times = batch.features, batch.episode.spot, batch.market.times
    end = np.asarray(record.totals["end_step"], dtype=int)
    assert end[0] < batch.market.n_steps == end[1]  # both kinds of path are there
    want = {name: np.zeros(6) for name in ("delta", "gamma", "theta", "vega")}
    for p in range(6):
        for s in range(end[p]):
            d_spot = spot[s + 1, p] - spot[s, p]
            want["delta"][p] += (f.book_delta[p, s] + record.hedge[s, p]) * d_spot
            want["gamma"][p] += 0.5 * f.book_gamma[p, s] * d_spot**2
            want["theta"][p] += f.book_theta[p, s] * (times[s + 1] - times[s])
            want["vega"][p] += f.book_vega[p, s] * (f.implied_vol[p, s + 1] - f.implied_vol[p, s])
    got = metrics.pnl_attribution(record, batch)
    assert np.all(np.abs(want["vega"]) > 0)
    for name, values in want.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-10, atol=1e-10, err_msg=name)
