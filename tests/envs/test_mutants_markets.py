"""Market models against their papers, step by step: tests found by mutation testing.

The simulation tests replay each model's documented draws (same seed, same order) through the
published scheme written out here, path by path in plain Python floats, and compare every
spot and variance to 1e-12: Andersen's (2008) QE step with its martingale correction, Lord,
Koekkoek and van Dijk's (2010) full truncation, the SABR log-Euler step with exact log-normal
alpha, Merton's (1976) exact jump-diffusion step. A wrong sign, factor or branch in a scheme
then fails deterministically, not within a Monte Carlo error. The pricing tests use QuantLib,
closed forms and moments, cited per test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.envs.gbm import GBM
from hedgearena.envs.heston import Heston
from hedgearena.envs.heston_surface import (
    HestonGrid,
    HestonSurface,
    heston_call_price,
    heston_characteristic,
)
from hedgearena.envs.merton import MertonJumpDiffusion, MertonSurface, merton_call_price
from hedgearena.envs.sabr import SABR

ql = pytest.importorskip("QuantLib")


# ---- Heston: Andersen's QE scheme, written out from the paper --------------------------------


def _andersen_qe_path(v0, n_steps, dt, kappa, theta, xi, rho, normals, uniforms):
    """One path of Andersen (2008): QE variance (sec. 3.2.4, psi_c = 1.5) and the log spot of
    eq. (33) with gamma_1 = gamma_2 = 1/2 and the martingale-corrected K_0* (sec. 4.2.3, eq. (38)
    with r = 0). ``normals[j] = (Z_v, Z)`` and ``uniforms[j] = U`` of step ``j``. Returns the
    driftless log spots and the variances, and which branches were taken. Where the moment
    generating function ``M(A)``, ``A = K_2 + K_4 / 2``, does not exist (``2 A a >= 1``, or
    ``A >= beta``), the uncorrected ``K_0 = -rho kappa theta dt / xi`` of eq. (33)."""
    e = math.exp(-kappa * dt)
    k1 = 0.5 * dt * (kappa * rho / xi - 0.5) - rho / xi
    k2 = 0.5 * dt * (kappa * rho / xi - 0.5) + rho / xi
    k3 = k4 = 0.5 * dt * (1.0 - rho * rho)
    big_a = k2 + 0.5 * k4
    x, v = [0.0], [v0]
    branches = set()
    for j in range(n_steps):
        zv, z = normals[j]
        u = uniforms[j]
        vj = v[-1]
        m = theta + (vj - theta) * e
        s2 = vj * xi**2 * e / kappa * (1.0 - e) + theta * xi**2 / (2.0 * kappa) * (1.0 - e) ** 2
        psi = s2 / m**2
        if psi <= 1.5:
            branches.add("quadratic")
            b2 = 2.0 / psi - 1.0 + math.sqrt(2.0 / psi) * math.sqrt(2.0 / psi - 1.0)
            a = m / (1.0 + b2)
            v_next = a * (math.sqrt(b2) + zv) ** 2
            q = 1.0 - 2.0 * big_a * a
            exists = q > 0.0
            log_m = big_a * b2 * a / q - 0.5 * math.log(q) if exists else math.nan
        else:
            branches.add("exponential")
            p = (psi - 1.0) / (psi + 1.0)
            beta = (1.0 - p) / m
            v_next = 0.0 if u <= p else math.log((1.0 - p) / (1.0 - u)) / beta
            exists = big_a < beta
            log_m = math.log(p + beta * (1.0 - p) / (beta - big_a)) if exists else math.nan
        if exists:
            k0 = -log_m - (k1 + 0.5 * k3) * vj
        else:  # M(A) does not exist: Andersen's uncorrected K_0 of eq. (33)
            branches.add("uncorrected")
            k0 = -rho * kappa * theta * dt / xi
        x.append(x[-1] + k0 + k1 * vj + k2 * v_next + math.sqrt(k3 * vj + k4 * v_next) * z)
        v.append(v_next)
    return np.array(x), np.array(v), branches


@pytest.mark.parametrize("rho", [-0.7, 0.3])
def test_heston_qe_paths_are_andersens_scheme_step_by_step(rho):
    """Every spot and variance of :meth:`Heston.simulate` (scheme "qe") against Andersen's
    scheme written out above, replaying the documented draws (per step two normals, then one
    uniform per path). Feller fails (2 kappa theta = 0.04 < xi^2 = 1) and the paths start at
    several variance levels, so both QE branches are exercised (asserted)."""
    kappa, theta, xi, dt, n_steps, rate, dividend = 0.5, 0.04, 1.0, 0.1, 8, 0.03, 0.01
    branches: set[str] = set()
    for v0 in (0.002, 0.04, 0.3):
        n = 5
        model = Heston(kappa=kappa, theta=theta, xi=xi, rho=rho, v0=v0, spot0=100.0, rate=rate,
                       dividend=dividend, surface="term")
        paths = model.simulate(n, n_steps, dt, np.random.default_rng(11))
        rng = np.random.default_rng(11)
        draws = [(rng.standard_normal((2, n)), rng.random(n)) for _ in range(n_steps)]
        for i in range(n):
            x, v, used = _andersen_qe_path(
                v0, n_steps, dt, kappa, theta, xi, rho,
                [(float(d[0][0, i]), float(d[0][1, i])) for d in draws],
                [float(d[1][i]) for d in draws])
            branches |= used
            times = dt * np.arange(n_steps + 1)
            np.testing.assert_allclose(paths.variance[i], v, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(paths.spot[i], 100.0 * np.exp(x + (rate - dividend) * times),
                                       rtol=1e-12)
    assert branches == {"quadratic", "exponential"}  # M(A) exists on every step


def test_heston_qe_falls_back_on_andersens_uncorrected_drift_where_the_mgf_does_not_exist():
    """One five-year step with ``rho = 0.95`` and a vol of variance of 2: ``M(A)`` of the QE
    variance does not exist, so the step takes Andersen's (2008) uncorrected ``K_0 = -rho kappa
    theta dt / xi`` (asserted: the "uncorrected" branch is taken), written out above. (The
    step is then no martingale: ``E[S_5]`` comes out about 300 to 400 against 100 at these
    parameters, within a Monte Carlo error of about 100: a step this coarse is not usable.)"""
    kappa, theta, xi, rho, dt, n = 2.0, 0.25, 2.0, 0.95, 5.0, 6
    branches: set[str] = set()
    for v0 in (0.01, 0.25):
        paths = Heston(kappa=kappa, theta=theta, xi=xi, rho=rho, v0=v0,
                       surface="term").simulate(n, 1, dt, np.random.default_rng(4))
        rng = np.random.default_rng(4)
        normals, uniform = rng.standard_normal((2, n)), rng.random(n)
        for i in range(n):
            x, v, used = _andersen_qe_path(v0, 1, dt, kappa, theta, xi, rho,
                                           [(float(normals[0, i]), float(normals[1, i]))],
                                           [float(uniform[i])])
            branches |= used
            np.testing.assert_allclose(paths.variance[i], v, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(paths.spot[i], 100.0 * np.exp(x), rtol=1e-12)
    assert "uncorrected" in branches


def test_heston_full_truncation_paths_are_lord_koekkoek_van_dijk_step_by_step():
    """Scheme "full_truncation" against Lord, Koekkoek and van Dijk (2010), Table 1 ("full
    truncation": f1(x) = x, f2 = f3 = x^+), written out: ``v~' = v~ + kappa (theta - v~+) dt +
    xi sqrt(v~+ dt) Z_v``, ``ln S' = ln S + (mu - v~+ / 2) dt + sqrt(v~+ dt) (rho Z_v +
    sqrt(1 - rho^2) Z_perp)``; the reported variance is ``v~+``. Feller fails, so the auxiliary
    ``v~`` goes negative (asserted), where full truncation differs from partial truncation and
    from reflection; the real-world drift ``mu`` is used in place of ``r - q``."""
    kappa, theta, xi, rho, v0, dt, n_steps, mu = 0.5, 0.04, 1.0, -0.6, 0.02, 0.05, 20, 0.07
    n = 6
    model = Heston(kappa=kappa, theta=theta, xi=xi, rho=rho, v0=v0, mu=mu, rate=0.02,
                   scheme="full_truncation", surface="term")
    paths = model.simulate(n, n_steps, dt, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    draws = [(rng.standard_normal((2, n)), rng.random(n)) for _ in range(n_steps)]
    went_negative = False
    for i in range(n):
        v_aux, log_s = v0, math.log(100.0)
        want_v, want_s = [v0], [100.0]
        for normals, _ in draws:
            zv, zp = float(normals[0, i]), float(normals[1, i])
            vp = max(v_aux, 0.0)
            log_s += (mu - 0.5 * vp) * dt + math.sqrt(vp * dt) * (rho * zv
                                                                   + math.sqrt(1 - rho**2) * zp)
            v_aux = v_aux + kappa * (theta - vp) * dt + xi * math.sqrt(vp * dt) * zv
            went_negative |= v_aux < 0.0
            want_v.append(max(v_aux, 0.0))
            want_s.append(math.exp(log_s))
        np.testing.assert_allclose(paths.variance[i], want_v, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(paths.spot[i], want_s, rtol=1e-12)
    assert went_negative


# ---- SABR: exact log-normal alpha, log-Euler forward -----------------------------------------


def test_sabr_paths_are_the_documented_scheme_step_by_step():
    """:meth:`SABR.simulate` against its scheme written out (Hagan et al. 2002 dynamics
    ``dF = alpha F^beta dW``, ``d alpha = nu alpha dZ``): ``alpha' = alpha exp(nu sqrt(dt) Z_a -
    nu^2 dt / 2)`` (exact), ``F' = F exp(s sqrt(dt) Z_F - s^2 dt / 2)`` with the local vol
    ``s = alpha F^(beta - 1)`` at the start of the step and ``Z_F = rho Z_a + sqrt(1 - rho^2)
    Z_perp``; the spot ``F e^{(r - q) t}``, ``vol_state`` the spot's alpha ``alpha e^{(1 - beta)
    (r - q) t}`` (the backbone of the forward to any fixed date), ``variance`` ``s^2``."""
    alpha0, beta, rho, nu, dt, n_steps, rate, dividend = 2.5, 0.4, -0.5, 0.8, 0.02, 15, 0.05, 0.01
    n = 5
    model = SABR(alpha0=alpha0, beta=beta, rho=rho, nu=nu, rate=rate, dividend=dividend)
    paths = model.simulate(n, n_steps, dt, np.random.default_rng(9))
    z_alpha, z_perp = np.random.default_rng(9).standard_normal((2, n, n_steps))
    for i in range(n):
        f, alpha = 100.0, alpha0
        want_f, want_alpha, want_var = [f], [alpha], [(alpha * f ** (beta - 1)) ** 2]
        for j in range(n_steps):
            za, zp = float(z_alpha[i, j]), float(z_perp[i, j])
            s = alpha * f ** (beta - 1.0)
            zf = rho * za + math.sqrt(1.0 - rho * rho) * zp
            f = f * math.exp(s * math.sqrt(dt) * zf - 0.5 * s * s * dt)
            alpha = alpha * math.exp(nu * math.sqrt(dt) * za - 0.5 * nu * nu * dt)
            want_f.append(f)
            want_alpha.append(alpha)
            want_var.append((alpha * f ** (beta - 1.0)) ** 2)
        t = dt * np.arange(n_steps + 1)
        np.testing.assert_allclose(paths.spot[i], np.array(want_f) * np.exp((rate - dividend) * t),
                                   rtol=1e-12)
        np.testing.assert_allclose(paths.vol_state[i], np.array(want_alpha)
                                   * np.exp((1.0 - beta) * (rate - dividend) * t), rtol=1e-12)
        np.testing.assert_allclose(paths.variance[i], want_var, rtol=1e-12)


def test_sabr_with_beta_one_and_no_vol_of_vol_is_blacks_model_and_never_absorbed():
    """``beta = 1``, ``nu = 0``: SABR is Black's log-normal forward with vol ``alpha`` (Hagan et
    al. 2002, sec. 3), which the log-Euler step simulates exactly: ``F_T = F_0 exp(alpha W_T -
    alpha^2 T / 2)``, never 0. At 150% vol over 5 years many paths fall below a thousandth of
    ``F_0`` (a third of them, asserted); none may be absorbed there (the level is 1e-12 of ``F_0``,
    which they stay above: ``ln(F_T / F_0) ~ N(-5.6, 3.35^2)`` reaches -27.6 at 6.6 sd)."""
    alpha, dt, n_steps, n = 1.5, 0.5, 10, 2000
    paths = SABR(alpha0=alpha, beta=1.0, rho=0.0, nu=0.0).simulate(n, n_steps, dt,
                                                                     np.random.default_rng(8))
    _, z_perp = np.random.default_rng(8).standard_normal((2, n, n_steps))
    log_f = np.cumsum(alpha * math.sqrt(dt) * z_perp - 0.5 * alpha**2 * dt, axis=1)
    want = 100.0 * np.exp(log_f)
    assert np.mean(want[:, -1] < 0.1) > 0.25  # a third end below 1e-3 F_0 (P = 0.35)
    assert want.min() > 1e-10
    np.testing.assert_allclose(paths.spot[:, 1:], want, rtol=1e-10)


# ---- Merton: exact steps ---------------------------------------------------------------------


def test_merton_paths_are_the_exact_jump_diffusion_step_by_step():
    """:meth:`MertonJumpDiffusion.simulate` against Merton (1976), eq. (2), written out: over a
    step ``ln S' - ln S = (mu - lambda k - sigma^2/2) dt + sigma sqrt(dt) Z_1 + N m + s sqrt(N)
    Z_2`` with ``N ~ Poisson(lambda dt)`` and the compensator ``k = e^{m + s^2/2} - 1``; the
    documented draws (the counts, then two normals) replayed. ``vol_state`` is ``sqrt(sigma^2 +
    lambda (m^2 + s^2))``."""
    sigma, lam, m, s, mu, dt, n_steps, n = 0.25, 4.0, -0.08, 0.2, 0.06, 0.1, 12, 4
    model = MertonJumpDiffusion(mu=mu, sigma=sigma, jump_intensity=lam, jump_mean=m, jump_std=s,
                                rate=0.02, dividend=0.03)
    paths = model.simulate(n, n_steps, dt, np.random.default_rng(21))
    rng = np.random.default_rng(21)
    counts = rng.poisson(lam * dt, (n, n_steps))
    z1, z2 = rng.standard_normal((2, n, n_steps))
    assert counts.max() >= 2  # the sqrt(N) scaling of the jump sizes is exercised
    k = math.exp(m + 0.5 * s * s) - 1.0
    for i in range(n):
        log_s = [0.0]
        for j in range(n_steps):
            c = float(counts[i, j])
            log_s.append(log_s[-1] + (mu - lam * k - 0.5 * sigma**2) * dt
                         + sigma * math.sqrt(dt) * z1[i, j] + c * m + s * math.sqrt(c) * z2[i, j])
        np.testing.assert_allclose(paths.spot[i], 100.0 * np.exp(log_s), rtol=1e-12)
    np.testing.assert_allclose(paths.vol_state, math.sqrt(sigma**2 + lam * (m * m + s * s)),
                               rtol=1e-14)


# ---- parameter checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        (Heston, {"theta": 0.0}, r"Heston.theta must be a finite number > 0.0, got 0.0"),
        (Heston, {"kappa": math.nan}, r"Heston.kappa must be a finite number > 0.0, got nan"),
        (Heston, {"xi": math.inf}, r"Heston.xi must be a finite number > 0.0, got inf"),
        (Heston, {"rho": -1.01}, r"Heston.rho must be a finite number >= -1.0 and <= 1.0"),
        (Heston, {"v0": math.nan}, r"Heston.v0 must be a finite number >= 0.0, got nan"),
        (Heston, {"spot0": 0.0}, r"Heston.spot0 must be a finite number > 0.0, got 0.0"),
        (Heston, {"mu": math.nan}, r"Heston.mu must be a finite number, got nan"),
        (SABR, {"alpha0": 0.0}, r"SABR.alpha0 must be a finite number > 0.0, got 0.0"),
        (SABR, {"alpha0": math.inf}, r"SABR.alpha0 must be a finite number > 0.0, got inf"),
        (SABR, {"beta": 1.1}, r"SABR.beta must be"),
        (SABR, {"rho": 1.0}, r"SABR.rho must be"),
        (SABR, {"nu": -0.1}, r"SABR.nu must be"),
        (SABR, {"dividend": math.nan}, r"SABR.dividend must be a finite number, got nan"),
        (MertonJumpDiffusion, {"sigma": 0.0},
         r"MertonJumpDiffusion.sigma must be a finite number > 0.0, got 0.0"),
        (MertonJumpDiffusion, {"jump_intensity": -1.0},
         r"MertonJumpDiffusion.jump_intensity must be a finite number >= 0.0, got -1.0"),
        (MertonJumpDiffusion, {"jump_mean": 1.5},
         r"MertonJumpDiffusion.jump_mean must be a finite number >= -1.0 and <= 1.0, got 1.5"),
        (MertonJumpDiffusion, {"jump_std": -0.1},
         r"MertonJumpDiffusion.jump_std must be a finite number >= 0.0 and <= 1.0, got -0.1"),
        (GBM, {"sigma": math.inf}, r"GBM.sigma must be a finite number > 0.0, got inf"),
        (GBM, {"dividend": math.inf}, r"GBM.dividend must be a finite number, got inf"),
    ],
)
def test_every_bad_market_parameter_is_refused_by_name(model, kwargs, message):
    """A bad value names the model, the field, what is allowed and the value (DESIGN.md)."""
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


# ---- Heston's characteristic function: its cumulants in closed form --------------------------


@pytest.mark.parametrize(("tau", "v0", "rho"), [(0.25, 0.01, -0.7), (2.0, 0.09, 0.5)])
def test_heston_characteristic_function_has_the_cir_mean_of_the_log_price(tau, v0, rho):
    """The log price relative to the forward has mean ``-1/2 E[int_0^tau v_t dt] = -1/2 (theta
    tau + (v0 - theta)(1 - e^{-kappa tau}) / kappa)`` (Ito on ``ln S`` and the CIR mean
    ``E[v_t] = theta + (v0 - theta) e^{-kappa t}``, Cox, Ingersoll, Ross 1985), whatever ``rho``
    and ``xi``; it is the first cumulant, ``Im ln phi(eps) / eps`` up to ``O(eps^2)``. And
    ``phi(-i) = 1`` (``E[S_T] = F``, the martingale; Heston 1993)."""
    kappa, theta, xi, eps = 1.5, 0.04, 0.8, 1e-5
    mean = -0.5 * (theta * tau + (v0 - theta) * -math.expm1(-kappa * tau) / kappa)
    phi = heston_characteristic(np.array([eps, -1j]), tau, v0, kappa, theta, xi, rho)
    assert np.log(phi[0]).imag / eps == pytest.approx(mean, rel=1e-7, abs=1e-12)
    assert phi[1] == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize(("days", "v0", "kappa", "theta", "xi", "rho"), [
    (30, 0.02, 3.0, 0.06, 0.4, -0.9),
    (400, 0.09, 0.8, 0.05, 1.2, 0.6),
])
def test_heston_call_with_carry_against_quantlib_analytic_heston(days, v0, kappa, theta, xi, rho):
    """``S e^{-q tau} c(ln(K / F))`` (the module's docstring) against QuantLib's
    AnalyticHestonEngine (Heston 1993) with rate 4% and dividend 1.5%, to 1e-6 of the spot."""
    rate, dividend, spot = 0.04, 0.015, 100.0
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.HestonProcess(
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, dividend, dc)),
        ql.QuoteHandle(ql.SimpleQuote(spot)), v0, kappa, theta, xi, rho)
    engine = ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100_000)
    tau = days / 365
    forward = spot * math.exp((rate - dividend) * tau)
    strikes = np.array([70.0, 95.0, 100.0, 110.0, 140.0])
    ours = spot * math.exp(-dividend * tau) * heston_call_price(np.log(strikes / forward), tau,
                                                                v0, kappa, theta, xi, rho)
    for strike, got in zip(strikes, ours, strict=True):
        option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, float(strike)),
                                  ql.EuropeanExercise(today + days))
        option.setPricingEngine(engine)
        assert got == pytest.approx(option.NPV(), abs=1e-6 * spot), strike


# ---- Merton's series in Merton's own form ----------------------------------------------------


def _bs_call(spot, strike, tau, vol, rate, dividend):
    """Black-Scholes-Merton call (Hull, "Options, Futures and Other Derivatives", eq. (17.4))."""
    sd = vol * math.sqrt(tau)
    d1 = (math.log(spot / strike) + (rate - dividend) * tau) / sd + 0.5 * sd
    n = lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0))  # noqa: E731
    return spot * math.exp(-dividend * tau) * n(d1) - strike * math.exp(-rate * tau) * n(d1 - sd)


def _merton_hull(spot, strike, tau, sigma, lam, m, s, rate, dividend, terms=200):
    """Merton (1976), eq. (16) as in Hull (ch. 27): ``sum_n e^{-lam' tau} (lam' tau)^n / n!
    BS(S, K, tau, sigma_n, r_n, q)`` with ``lam' = lam (1 + k)``, ``k = e^{m + s^2/2} - 1``,
    ``sigma_n^2 = sigma^2 + n s^2 / tau``, ``r_n = r - lam k + n (m + s^2/2) / tau``."""
    k = math.exp(m + 0.5 * s * s) - 1.0
    lam_p = lam * (1.0 + k)
    total = 0.0
    for n in range(terms):
        weight = math.exp(-lam_p * tau + n * math.log(lam_p * tau) - math.lgamma(n + 1))
        r_n = rate - lam * k + n * (m + 0.5 * s * s) / tau
        total += weight * _bs_call(spot, strike, tau, math.sqrt(sigma**2 + n * s * s / tau), r_n,
                                   dividend)
    return total


@pytest.mark.parametrize(("lam", "m", "s", "tau"), [(5.0, -0.6, 0.3, 1.0), (2.0, -0.9, 0.1, 3.0)])
def test_merton_series_with_large_down_jumps_is_mertons_own_form(lam, m, s, tau):
    """Large down-jumps (log jumps of -0.6 and -0.9): terms whose scaled spot ``S e^{n(m +
    s^2/2) - lam k tau}`` is far below the strike carry much of the price and must be summed,
    not dropped. Reference: Merton's own form of the series (above), rate 3%, dividend 1%."""
    for strike in (40.0, 100.0, 130.0):
        got = float(merton_call_price(100.0, strike, tau, 0.2, lam, m, s, 0.03, 0.01))
        want = _merton_hull(100.0, strike, tau, 0.2, lam, m, s, 0.03, 0.01)
        assert got == pytest.approx(want, rel=1e-10), strike


@pytest.mark.parametrize(
    ("surface", "kwargs", "message"),
    [
        (HestonGrid, {"max_vol": 0.0}, r"HestonGrid.max_vol must be a finite number > 0.0, got 0"),
        (HestonGrid, {"n_vol": 1}, r"HestonGrid.n_vol must be an integer >= 2, got 1"),
        (HestonSurface, {"rho": 1.2},
         r"HestonSurface.rho must be a finite number >= -1.0 and <= 1.0, got 1.2"),
        (HestonSurface, {"theta": 0.0}, r"HestonSurface.theta must be a finite number > 0.0"),
        (MertonSurface, {"jump_std": 2.0},
         r"MertonSurface.jump_std must be a finite number >= 0.0 and <= 1.0, got 2.0"),
    ],
)
def test_every_bad_surface_parameter_is_refused_by_name(surface, kwargs, message):
    """The tabulated surfaces check their parameters as the markets do (a zero ``max_vol``
    would tabulate a single variance; ``rho`` outside [-1, 1] a complex characteristic
    function)."""
    with pytest.raises(ValueError, match=message):
        surface(**kwargs)
