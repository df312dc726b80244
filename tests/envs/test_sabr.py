import dataclasses
import math

import numpy as np
import pytest

from hedgearena.envs.black_scholes import black_scholes_price
from hedgearena.envs.market import MarketModel
from hedgearena.envs.sabr import SABR, sabr_forward_step
from hedgearena.envs.vol_surface import SABRSurface, sabr_implied_vol

SEED = 20240603


def test_shapes_fields_and_surface():
    model = SABR(alpha0=1.5, beta=0.6, rho=-0.2, nu=0.5, spot0=80.0, rate=0.03, dividend=0.01)
    paths = model.simulate(6, 9, 0.02, np.random.default_rng(0))
    assert isinstance(model, MarketModel)
    assert paths.spot.shape == paths.vol_state.shape == paths.variance.shape == (6, 10)
    np.testing.assert_array_equal(paths.times, 0.02 * np.arange(10))
    assert (paths.rate, paths.dividend) == (0.03, 0.01)
    assert paths.surface == SABRSurface(beta=0.6, rho=-0.2, nu=0.5)
    assert np.all(paths.vol_state[:, 0] == 1.5)
    assert np.all(paths.spot[:, 0] == 80.0)
    # variance is the squared lognormal local vol alpha F^(beta - 1) of the driftless forward,
    # alpha_S S^(beta - 1) in terms of the spot and its alpha (vol_state)
    np.testing.assert_allclose(
        paths.variance, (paths.vol_state * paths.spot ** (0.6 - 1.0)) ** 2, rtol=1e-12
    )
    assert np.all(np.isfinite(paths.implied_vol(np.array([[60.0, 80.0, 100.0]]), 0.25, step=9)))


def test_replace_keeps_the_surface_in_step_with_the_parameters():
    assert dataclasses.replace(SABR(), nu=0.9).vol_surface == SABRSurface(
        beta=0.5, rho=-0.3, nu=0.9
    )


def test_alpha_is_exact_log_normal():
    # E[alpha_T] = alpha0 and Var[log alpha_T] = nu^2 T; 4 SE; seed SEED
    n, t = 100_000, 1.0
    alpha_t = SABR(nu=0.6).simulate(n, 4, t / 4, np.random.default_rng(SEED)).vol_state[:, -1]
    assert abs(alpha_t.mean() - 2.0) < 4 * alpha_t.std() / math.sqrt(n)
    log_alpha = np.log(alpha_t)
    assert log_alpha.std() == pytest.approx(0.6, rel=4 / math.sqrt(2 * n))


def test_discounted_spot_is_a_martingale():
    # E[S_T e^{-(r - q) T}] = S0 within 4 SE (SE = sample std / sqrt(n)); seed SEED
    n, t = 100_000, 1.0
    model = SABR(alpha0=3.0, beta=0.5, rho=-0.5, nu=0.8, rate=0.04, dividend=0.01)
    s_t = model.simulate(n, 50, t / 50, np.random.default_rng(SEED)).spot[:, -1]
    discounted = s_t * math.exp(-0.03 * t)
    assert abs(discounted.mean() - 100.0) < 4 * discounted.std() / math.sqrt(n)


def test_forward_never_negative_under_extreme_parameters():
    # beta = 0 (normal backbone) and 100% normal vol: Euler on F would cross 0; ours stays >= 0
    model = SABR(alpha0=100.0, beta=0.0, rho=0.3, nu=1.5)
    paths = model.simulate(5_000, 50, 0.04, np.random.default_rng(SEED))
    assert np.all(paths.spot >= 0.0)
    assert np.all(np.isfinite(paths.spot))
    assert np.all(np.isfinite(paths.variance))
    assert np.mean(paths.spot[:, -1] < 1.0) > 0.05  # many paths went (near) to the boundary


def test_absorbed_forward_stays_at_zero():
    forward = sabr_forward_step(
        np.array([0.0, 1e-11, 100.0, 100.0]),
        np.full(4, 2.0),
        0.5,
        0.01,
        np.array([3.0, 3.0, 0.0, -1500.0]),
        1e-10,
    )
    assert forward[0] == 0.0  # absorbed stays absorbed
    assert forward[1] == 0.0  # below the level: absorbed
    assert forward[2] == pytest.approx(100.0 * math.exp(-0.5 * 0.04 * 0.01))
    assert forward[3] == 0.0  # ends the step below the level: absorbed


@pytest.fixture(scope="module")
def terminal_forward():
    """F_T of SABR(alpha0=2, beta=0.5, rho=-0.3, nu=0.4), T = 0.5, 100 steps, 100k paths."""
    model = SABR(alpha0=2.0, beta=0.5, rho=-0.3, nu=0.4)
    return model.simulate(100_000, 100, 0.005, np.random.default_rng(SEED)).spot[:, -1]


@pytest.mark.parametrize("strike", [85.0, 100.0, 115.0])
def test_mc_call_price_matches_hagan_for_a_short_expiry(terminal_forward, strike):
    # T = 0.5, nu = 0.4: Hagan's expansion is accurate here. Measured with 200 steps and 400k
    # paths: |MC - Hagan| <= 0.006 +- 0.006 at these strikes (prices 16.1, 5.7, 1.08), so
    # Hagan's error is below ~0.01 (1e-3 in vol); the log-Euler discretisation at 100 steps adds
    # <= 0.01. Tolerance: 4 SE + 0.02. The forward (a martingale with known mean) is a control
    # variate: SE = std(payoff - c (F_T - F_0)) / sqrt(n); seed SEED.
    f_t, t = terminal_forward, 0.5
    payoff = np.maximum(f_t - strike, 0.0)
    c = np.cov(payoff, f_t)[0, 1] / f_t.var()
    controlled = payoff - c * (f_t - 100.0)
    vol = sabr_implied_vol(100.0, strike, t, 2.0, 0.5, -0.3, 0.4)
    hagan = float(black_scholes_price(100.0, strike, t, vol))
    se = controlled.std() / math.sqrt(f_t.size)
    assert abs(controlled.mean() - hagan) < 4 * se + 0.02


def test_same_seed_same_paths():
    a = SABR().simulate(4, 6, 0.01, np.random.default_rng(2))
    b = SABR().simulate(4, 6, 0.01, np.random.default_rng(2))
    np.testing.assert_array_equal(a.spot, b.spot)
    np.testing.assert_array_equal(a.vol_state, b.vol_state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha0": 0.0}, r"SABR.alpha0 must be a finite number > 0.0, got 0.0"),
        ({"beta": -0.1}, r"SABR.beta must be a finite number >= 0.0 and <= 1.0, got -0.1"),
        ({"rho": 1.0}, r"SABR.rho must be a finite number > -1.0 and < 1.0, got 1.0"),
        ({"nu": -1.0}, r"SABR.nu must be a finite number >= 0.0, got -1.0"),
        ({"spot0": 0.0}, r"SABR.spot0 must be a finite number > 0.0, got 0.0"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SABR(**kwargs)


@pytest.mark.parametrize("strike", [90.0, 100.0, 110.0])
def test_marks_with_carry_are_the_markets_own_prices(strike):
    """With r != q the forward to expiry is SABR with alpha scaled by e^{(1 - beta)(r - q) T}:
    the surface's mark at the start equals the Monte Carlo price of the market's own paths.

    r = 8%: ignoring the scaling would mark 2% of alpha too low (about 0.1 at the money, 7 SE).
    Tolerance 4 SE + 0.02 as for zero carry above (Hagan and 100 log-Euler steps); the
    discounted spot is the control variate; seed SEED.
    """
    t, rate = 0.5, 0.08
    model = SABR(alpha0=2.0, beta=0.5, rho=-0.3, nu=0.4, rate=rate)
    paths = model.simulate(100_000, 100, t / 100, np.random.default_rng(SEED))
    s_t = paths.spot[:, -1]
    payoff = math.exp(-rate * t) * np.maximum(s_t - strike, 0.0)
    discounted = math.exp(-rate * t) * s_t
    c = np.cov(payoff, discounted)[0, 1] / discounted.var()
    controlled = payoff - c * (discounted - 100.0)
    vol = paths.implied_vol(np.array([[strike]]), t, step=0)[0, 0]
    mark = float(black_scholes_price(100.0, strike, t, vol, rate))
    se = controlled.std() / math.sqrt(s_t.size)
    assert abs(controlled.mean() - mark) < 4 * se + 0.02
