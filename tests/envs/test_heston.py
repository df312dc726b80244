import dataclasses
import math

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional alias)

from hedgearena.envs.heston import Heston, qe_variance_step
from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.market import MarketModel
from hedgearena.envs.vol_surface import FlatVol, HestonTermVol

SEED = 20240602
PARAMS = {"kappa": 1.5, "theta": 0.04, "xi": 0.6, "rho": -0.7, "v0": 0.05}
RATE, DIVIDEND, T = 0.03, 0.01, 1.0
N_PATHS, N_STEPS = 100_000, 50
# Feller condition 2 kappa theta >= xi^2 violated (0.04 < 1): the variance hits 0 often
FELLER_VIOLATING = {"kappa": 0.5, "theta": 0.04, "xi": 1.0, "rho": -0.5, "v0": 0.04}


def _quantlib_heston_call(strike: float) -> float:
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, day_count))
    dividends = ql.YieldTermStructureHandle(ql.FlatForward(today, DIVIDEND, day_count))
    p = PARAMS
    process = ql.HestonProcess(
        rates,
        dividends,
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        p["v0"],
        p["kappa"],
        p["theta"],
        p["xi"],
        p["rho"],
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call, strike), ql.EuropeanExercise(today + round(T * 365))
    )
    option.setPricingEngine(ql.AnalyticHestonEngine(ql.HestonModel(process)))
    return option.NPV()


@pytest.fixture(scope="module")
def qe_paths():
    model = Heston(**PARAMS, spot0=100.0, rate=RATE, dividend=DIVIDEND)
    return model.simulate(N_PATHS, N_STEPS, T / N_STEPS, np.random.default_rng(SEED))


def test_shapes_fields_and_default_surface(qe_paths):
    assert isinstance(Heston(), MarketModel)
    assert qe_paths.spot.shape == (N_PATHS, N_STEPS + 1)
    np.testing.assert_array_equal(qe_paths.times, T / N_STEPS * np.arange(N_STEPS + 1))
    assert (qe_paths.rate, qe_paths.dividend) == (RATE, DIVIDEND)
    assert qe_paths.surface == HestonSurface(kappa=1.5, theta=0.04, xi=0.6, rho=-0.7)
    np.testing.assert_array_equal(qe_paths.vol_state, qe_paths.variance)
    assert np.all(qe_paths.variance[:, 0] == 0.05)
    assert np.all(qe_paths.spot[:, 0] == 100.0)
    assert np.all(np.isfinite(qe_paths.implied_vol(np.array([[80.0, 100.0, 120.0]]), 0.5, step=10)))


def test_surfaces_by_name():
    # names work from YAML and --set: "own" (the default) and "term" (the flat, faster one)
    from hedgearena.envs.config import make_config
    from hedgearena.envs.vol_surface import HestonTermVol

    model = Heston(kappa=3.0, theta=0.09, surface="term")
    assert model.vol_surface == HestonTermVol(kappa=3.0, theta=0.09)
    assert Heston(surface="own").vol_surface == Heston().vol_surface
    config = make_config("OptionBook", market_kwargs={"surface": "term"})
    assert config.market.vol_surface == HestonTermVol(kappa=2.0, theta=0.04)
    with pytest.raises(ValueError, match=r"Heston.surface must be a VolSurface object or one of "
                                         r"\['own', 'term'\], got 'flat'"):
        Heston(surface="flat")


def test_replace_keeps_the_default_surface_in_step_with_the_parameters():
    model = dataclasses.replace(Heston(), kappa=3.0, theta=0.09, xi=0.8, rho=0.1)
    assert model.vol_surface == HestonSurface(kappa=3.0, theta=0.09, xi=0.8, rho=0.1)
    term = HestonTermVol(kappa=3.0, theta=0.09)
    assert Heston(surface=term).vol_surface == term  # a given surface is kept


def test_a_surface_must_read_the_markets_level_as_it_is_stored():
    """Heston's paths hold the variance v as the level; GBM's and Merton's a vol. A surface
    that reads the other kind would mark a 20% vol at 4% (v = 0.04), or 0.2 as a variance."""
    from hedgearena.envs.gbm import GBM
    from hedgearena.envs.merton import MertonJumpDiffusion

    with pytest.raises(ValueError, match=r"Heston.surface must be a surface that reads the "
                                         r"paths' level as a variance .*got FlatVol\(\)"):
        Heston(surface=FlatVol())
    for market in (GBM, MertonJumpDiffusion):
        with pytest.raises(ValueError, match=rf"{market.__name__}.surface must be a surface "
                                             r"that reads the paths' level as a vol"):
            market(surface=HestonTermVol())


def test_qe_expected_variance_matches_the_closed_form(qe_paths):
    # E[v_T] = theta + (v0 - theta) e^{-kappa T}; 4 SE (sample std / sqrt(n)); seed SEED
    v_t = qe_paths.variance[:, -1]
    expected = 0.04 + (0.05 - 0.04) * math.exp(-1.5 * T)
    assert abs(v_t.mean() - expected) < 4 * v_t.std() / math.sqrt(N_PATHS)


def test_qe_discounted_spot_is_a_martingale(qe_paths):
    # E[S_T e^{-(r - q) T}] = S0 within 4 SE; seed SEED
    discounted = qe_paths.spot[:, -1] * math.exp(-(RATE - DIVIDEND) * T)
    assert abs(discounted.mean() - 100.0) < 4 * discounted.std() / math.sqrt(N_PATHS)


def test_martingale_correction_holds_with_coarse_steps():
    # four steps a year with strong correlation: the correction keeps E[S_T] = S0 (4 SE)
    model = Heston(kappa=0.5, theta=0.09, xi=1.0, rho=-0.9, v0=0.09)
    s_t = model.simulate(N_PATHS, 4, 0.5, np.random.default_rng(SEED)).spot[:, -1]
    assert abs(s_t.mean() - 100.0) < 4 * s_t.std() / math.sqrt(N_PATHS)


@pytest.mark.parametrize("strike", [80.0, 100.0, 120.0])
def test_qe_call_price_matches_quantlib_analytic_heston(qe_paths, strike):
    # MC with 50 steps a year vs AnalyticHestonEngine: 4 SE plus 0.02 for the QE discretisation
    # bias (measured with 800k paths and a control variate: -0.002, -0.004, -0.010 +- 0.004 at
    # strikes 80, 100, 120); SE = payoff std / sqrt(n); seed SEED
    payoff = math.exp(-RATE * T) * np.maximum(qe_paths.spot[:, -1] - strike, 0.0)
    se = payoff.std() / math.sqrt(N_PATHS)
    assert abs(payoff.mean() - _quantlib_heston_call(strike)) < 4 * se + 0.02


@pytest.mark.parametrize("mgf_arg", [-1.1, 0.5])
@pytest.mark.parametrize("v", [0.04, 0.0005])  # psi small (quadratic) and large (exponential)
def test_qe_step_moment_generating_function_of_the_martingale_correction(v, mgf_arg):
    # log E[exp(A v') | v] returned by the step vs the sample mean of exp(A v'); 4 SE by the
    # delta method (SE of the mean / mean); seed SEED
    n = 400_000
    rng = np.random.default_rng(SEED)
    new = qe_variance_step(
        np.full(n, v), 0.5, 0.5, 0.04, 1.0, rng.standard_normal(n), rng.random(n), mgf_arg
    )
    sample = np.exp(mgf_arg * new.variance)
    se = sample.std() / math.sqrt(n) / sample.mean()
    assert np.ptp(new.log_mgf) == 0.0
    assert abs(new.log_mgf[0] - math.log(sample.mean())) < 4 * se


def test_real_world_drift():
    # E[S_T] = S0 e^{mu T} under the real-world drift mu; 4 SE; seed SEED
    model = Heston(**PARAMS, mu=0.1, rate=RATE, dividend=DIVIDEND)
    s_t = model.simulate(50_000, 20, 0.05, np.random.default_rng(SEED)).spot[:, -1]
    assert abs(s_t.mean() - 100.0 * math.exp(0.1)) < 4 * s_t.std() / math.sqrt(50_000)


@pytest.mark.parametrize("scheme", ["qe", "full_truncation"])
def test_variance_is_never_negative_when_feller_fails(scheme):
    model = Heston(**FELLER_VIOLATING, scheme=scheme)
    paths = model.simulate(20_000, 100, 1 / 100, np.random.default_rng(SEED))
    assert np.all(paths.variance >= 0.0)
    assert np.any(paths.variance == 0.0)  # the boundary was reached: the test exercised it
    assert np.all(np.isfinite(paths.spot))
    assert np.all(paths.spot > 0.0)


def test_full_truncation_prices_close_to_quantlib():
    # full truncation Euler has a larger O(dt) bias than QE: measured +0.025 +- 0.005 at the money
    # with 50 steps a year (800k paths); allowance 0.05 plus 4 SE; seed SEED
    model = Heston(**PARAMS, rate=RATE, dividend=DIVIDEND, scheme="full_truncation")
    s_t = model.simulate(N_PATHS, N_STEPS, T / N_STEPS, np.random.default_rng(SEED)).spot[:, -1]
    payoff = math.exp(-RATE * T) * np.maximum(s_t - 100.0, 0.0)
    assert (
        abs(payoff.mean() - _quantlib_heston_call(100.0))
        < 4 * payoff.std() / math.sqrt(N_PATHS) + 0.05
    )


@pytest.mark.parametrize("v", [0.04, 0.0005])  # psi small (quadratic) and large (exponential)
def test_qe_step_matches_the_conditional_mean_and_variance(v):
    kappa, theta, xi, dt, n = 0.5, 0.04, 1.0, 0.1, 400_000
    rng = np.random.default_rng(SEED)
    v0 = np.full(n, v)
    new = qe_variance_step(
        v0, dt, kappa, theta, xi, rng.standard_normal(n), rng.random(n), 0.0
    ).variance
    decay = math.exp(-kappa * dt)
    mean = theta + (v - theta) * decay
    var = v * xi**2 * decay / kappa * (1 - decay) + theta * xi**2 / (2 * kappa) * (1 - decay) ** 2
    assert abs(new.mean() - mean) < 4 * new.std() / math.sqrt(n)
    centred = new - new.mean()
    se_var = math.sqrt((np.mean(centred**4) - new.var() ** 2) / n)
    assert abs(new.var() - var) < 4 * se_var


def test_same_seed_same_paths():
    a = Heston().simulate(10, 5, 0.01, np.random.default_rng(1))
    b = Heston().simulate(10, 5, 0.01, np.random.default_rng(1))
    np.testing.assert_array_equal(a.spot, b.spot)
    np.testing.assert_array_equal(a.variance, b.variance)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kappa": 0.0}, r"Heston.kappa must be a finite number > 0.0, got 0.0"),
        ({"xi": -0.5}, r"Heston.xi must be a finite number > 0.0, got -0.5"),
        ({"rho": 1.5}, r"Heston.rho must be a finite number >= -1.0 and <= 1.0, got 1.5"),
        ({"v0": -0.01}, r"Heston.v0 must be a finite number >= 0.0, got -0.01"),
        (
            {"scheme": "euler"},
            r"Heston.scheme must be one of \('qe', 'full_truncation'\), got 'euler'",
        ),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Heston(**kwargs)
