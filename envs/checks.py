"""Checks of user input: each raises ``ValueError`` naming the field, its value and what is allowed.

Used by the market models, surfaces, books, configs and envs, so every bad input reads alike:
``Owner.field must be <allowed>, got <value>``.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from typing import Any

import numpy as np


def require_field(owner: str, name: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ``ValueError`` naming the field, its value and what is allowed, unless ``ok``.

    Examples:
        >>> require_field("SmileSurface", "sticky", "spot", False, "one of ('delta', 'strike')")
        Traceback (most recent call last):
        ...
        ValueError: SmileSurface.sticky must be one of ('delta', 'strike'), got 'spot'
    """
    if not ok:
        raise ValueError(f"{owner}.{name} must be {allowed}, got {value!r}")


_BOUNDS: tuple[tuple[str, Callable[[float, float], bool]], ...] = (
    (">", operator.gt),
    (">=", operator.ge),
    ("<", operator.lt),
    ("<=", operator.le),
)


def require_number(
    owner: str,
    name: str,
    value: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number within the given bounds.

    Examples:
        >>> require_number("GBM", "sigma", -0.2, gt=0.0)
        Traceback (most recent call last):
        ...
        ValueError: GBM.sigma must be a finite number > 0.0, got -0.2
    """
    limits = _limits(gt, ge, lt, le)
    ok = is_number(value, gt=gt, ge=ge, lt=lt, le=le)
    allowed = " and ".join(f"{sym} {bound}" for sym, _, bound in limits)
    require_field(owner, name, value, ok, f"a finite number {allowed}".rstrip())


def is_number(
    value: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> bool:
    """Whether ``value`` is a finite real number (see :func:`is_real`) within the bounds.

    Examples:
        >>> is_number(0.5, gt=0.0), is_number(0.0, gt=0.0), is_number(float("inf")), is_number(True)
        (True, False, False, False)
    """
    return is_real(value) and math.isfinite(value) and all(
        op(value, bound) for _, op, bound in _limits(gt, ge, lt, le)
    )


def _limits(
    gt: float | None, ge: float | None, lt: float | None, le: float | None
) -> list[tuple[str, Callable[[float, float], bool], float]]:
    """The bounds given, as ``(symbol, comparison, bound)``."""
    pairs = zip(_BOUNDS, (gt, ge, lt, le), strict=True)
    return [(sym, op, bound) for (sym, op), bound in pairs if bound is not None]


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or numpy), booleans excluded.

    Examples:
        >>> is_real(0.5), is_real(np.int64(3)), is_real(True), is_real("1")
        (True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def holds_real_numbers(values: np.ndarray) -> bool:
    """Whether an array holds real numbers: ints or floats (not bools, complex, strings).

    An int or float dtype, or an object array of Python or numpy ints and floats.

    Examples:
        >>> holds_real_numbers(np.array([1, 2.5])), holds_real_numbers(np.array([True]))
        (True, False)
    """
    if values.dtype.kind in "iuf":
        return True
    if values.dtype.kind != "O":
        return False  # bool, complex, strings, dates...
    return all(is_real(x) for x in values.flat)


def is_integer(value: Any, *, integral_floats: bool = False) -> bool:
    """Whether ``value`` is an integer (booleans excluded; ``20.0`` too if ``integral_floats``).

    Examples:
        >>> is_integer(3), is_integer(3.0), is_integer(3.0, integral_floats=True), is_integer(True)
        (True, False, True, False)
    """
    if isinstance(value, numbers.Integral):
        return not isinstance(value, bool | np.bool_)
    return integral_floats and is_real(value) and math.isfinite(value) and value == int(value)


def require_integer(
    owner: str, name: str, value: Any, *, ge: int = 1, integral_floats: bool = False
) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= ge`` (see :func:`is_integer`).

    Examples:
        >>> require_integer("Option", "expiry_steps", 2.5)
        Traceback (most recent call last):
        ...
        ValueError: Option.expiry_steps must be an integer >= 1, got 2.5
    """
    ok = is_integer(value, integral_floats=integral_floats) and value >= ge
    require_field(owner, name, value, ok, f"an integer >= {ge}")


def require_surface(owner: str, surface: Any, variance_level: bool | None = None) -> None:
    """Raise ``ValueError`` unless ``surface`` is a vol surface (it has ``implied_vol``).

    ``variance_level`` (when given) is what the market's paths hold as the surface's ``level``:
    a variance (Heston's ``v``) or a vol. The surface must read it so (its
    ``level_is_variance``), else every option would be marked at a variance taken for a vol.

    Examples:
        >>> from hedgearena.envs.vol_surface import FlatVol
        >>> require_surface("Heston", FlatVol(), variance_level=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Heston.surface must be a surface that reads the paths' level as a variance...
    """
    ok = callable(getattr(surface, "implied_vol", None))
    require_field(owner, "surface", surface, ok, "a VolSurface object (e.g. FlatVol())")
    if variance_level is None:
        return
    reads_variance = bool(getattr(surface, "level_is_variance", False))
    allowed = (
        "a surface that reads the paths' level as a variance (level_is_variance = True, e.g. "
        "HestonSurface or HestonTermVol)" if variance_level else
        "a surface that reads the paths' level as a vol (level_is_variance = False)"
    )
    require_field(owner, "surface", surface, reads_variance == variance_level, allowed)


def require_surface_or_name(
    owner: str, surface: Any, names: tuple[str, ...], variance_level: bool | None = None
) -> None:
    """Raise ``ValueError`` unless ``surface`` is None, a vol surface or one of ``names``.

    Examples:
        >>> require_surface_or_name("Heston", "flat", ("own", "term"))
        Traceback (most recent call last):
        ...
        ValueError: Heston.surface must be a VolSurface object or one of ['own', 'term'], got 'flat'
    """
    if isinstance(surface, str):
        require_field(owner, "surface", surface, surface in names,
                      f"a VolSurface object or one of {list(names)}")
    elif surface is not None:
        require_surface(owner, surface, variance_level)


def require_bool(owner: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is ``True`` or ``False`` (numpy booleans too)."""
    require_field(owner, name, value, isinstance(value, bool | np.bool_), "True or False")
