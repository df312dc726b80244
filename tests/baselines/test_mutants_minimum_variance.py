"""Tests written against the mutants that survived a mutation round over the minimum-variance delta.

The round mutated ``baselines/minimum_variance.py`` (Hull and White's regression and hedge), the
``mv_delta`` pieces of ``baselines/benchmark.py`` and ``baselines/registry.py`` and ``check_fit``
of ``hedgearena/training.py``; each test here failed on a mutant the existing tests let through.

References:
- Hull and White (2017), "Optimal delta hedging for options", Journal of Banking and Finance 82,
  180-190: the regression of ``dV - delta_BS dS`` on ``vega_BS / sqrt(T) dS / S (1, delta_BS,
  delta_BS^2)``, one row per decision at which the option is alive, and the
  minimum-variance delta built from it.

Every expected number is written out by hand (decision counts, byte counts, the seeds the
docstrings promise) or is numpy's ``lstsq`` of the regression rows, never a second run of the
code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hedgearena.baselines.minimum_variance as mv_module
from hedgearena.baselines.arena import block_generator
from hedgearena.baselines.benchmark import BenchmarkSettings, fitting_note, is_fitted
from hedgearena.baselines.minimum_variance import (
    fit_minimum_variance,
    regression_rows,
    single_option,
)
from hedgearena.baselines.registry import parse_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.run_config import RunConfig
from hedgearena.training import FIT_TRIAL_PATHS, check_arena, check_fit


def one_call(moneyness=1.0, expiry_steps=20, **kwargs):
    """ShortCall (GBM, sigma 0.2, 250 days a year) with one short call of the given terms."""
    return make_config("ShortCall", cost=0.0, book={"options": [
        {"moneyness": moneyness, "expiry_steps": expiry_steps, "contracts": -1.0}]}, **kwargs)


def lstsq_of_rows(config, n_paths, seed):
    """numpy's least squares of the rows of the fit's paths (one block), columns equilibrated.

    The columns are scaled to unit norm before ``lstsq`` (and the solution scaled back), so that
    an option whose ``delta^2`` column is 1e-9 of its ``1`` column is solved as accurately as
    an at-the-money one.
    """
    batch = build_episodes(config, n_paths, block_generator(seed, 0), observations=False)
    y, x = regression_rows(config, batch, single_option(config))
    rows_x, rows_y = x.reshape(-1, 3), y.reshape(-1)
    norms = np.sqrt(np.sum(rows_x**2, axis=0))
    return np.linalg.lstsq(rows_x / norms, rows_y, rcond=None)[0] / norms


def test_an_option_expiring_at_a_decision_gives_rows_only_before_it():
    # 20 steps rebalanced every 5: decisions at steps 0, 5, 10 and 15. The option expires at
    # step 10, so it is alive (T > 0) at the decisions of steps 0 and 5 only: 2 regression rows
    # a path (Hull and White regress on live options), 2 x 40 = 80 observations, and the rows of
    # the decisions at 10 (T = 0) and 15 are exactly 0 (the docstring; with 30 units of stock
    # in the book, its value change summed over 5 steps less 30 dS is 0 only up to rounding, so
    # the rows must be masked). Kills `starts <= expiry` (3 a path), counting market steps
    # instead of decisions (10 a path), counting every decision (4 a path) and masking the rows
    # where `T >= 0` (the decision at T = 0 kept).
    config = make_config("ShortCall", cost=0.0, n_steps=20, rebalance_every=5, book={
        "options": [{"expiry_steps": 10, "contracts": -1.0}], "stock": 30.0})
    fit = fit_minimum_variance(config, 40, seed=3)
    assert fit.n_observations == 2 * 40
    assert fit.n_paths == 40
    batch = build_episodes(config, 40, block_generator(3, 0), observations=False)
    y, x = regression_rows(config, batch, single_option(config))
    assert y.shape == (4, 40)
    np.testing.assert_array_equal(y[2:], 0.0)
    np.testing.assert_array_equal(x[2:], 0.0)
    assert np.all(x[:2, :, 0] != 0.0)


def test_a_batch_longer_than_the_config_is_refused():
    # A batch of 20 market steps is not a batch of a 10-step config: its rows would be the first
    # half of other paths (its option priced to expire at step 20). Kills `steps < expected`
    # (only a shorter batch refused).
    longer = make_config("ShortCall")
    batch = build_episodes(longer, 4, np.random.default_rng(0), observations=False)
    config = one_call(expiry_steps=10, n_steps=10)
    with pytest.raises(ValueError, match="the batch has 20 market steps, the config 10"):
        regression_rows(config, batch, single_option(config))


def test_the_memory_bound_is_240_bytes_a_path_and_a_fit_that_fits_exactly_runs(monkeypatch):
    # 50 paths keep 50 x 240 = 12,000 bytes: a machine of exactly 12,000 bytes fits them (the
    # refusal is for "more than this machine's memory"), one of 11,999 does not, and names
    # 11,999 // 480 = 24 paths as what fits in half of it. Kills `need >= have` and a bound of
    # 120 bytes a path.
    config = one_call()
    monkeypatch.setattr(mv_module, "physical_memory", lambda: 50 * 240)
    assert fit_minimum_variance(config, 50, seed=1).n_paths == 50
    monkeypatch.setattr(mv_module, "physical_memory", lambda: 50 * 240 - 1)
    with pytest.raises(ValueError, match=r"n_paths=50 would keep .* use fewer paths \(about 24 "
                                         r"fit in half of it\)"):
        fit_minimum_variance(config, 50, seed=1)


def test_a_machine_that_does_not_say_its_memory_still_fits(monkeypatch):
    # physical_memory() is None where the system does not say: no check (the docstring), the fit
    # runs. Kills dropping `have is not None` (a TypeError comparing with None).
    monkeypatch.setattr(mv_module, "physical_memory", lambda: None)
    assert fit_minimum_variance(one_call(), 30, seed=1).n_observations == 30 * 20


def test_an_option_without_vega_on_its_paths_is_refused_by_name():
    # A call struck at 3 times the spot with 20 days to go: d1 = (ln(1/3) + 0.02 * 0.08) /
    # (0.2 sqrt(0.08)) ~ -19.4, so vega = S phi(d1) sqrt(T) ~ 1e-80 and delta^2 vega underflows to
    # 0: the regressors' delta^2 column is exactly 0 and the fit cannot be made. Refused with a
    # ValueError that says why, not numpy's LinAlgError ("SVD did not converge") of a matrix of
    # NaN. Kills `np.any(scale > 0)` and dropping the check.
    with pytest.raises(ValueError, match="cannot fit the minimum-variance delta: the option has "
                                         "no vega"):
        fit_minimum_variance(one_call(moneyness=3.0), 300, seed=1)


def test_an_out_of_the_money_call_is_fitted_though_its_columns_differ_in_scale():
    # A call struck at 1.3 times the spot: delta ~ 1e-4 to 1e-2, so the regressors' columns (1,
    # delta, delta^2) differ in size by 1e4 to 1e9 and X'X's condition number is ~1e18, but they
    # are far from collinear (after scaling each column to unit norm, the condition number is
    # ~150). The fit is numpy's least squares of the rows. Kills testing the collinearity on
    # X'X itself (a refusal "collinear").
    config = one_call(moneyness=1.3)
    fit = fit_minimum_variance(config, 300, seed=1)
    np.testing.assert_allclose(fit.coefficients, lstsq_of_rows(config, 300, 1), rtol=1e-6)


def test_a_long_dated_option_with_two_decisions_is_fitted_not_refused():
    # An 8-year call (2,000 daily steps to expiry) hedged over 2 days: its delta barely moves
    # between the two decisions, so the scaled regressors' condition number is ~5e8, ill
    # conditioned but far from the 1e12 at which the code calls them collinear (one decision, a
    # condition number ~4e15, is refused: test_minimum_variance.py). The fit is numpy's least
    # squares of the rows. Kills a threshold of 1e6.
    config = one_call(expiry_steps=2_000, n_steps=2)
    fit = fit_minimum_variance(config, 300, seed=1)
    expected = lstsq_of_rows(config, 300, 1)
    t = np.array([1.0, 0.6, 0.36])  # the adjustment at delta 0.6, well determined
    assert float(fit.coefficients @ t) == pytest.approx(float(expected @ t), rel=1e-4)


def test_check_fit_tries_the_fit_on_at_most_256_tuning_paths_of_the_tuning_seed(monkeypatch):
    # check_fit's trial fit is on min(tune_paths, FIT_TRIAL_PATHS = 256) paths of the tuning
    # seed (the seed the benchmark fits on: tune_seed when given, else seed + 1), so it costs
    # milliseconds and fails where the benchmark's fit would. Kills fitting on all tune_paths
    # and on the scoring seed.
    calls = []

    def spy(config, n_paths, seed, maturity_edges=()):
        calls.append((n_paths, seed))

    monkeypatch.setattr(mv_module, "fit_minimum_variance", spy)
    config = one_call()
    assert FIT_TRIAL_PATHS == 256
    check_fit(config, ["delta", "mv_delta:fit"], BenchmarkSettings(tune_paths=20_000, seed=7))
    check_fit(config, ["mv_delta:fit"], BenchmarkSettings(tune_paths=100, seed=7, tune_seed=3))
    check_fit(config, ["delta", "mv_delta:0:0:0"], BenchmarkSettings(tune_paths=20_000))
    assert calls == [(256, 8), (100, 3)]


def test_a_run_with_a_split_tries_the_fit_on_the_history_before_it(monkeypatch):
    # arena.split=2010-01-01 on the replay: the benchmark fits mv_delta:fit on the history before
    # that day, so the run's trial fit is on it too (its last day before 2010), not on the
    # whole 1999-2018 history. Kills checking the fit on the uncut config.
    seen = []
    monkeypatch.setattr(mv_module, "fit_minimum_variance",
                        lambda config, n_paths, seed, maturity_edges=(): seen.append(config))
    check_arena(RunConfig.model_validate({
        "env": {"id": "hedgearena/HistoricalReplay-v0"},
        "arena": {"hedgers": ["delta", "mv_delta:fit"], "split": "2010-01-01"}}))
    assert len(seen) == 1
    assert seen[0].market.data.index[-1] < pd.Timestamp("2010-01-01")


def test_the_fit_spec_is_recognised_with_surrounding_blanks_as_the_registry_does():
    # The registry strips a spec before it reads it (" mv_delta:fit " is the fitted spec there,
    # refused as resolved by the benchmark), so the benchmark must fit it too. Kills `spec ==`
    # without strip() in is_fitted and in parse_hedger.
    assert is_fitted(" mv_delta:fit ")
    assert not is_fitted("mv_delta:0:0:0")
    with pytest.raises(ValueError, match="':fit' is resolved by the benchmark"):
        parse_hedger(" mv_delta:fit ")


def test_no_fitted_hedger_no_fitting_note():
    # Kills dropping `if not fitted: return None` (a note "(fitted): ...; ." on no fit).
    assert fitting_note({}, BenchmarkSettings()) is None
