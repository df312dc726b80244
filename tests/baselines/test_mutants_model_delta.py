"""Survivors of the mutation round over the model's MV delta and the maturity buckets (c952477).

Each test names the mutant it kills. References are independent of the hedger's code: the
quadratic hedge of Merton's jumps (Cont and Tankov 2004, section 10.4.2) of the env's marks
(Black-Scholes by hand, ``mv_reference.black_scholes``, at the surface's vol), the jump integral
by a dense trapezoidal rule and ``C_S`` by central differences; the Black-Scholes delta hedge
bit for bit; the fit's memory bound, refusals and standard errors by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from mv_reference import black_scholes, delta_hedged, four_option_config

import hedgearena.baselines.minimum_variance as mv_module
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.hedger import run_hedger
from hedgearena.baselines.minimum_variance import (
    MinimumVarianceDelta,
    MinimumVarianceFit,
    fit_minimum_variance,
    fit_spec_edges,
)
from hedgearena.baselines.model_delta import ModelDelta, surface_slopes
from hedgearena.baselines.registry import is_fitted, parse_hedger
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.envs.vol_surface import SmileSurface
from hedgearena.run_config import hedger_name

# ---- Merton: the book's hedge against the quadratic hedge of its own marks ----------------------

def quadratic_hedge(price, spot, sigma, intensity, mean, std):
    """Cont and Tankov's (2004, 10.4.2) quadratic hedge of ``price(x)`` at ``spot``:
    ``(sigma^2 C_S + lambda/S E[(C(S e^Y) - C(S))(e^Y - 1)]) / (sigma^2 + lambda E[(e^Y - 1)^2])``,
    ``Y ~ N(mean, std^2)`` (a point mass at ``mean`` if ``std = 0``): the expectations by the
    trapezoidal rule on 20,001 log jumps over +-10 std (error O(h^2), about 1e-8 here, the
    kinks of a table's linear cells included), ``C_S`` by central differences (1e-6 of S).
    ``price`` takes and returns arrays."""
    from scipy import stats

    if std == 0.0:
        y, weight = np.array([mean]), np.ones(1)
    else:
        y = np.linspace(mean - 10 * std, mean + 10 * std, 20_001)
        weight = stats.norm(mean, std).pdf(y) * np.gradient(y)
        weight[[0, -1]] /= 2.0  # the trapezoidal rule's end weights
    c = price(np.array([spot]))[0]
    covariance = weight @ ((price(spot * np.exp(y)) - c) * np.expm1(y))
    variance = weight @ np.expm1(y) ** 2
    h = 1e-6 * spot
    c_s = (price(np.array([spot + h]))[0] - price(np.array([spot - h]))[0]) / (2 * h)
    return (sigma**2 * c_s + intensity * covariance / spot) / (sigma**2 + intensity * variance)


MERTON_BOOKS = {
    # Merton's own surface, 3 jumps a year, carry: kills the jump variance's intensity dropped
    # from the denominator (md17, invisible at lambda = 1), the diffusion's C_S without the
    # surface's slope (md30), the jump marks' rate and dividend swapped (md33) and the jump
    # marks at the vol of the spot before the jump (md34).
    "own surface, lambda 3, carry": dict(
        market_kwargs=dict(jump_intensity=3.0, jump_mean=-0.05, jump_std=0.1, rate=0.03,
                           dividend=0.01)),
    # A sticky-strike smile (the vol of a strike fixed at the episode's first spot) and jumps
    # of a fixed size: kills the point mass's node at 0 (md08) and the anchor read as the
    # current spot (md29; the jump marks then move with the path's spot).
    "sticky-strike smile, fixed jump": dict(
        market_kwargs=dict(jump_intensity=2.0, jump_mean=-0.1, jump_std=0.0,
                           surface=SmileSurface(skew=-0.3, sticky="strike"))),
}


@pytest.mark.parametrize("case", list(MERTON_BOOKS))
def test_the_merton_books_hedge_is_the_quadratic_hedge_of_its_marks(case):
    # ShortCall-v0 (100 short calls) on Merton after 7 decisions of the delta hedge, 4 paths
    # away from the first spot: each path's hedge is -100 x the quadratic hedge of the mark
    # BS(x, K, T, sigma(x)) (the surface's vol at the path's level and first spot), within
    # 1e-3 units: 1e-5 a unit, the 24 Gauss-Hermite nodes' error on the table's linear cells
    # (test_model_delta: 6e-6 measured; here 1.3e-6).
    config = make_config("ShortCall", market="merton", cost=0.0, **MERTON_BOOKS[case])
    env = VecHedgingEnv(num_envs=4, config=config)
    env.reset(seed=3)
    delta_hedged(env, 7)
    hedger = ModelDelta()
    hedger.reset(env)
    state = env.state
    got = hedger.positions(state, np.zeros((4, 0), np.float32))[:, 0]

    market, law = env.batch.market, config.market
    option = config.book.options[0]
    quantity = option.contracts * option.multiplier
    tau = (option.expiry_steps - 7) * config.dt
    want = np.zeros(4)
    for p in range(4):
        level, anchor = float(market.vol_state[p, 7]), float(market.spot[p, 0])
        strike = float(env.batch.instruments.strike[p, 0])

        def price(x, level=level, anchor=anchor, strike=strike):
            vol = np.asarray(market.surface.implied_vol(
                x, strike, tau, np.full_like(x, level), anchor, market.rate, market.dividend))
            return np.array([black_scholes(s, strike, tau, v, market.rate, market.dividend,
                                           True)[0] for s, v in zip(x, vol, strict=True)])
        want[p] = -quantity * quadratic_hedge(price, float(state["spot"][p]), law.sigma,
                                              law.jump_intensity, law.jump_mean, law.jump_std)
    assert np.all(state["step"] == 7)
    assert np.abs(market.spot[:, 7] - market.spot[:, 0]).min() > 0.5  # the anchor matters
    np.testing.assert_allclose(got, want, rtol=0.0, atol=1e-3)
    assert np.abs(got + state["book_delta"]).min() > 1.0  # not the Black-Scholes delta


def test_a_merton_market_without_jumps_is_hedged_by_the_black_scholes_delta_bit_for_bit():
    # Rate 0: no jumps (jump_law is None), a flat surface whose level does not move: the
    # hedge is the Black-Scholes delta's to the last bit, as on GBM; kills the jump hedge kept
    # at rate 0 (md13: (sigma^2 C_S + 0) / (sigma^2 + 0) rounds C_S).
    config = make_config("ShortCall", market="merton",
                         market_kwargs=dict(jump_intensity=0.0, surface="flat"))
    env = VecHedgingEnv(num_envs=64, config=config)
    want = run_hedger(env, BlackScholesDelta(), seed=5)
    got = run_hedger(env, ModelDelta(), seed=5)
    np.testing.assert_array_equal(got.hedge, want.hedge)


# ---- surfaces of one's own ---------------------------------------------------------------------

class ConstantVol:
    """A surface of one vol for every input: its torch vol needs no gradient."""

    def implied_vol(self, spot, strike, tau, level, anchor, rate, dividend):
        from array_api_compat import array_namespace

        xp = array_namespace(spot)
        return xp.full(spot.shape, 0.25, dtype=spot.dtype)


class KinkedVol:
    """A vol of ``0.2 + 0.01 sqrt(|S - anchor|)``: its slope in the spot is infinite at the
    anchor (torch's is NaN there)."""

    def implied_vol(self, spot, strike, tau, level, anchor, rate, dividend):
        from array_api_compat import array_namespace

        xp = array_namespace(spot)
        return 0.2 + 0.01 * xp.sqrt(xp.abs(spot - anchor))


def test_a_surface_whose_vol_depends_on_no_input_has_slopes_zero():
    # Its vol of torch tensors needs no gradient: the slopes are 0 (not an autograd error),
    # and the hedge is the Black-Scholes delta's at that vol, bit for bit; kills the check of
    # the vol's gradient dropped (md19: the hedger refused it at reset).
    slopes = surface_slopes(ConstantVol(), np.array([100.0, 90.0]), np.array([100.0, 95.0]),
                            np.array([0.1, 0.2]), np.array([0.04, 0.05]),
                            np.array([100.0, 100.0]), 0.0, 0.0)
    np.testing.assert_array_equal(slopes.spot, [0.0, 0.0])
    np.testing.assert_array_equal(slopes.level, [0.0, 0.0])
    config = make_config("ShortCall", market_kwargs={"surface": ConstantVol()})
    env = VecHedgingEnv(num_envs=16, config=config)
    want = run_hedger(env, BlackScholesDelta(), seed=4)
    got = run_hedger(env, ModelDelta(), seed=4)
    np.testing.assert_array_equal(got.hedge, want.hedge)


def test_a_surface_whose_slopes_are_not_finite_is_refused_at_reset():
    # Kills the finiteness check dropped (md35).
    config = make_config("ShortCall", market_kwargs={"surface": KinkedVol()})
    env = VecHedgingEnv(num_envs=2, config=config)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"KinkedVol: its vol's slopes are not finite at spot "
                                         "100, strike 100, 0.1 years, level 0.04"):
        ModelDelta().reset(env)


# ---- the maturity buckets -----------------------------------------------------------------------

def fixed_book(n_steps=5, rebalance_every=1):
    """Four options of expiries 10 to 60 steps (GBM, 250 days a year, r 3%, q 1%)."""
    return four_option_config(n_steps, rebalance_every)


def test_the_memory_bound_of_a_bucketed_fit_is_its_own_buckets(monkeypatch):
    # Three buckets keep fit_bytes_per_path(3) = 48 * 3 * 11 = 1,584 bytes a path: 50 paths fit
    # a machine of exactly 79,200 bytes and not one of 79,199, which names 79,199 // 3,168 = 24
    # paths as what fits in half of it (at the pooled fit's 240 bytes a path, 12,000 bytes,
    # they would pass). Kills the memory check of one bucket whatever the edges (mv08).
    config, edges = fixed_book(), (0.05, 0.15)
    monkeypatch.setattr(mv_module, "physical_memory", lambda: 50 * 1_584)
    assert fit_minimum_variance(config, 50, seed=1, maturity_edges=edges).n_paths == 50
    monkeypatch.setattr(mv_module, "physical_memory", lambda: 50 * 1_584 - 1)
    with pytest.raises(ValueError, match=r"n_paths=50 would keep .* use fewer paths \(about 24 "
                                         r"fit in half of it\)"):
        fit_minimum_variance(config, 50, seed=1, maturity_edges=edges)


def test_buckets_identified_alone_but_not_together_are_refused_by_name():
    # Two paths of two decisions: 4 rows for the 6 columns of two buckets (T <= 0.1: the
    # options of 10 and 12 steps, 0.04 and 0.048 years; T > 0.1: those of 30 and 60). Each
    # bucket's 3 columns are identified by the 4 rows (the decision-0 rows share the first
    # spot's deltas, the decision-1 rows do not), the 6 together cannot be (rank 4 at most).
    # Kills the buckets' joint check dropped (mv20: a singular solve).
    config = fixed_book(n_steps=2, rebalance_every=1)
    with pytest.raises(ValueError, match=r"by maturity: the buckets' regressors are collinear "
                                         r"together on these paths \(edges \(0\.1,\)"):
        fit_minimum_variance(config, 2, seed=1, maturity_edges=(0.1,))


@pytest.mark.parametrize(("gap", "refused"), [(1e-11, False), (1e-13, True)])
def test_a_buckets_regressors_are_collinear_at_a_condition_above_1e12(gap, refused):
    # A bucket's x'x whose first two regressors are correlated 1 - gap (any scales): its
    # unit-diagonal matrix has eigenvalues 2 - gap, gap and 1, condition (2 - gap) / gap, 2e11
    # (identified) or 2e13 (refused, naming the bucket). Kills the bound raised to 1e15 (mv23).
    scale = np.array([3.0, 0.5, 2.0])
    unit = np.array([[1.0, 1.0 - gap, 0.0], [1.0 - gap, 1.0, 0.0], [0.0, 0.0, 1.0]])
    xx = unit * np.outer(scale, scale)
    if refused:
        with pytest.raises(ValueError, match=r"\(1, delta, delta\^2\) in the maturity bucket T "
                                             r"<= 0\.08 are collinear on these paths"):
            mv_module._check_identified(xx, True, " in the maturity bucket T <= 0.08")
    else:
        mv_module._check_identified(xx, True, " in the maturity bucket T <= 0.08")


def test_more_coefficients_than_buckets_are_refused():
    # Kills a bucket count checked as a least (mv39: the extra coefficients went unread).
    with pytest.raises(ValueError, match=r"c must be 2 finite numbers, one for each maturity "
                                         r"bucket of edges \(0.1,\) \(T <= 0.1, T > 0.1\), "
                                         r"got \[0, 0, 0\]"):
        MinimumVarianceDelta([0, 0], [0, 0], [0, 0, 0], maturity_edges=(0.1,))


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("delta:fit", r"hedger spec 'delta:fit': 'fit' is not a number", id="delta:fit"),
    pytest.param("ww:fit", r"hedger spec 'ww:fit': 'fit' is not a number", id="ww:fit"),
    pytest.param("mv_delta", r"hedger spec 'mv_delta' has 0 argument\(s\); mv_delta takes 3",
                 id="mv_delta"),
    pytest.param(" mv_delta ", r"hedger spec ' mv_delta ' has 0 argument\(s\); mv_delta "
                 "takes 3", id="mv_delta blanks"),
])
def test_only_mv_delta_fit_is_a_fitted_spec(spec, message):
    # Another hedger's ':fit', or mv_delta without arguments, is not fitted: the registry reads
    # it and names what it takes. Kills the hedger's name unchecked (mv35: 'delta:fit' went to
    # the benchmark's regression) and the first argument read without a guard (mv34: an
    # IndexError on 'mv_delta').
    assert fit_spec_edges(spec) is None
    assert not is_fitted(spec)
    for read in (parse_hedger, hedger_name):
        with pytest.raises(ValueError, match=message):
            read(spec)


def test_each_buckets_standard_errors_are_its_own_columns():
    # Bucket k's errors are the roots of the covariance's diagonal at columns 3k to 3k + 2, as
    # its coefficients are, and the summary pairs them so. Kills the errors read column-major
    # (mv47: bucket 0 got the errors of a_1, c_1, b_2).
    fit = fit_minimum_variance(fixed_book(), 50, seed=1, maturity_edges=(0.05, 0.15))
    roots = np.sqrt(np.diag(fit.covariance))
    for k in range(3):
        np.testing.assert_array_equal(fit.bucket_standard_errors[k], roots[3 * k:3 * k + 3])
        np.testing.assert_array_equal(fit.bucket_coefficients[k], fit.coefficients[3 * k:3 * k + 3])
    hand = MinimumVarianceFit(np.arange(6.0), np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
                              np.eye(6), 10, 2, 0.1, (0.1,))
    assert hand.summary() == ("T <= 0.1: a 0 (0.1), b 1 (0.2), c 2 (0.3); "
                              "T > 0.1: a 3 (0.4), b 4 (0.5), c 5 (0.6)")
