"""Black-Scholes-Merton prices and greeks of European options, vectorised, numpy and torch.

The underlying pays a continuous dividend yield ``q`` and the rate is ``r`` (both continuously
compounded, per year). With ``F = S e^{(r-q) tau}``, ``s = sigma sqrt(tau)``,
``d1 = ln(F / K) / s + s / 2``, ``d2 = d1 - s`` and ``w = +1`` for a call, ``-1`` for a put
(Merton 1973; Hull, *Options, Futures and Other Derivatives*, ch. 17 and 19; Haug, *The Complete
Guide to Option Pricing Formulas*, 2nd ed., sec. 1.1 and 2.1)::

    price = w (S e^{-q tau} N(w d1) - K e^{-r tau} N(w d2))
    delta = w e^{-q tau} N(w d1)                     dV/dS
    gamma = e^{-q tau} n(d1) / (S s)                 d2V/dS2
    vega  = S e^{-q tau} n(d1) sqrt(tau)             dV/dsigma, per 1.00 of vol
    theta = -S e^{-q tau} n(d1) sigma / (2 sqrt(tau))
            + w (q S e^{-q tau} N(w d1) - r K e^{-r tau} N(w d2))   dV/dt per year (calendar)
    vanna = -e^{-q tau} n(d1) d2 / sigma             d2V/dS dsigma
    volga = vega d1 d2 / sigma                       d2V/dsigma2

Limits (exact, no NaN): at ``tau == 0`` the option is its intrinsic value ``max(w (S - K), 0)``,
delta is ``w 1{w (S - K) > 0}`` (``w / 2`` exactly at the money, the limit of ``N(d1)``), and
gamma, vega, theta, vanna and volga are 0. With ``sigma == 0`` and ``tau > 0`` the price is the
discounted forward intrinsic ``max(w (S e^{-q tau} - K e^{-r tau}), 0)``, delta
``w e^{-q tau} 1{w (F - K) > 0}`` and theta the carry of that deterministic value; gamma, vega,
vanna and volga are 0. Both come out of the same formulas with ``d1 = d2 = +-inf`` (0 at the
forward), so there is one formula per greek.

Inputs broadcast against each other (``is_call`` may be a bool array: a book mixes calls and
puts); outputs have the broadcast shape. numpy inputs are validated (finite; spot and strike
> 0, tau and vol >= 0) with an error naming the argument; so are, for numpy and torch alike,
``rate`` and ``dividend`` (finite numbers) and ``is_call`` (bools, or numbers read as bools;
never strings or None). Torch inputs are not checked elementwise (that would synchronise a
GPU); numbers and arrays given beside tensors become tensors of the tensors' promoted floating
dtype and device.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from array_api_compat import array_namespace, is_torch_array

from hedgearena.envs.normal import normal_cdf, normal_pdf, one_thread

GREEKS = ("price", "delta", "gamma", "vega", "theta", "vanna", "volga")


class Greeks(NamedTuple):
    """Price and greeks (see the module docstring for units); fields not asked for are None."""

    price: Any
    delta: Any
    gamma: Any
    vega: Any
    theta: Any
    vanna: Any
    volga: Any


class _Terms(NamedTuple):
    """The quantities every greek shares, computed once."""

    spot: Any
    strike: Any
    tau: Any
    vol: Any
    sign: Any  # w: +1 call, -1 put (a float, or an array for mixed books)
    live: Any  # s > 0 (None when every element is live)
    total: Any  # s = sigma sqrt(tau), 1 where not live
    sqrt_tau: Any
    d1: Any
    d2: Any
    q_df: Any  # e^{-q tau} (the float 1.0 when q == 0)
    spot_df: Any  # S e^{-q tau}
    strike_df: Any  # K e^{-r tau}
    cdf1: Any  # N(w d1) (None when no selected greek reads it: see _cdfs_needed)
    cdf2: Any  # N(w d2) (likewise)
    pdf1: Any  # n(d1), 0 where not live
    rate: float
    dividend: float
    xp: Any


def _namespace(*values: Any) -> Any:
    arrays = [v for v in values if hasattr(v, "shape")]
    return array_namespace(*arrays) if arrays else array_namespace(np.asarray(0.0))


def _validate(spot: Any, strike: Any, tau: Any, vol: Any) -> None:
    """Cheap checks for numpy inputs; the message names the argument and the allowed range.

    Values must be finite: an infinite strike made the call's price ``0 * inf``, NaN (a huge
    finite strike gives the limits, a worthless call and a put worth ``K e^{-r tau}``).
    """
    for name, value, positive in (("spot", spot, True), ("strike", strike, True),
                                  ("tau", tau, False), ("vol", vol, False)):
        low = np.min(value) if value.size else 1.0
        high = np.max(value) if value.size else 1.0
        if (low <= 0 if positive else low < 0) or np.isnan(low) or high == np.inf:
            allowed = "> 0" if positive else ">= 0"
            bad = high if high == np.inf else low
            raise ValueError(f"{name} must be finite and {allowed} (currency or years), "
                             f"got {float(bad)!r}")


def check_rates(rate: Any, dividend: Any) -> None:
    """``rate`` and ``dividend`` must be finite numbers (a NaN rate gave NaN prices silently)."""
    if (isinstance(rate, float) and isinstance(dividend, float) and math.isfinite(rate)
            and math.isfinite(dividend)):
        return
    for name, value in (("rate", rate), ("dividend", dividend)):
        try:
            finite = math.isfinite(value.detach() if is_torch_array(value) else value)
        except (TypeError, ValueError, RuntimeError):  # an array of rates, a string, None
            finite = False
        if not finite:
            raise ValueError(f"{name} must be a finite number (continuously compounded, per "
                             f"year), got {value!r}")


def call_flags(is_call: Any) -> Any:
    """``is_call`` as a bool (a single option) or a numpy array of bools (or of 0/1 numbers).

    A list was truthy as a whole (every option priced as a call), so was a string and None a
    put: lists are arrays now, strings and None are refused.
    """
    if isinstance(is_call, (bool, np.bool_)):
        return bool(is_call)
    flags = np.asarray(is_call)
    if flags.dtype.kind not in "biuf":
        raise ValueError(f"is_call must be a bool or an array of bools (True for a call), got "
                         f"{is_call!r:.80} of dtype {flags.dtype}")
    return bool(flags) if flags.ndim == 0 else flags


def _tensors(spot: Any, strike: Any, tau: Any, vol: Any, is_call: Any) -> tuple[Any, ...]:
    """Torch inputs of one floating dtype (the promoted one) and device; numbers become tensors.

    A python float ``tau`` beside a tensor spot failed in ``torch.sqrt``; a 0-d float64 spot
    beside a bool tensor ``is_call`` was priced in float32 (torch promotes to the sign's dtype).
    """
    tensors = [v for v in (spot, strike, tau, vol) if is_torch_array(v)]
    floating = [v.dtype for v in tensors if v.is_floating_point()]
    dtype = floating[0] if floating else torch.get_default_dtype()
    for other in floating[1:]:
        dtype = torch.promote_types(dtype, other)
    device = tensors[0].device
    values = tuple(v.to(dtype) if is_torch_array(v) else torch.as_tensor(v, dtype=dtype,
                                                                          device=device)
                   for v in (spot, strike, tau, vol))
    if is_torch_array(is_call):
        if is_call.is_complex():
            raise ValueError(f"is_call must be a bool or an array of bools (True for a call), "
                             f"got a tensor of dtype {is_call.dtype}")
        flags = is_call.to(device)
    else:
        flags = call_flags(is_call)
        if not isinstance(flags, bool):
            flags = torch.as_tensor(flags, device=device)
    return (*values, flags)


def _signed(sign: Any, x: Any) -> Any:
    """``w x`` without a multiplication when ``w`` is the float +1 or -1."""
    if isinstance(sign, float):
        return x if sign > 0 else -x
    return sign * x


def _terms(
    spot: Any, strike: Any, tau: Any, vol: Any, rate: float, dividend: float, is_call: Any,
    cdfs: tuple[bool, bool] = (True, True),
) -> _Terms:
    """The shared quantities; ``cdfs`` says whether ``N(w d1)`` and ``N(w d2)`` are wanted."""
    xp = _namespace(spot, strike, tau, vol, is_call)
    if hasattr(is_call, "shape"):
        sign = xp.where(xp.asarray(is_call), 1.0, -1.0)
        if sign.dtype != spot.dtype:  # torch's where gives its default dtype
            sign = xp.astype(sign, spot.dtype)
        spot = spot + 0.0 * sign  # every output gets the full broadcast shape
    else:
        sign = 1.0 if is_call else -1.0
    sqrt_tau = xp.sqrt(tau)
    total = vol * sqrt_tau
    live = total > 0
    log_moneyness = xp.log(spot / strike)
    if rate != dividend:
        log_moneyness = log_moneyness + (rate - dividend) * tau
    if bool(xp.all(live)):
        d1 = log_moneyness / total + 0.5 * total
        d2 = d1 - total
        pdf1 = normal_pdf(d1)
        live_mask = None
    else:
        if is_torch_array(tau):  # d sqrt(tau) / d tau is inf at 0, and 0 * inf NaN in autograd
            sqrt_tau = xp.sqrt(xp.where(tau > 0, tau, 0.0))  # the same values, gradient 0 there
            total = vol * sqrt_tau
        safe = xp.where(live, total, 1.0)
        limit = xp.where(log_moneyness > 0, xp.inf, xp.where(log_moneyness < 0, -xp.inf, 0.0))
        d1 = xp.where(live, log_moneyness / safe + 0.5 * total, limit)
        d2 = xp.where(live, d1 - total, limit)
        pdf1 = xp.where(live, normal_pdf(xp.where(live, d1, 0.0)), 0.0)
        total, live_mask = safe, live
    q_df = xp.exp(-dividend * tau) if dividend else 1.0
    spot_df = spot * q_df if dividend else spot
    strike_df = strike * xp.exp(-rate * tau) if rate else strike
    return _Terms(
        spot, strike, tau, vol, sign, live_mask, total, sqrt_tau, d1, d2, q_df, spot_df,
        strike_df, normal_cdf(_signed(sign, d1)) if cdfs[0] else None,
        normal_cdf(_signed(sign, d2)) if cdfs[1] else None, pdf1, rate, dividend, xp,
    )


def _cdfs_needed(select: tuple[str, ...], rate: float, dividend: float) -> tuple[bool, bool]:
    """Whether the greeks of ``select`` read ``N(w d1)`` and ``N(w d2)``.

    The price reads both, the delta the first, the theta both when it has carry (``r`` or
    ``q`` not 0); the gamma, vega, vanna and volga read neither (each cdf is an erfc a input).

    Examples:
        >>> _cdfs_needed(("delta", "gamma"), 0.0, 0.0), _cdfs_needed(("vega",), 0.05, 0.0)
        ((True, False), (False, False))
        >>> _cdfs_needed(("theta",), 0.0, 0.0), _cdfs_needed(("theta",), 0.05, 0.0)
        ((False, False), (True, True))
    """
    carry = bool(rate or dividend) and "theta" in select
    return ("price" in select or "delta" in select or carry, "price" in select or carry)


def _price(t: _Terms) -> Any:
    return _signed(t.sign, t.spot_df * t.cdf1 - t.strike_df * t.cdf2)


def _discounted(t: _Terms, x: Any) -> Any:
    """``e^{-q tau} x``, without a multiplication by 1 when ``q == 0`` (the same numbers)."""
    return x if isinstance(t.q_df, float) and t.q_df == 1.0 else t.q_df * x


def _delta(t: _Terms) -> Any:
    return _signed(t.sign, _discounted(t, t.cdf1))


def _gamma(t: _Terms) -> Any:
    return _discounted(t, t.pdf1) / (t.spot * t.total)


def _vega(t: _Terms) -> Any:
    return t.spot_df * t.pdf1 * t.sqrt_tau


def _theta(t: _Terms) -> Any:
    xp = t.xp
    twice_root = 2.0 * xp.where(t.sqrt_tau > 0, t.sqrt_tau, 1.0)
    if not (t.rate or t.dividend):  # -decay, the sign put on the divisor (often a row): exact
        return t.spot_df * t.pdf1 * t.vol / -twice_root
    decay = t.spot_df * t.pdf1 * t.vol / twice_root
    carry = _signed(t.sign, t.dividend * t.spot_df * t.cdf1 - t.rate * t.strike_df * t.cdf2)
    return xp.where(t.tau > 0, carry, 0.0) - decay


def _vanna(t: _Terms) -> Any:
    xp = t.xp
    vol = xp.where(t.vol > 0, t.vol, 1.0)
    return -t.q_df * t.pdf1 * xp.where(t.pdf1 > 0, t.d2, 0.0) / vol


def _volga(t: _Terms) -> Any:
    xp = t.xp
    vol = xp.where(t.vol > 0, t.vol, 1.0)
    d1d2 = xp.where(t.pdf1 > 0, t.d1 * t.d2, 0.0)
    return _vega(t) * d1d2 / vol


_FORMULAS = {
    "price": _price, "delta": _delta, "gamma": _gamma, "vega": _vega,
    "theta": _theta, "vanna": _vanna, "volga": _volga,
}


def black_scholes_greeks(
    spot: Any,
    strike: Any,
    tau: Any,
    vol: Any,
    rate: float = 0.0,
    dividend: float = 0.0,
    is_call: Any = True,
    *,
    select: tuple[str, ...] = GREEKS,
) -> Greeks:
    """Price and greeks in one pass (d1, d2 and the normal cdf/pdf are computed once).

    Args:
        spot: price of the underlying, currency (> 0).
        strike: strike, currency (> 0).
        tau: time to expiry, years (>= 0).
        vol: volatility, annualised (>= 0).
        rate: risk-free rate, continuously compounded, per year.
        dividend: dividend yield, continuously compounded, per year.
        is_call: True for calls, False for puts (a bool or a bool array).
        select: the names of :data:`GREEKS` to compute; the others are None.

    Returns:
        :class:`Greeks` with arrays of the broadcast shape.

    Shape:
        All inputs broadcast; every output has the broadcast shape (numpy or torch).

    Examples:
        >>> g = black_scholes_greeks(100.0, 100.0, 1.0, 0.2, rate=0.05, dividend=0.02)
        >>> [round(float(x), 6) for x in g]  # QuantLib 1.44 AnalyticEuropeanEngine agrees
        [9.227006, 0.586851, 0.018951, 37.901158, -5.089319, -0.094753, 2.368822]
    """
    if isinstance(select, str):
        raise ValueError(f"select must be a tuple of names among {GREEKS}, got the string "
                         f"{select!r} (write ({select!r},))")
    unknown = set(select) - set(GREEKS)
    if unknown:
        raise ValueError(f"select must name greeks among {GREEKS}, got {sorted(unknown)}")
    check_rates(rate, dividend)
    if any(is_torch_array(v) for v in (spot, strike, tau, vol)):
        spot, strike, tau, vol, is_call = _tensors(spot, strike, tau, vol, is_call)
        return _greeks(spot, strike, tau, vol, rate, dividend, is_call, select)
    spot, strike, tau, vol = (np.asarray(v, dtype=np.float64) for v in (spot, strike, tau, vol))
    is_call = call_flags(is_call)
    inputs = (spot, strike, tau, vol, np.asarray(is_call))
    if math.prod(np.broadcast_shapes(*(v.shape for v in inputs))) > _CHUNK:
        return _greeks_chunked(inputs, rate, dividend, select)  # validated chunk by chunk
    _validate(spot, strike, tau, vol)
    return _greeks(spot, strike, tau, vol, rate, dividend, is_call, select)


def _greeks(
    spot: Any, strike: Any, tau: Any, vol: Any, rate: float, dividend: float, is_call: Any,
    select: tuple[str, ...],
) -> Greeks:
    """The formulas on whole arrays (torch, so autograd sees one graph; small numpy inputs)."""
    terms = _terms(spot, strike, tau, vol, rate, dividend, is_call,
                   _cdfs_needed(select, rate, dividend))
    values = {name: _mask(terms, _FORMULAS[name](terms), name) if name in select else None
              for name in GREEKS}
    return Greeks(**values)


_CHUNK = 65536
"""numpy inputs larger than this are evaluated in blocks of this many elements: the twenty-odd
temporaries of the formulas then live in the CPU cache instead of main memory (on 10^6 inputs of
bench/pricing.py, measured in one process: 20% faster than unblocked, 5% faster than blocks of
32,768 and 131,072, 40% faster than blocks of 4,096)."""


def _flat(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A 1-d view (or copy) of ``value`` broadcast to ``shape``; size-1 values stay 0-d."""
    if value.size == 1:
        return value.reshape(())
    return np.broadcast_to(value, shape).reshape(-1)


def _greeks_chunked(
    inputs: tuple[np.ndarray, ...], rate: float, dividend: float, select: tuple[str, ...]
) -> Greeks:
    """:func:`_greeks` block by block over the flattened broadcast shape (numpy only).

    Each block's inputs are validated (:func:`_validate`) just before its formulas, while they
    are in the CPU cache, and torch's erfc runs on one thread for the whole loop
    (:func:`normal_cdf` then skips setting it for every block): the two together are 2 to 3%
    faster on 10^6 inputs than validating the whole inputs first and setting the threads per
    block (measured side by side in one process).
    """
    shape = np.broadcast_shapes(*(v.shape for v in inputs))
    flat = [_flat(v, shape) for v in inputs]
    size = math.prod(shape)
    out = {name: np.empty(size) for name in select}
    with one_thread():
        for lo in range(0, size, _CHUNK):
            part = [v if v.ndim == 0 else v[lo : lo + _CHUNK] for v in flat]
            _validate(*part[:4])
            is_call = part[4] if part[4].ndim else bool(part[4])
            block = _greeks(part[0], part[1], part[2], part[3], rate, dividend, is_call, select)
            for name in select:
                out[name][lo : lo + _CHUNK] = getattr(block, name)
    return Greeks(**{name: out[name].reshape(shape) if name in out else None for name in GREEKS})


def _mask(terms: _Terms, value: Any, name: str) -> Any:
    """Second-order greeks are exactly 0 where ``sigma sqrt(tau) == 0`` (already so via pdf)."""
    if terms.live is None or name in ("price", "delta", "theta"):
        return value
    return terms.xp.where(terms.live, value, 0.0)


def _one(name: str) -> Any:
    def greek(
        spot: Any, strike: Any, tau: Any, vol: Any, rate: float = 0.0, dividend: float = 0.0,
        is_call: Any = True,
    ) -> Any:
        return getattr(
            black_scholes_greeks(spot, strike, tau, vol, rate, dividend, is_call, select=(name,)),
            name,
        )

    greek.__name__ = f"black_scholes_{name}"
    greek.__doc__ = f"Black-Scholes-Merton {name} (see :func:`black_scholes_greeks` for units)."
    return greek


black_scholes_price = _one("price")
black_scholes_delta = _one("delta")
black_scholes_gamma = _one("gamma")
black_scholes_vega = _one("vega")
black_scholes_theta = _one("theta")
black_scholes_vanna = _one("vanna")
black_scholes_volga = _one("volga")
