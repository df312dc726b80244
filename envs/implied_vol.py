"""Implied volatility: the Black-Scholes-Merton volatility that reproduces a price, vectorised.

The solver works on the out-of-the-money side (an in-the-money call is turned into the put of the
same strike by put-call parity, ``C - P = S e^{-q tau} - K e^{-r tau}``), where the price is a
smooth, increasing function of the total volatility ``s = sigma sqrt(tau)`` that does not
drown in intrinsic value. It runs Newton's method on the logarithm of the normalised price,
which is close to linear in ``s`` in the wings (far out of the money the price is
``exp(-x^2 / (2 s^2))``-like and a Newton step on the price itself overshoots), inside a bracket
``[lo, hi]`` that every iteration tightens: a Newton step that leaves the bracket is replaced by
bisection, so every element converges (Brent-style safeguarding; see Jaeckel, "Let's be
rational", Wilmott 2015, for the analysis of the wings).

A volatility exists if and only if the price lies in the no-arbitrage interval:
``max(w (S e^{-q tau} - K e^{-r tau}), 0) <= price < S e^{-q tau}`` for a call
(``< K e^{-r tau}`` for a put). At the lower bound the implied vol is 0; outside the interval
(or at ``tau == 0`` above the intrinsic value) there is no vol and the result is NaN. The
function says so: it warns (:class:`NoImpliedVolWarning`) with the count and the reason, or
raises with ``errors="raise"``; :func:`implied_vol_status` gives the reason of every element.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

from hedgearena.envs.black_scholes import call_flags, check_rates

FloatArray = NDArray[np.float64]

OK, BELOW_INTRINSIC, ABOVE_UPPER_BOUND, EXPIRED, NOT_FINITE = 0, 1, 2, 3, 4
STATUS_REASONS = {
    OK: "a volatility exists",
    BELOW_INTRINSIC: "price below the discounted intrinsic value (arbitrage: no vol exists)",
    ABOVE_UPPER_BOUND: "price at or above the upper bound S e^{-q tau} (call), K e^{-r tau} (put)",
    EXPIRED: "tau == 0 and the price differs from the intrinsic value",
    NOT_FINITE: "a non-finite or non-positive input",
}
"""Status codes of :func:`implied_vol_status` and what they mean."""

def _max_total_vol(ax: FloatArray) -> FloatArray:
    """Upper end of the bracket in total vol ``s = sigma sqrt(tau)``: ``10 + sqrt(100 + 4 |x|)``.

    At least 20 (at the money), more in the far wings, where the normalised OTM call ``b(s)``
    approaches its supremum ``e^{-|x| / 2}`` only once ``s^2`` is large against ``|x|`` (a fixed
    20 capped the vol of a 25-year option at 4.0 when its vol was 4.4, struck 6 standard
    deviations out). There ``d1 >= 10`` and the other leg is below ``e^{-50}`` of the first, so
    ``b`` is its supremum to about 1e-22: every price below the upper bound that float64 can tell
    from it has its vol inside the bracket (closer ones, rounding, get the bracket's end).
    """
    return 10.0 + np.sqrt(100.0 + 4.0 * np.abs(ax))

_ITERATIONS = 100


class NoImpliedVolWarning(UserWarning):
    """Some prices have no implied volatility (outside the no-arbitrage bounds)."""


def _bounds(
    price: FloatArray, spot: FloatArray, strike: FloatArray, tau: FloatArray,
    rate: float, dividend: float, is_call: NDArray[np.bool_],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The discounted forward intrinsic value, the upper bound and the OTM-side price."""
    spot_df = spot * np.exp(-dividend * tau)
    strike_df = strike * np.exp(-rate * tau)
    sign = np.where(is_call, 1.0, -1.0)
    intrinsic = np.maximum(sign * (spot_df - strike_df), 0.0)
    upper = np.where(is_call, spot_df, strike_df)
    return intrinsic, upper, spot_df - strike_df


def implied_vol_status(
    price: Any, spot: Any, strike: Any, tau: Any, rate: float = 0.0, dividend: float = 0.0,
    is_call: Any = True,
) -> NDArray[np.int8]:
    """The status code of every element (see :data:`STATUS_REASONS`), broadcast shape.

    Examples:
        >>> implied_vol_status([10.0, -1.0, 120.0], 100.0, 100.0, 1.0).tolist()
        [0, 1, 2]
    """
    check_rates(rate, dividend)  # a NaN rate gave vol 0 and status 0 (OK), silently
    p, s, k, t, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in
                                          (price, spot, strike, tau)),
                                        np.asarray(call_flags(is_call)))
    c = c.astype(bool)
    status = np.zeros(p.shape, dtype=np.int8)
    bad = ~(np.isfinite(p) & np.isfinite(s) & np.isfinite(k) & np.isfinite(t))
    bad |= (s <= 0) | (k <= 0) | (t < 0)
    safe = [np.where(bad, 1.0, v) for v in (s, k, t)]
    intrinsic, upper, _ = _bounds(
        np.where(bad, 0.0, p), safe[0], safe[1], safe[2], rate, dividend, c
    )
    tol = 1e-13 * upper
    status[p < intrinsic - tol] = BELOW_INTRINSIC
    status[(p >= upper) & (status == OK)] = ABOVE_UPPER_BOUND
    expired = (safe[2] == 0) & (np.abs(p - intrinsic) > tol)
    status[expired & (status == OK)] = EXPIRED
    status[bad] = NOT_FINITE
    return status


def implied_volatility(
    price: Any,
    spot: Any,
    strike: Any,
    tau: Any,
    rate: float = 0.0,
    dividend: float = 0.0,
    is_call: Any = True,
    *,
    tol: float = 1e-14,
    errors: str = "warn",
) -> FloatArray:
    """Black-Scholes-Merton implied volatility of European option prices.

    Args:
        price: option prices, currency.
        spot: price of the underlying, currency (> 0).
        strike: strikes, currency (> 0).
        tau: times to expiry, years (>= 0).
        rate: risk-free rate, continuously compounded, per year.
        dividend: dividend yield, continuously compounded, per year.
        is_call: True for calls, False for puts (bool or bool array).
        tol: stop when the bracket on the total vol ``s = sigma sqrt(tau)`` is narrower than
            ``tol s`` (relative) or the relative error of the normalised out-of-the-money price
            is below ``tol``.
        errors: what to do where no vol exists: ``"warn"`` (NaN and a
            :class:`NoImpliedVolWarning`), ``"nan"`` (NaN silently) or ``"raise"`` (ValueError).

    Returns:
        Annualised implied vols, float64, the broadcast shape; NaN exactly where no vol exists
        (:func:`implied_vol_status` is not 0). Prices at the intrinsic value give 0.

    Raises:
        ValueError: with ``errors="raise"`` where no vol exists; always for a ``rate`` or
            ``dividend`` that is not a finite number, or an ``is_call`` that is a string or None.

    Shape:
        All inputs broadcast; the output has the broadcast shape.

    Examples:
        >>> round(float(implied_volatility(9.227006, 100.0, 100.0, 1.0, 0.05, 0.02)), 6)
        0.2
        >>> vols = implied_volatility([10.450584, 0.0], 100.0, [100.0, 50.0], 1.0, 0.05,
        ...                           is_call=False)  # a put worth 10.45; one at its intrinsic 0
        >>> np.round(vols, 6).tolist()
        [0.328892, 0.0]
    """
    if errors not in ("warn", "nan", "raise"):
        raise ValueError(f"errors must be 'warn', 'nan' or 'raise', got {errors!r}")
    status = implied_vol_status(price, spot, strike, tau, rate, dividend, is_call)
    p, s, k, t, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in
                                          (price, spot, strike, tau)), np.asarray(is_call))
    ok = status == 0
    _report(status, errors)
    vol = np.full(p.shape, np.nan)
    if not ok.any():
        return vol
    p, s, k, t, c = (a[ok] for a in (p, s, k, t, c.astype(bool)))
    vol[ok] = _solve(p, s, k, t, rate, dividend, c, tol)
    return vol


def _report(status: NDArray[np.int8], errors: str) -> None:
    failed = status != OK
    if errors == "nan" or not failed.any():
        return
    counts = {STATUS_REASONS[int(code)]: int((status == code).sum())
              for code in np.unique(status[failed])}
    text = "; ".join(f"{n} x {reason}" for reason, n in counts.items())
    message = f"no implied volatility for {int(failed.sum())} of {status.size} prices: {text}"
    if errors == "raise":
        raise ValueError(message)
    warnings.warn(message + " (NaN returned there)", NoImpliedVolWarning, stacklevel=3)


def _solve(
    price: FloatArray, spot: FloatArray, strike: FloatArray, tau: FloatArray,
    rate: float, dividend: float, is_call: NDArray[np.bool_], tol: float,
) -> FloatArray:
    """Safeguarded Newton on the log of the OTM price normalised by ``sqrt(F K)``."""
    intrinsic, _, forward_value = _bounds(price, spot, strike, tau, rate, dividend, is_call)
    strike_df = strike * np.exp(-rate * tau)
    forward = spot * np.exp((rate - dividend) * tau)
    x = np.log(forward / strike)  # log-moneyness of the forward
    # The OTM price: a call when x <= 0, a put when x > 0 (parity moves the input there).
    otm_is_call = x <= 0
    otm_price = price - np.where(is_call == otm_is_call, 0.0, np.where(is_call, 1.0, -1.0)
                                 * forward_value)
    # Normalise by the discounted sqrt(F K): b(s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2)
    # for the call; puts alike with -x. Work with |x| (OTM call of log-moneyness -|x|).
    norm = strike_df * np.exp(0.5 * x)  # = e^{-r tau} sqrt(F K)
    target = np.maximum(otm_price, 0.0) / norm
    ax = -np.abs(x)
    total = np.zeros_like(price)
    positive = target > 0
    at_intrinsic = price <= intrinsic
    live = positive & ~at_intrinsic
    if live.any():
        total[live] = _newton_bisect(target[live], ax[live], tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tau > 0, total / np.sqrt(np.where(tau > 0, tau, 1.0)), 0.0)


def _otm_call(s: FloatArray, ax: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Normalised OTM call ``b(s)`` (``ax <= 0``) and ``db/ds = n(ax/s + s/2) e^{ax/2}``."""
    d1 = ax / s + 0.5 * s
    d2 = d1 - s
    half = np.exp(0.5 * ax)
    b = half * ndtr(d1) - ndtr(d2) / half
    vega = half * np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    return b, vega


def _initial_guess(target: FloatArray, ax: FloatArray, hi: FloatArray) -> FloatArray:
    """Brenner-Subrahmanyam at the money, the wing asymptote ``s ~ |x| / sqrt(2 ln(1/b))`` away.

    Clipped to ``[1e-8, hi / 2]``, the lower half of the bracket ``(0, hi)``.
    """
    atm = math.sqrt(2.0 * math.pi) * target
    wing = -ax / np.sqrt(np.maximum(2.0 * np.log(1.0 / np.maximum(target, 1e-300)), 1e-12))
    return np.clip(np.maximum(atm, wing), 1e-8, 0.5 * hi)


def _newton_bisect(target: FloatArray, ax: FloatArray, tol: float) -> FloatArray:
    """Solve ``b(s) = target`` for the total vol ``s`` in ``(0, _max_total_vol(ax))``."""
    lo = np.zeros_like(target)
    hi = _max_total_vol(ax)
    s = _initial_guess(target, ax, hi)
    log_target = np.log(target)
    active = np.arange(target.size)
    out = s.copy()
    for _ in range(_ITERATIONS):
        b, vega = _otm_call(s, ax[active])
        err = b - target[active]
        lo = np.where(err < 0, s, lo)
        hi = np.where(err > 0, s, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Newton on ln b: step = (ln b - ln target) * b / vega; on b itself near the money.
            log_step = (np.log(np.maximum(b, 1e-300)) - log_target[active]) * b / vega
            step = np.where(b > 0, log_step, -np.inf)
            new = s - step
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        done = (np.abs(err) <= tol * target[active]) | (hi - lo <= tol * np.maximum(s, 1e-300))
        out[active] = np.where(done, s, new)
        keep = ~done
        if not keep.any():
            break
        active, s, lo, hi = active[keep], new[keep], lo[keep], hi[keep]
    return out
