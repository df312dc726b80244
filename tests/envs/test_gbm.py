import math

import numpy as np
import pytest

from hedgearena.envs.gbm import GBM
from hedgearena.envs.market import MarketModel, MarketPaths
from hedgearena.envs.vol_surface import FlatVol, SmileSurface

N_PATHS = 200_000
SEED = 20240601


def _sample_variance_se(x: np.ndarray) -> float:
    """Standard error of the sample variance: sqrt((m4 - s^4) / n), m4 the central 4th moment."""
    centred = x - x.mean()
    m4 = np.mean(centred**4)
    return math.sqrt((m4 - np.var(x) ** 2) / x.size)


def test_shapes_grid_and_fields():
    model = GBM(mu=0.05, sigma=0.3, spot0=50.0, rate=0.02, dividend=0.01)
    paths = model.simulate(7, 12, 0.01, np.random.default_rng(0))
    assert isinstance(model, MarketModel)
    assert isinstance(paths, MarketPaths)
    assert (paths.n_paths, paths.n_steps) == (7, 12)
    np.testing.assert_array_equal(paths.times, 0.01 * np.arange(13))
    assert np.all(paths.spot[:, 0] == 50.0)
    assert np.all(paths.variance == 0.09)
    assert np.all(paths.vol_state == 0.3)
    assert (paths.rate, paths.dividend) == (0.02, 0.01)
    assert paths.surface == FlatVol()
    assert paths.spot.dtype == np.float64
    assert np.all(paths.spot > 0)


def test_same_seed_same_paths_and_different_seed_different_paths():
    model = GBM()
    a = model.simulate(5, 10, 0.1, np.random.default_rng(3)).spot
    b = model.simulate(5, 10, 0.1, np.random.default_rng(3)).spot
    c = model.simulate(5, 10, 0.1, np.random.default_rng(4)).spot
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("mu", [0.08, None])
def test_terminal_mean_and_variance_match_the_log_normal(mu):
    # E[S_T] = S0 e^{mu T}, Var[S_T] = S0^2 e^{2 mu T} (e^{sigma^2 T} - 1); 4 standard errors
    # (SE of the mean: sample std / sqrt(n); of the variance: sqrt((m4 - s^4) / n)); seed SEED.
    model = GBM(mu=mu, sigma=0.25, spot0=100.0, rate=0.03, dividend=0.01)
    drift = 0.02 if mu is None else mu
    t = 1.5
    s_t = model.simulate(N_PATHS, 6, t / 6, np.random.default_rng(SEED)).spot[:, -1]
    mean = 100.0 * math.exp(drift * t)
    variance = mean**2 * math.expm1(0.25**2 * t)
    assert abs(s_t.mean() - mean) < 4 * s_t.std() / math.sqrt(N_PATHS)
    assert abs(s_t.var() - variance) < 4 * _sample_variance_se(s_t)


def test_log_returns_have_the_exact_step_moments():
    # each step's log return ~ N((mu - sigma^2/2) dt, sigma^2 dt); 4 SE of the pooled mean
    model = GBM(mu=0.1, sigma=0.4)
    paths = model.simulate(20_000, 10, 0.5, np.random.default_rng(SEED))
    log_returns = np.diff(np.log(paths.spot), axis=1).ravel()
    assert abs(log_returns.mean() - (0.1 - 0.08) * 0.5) < 4 * 0.4 * math.sqrt(
        0.5 / log_returns.size
    )
    assert log_returns.std() == pytest.approx(
        0.4 * math.sqrt(0.5), rel=4 / math.sqrt(2 * log_returns.size)
    )


def test_custom_surface_is_passed_through():
    smile = SmileSurface(skew=-0.2)
    paths = GBM(surface=smile).simulate(2, 3, 0.1, np.random.default_rng(0))
    assert paths.surface is smile
    assert paths.implied_vol(80.0, 0.5, step=0).shape == (2, 1)
    assert paths.implied_vol(80.0, 0.5).shape == (2, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": 0.0}, r"GBM.sigma must be a finite number > 0.0, got 0.0"),
        ({"spot0": -1.0}, r"GBM.spot0 must be a finite number > 0.0, got -1.0"),
        ({"mu": float("inf")}, r"GBM.mu must be a finite number, got inf"),
        ({"rate": "0.1"}, r"GBM.rate must be a finite number, got '0.1'"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GBM(**kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 5, 0.1), r"GBM.simulate.n_paths must be an integer >= 1, got 0"),
        ((3, 2.5, 0.1), r"GBM.simulate.n_steps must be an integer >= 1, got 2.5"),
        ((3, 5, -0.1), r"GBM.simulate.dt must be a finite number > 0.0, got -0.1"),
    ],
)
def test_simulate_validation(args, message):
    with pytest.raises(ValueError, match=message):
        GBM().simulate(*args, np.random.default_rng(0))
