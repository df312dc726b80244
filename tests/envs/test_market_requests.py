"""A market model's request and result are checked: the generator, the time grid, QE's digits."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from hedgearena.envs.gbm import GBM
from hedgearena.envs.heston import Heston, qe_variance_step
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.merton import MertonJumpDiffusion
from hedgearena.envs.sabr import SABR
from hedgearena.envs.scenarios import Gap
from hedgearena.envs.vol_surface import FlatVol

MODELS = [GBM(), Heston(), MertonJumpDiffusion(), SABR(), Gap(base=GBM(), size=-0.2, step=2)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("rng", [None, 7, np.random.RandomState(0)], ids=["None", "int", "legacy"])
def test_simulate_names_a_generator_that_is_not_one(model: object, rng: object) -> None:
    """``simulate(..., rng=None)`` used to fail with "'NoneType' object has no attribute ..."."""
    with pytest.raises(TypeError, match=r"simulate: rng must be a numpy.random.Generator"):
        model.simulate(4, 3, 1 / 252, rng)  # type: ignore[attr-defined]


def test_a_generator_is_taken_and_draws_the_same_paths() -> None:
    a = GBM().simulate(4, 3, 1 / 252, np.random.default_rng(1)).spot
    b = GBM().simulate(4, 3, 1 / 252, np.random.default_rng(1)).spot
    np.testing.assert_array_equal(a, b)


def _paths(times: list[float]) -> MarketPaths:
    shape = (2, len(times))
    return MarketPaths(
        times=np.asarray(times), spot=np.full(shape, 100.0), variance=np.full(shape, 0.04),
        vol_state=np.full(shape, 0.2), surface=FlatVol(),
    )


@pytest.mark.parametrize(
    "times",
    [[0.1, 0.2, 0.3], [0.0, 0.2, 0.2], [0.0, 0.3, 0.2], [0.0, math.nan, 0.2], [0.0, 0.1, math.inf],
     [math.nan, 0.1, 0.2]],
    ids=["late start", "repeated", "back in time", "NaN", "inf", "NaN start"],
)
def test_market_paths_refuse_a_grid_that_does_not_run_forward_from_zero(times: list[float]) -> None:
    """The book reads times to expiry from ``times``: a bad grid priced at a wrong tau."""
    with pytest.raises(ValueError, match="times must start at 0 and increase strictly"):
        _paths(times)


def test_market_paths_take_an_uneven_forward_grid() -> None:
    assert _paths([0.0, 0.001, 0.5]).n_steps == 2


def _qe_quadratic_reference(v: float, dt: float, kappa: float, theta: float, xi: float,
                            z: float) -> float:
    """Andersen (2008), eqs. (17)-(19) and (23)-(24), at 50 digits: ``a (b + z)^2``."""
    with mpmath.workdps(50):
        v_, dt_, k_, th_, xi_ = (mpmath.mpf(x) for x in (v, dt, kappa, theta, xi))
        decay = mpmath.exp(-k_ * dt_)
        m = th_ + (v_ - th_) * decay
        s2 = v_ * xi_**2 * decay / k_ * (1 - decay) + th_ * xi_**2 / (2 * k_) * (1 - decay) ** 2
        psi = s2 / m**2
        assert psi <= 1.5
        b2 = 2 / psi - 1 + mpmath.sqrt(2 / psi) * mpmath.sqrt(2 / psi - 1)
        a = m / (1 + b2)
        return float(a * (mpmath.sqrt(b2) + z) ** 2)


@pytest.mark.parametrize("kappa", [1e-9, 1e-6, 1.5, 20.0])
def test_qe_step_keeps_its_digits_when_kappa_dt_is_tiny(kappa: float) -> None:
    """``1 - exp(-kappa dt)`` lost digits for kappa dt near 0 (relative error eps / (kappa dt):
    the new variance 2.8e-7 off, relatively, at kappa = 1e-9 and a daily step);
    ``-expm1(-kappa dt)`` keeps them."""
    v, dt, theta, xi = 0.04, 1 / 252, 0.05, 0.3
    z = np.array([-1.3, 0.0, 0.7])
    step = qe_variance_step(np.full(3, v), dt, kappa, theta, xi, z, np.full(3, 0.5), 0.0)
    expected = [_qe_quadratic_reference(v, dt, kappa, theta, xi, float(x)) for x in z]
    np.testing.assert_allclose(step.variance, expected, rtol=1e-12)
