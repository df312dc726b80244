import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)

from hedgearena.envs.black_scholes import black_scholes_price
from hedgearena.envs.implied_vol import implied_volatility
from hedgearena.envs.market import MarketModel
from hedgearena.envs.merton import (
    MertonJumpDiffusion,
    MertonSurface,
    jump_compensator,
    merton_call_price,
)
from hedgearena.envs.vol_table import VolGrid

SEED = 20240604
JUMPS = {"jump_intensity": 2.0, "jump_mean": -0.1, "jump_std": 0.15}


def _quantlib_bates_call(spot, strike, days, rate, dividend, sigma, lam, m, s):
    """Bates with a negligible vol of variance (1e-4) and v0 = theta = sigma^2: Merton's model."""
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, rate, day_count))
    dividends = ql.YieldTermStructureHandle(ql.FlatForward(today, dividend, day_count))
    process = ql.BatesProcess(
        rates,
        dividends,
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        sigma**2,
        1.0,
        sigma**2,
        1e-4,
        0.0,
        lam,
        m,
        s,
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call, strike), ql.EuropeanExercise(today + days)
    )
    option.setPricingEngine(ql.BatesEngine(ql.BatesModel(process)))
    return option.NPV()


@pytest.mark.parametrize(
    ("strike", "days", "rate", "dividend", "lam", "m", "s"),
    [
        (100.0, 365, 0.0, 0.0, 1.0, -0.1, 0.15),
        (90.0, 146, 0.03, 0.01, 1.0, -0.1, 0.15),
        (120.0, 730, 0.01, 0.02, 3.0, 0.05, 0.3),
    ],
)
def test_series_matches_quantlib_bates_without_vol_of_variance(
    strike, days, rate, dividend, lam, m, s
):
    expected = _quantlib_bates_call(100.0, strike, days, rate, dividend, 0.2, lam, m, s)
    got = merton_call_price(100.0, strike, days / 365, 0.2, lam, m, s, rate, dividend)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_series_without_jumps_is_black_scholes():
    strike, tau = np.array([80.0, 100.0, 125.0]), np.array([[0.1], [2.0]])
    got = merton_call_price(100.0, strike, tau, 0.3, 0.0, -0.2, 0.1, 0.04, 0.01)
    np.testing.assert_allclose(
        got, black_scholes_price(100.0, strike, tau, 0.3, 0.04, 0.01), rtol=1e-14
    )
    assert got.shape == (2, 3)


def test_series_rejects_zero_time_to_expiry():
    with pytest.raises(ValueError, match="tau must be > 0"):
        merton_call_price(100.0, 100.0, 0.0, 0.2, 1.0, 0.0, 0.1)


def test_shapes_fields_and_variance():
    model = MertonJumpDiffusion(sigma=0.2, **JUMPS, spot0=50.0, rate=0.02, dividend=0.01)
    paths = model.simulate(8, 5, 0.01, np.random.default_rng(0))
    assert isinstance(model, MarketModel)
    assert paths.spot.shape == (8, 6)
    np.testing.assert_array_equal(paths.times, 0.01 * np.arange(6))
    assert (paths.rate, paths.dividend) == (0.02, 0.01)
    assert paths.surface == MertonSurface(sigma=0.2, **JUMPS)
    total = 0.04 + 2.0 * (0.01 + 0.0225)
    np.testing.assert_allclose(paths.variance, total)
    np.testing.assert_allclose(paths.vol_state, math.sqrt(total))
    assert np.all(paths.spot[:, 0] == 50.0)


def test_mc_call_matches_the_series_formula():
    # risk-neutral exact simulation, T = 1 in 4 steps, 200k paths; 4 SE (payoff std / sqrt(n))
    n, t, rate, dividend = 200_000, 1.0, 0.03, 0.01
    model = MertonJumpDiffusion(mu=None, sigma=0.2, **JUMPS, rate=rate, dividend=dividend)
    s_t = model.simulate(n, 4, t / 4, np.random.default_rng(SEED)).spot[:, -1]
    for strike in (80.0, 100.0, 120.0):
        payoff = math.exp(-rate * t) * np.maximum(s_t - strike, 0.0)
        price = float(
            merton_call_price(100.0, strike, t, 0.2, **JUMPS, rate=rate, dividend=dividend)
        )
        assert abs(payoff.mean() - price) < 4 * payoff.std() / math.sqrt(n), strike


def test_expected_spot_grows_at_mu():
    # compensated jumps: E[S_T] = S0 e^{mu T}; 4 SE; seed SEED
    n = 200_000
    s_t = (
        MertonJumpDiffusion(mu=0.07, **JUMPS)
        .simulate(n, 2, 0.5, np.random.default_rng(SEED))
        .spot[:, -1]
    )
    assert abs(s_t.mean() - 100.0 * math.exp(0.07)) < 4 * s_t.std() / math.sqrt(n)


def test_jump_counts_are_poisson():
    # mean and variance of the count per step = lambda dt; SE of the mean sqrt(lambda dt / n)
    model = MertonJumpDiffusion(**JUMPS)
    counts = model.sample_increments(50_000, 10, 0.1, np.random.default_rng(SEED)).jump_count
    assert counts.shape == (50_000, 10)
    assert abs(counts.mean() - 0.2) < 4 * math.sqrt(0.2 / counts.size)
    # SE of the sample variance sqrt((mu4 - var^2) / n), Poisson mu4 = lambda dt (1 + 3 lambda dt)
    assert abs(counts.var() - 0.2) < 4 * math.sqrt((0.2 * 1.6 - 0.04) / counts.size)
    assert np.all(counts == np.round(counts))


def test_simulate_uses_the_increments():
    model = MertonJumpDiffusion(**JUMPS)
    increments = model.sample_increments(3, 4, 0.1, np.random.default_rng(5)).log_return
    spot = model.simulate(3, 4, 0.1, np.random.default_rng(5)).spot
    np.testing.assert_allclose(np.diff(np.log(spot), axis=1), increments, rtol=1e-12, atol=1e-14)


def test_jump_compensator():
    assert jump_compensator(-0.1, 0.15) == pytest.approx(math.exp(-0.1 + 0.5 * 0.0225) - 1.0)


def test_same_seed_same_paths():
    a = MertonJumpDiffusion().simulate(4, 6, 0.1, np.random.default_rng(9)).spot
    b = MertonJumpDiffusion().simulate(4, 6, 0.1, np.random.default_rng(9)).spot
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": -0.2}, r"MertonJumpDiffusion.sigma must be a finite number > 0.0, got -0.2"),
        (
            {"jump_intensity": -1.0},
            r"MertonJumpDiffusion.jump_intensity must be a finite number >= 0.0",
        ),
        (
            {"jump_std": -0.1},
            r"MertonJumpDiffusion.jump_std must be a finite number >= 0.0 and <= 1.0, got -0.1",
        ),
        (
            {"jump_mean": 800.0},
            r"MertonJumpDiffusion.jump_mean must be a finite number >= -1.0 and <= 1.0, got 800.0",
        ),
        (
            {"jump_std": 12.0},  # the surface checks the same bounds (it was stricter)
            r"MertonJumpDiffusion.jump_std must be a finite number >= 0.0 and <= 1.0, got 12.0",
        ),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MertonJumpDiffusion(**kwargs)


def test_the_series_holds_for_many_jumps_and_refuses_negative_parameters() -> None:
    """Jumps of size 0 leave Black-Scholes: exact for any intensity (e^{-800} underflowed and
    the series gave 0 at lambda = 800; 60 terms gave 6.64 instead of 10.49 at lambda = 60)."""
    from hedgearena.envs.black_scholes import black_scholes_price
    from hedgearena.envs.merton import merton_call_price

    spot = np.array([90.0, 100.0, 120.0])
    for lam in (60.0, 800.0):
        np.testing.assert_allclose(merton_call_price(spot, 100.0, 1.0, 0.2, lam, 0.0, 0.0),
                                   black_scholes_price(spot, 100.0, 1.0, 0.2), rtol=1e-12)
    many = merton_call_price(spot, 100.0, 1.0, 0.2, 60.0, -0.01, 0.02)
    np.testing.assert_allclose(many, merton_call_price(spot, 100.0, 1.0, 0.2, 60.0, -0.01, 0.02,
                                                       n_terms=3000), rtol=1e-12)
    with pytest.raises(ValueError, match="jump_intensity must be a finite number >= 0"):
        merton_call_price(spot, 100.0, 1.0, 0.2, -1.0, 0.0, 0.1)


@pytest.mark.parametrize(
    "jumps",
    [JUMPS, {"jump_intensity": 5.0, "jump_mean": -0.05, "jump_std": 0.05},
     {"jump_intensity": 0.2, "jump_mean": -0.3, "jump_std": 0.2}],
)
def test_surface_is_merton_between_its_nodes(jumps):
    # the series (checked against QuantLib's Bates above) inverted at 40 random points,
    # 3 to 365 days, within 3 standard deviations: the interpolation stays within 6e-4 in vol
    surface = MertonSurface(sigma=0.2, **jumps)
    rng = np.random.default_rng(3)
    tau = rng.integers(3, 366, 40) / 365
    strike = 100.0 * np.exp(rng.uniform(-3.0, 3.0, 40) * surface.base_level * np.sqrt(tau))
    price = merton_call_price(100.0, strike, tau, 0.2, **jumps)
    want = implied_volatility(price, 100.0, strike, tau)
    got = surface.implied_vol(100.0, strike, tau, surface.base_level, 100.0, 0.0, 0.0)
    np.testing.assert_allclose(got, want, atol=6e-4)


def test_market_marks_at_quantlib_bates_prices():
    # the market's own surface (the default): rate 3%, dividend 1%, 146 days
    model = MertonJumpDiffusion(sigma=0.2, **JUMPS, rate=0.03, dividend=0.01)
    paths = model.simulate(2, 1, 1 / 250, np.random.default_rng(0))
    strikes = np.array([85.0, 100.0, 115.0])
    vol = paths.implied_vol(strikes[None, :], 146 / 365, step=0)[0]
    ours = black_scholes_price(100.0, strikes, 146 / 365, vol, 0.03, 0.01)
    want = [_quantlib_bates_call(100.0, k, 146, 0.03, 0.01, 0.2, 2.0, -0.1, 0.15)
            for k in strikes]
    np.testing.assert_allclose(ours, want, rtol=1e-3, atol=1e-3)  # currency on spot 100


def test_surface_limits_and_level_scaling():
    surface = MertonSurface(sigma=0.2, **JUMPS)
    strikes = np.array([1e-3, 80.0, 100.0, 120.0, 1e4])
    np.testing.assert_allclose(  # no jumps: Black-Scholes, flat at sigma
        MertonSurface(sigma=0.25, jump_intensity=0.0).implied_vol(
            100.0, strikes[1:4], 0.5, 0.25, 100.0, 0.0, 0.0), 0.25, atol=1e-9)
    np.testing.assert_allclose(  # at expiry: the diffusion
        surface.implied_vol(100.0, strikes, 0.0, surface.base_level, 100.0, 0.0, 0.0), 0.2)
    base = surface.implied_vol(100.0, strikes, 0.3, surface.base_level, 100.0, 0.0, 0.0)
    assert np.all(np.isfinite(base))
    np.testing.assert_allclose(  # a doubled level doubles the smile
        surface.implied_vol(100.0, strikes, 0.3, 2.0 * surface.base_level, 100.0, 0.0, 0.0),
        2.0 * base, rtol=1e-12)


def test_surfaces_by_name():
    from hedgearena.envs.vol_surface import FlatVol

    assert MertonJumpDiffusion(surface="flat").vol_surface == FlatVol()
    assert MertonJumpDiffusion(surface="own").vol_surface == MertonJumpDiffusion().vol_surface
    with pytest.raises(ValueError, match=r"one of \['own', 'flat'\], got 'term'"):
        MertonJumpDiffusion(surface="term")


def test_surface_validation():
    with pytest.raises(ValueError, match=r"MertonSurface.sigma must be a finite number > 0.0"):
        MertonSurface(sigma=0.0)
    with pytest.raises(ValueError, match=r"MertonSurface.grid must be a VolGrid"):
        MertonSurface(grid=None)
    with pytest.raises(ValueError, match=r"VolGrid.n_z must be an integer >= 4, got 3"):
        VolGrid(n_z=3)
