"""Tabulated implied-vol surfaces: the grid arithmetic shared by model-consistent surfaces.

A model whose option prices cost an integral or a series per option (Heston, Merton) is marked
from a table of its implied vols on a uniform grid, computed once per parameter set: this module
turns the model's forward-normalised call prices into vols (:func:`otm_implied_vols`), fills what
the solver cannot resolve far in the wings (:func:`fill_wings`), refines the strike axis (and any
other) by cubics (:func:`refine`) and interpolates multilinearly at any point (:func:`cell`,
:func:`multilinear`), in numpy or torch alike, with the interpolation's exact slopes if wanted
(:func:`multilinear_slopes`, :func:`cell_slope`: autograd's, without autograd).
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hedgearena.envs.checks import is_integer, require_integer, require_number
from hedgearena.envs.implied_vol import implied_volatility
from hedgearena.envs.vol_surface import _forward

FloatArray = NDArray[np.float64]

Z_REFINEMENT = 4
"""The strike axis (and any other that a surface refines) is refined this many times by cubics
before linear interpolation."""
TAU_POWER = 0.25
"""The expiry axis is uniform in ``tau**TAU_POWER``: dense at short expiries, where smiles
change fastest, sparse at long ones."""
PRICE_NOISE = 1e-9
"""Out-of-the-money prices (per unit forward) at or below this are numerical noise: their vols
are left to :func:`fill_wings`."""
_CACHE_SIZE = 32


@dataclass(frozen=True)
class VolGrid:
    """Axes of a tabulated surface: uniform in ``tau**TAU_POWER`` and ``z``.

    ``z = ln(K / F) / (sigma sqrt(tau))`` is the log-moneyness in standard deviations, ``sigma``
    the surface's own scale of vol, so that one axis serves every expiry.

    Attributes:
        max_tau: the longest expiry tabulated, years (> 0).
        max_z: strikes are tabulated for ``|z| <= max_z`` (> 0).
        n_tau: nodes on the expiry axis (>= 2).
        n_z: nodes in ``z`` (>= 4: the cubics of :func:`refine`).
    """

    max_tau: float = 2.0
    max_z: float = 5.0
    n_tau: int = 41
    n_z: int = 41

    def __post_init__(self) -> None:
        name = type(self).__name__
        require_number(name, "max_tau", self.max_tau, gt=0.0)
        require_number(name, "max_z", self.max_z, gt=0.0)
        require_integer(name, "n_tau", self.n_tau, ge=2)
        require_integer(name, "n_z", self.n_z, ge=4)

    def tau_z_axes(self) -> tuple[FloatArray, FloatArray]:
        """The nodes of ``tau`` (uniform in ``tau**TAU_POWER``) and of ``z``."""
        top = self.max_tau**TAU_POWER
        return (np.linspace(0.0, top, self.n_tau) ** (1.0 / TAU_POWER),
                np.linspace(-self.max_z, self.max_z, self.n_z))

    def tau_z_cells(
        self, xp: Any, spot: Any, strike: Any, tau: Any, spread: Any, rate: float,
        dividend: float, n_fine_z: int, n_fine_tau: int | None = None,
    ) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """The cells of an option ``(strike, 0 <= tau <= max_tau)`` in ``tau`` and refined ``z``.

        ``spread`` is the option's ``sigma sqrt(tau)``, ``n_fine_z`` the refined ``z`` axis'
        nodes, ``n_fine_tau`` the expiry axis' (``n_tau`` by default: not refined); ``z = 0`` at
        expiry.
        """
        z = self.standard_moneyness(xp, spot, strike, tau, spread, rate, dividend)
        return self.cells_at(xp, tau, z, n_fine_z, n_fine_tau)

    def standard_moneyness(
        self, xp: Any, spot: Any, strike: Any, tau: Any, spread: Any, rate: float, dividend: float
    ) -> Any:
        """``z = ln(K / F) / spread`` of an option, ``spread`` its ``sigma sqrt(tau)`` (0: z = 0).

        Its slope in the spot is ``-1 / (S spread)``, in the spread ``-z / spread``.
        """
        moneyness = xp.log(strike / _forward(xp, spot, tau, rate, dividend))
        return xp.where(spread > 0.0, moneyness / xp.where(spread > 0.0, spread, 1.0), 0.0)

    def cells_at(
        self, xp: Any, tau: Any, z: Any, n_fine_z: int, n_fine_tau: int | None = None
    ) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """The cells of ``0 <= tau <= max_tau`` and of ``z`` (see :meth:`tau_z_cells`)."""
        n_tau = self.n_tau if n_fine_tau is None else n_fine_tau
        return (cell(xp, safe_power(xp, tau, TAU_POWER), self.max_tau**TAU_POWER, n_tau),
                cell(xp, z + self.max_z, 2.0 * self.max_z, n_fine_z))

    def z_cell_slope(self, xp: Any, z: Any, n_fine_z: int) -> Any:
        """The slope in ``z`` of :meth:`cells_at`'s offset in ``z`` (:func:`cell_slope`)."""
        return cell_slope(xp, z + self.max_z, 2.0 * self.max_z, n_fine_z)


def otm_implied_vols(call: FloatArray, log_strike: FloatArray, tau: Any) -> FloatArray:
    """Implied vols of forward-normalised calls ``E[(S_T / F - K / F)^+]`` at ``ln(K / F)``.

    Each is inverted on its out-of-the-money side (the put by parity below the forward), where
    the price does not drown in intrinsic value; NaN where no vol is found or the price is at
    or below :data:`PRICE_NOISE` (see :func:`fill_wings`).

    Examples:
        >>> from hedgearena.envs.black_scholes import black_scholes_greeks
        >>> k = np.array([-0.2, 0.0, 0.2])
        >>> call = black_scholes_greeks(1.0, np.exp(k), 0.5, 0.3, select=("price",)).price
        >>> np.round(otm_implied_vols(call, k, 0.5), 12)
        array([0.3, 0.3, 0.3])
    """
    strike = np.exp(log_strike)
    is_call = log_strike >= 0.0
    otm = np.where(is_call, call, call - 1.0 + strike)
    vols = implied_volatility(otm, 1.0, strike, tau, is_call=is_call, errors="nan")
    return np.where(otm > PRICE_NOISE, vols, np.nan)


def fill_wings(table: FloatArray) -> None:
    """Fill, in place, the vols the solver could not find (prices lost in rounding far out).

    Each takes the nearest found vol along the last (strike) axis, towards the middle node.

    Examples:
        >>> t = np.array([[np.nan, 0.2, 0.25, 0.3, np.nan]])
        >>> fill_wings(t)
        >>> t
        array([[0.2 , 0.2 , 0.25, 0.3 , 0.3 ]])
    """
    middle = table.shape[-1] // 2
    for side in (range(middle + 1, table.shape[-1]), range(middle - 1, -1, -1)):
        for n in side:
            inner = n - 1 if n > middle else n + 1
            missing = ~np.isfinite(table[..., n])
            table[..., n][missing] = table[..., inner][missing]


def check_table(table: FloatArray, owner: str) -> None:
    """Raise ``ValueError`` unless every tabulated vol is finite and >= 0 (after the fill).

    Examples:
        >>> check_table(np.array([[0.2, np.nan]]), "Surface(x=1)")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Surface(x=1): 1 of 2 implied vols could not be tabulated ...
    """
    bad = ~(np.isfinite(table) & (table >= 0.0))
    if bad.any():
        raise ValueError(
            f"{owner}: {int(bad.sum())} of {table.size} implied vols could not be tabulated (no "
            "price resolved along their strike axis); these parameters are outside what the "
            "surface's pricing resolves"
        )


def finish_table(table: FloatArray, fallback: Any, owner: str) -> FloatArray:
    """Complete a table of :func:`otm_implied_vols` rows in place and make it read-only.

    A strike row with no price above the noise (a total vol too small to resolve: a tiny expiry
    and variance) takes ``fallback`` (broadcast against ``table``: the short-time limit, flat at
    the surface's root of average variance); the wings are filled (:func:`fill_wings`) and the
    table checked (:func:`check_table`, naming ``owner``).
    """
    unresolved = np.isnan(table).all(axis=-1)
    table[unresolved] = np.broadcast_to(fallback, table.shape)[unresolved]
    fill_wings(table)
    check_table(table, owner)
    table.flags.writeable = False
    return table


def refined(
    table: FloatArray, axes: tuple[int, ...] = (-1,), *, keep_extrema: bool = False
) -> FloatArray:
    """:func:`refine` of ``table`` along each of ``axes``, contiguous and read-only.

    What the surfaces interpolate. An axis of fewer than 4 nodes (no cubic) is kept as it is.
    ``keep_extrema`` is :func:`refine`'s.

    Examples:
        >>> refined(np.arange(8.0).reshape(2, 4), axes=(-1, 0)).shape  # 2 rows: kept
        (2, 13)
    """
    fine = table
    for axis in axes:
        if fine.shape[axis] >= 4:
            fine = refine(fine, axis=axis, keep_extrema=keep_extrema)
    fine = np.ascontiguousarray(fine)
    fine.flags.writeable = False
    return fine


def _lagrange_weights(t: FloatArray) -> list[FloatArray]:
    """Weights of the cubic through nodes ``-1, 0, 1, 2`` at offsets ``t`` from node 0."""
    return [-t * (t - 1.0) * (t - 2.0) / 6.0, (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0,
            -(t + 1.0) * t * (t - 2.0) / 2.0, (t + 1.0) * t * (t - 1.0) / 6.0]


def refine(
    table: FloatArray, factor: int = Z_REFINEMENT, axis: int = -1, *, keep_extrema: bool = False
) -> FloatArray:
    """``table`` refined ``factor`` times by Lagrange cubics along ``axis`` (``n >= 4`` nodes).

    Linear interpolation on the refined axis then costs one gather pair instead of a cubic's
    four, with an error about ``factor**2`` times smaller than on the coarse nodes. Each value
    is held within the range of its four nodes (no overshoot next to a steep or a filled, flat
    wing: a vol never turns negative). With ``keep_extrema`` only where those nodes are
    monotone: where they are not (a smile's minimum, which lies between nodes, below them all)
    the cubic is kept, floored at ``min(0, nodes)``. Holding it there flattens the cell of the
    minimum: 1.9e-4 in vol at the bottom of a 175-day, 16%-vol Heston smile (OptionBook's
    parameters, ``z`` nodes a quarter of a standard deviation apart), 5e-6 kept.

    Examples:
        >>> refine(np.array([0.0, 1.0, 8.0, 27.0]), 2)  # x**3 on 0..3: exact at 0.5, 1.5, 2.5
        array([ 0.   ,  0.125,  1.   ,  3.375,  8.   , 15.625, 27.   ])
        >>> nodes = np.array([2.0, 1.0, 1.0, 2.0])  # (x - 1.5)**2 / 2 + 7/8, least at x = 1.5
        >>> refine(nodes, 2)[3], refine(nodes, 2, keep_extrema=True)[3]
        (np.float64(1.0), np.float64(0.875))
        >>> refine(np.zeros((3, 5)), axis=0)
        Traceback (most recent call last):
        ...
        ValueError: refine needs at least 4 nodes along axis 0 (a cubic's), got 3 of shape (3, 5)
    """
    require_integer("refine", "factor", factor)
    if not is_integer(axis) or not -table.ndim <= axis < table.ndim:
        raise ValueError(f"refine's axis must be an integer in [{-table.ndim}, {table.ndim}) for "
                         f"a table of shape {table.shape}, got {axis!r}")
    axis = axis % table.ndim
    n = table.shape[axis]
    if n < 4:
        raise ValueError(f"refine needs at least 4 nodes along axis {axis} (a cubic's), got {n} "
                         f"of shape {table.shape}")
    position = np.arange(factor * (n - 1) + 1) / factor
    k = np.clip(np.floor(position), 1, n - 3).astype(np.int64)
    matrix = np.zeros((position.size, n))  # fine = matrix @ coarse along the axis
    for dk, w in zip(range(-1, 3), _lagrange_weights(position - k), strict=True):
        matrix[np.arange(position.size), k + dk] = w
    fine = np.moveaxis(np.tensordot(matrix, table, axes=([1], [axis])), 0, axis)
    # the range of each cell's four nodes (k - 1 .. k + 2), on the coarse axis
    nodes = [np.take(table, np.arange(dk, n - 3 + dk), axis=axis) for dk in range(4)]
    low, high = np.minimum.reduce(nodes), np.maximum.reduce(nodes)
    if keep_extrema:
        steps = [b - a for a, b in itertools.pairwise(nodes)]
        monotone = (np.logical_and.reduce([s >= 0.0 for s in steps])
                    | np.logical_and.reduce([s <= 0.0 for s in steps]))
        low = np.where(monotone, low, np.minimum(low, 0.0))
        high = np.where(monotone, high, np.inf)
    return np.clip(fine, np.take(low, k - 1, axis=axis), np.take(high, k - 1, axis=axis))


def cell(xp: Any, x: Any, span: float, n: int) -> tuple[Any, Any]:
    """The cell of ``x`` on ``n`` uniform nodes over ``[0, span]``: its index and offset in it.

    ``x`` is clipped into ``[0, span]`` (the table's edge holds outside it). NaN gets node 0
    and a NaN offset, so that the interpolation gives NaN.

    Examples:
        >>> index, offset = cell(np, np.array([-1.0, 0.25, 1.0, 9.0, np.nan]), 1.0, 5)
        >>> index.tolist(), offset.tolist()
        ([0, 1, 3, 3, 0], [0.0, 0.0, 1.0, 1.0, nan])
    """
    position = xp.clip(x, min=0.0, max=span) * ((n - 1) / span)
    index = xp.clip(xp.floor(xp.where(xp.isnan(position), 0.0, position)), max=n - 2)
    return xp.astype(index, xp.int64), position - index


def cell_slope(xp: Any, x: Any, span: float, n: int) -> Any:
    """The slope of :func:`cell`'s offset in ``x``: ``(n - 1) / span`` on ``[0, span]``, else 0.

    Inside the span the offset grows with ``x`` at the nodes' density; outside it the clip
    holds it. At the span's ends (included) it is the inside's, as torch's ``clamp``
    differentiates them, so that the interpolation's slopes are autograd's of it.

    Examples:
        >>> cell_slope(np, np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), 1.0, 5)
        array([0., 4., 4., 4., 0.])
    """
    return xp.where((x >= 0.0) & (x <= span), (n - 1) / span, 0.0)


def flat_table(xp: Any, table: FloatArray, like: Any) -> Any:
    """``table`` flattened, in namespace ``xp``, the floating dtype (and device) of ``like``.

    float64 for integer inputs. Conversions (a float32 copy, a torch tensor: torch takes no
    read-only arrays) are made once per table, dtype and device and kept.

    Examples:
        >>> flat_table(np, np.ones((2, 2)), np.array([1, 2])).dtype
        dtype('float64')
    """
    dtype = like.dtype if xp.isdtype(like.dtype, "real floating") else xp.float64
    if (xp is np or getattr(xp, "__name__", "").endswith("numpy")) and dtype == np.float64:
        return table.reshape(-1)
    device = getattr(like, "device", None)
    key = (id(table), str(dtype), str(device))
    hit = _CONVERTED.get(key)
    if hit is None or hit[0] is not table:
        if len(_CONVERTED) >= _CACHE_SIZE:
            _CONVERTED.clear()
        flat = xp.reshape(xp.asarray(np.array(table), dtype=dtype, device=device), (-1,))
        hit = _CONVERTED[key] = (table, flat)
    return hit[1]


_CONVERTED: dict[tuple[int, str, str], tuple[FloatArray, Any]] = {}


def clip_array(xp: Any, x: Any, low: float, high: float | None = None) -> Any:
    """``x`` clipped into ``[low, high]``, still an array (numpy clips 0-d arrays to scalars).

    A tensor is returned as torch clips it, never through ``asarray``: before torch 2.13
    ``asarray`` of a tensor that requires grad returned it detached (pytorch issue 170819),
    which cut the gradients of ``tau`` and ``level``.

    Examples:
        >>> clip_array(np, np.asarray(-1.0, dtype=np.float32), 0.0)
        array(0., dtype=float32)
    """
    out = xp.clip(x, min=low, max=high)
    return np.asarray(out) if isinstance(out, np.generic) else out


def safe_power(xp: Any, x: Any, power: float) -> Any:
    """``x**power`` of ``x >= 0`` (negatives as 0) with a finite gradient at 0 (for torch).

    ``x`` is clipped at the dtype's smallest normal number, so 0 gives about 0 (1e-77 for
    ``power = 1/4`` in float64).

    Examples:
        >>> np.round(safe_power(np, np.array([-1.0, 0.0, 16.0]), 0.25), 12)
        array([0., 0., 2.])
    """
    tiny = xp.finfo(x.dtype).tiny if xp.isdtype(x.dtype, "real floating") else 1e-300
    x = xp.clip(x, min=tiny)
    if power == 0.5:
        return xp.sqrt(x)
    if power == 0.25:
        return xp.sqrt(xp.sqrt(x))
    return x**power


def multilinear(xp: Any, table: Any, cells: list[tuple[Any, Any]], shape: tuple[int, ...]) -> Any:
    """Multilinear interpolation of the flat ``table`` of ``shape`` at one cell per axis.

    The cell's base index is computed once; each corner of the leading axes then gathers a pair
    of neighbours along the last axis (about 8 array passes a corner); from a numpy table both
    neighbours come in one gather (:func:`_pair_view`: the same values, 1.16 times as fast a
    Heston lookup, whose random reads of a table larger than the caches are what costs).

    Examples:
        >>> grid = np.arange(6.0).reshape(2, 3)  # f(i, j) = 3 i + j, linear: exact
        >>> cells = [cell(np, np.array([0.5]), 1.0, 2), cell(np, np.array([1.5]), 2.0, 3)]
        >>> multilinear(np, grid.reshape(-1), cells, grid.shape)
        array([3.])
    """
    out = 0.0
    for _, weight, pair, _ in _corners(table, cells, shape):
        out = out + (pair if weight is None else weight * pair)
    return out


def multilinear_slopes(
    xp: Any, table: Any, cells: list[tuple[Any, Any]], shape: tuple[int, ...],
    axes: Sequence[int] | None = None,
) -> tuple[Any, list[Any]]:
    """:func:`multilinear` and its slopes in cells' offsets, from one gather of the corners.

    Inside a cell the interpolation is linear in each offset ``w_a``: its slope in ``w_a`` is
    the interpolation on the cell's face ``w_a = 1`` less that on its face ``w_a = 0`` (in the
    last axis' offset, the corners' weighted differences ``high - low``), which is what torch
    autograd gives of :func:`multilinear` (to rounding). The value is :func:`multilinear`'s, bit
    for bit. A slope in the axis' own coordinate is this times :func:`cell_slope`.

    Args:
        xp: the namespace of the arrays (as :func:`multilinear`'s).
        table: the flat table (as :func:`multilinear`'s).
        cells: one cell per axis, :func:`cell`'s ``(index, offset)``.
        shape: the table's shape.
        axes: the axes whose slopes are wanted, in the order wanted (every axis by default).

    Returns:
        The value and the slopes ``d value / d w_a`` of ``axes``, each of the cells' shape
        (the values' units per unit of offset).

    Examples:
        >>> grid = np.array([[0.0, 1.0, 4.0], [3.0, 5.0, 9.0]])
        >>> cells = [cell(np, np.array([0.25]), 1.0, 2), cell(np, np.array([1.5]), 2.0, 3)]
        >>> value, slopes = multilinear_slopes(np, grid.reshape(-1), cells, grid.shape)
        >>> value, [float(s[0]) for s in slopes]  # the faces 2.5 and 7.0; the rows 3, 4
        (array([3.625]), [4.5, 3.25])
    """
    last = len(cells) - 1
    wanted = list(range(len(cells))) if axes is None else [a % len(cells) for a in axes]
    sides = [(1.0 - w, w) for _, w in cells[:-1]]
    out: Any = 0.0
    pairs: dict[tuple[int, ...], Any] = {}
    slope_last: Any = None
    for corner, weight, pair, step in _corners(table, cells, shape):
        out = out + (pair if weight is None else weight * pair)
        pairs[corner] = pair
        if last in wanted:
            term = step if weight is None else weight * step
            slope_last = term if slope_last is None else slope_last + term
    slopes = [slope_last if a == last else _face_difference(pairs, sides, a) for a in wanted]
    return out, slopes


def _face_difference(
    pairs: dict[tuple[int, ...], Any], sides: list[tuple[Any, Any]], axis: int
) -> Any:
    """The interpolation on the cell's face ``w_axis = 1`` less that on ``w_axis = 0``.

    ``pairs`` the corners' interpolations along the last axis, ``sides`` the leading axes'
    ``(1 - w, w)``: each edge along ``axis`` weighted by the product of the other axes' sides.
    """
    total: Any = None
    for corner, pair in pairs.items():
        if corner[axis]:
            continue
        up = (*corner[:axis], 1, *corner[axis + 1:])
        others = [side[d] for b, (side, d) in enumerate(zip(sides, corner, strict=True))
                  if b != axis]
        edge = pairs[up] - pair
        term = functools.reduce(operator.mul, others) * edge if others else edge
        total = term if total is None else total + term
    return total


def _corners(
    table: Any, cells: list[tuple[Any, Any]], shape: tuple[int, ...]
) -> Iterator[tuple[tuple[int, ...], Any, Any, Any]]:
    """Each corner of the leading axes' cell: ``(corner, weight, pair, step)``.

    ``corner`` the 0/1 offsets of the leading axes' nodes, ``weight`` the product of their
    sides ``1 - w`` (0) or ``w`` (1) in axis order (None for a 1-d table), ``pair`` the
    interpolation along the last axis ``low + w_last (high - low)`` between the corner's two
    neighbours and ``step`` their difference ``high - low``.
    """
    strides = [int(np.prod(shape[a + 1:])) for a in range(len(shape))]
    pairs = _pair_view(table)
    base = 0
    for (index, _), stride in zip(cells, strides, strict=True):
        base = base + index * stride
    *outer, (_, last) = cells
    sides = [(1.0 - w, w) for _, w in outer]
    for corner in itertools.product((0, 1), repeat=len(outer)):
        offset, weight = 0, None
        for d, stride, side in zip(corner, strides, sides, strict=False):
            offset += d * stride
            weight = side[d] if weight is None else weight * side[d]
        row = base + offset
        if pairs is None:
            low, high = table[row], table[row + 1]
        else:  # one gather of both (a random read in a table larger than the caches)
            both = pairs[row]
            low, high = both.real, both.imag
        step = high - low
        yield corner, weight, low + last * step, step


_PAIR_DTYPES: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype(np.float64): np.dtype(np.complex128), np.dtype(np.float32): np.dtype(np.complex64),
}


def _pair_view(table: Any) -> Any:
    """A flat numpy ``table``'s neighbours as one complex item each (None for other tables).

    Item ``j`` is ``table[j] + 1j * table[j + 1]``: the same memory read with a stride of one
    float, so that :func:`multilinear` gathers both ends of a cell on the last axis at once
    (the same values as two gathers). Read-only; None for torch tensors and for a table that is
    not a contiguous 1-d float32 or float64 numpy array of at least 2 values.

    Examples:
        >>> _pair_view(np.arange(3.0))
        array([0.+1.j, 1.+2.j])
    """
    if type(table) is not np.ndarray or table.ndim != 1 or table.size < 2:
        return None
    pair = _PAIR_DTYPES.get(table.dtype)
    if pair is None or not table.flags.c_contiguous:
        return None
    view = np.ndarray(shape=(table.size - 1,), dtype=pair, buffer=table,
                      strides=(table.itemsize,))
    view.flags.writeable = False
    return view
