import itertools
import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)
import torch
from scipy.integrate import quad

from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.market import VolSurface
from hedgearena.envs.merton import MertonSurface
from hedgearena.envs.vol_surface import (
    FlatVol,
    HestonTermVol,
    SABRSurface,
    SmileSurface,
    heston_average_variance,
    sabr_implied_vol,
)

ALL_SURFACES = [
    (FlatVol(), 0.2),
    (SmileSurface(skew=-0.2, curvature=0.1, sticky="delta"), 0.2),
    (SmileSurface(skew=-0.2, curvature=0.1, sticky="strike"), 0.2),
    (SABRSurface(beta=0.5, rho=-0.3, nu=0.4), 2.0),
    (HestonTermVol(kappa=2.0, theta=0.04), 0.06),
    (HestonSurface(kappa=2.0, theta=0.04, xi=0.5, rho=-0.7), 0.06),
    (MertonSurface(sigma=0.2, jump_intensity=1.0, jump_mean=-0.1, jump_std=0.15), 0.27),
]


def _grid():
    """Book-like call arguments: (paths, steps, options) with tau down to 0 at expiry."""
    spot = np.array([[100.0, 80.0, 130.0], [100.0, 100.5, 99.0]])[:, :, None]
    strike = np.array([70.0, 100.0, 140.0])[None, None, :]
    tau = np.array([0.5, 1 / 252, 0.0])[None, :, None]
    return spot, strike, tau


@pytest.mark.parametrize(("surface", "level"), ALL_SURFACES)
def test_surfaces_follow_protocol_broadcast_and_stay_finite_at_expiry(surface, level):
    assert isinstance(surface, VolSurface)
    spot, strike, tau = _grid()
    vol = surface.implied_vol(
        spot, strike, tau, np.full(spot.shape, level), spot[:, :1], 0.03, 0.01
    )
    assert vol.shape == (2, 3, 3)
    assert np.all(np.isfinite(vol))
    assert np.all(vol > 0)


@pytest.mark.parametrize(("surface", "level"), ALL_SURFACES)
def test_surfaces_agree_on_numpy_and_torch(surface, level):
    spot, strike, tau = _grid()
    expected = surface.implied_vol(spot, strike, tau, level, 100.0, 0.03, 0.01)
    got = surface.implied_vol(
        torch.from_numpy(spot),
        torch.from_numpy(strike),
        torch.from_numpy(tau),
        level,
        100.0,
        0.03,
        0.01,
    )
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), np.broadcast_to(expected, got.shape), rtol=1e-14)


def test_flat_vol_is_the_level_everywhere():
    vol = FlatVol().implied_vol(
        np.array([[100.0], [90.0]]),
        np.array([80.0, 120.0]),
        0.5,
        np.array([[0.1], [0.3]]),
        100.0,
        0,
        0,
    )
    np.testing.assert_array_equal(vol, [[0.1, 0.1], [0.3, 0.3]])


# ---- SmileSurface -------------------------------------------------------------------------------


def test_smile_is_the_level_at_the_money_forward_and_quadratic_in_standardised_moneyness():
    smile = SmileSurface(skew=-0.2, curvature=0.3)
    tau, rate, dividend = 0.25, 0.05, 0.01
    forward = 100.0 * math.exp((rate - dividend) * tau)
    x = np.array([-1.0, 0.0, 0.5])
    strike = forward * np.exp(x * math.sqrt(tau))
    vol = smile.implied_vol(100.0, strike, tau, 0.2, 100.0, rate, dividend)
    np.testing.assert_allclose(vol, 0.2 * (1 - 0.2 * x + 0.3 * x**2), rtol=1e-13)


def test_sticky_strike_vol_of_a_fixed_strike_does_not_move_with_spot():
    smile = SmileSurface(skew=-0.3, curvature=0.1, sticky="strike")
    strike = np.array([80.0, 100.0, 120.0])
    before = smile.implied_vol(100.0, strike, 0.5, 0.2, 100.0, 0.02, 0.0)
    after = smile.implied_vol(90.0, strike, 0.5, 0.2, 100.0, 0.02, 0.0)
    np.testing.assert_array_equal(after, before)
    # while the at-the-money vol does move: a lower spot sits higher on the put skew
    assert smile.implied_vol(90.0, 90.0, 0.5, 0.2, 100.0, 0.02, 0.0) > before[1]


def test_sticky_delta_smile_moves_with_the_forward():
    smile = SmileSurface(skew=-0.3, curvature=0.1, sticky="delta")
    moneyness = np.array([0.8, 1.0, 1.2])
    before = smile.implied_vol(100.0, 100.0 * moneyness, 0.5, 0.2, 100.0, 0.02, 0.0)
    after = smile.implied_vol(90.0, 90.0 * moneyness, 0.5, 0.2, 100.0, 0.02, 0.0)
    np.testing.assert_allclose(after, before, rtol=1e-14)
    # while the vol of a fixed strike does move: after the fall it is an out-of-the-money call
    assert smile.implied_vol(90.0, 100.0, 0.5, 0.2, 100.0, 0.02, 0.0) < before[1]


def test_smile_floor_keeps_vols_positive():
    smile = SmileSurface(skew=-1.0, curvature=-1.0, floor=0.25)
    vol = smile.implied_vol(100.0, np.array([50.0, 200.0]), 0.1, 0.2, 100.0, 0.0, 0.0)
    np.testing.assert_allclose(vol, 0.25 * 0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"sticky": "spot"},
            r"SmileSurface.sticky must be one of \('delta', 'strike'\), got 'spot'",
        ),
        ({"floor": 0.0}, r"SmileSurface.floor must be a finite number > 0.0 and <= 1.0, got 0.0"),
        ({"skew": float("nan")}, r"SmileSurface.skew must be a finite number, got nan"),
        ({"min_tau": -1.0}, r"SmileSurface.min_tau must be a finite number > 0.0, got -1.0"),
    ],
)
def test_smile_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SmileSurface(**kwargs)


# ---- SABR ---------------------------------------------------------------------------------------


def test_sabr_implied_vol_matches_quantlib_on_a_grid():
    forwards = [50.0, 100.0]
    strike_ratios = [0.5, 0.8, 0.95, 1.0, 1.1, 1.5, 2.0]
    taus = [0.0, 0.5, 5.0]
    betas = [0.0, 0.5, 1.0]
    rhos = [-0.7, 0.0, 0.5]
    nus = [0.0, 0.3, 1.2]
    n = 0
    for f, ratio, tau, beta, rho, nu in itertools.product(
        forwards, strike_ratios, taus, betas, rhos, nus
    ):
        alpha = 0.25 * f ** (1 - beta)  # about 25% lognormal vol
        k = f * ratio
        expected = ql.sabrVolatility(k, f, tau, alpha, beta, nu, rho)
        got = float(sabr_implied_vol(f, k, tau, alpha, beta, rho, nu))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), (f, k, tau, beta, rho, nu)
        n += 1
    assert n == 2 * 7 * 3 * 3 * 3 * 3


def test_sabr_at_the_money_limit_is_continuous():
    strikes = 100.0 * (1 + np.array([-1e-9, 0.0, 1e-9]))
    vol = sabr_implied_vol(100.0, strikes, 1.0, 2.0, 0.5, -0.4, 0.8)
    np.testing.assert_allclose(vol, vol[1], rtol=1e-8)
    # and equals Hagan's ATM formula (2.18)
    alpha, beta, rho, nu, f = 2.0, 0.5, -0.4, 0.8, 100.0
    fb = f ** (1 - beta)
    atm = (
        alpha
        / fb
        * (
            1
            + (
                (1 - beta) ** 2 / 24 * alpha**2 / fb**2
                + rho * beta * nu * alpha / (4 * fb)
                + (2 - 3 * rho**2) / 24 * nu**2
            )
        )
    )
    assert vol[1] == pytest.approx(atm, rel=1e-14)


def test_sabr_surface_uses_the_forward_to_expiry_and_its_alpha():
    """The level is the spot's alpha; the forward ``c S`` has alpha ``c^(1 - beta)`` times it."""
    surface = SABRSurface(beta=0.7, rho=-0.5, nu=0.6)
    spot, strike, tau, rate, dividend = 100.0, np.array([90.0, 110.0]), 0.75, 0.04, 0.01
    carry = math.exp((rate - dividend) * tau)
    expected = sabr_implied_vol(spot * carry, strike, tau, 1.2 * carry**0.3, 0.7, -0.5, 0.6)
    np.testing.assert_allclose(
        surface.implied_vol(spot, strike, tau, 1.2, 123.0, rate, dividend), expected, rtol=1e-14
    )
    at_zero_carry = sabr_implied_vol(spot, strike, tau, 1.2, 0.7, -0.5, 0.6)
    np.testing.assert_array_equal(
        surface.implied_vol(spot, strike, tau, 1.2, 123.0, 0.02, 0.02), at_zero_carry
    )


def test_sabr_absorbed_forward_gives_a_finite_vol():
    vol = sabr_implied_vol(np.array([0.0, 100.0]), 100.0, 1.0, 2.0, 0.5, -0.3, 0.4)
    assert np.all(np.isfinite(vol))
    assert vol[0] == vol[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 1.5}, r"SABRSurface.beta must be a finite number >= 0.0 and <= 1.0, got 1.5"),
        ({"rho": -1.0}, r"SABRSurface.rho must be a finite number > -1.0 and < 1.0, got -1.0"),
        ({"nu": -0.1}, r"SABRSurface.nu must be a finite number >= 0.0, got -0.1"),
    ],
)
def test_sabr_surface_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SABRSurface(**kwargs)


# ---- Heston term structure ----------------------------------------------------------------------


@pytest.mark.parametrize(("v", "tau"), [(0.09, 0.5), (0.01, 2.0), (0.04, 1e-10)])
def test_heston_average_variance_is_the_average_of_the_expected_variance(v, tau):
    kappa, theta = 1.5, 0.04

    def expected_variance(t: float) -> float:
        return theta + (v - theta) * math.exp(-kappa * t)

    reference = quad(expected_variance, 0.0, tau, epsabs=0, epsrel=1e-13)[0] / tau
    assert float(heston_average_variance(v, tau, kappa, theta)) == pytest.approx(
        reference, rel=1e-12
    )


def test_heston_term_vol_limits():
    surface = HestonTermVol(kappa=3.0, theta=0.04)
    short, long = surface.implied_vol(100.0, 100.0, np.array([0.0, 1e4]), 0.09, 100.0, 0.0, 0.0)
    assert short == pytest.approx(0.3, rel=1e-15)
    assert long == pytest.approx(0.2, rel=1e-3)
    no_reversion = HestonTermVol(kappa=0.0, theta=0.04)
    assert float(
        no_reversion.implied_vol(100.0, 100.0, 5.0, 0.09, 100.0, 0.0, 0.0)
    ) == pytest.approx(0.3)


def test_heston_term_vol_is_flat_in_strike():
    vol = HestonTermVol().implied_vol(
        100.0, np.array([50.0, 100.0, 200.0]), 1.0, 0.09, 100.0, 0.0, 0.0
    )
    assert vol.shape == (3,)
    assert np.ptp(vol) == 0.0


def test_heston_term_vol_validation():
    with pytest.raises(
        ValueError, match=r"HestonTermVol.kappa must be a finite number >= 0.0, got -1.0"
    ):
        HestonTermVol(kappa=-1.0)
