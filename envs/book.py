"""The option book: instruments, client order flow, and the book's marks and greeks along paths.

A book holds European calls and puts on one underlying. Its contents are exogenous to the hedger:
the initial positions are fixed and client trades arrive at random (Poisson) times with random
strikes near the money, so the whole book can be sampled once per episode, after the market
paths, and valued on every path and step in one vectorised pass. The hedger only chooses the
hedge; :mod:`hedgearena.envs.core` books the P&L.

Units: quantities in units of the underlying (contracts times multiplier; negative = short),
strikes and marks in currency, times in years, expiries as steps of the market grid.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hedgearena.envs.black_scholes import Greeks, black_scholes_greeks
from hedgearena.envs.checks import (
    is_integer,
    is_real,
    require_bool,
    require_field,
    require_integer,
    require_number,
)
from hedgearena.envs.market import FloatArray, MarketPaths, time_major


class ClientFlowCapacityWarning(UserWarning):
    """Client trades past ``ClientFlow.max_trades`` were dropped (a thinner flow than its rate)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class Option:
    """One European option position of the initial book.

    Attributes:
        moneyness: strike as a fraction of the initial spot (1.0 = at the money).
        expiry_steps: expiry in steps of the market grid from the episode's start (>= 1).
        contracts: signed number of contracts (negative = short).
        is_call: call (True) or put (False).
        multiplier: units of the underlying per contract.
    """

    moneyness: float = 1.0
    expiry_steps: int = 20
    contracts: float = -1.0
    is_call: bool = True
    multiplier: float = 100.0

    def __post_init__(self) -> None:
        require_number("Option", "moneyness", self.moneyness, gt=0.0)
        require_integer("Option", "expiry_steps", self.expiry_steps, integral_floats=True)
        require_number("Option", "multiplier", self.multiplier, gt=0.0)
        require_number("Option", "contracts", self.contracts)
        require_bool("Option", "is_call", self.is_call)


@dataclass(frozen=True)
class ClientFlow:
    """Clients trading options with the dealer at random times (the market-maker case).

    Arrivals are Poisson with ``rate`` trades per year on every path. Each trade is a call or put
    (``call_probability``), struck at ``spot * m`` with ``m`` uniform in ``moneyness_range``
    rounded to ``strike_step`` currency, expiring ``expiry_steps`` steps after its arrival (one of
    the given values, uniformly); the client buys with probability ``buy_probability`` (so the
    dealer goes short) in ``contracts`` contracts. The dealer earns the half-spread,
    ``half_spread_vol`` vol points times the option's vega per unit, on every trade.

    Attributes:
        rate: expected client trades per year (per path).
        buy_probability: probability a client buys (the dealer sells); 0.5 = balanced flow.
        call_probability: probability a trade is a call.
        moneyness_range: (low, high) strike / spot at arrival.
        strike_step: strikes are rounded to multiples of this (currency; 0 = no rounding).
        expiry_steps: possible maturities in market steps from the arrival.
        contracts: contracts per client trade.
        multiplier: units of the underlying per contract.
        half_spread_vol: half bid-ask spread the dealer earns, in vol points (0.01 = 1 vol point),
            in [0, 1].
        max_trades: capacity of client trades per episode (arrivals beyond it are dropped,
            with a :class:`ClientFlowCapacityWarning`). The default 96 holds the default flow
            over OptionBook's 60-step episode (58.5 trades expected at 252 steps a year, a
            standard deviation of 7.7) but on about 3 paths in a million (the Poisson tail,
            2.6e-6); raise it with the rate (e.g. 175 for 500 trades a year: a tail of 2e-7).
    """

    rate: float = 250.0
    buy_probability: float = 0.6
    call_probability: float = 0.5
    moneyness_range: tuple[float, float] = (0.9, 1.1)
    strike_step: float = 1.0
    expiry_steps: tuple[int, ...] = (20, 40, 60)
    contracts: float = 1.0
    multiplier: float = 100.0
    half_spread_vol: float = 0.005
    max_trades: int = 96

    def __post_init__(self) -> None:
        require_number("ClientFlow", "rate", self.rate, ge=0.0)  # trades per year
        for name in ("buy_probability", "call_probability"):
            require_number("ClientFlow", name, getattr(self, name), ge=0.0, le=1.0)
        _check_range("ClientFlow", "moneyness_range", self.moneyness_range)
        require_number("ClientFlow", "strike_step", self.strike_step, ge=0.0)
        _check_steps("ClientFlow", "expiry_steps", self.expiry_steps)
        require_number("ClientFlow", "contracts", self.contracts, gt=0.0)
        require_number("ClientFlow", "multiplier", self.multiplier, gt=0.0)
        _check_half_spread_vol("ClientFlow", self.half_spread_vol)
        require_integer("ClientFlow", "max_trades", self.max_trades)


def _check_range(owner: str, name: str, value: Any) -> None:
    """Raise unless ``value`` is a pair ``(low, high)`` of finite numbers, ``0 < low <= high``."""
    pair = isinstance(value, tuple | list | np.ndarray) and len(value) == 2 and all(
        map(is_real, value)
    )
    ok = pair and bool(np.isfinite(value).all()) and 0 < value[0] <= value[1]
    require_field(owner, name, value, ok, "a pair (low, high) of finite numbers, 0 < low <= high")


def _check_half_spread_vol(owner: str, value: Any) -> None:
    """Raise unless ``value`` is a half-spread in vol points in ``[0, 1]`` (1 = 100 vol points).

    The range of :class:`hedgearena.envs.frictions.OptionSpreadCost`'s ``vol_points``: a value
    above 1 is a spread typed in vol points instead of as a fraction of vol (half a vol point is
    0.005, not 0.5).
    """
    require_number(owner, "half_spread_vol", value, ge=0.0, le=1.0)


def _check_steps(owner: str, name: str, value: Any) -> None:
    """Raise unless ``value`` is a non-empty tuple (or list) of integers >= 1."""
    ok = isinstance(value, tuple | list | np.ndarray) and len(value) > 0 and all(
        is_integer(e, integral_floats=True) and e >= 1 for e in value
    )
    require_field(owner, name, value, ok, "a non-empty list of integers >= 1")


@dataclass(frozen=True)
class OptionBook:
    """The book's specification: initial options, an initial stock position and client flow.

    Attributes:
        options: the initial option positions.
        stock: initial position in the underlying that belongs to the book (units), e.g. the
            long equity portfolio of portfolio insurance; the hedge is separate.
        client_flow: random client trades, or None for a static book.
    """

    options: tuple[Option, ...] = (Option(),)
    stock: float = 0.0
    client_flow: ClientFlow | None = None

    def __post_init__(self) -> None:
        options = self.options
        ok = isinstance(options, tuple | list) and all(isinstance(o, Option) for o in options)
        require_field("OptionBook", "options", options, ok, "a sequence of Option")
        require_number("OptionBook", "stock", self.stock)  # units of the underlying
        flow = self.client_flow
        require_field("OptionBook", "client_flow", flow,
                      flow is None or isinstance(flow, ClientFlow), "a ClientFlow or None")
        _require(
            len(self.options) > 0 or self.client_flow is not None,
            "OptionBook needs at least one option or a client_flow",
        )

    @property
    def notional(self) -> float:
        """Reference size in units of the underlying: the largest position of one trade."""
        sizes = [abs(o.contracts) * o.multiplier for o in self.options]
        if self.client_flow is not None:
            sizes.append(self.client_flow.contracts * self.client_flow.multiplier)
        return max(sizes)


class BookPaths(NamedTuple):
    """The sampled contents of the book on every path; arrays ``(n_paths, n_instruments)``.

    Padding slots have ``quantity == 0``. ``start`` is the step an instrument enters the book
    (0 for the initial book) and ``expiry`` the step it settles (may lie past the episode's end,
    in which case it is still held, marked to model, at the end).
    """

    strike: FloatArray
    quantity: FloatArray
    is_call: NDArray[np.bool_]
    start: NDArray[np.int64]
    expiry: NDArray[np.int64]
    half_spread_vol: FloatArray


def sample_book(book: OptionBook, market: MarketPaths, rng: np.random.Generator) -> BookPaths:
    """Sample the book's instruments on every path (the initial options plus client trades).

    Args:
        book: the book's specification.
        market: the episode's market paths (client strikes are set relative to their spot).
        rng: the source of the client flow's randomness.

    Returns:
        The instruments, ``(n_paths, len(book.options) + max_trades)`` arrays.
    """
    n_paths = market.n_paths
    s0 = market.spot[:, :1]
    initial = BookPaths(
        strike=s0 * np.array([[o.moneyness for o in book.options]]),
        quantity=np.broadcast_to(
            np.array([[o.contracts * o.multiplier for o in book.options]]),
            (n_paths, len(book.options)),
        ).astype(np.float64),
        is_call=np.broadcast_to(
            np.array([[o.is_call for o in book.options]], dtype=bool),  # bool when empty too
            (n_paths, len(book.options)),
        ),
        start=np.zeros((n_paths, len(book.options)), dtype=np.int64),
        expiry=np.broadcast_to(
            np.array([[o.expiry_steps for o in book.options]], dtype=np.int64),
            (n_paths, len(book.options)),
        ),
        half_spread_vol=np.zeros((n_paths, len(book.options))),
    )
    if book.client_flow is None:
        return initial
    flow = sample_client_flow(book.client_flow, market, rng)
    return BookPaths(*(np.concatenate([a, b], axis=1) for a, b in zip(initial, flow, strict=True)))


def sample_client_flow(
    flow: ClientFlow, market: MarketPaths, rng: np.random.Generator
) -> BookPaths:
    """Sample client trades: Poisson arrival steps, strikes near the spot, sides and maturities.

    The number of trades at each of the steps ``1 .. n_steps - 1`` (none at the start, none at
    the end) is Poisson with mean ``rate * dt`` on every path (several trades may arrive at one
    step), so a path expects ``rate`` trades a year. Trades beyond ``max_trades`` on a path are
    dropped (the latest ones), with a :class:`ClientFlowCapacityWarning` that counts them.

    Returns:
        The trades, ``(n_paths, max_trades)`` arrays in time order per path (unused slots have
        ``quantity == 0``): strikes in currency, quantities in units of the underlying
        (``+-contracts * multiplier``, negative when the client buys), steps of the market grid.
    """
    n_paths, n_steps = market.n_paths, market.n_steps
    dt = float(market.times[1] - market.times[0]) if n_steps > 0 else 0.0
    counts = rng.poisson(flow.rate * dt, (n_paths, n_steps))
    counts[:, 0] = 0
    kept_counts = _kept_arrivals(counts, flow.max_trades)
    dropped = counts.sum(axis=1, dtype=np.float64) - kept_counts.sum(axis=1)
    if dropped.any():
        warnings.warn(
            f"ClientFlow.max_trades={flow.max_trades} dropped {int(dropped.sum())} client trades "
            f"(the latest) on {np.count_nonzero(dropped)} of {n_paths} paths, which "
            f"expect {flow.rate * dt * max(n_steps - 1, 0):.4g} each: the flow is thinner than "
            f"its rate there; raise max_trades",
            ClientFlowCapacityWarning, stacklevel=2,
        )
    # One entry per kept trade, in time order on each path; its slot is its rank on its path.
    per_cell = kept_counts.ravel()
    path_idx = np.repeat(np.repeat(np.arange(n_paths), n_steps), per_cell)
    step_idx = np.repeat(np.tile(np.arange(n_steps), n_paths), per_cell)
    first = np.concatenate([[0], np.cumsum(kept_counts.sum(axis=1))[:-1]])  # path's first trade
    slot = np.arange(len(path_idx)) - first[path_idx]
    n_slots = flow.max_trades
    shape = (n_paths, n_slots)
    strike = np.full(shape, 1.0)
    quantity = np.zeros(shape)
    is_call = np.ones(shape, dtype=bool)
    start = np.zeros(shape, dtype=np.int64)
    expiry = np.ones(shape, dtype=np.int64)
    n = len(path_idx)
    raw = market.spot[path_idx, step_idx] * rng.uniform(*flow.moneyness_range, size=n)
    strike[path_idx, slot] = (
        np.round(raw / flow.strike_step) * flow.strike_step if flow.strike_step else raw
    )
    strike[path_idx, slot] = np.maximum(strike[path_idx, slot], flow.strike_step or 1e-8)
    side = np.where(rng.random(n) < flow.buy_probability, -1.0, 1.0)
    quantity[path_idx, slot] = side * flow.contracts * flow.multiplier
    is_call[path_idx, slot] = rng.random(n) < flow.call_probability
    start[path_idx, slot] = step_idx
    expiry[path_idx, slot] = step_idx + rng.choice(
        np.asarray(flow.expiry_steps, dtype=np.int64), size=n
    )
    half_spread = np.zeros(shape)
    half_spread[path_idx, slot] = flow.half_spread_vol
    return BookPaths(strike, quantity, is_call, start, expiry, half_spread)


def _kept_arrivals(counts: NDArray[np.int64], capacity: int) -> NDArray[np.int64]:
    """Arrivals per step that fit in ``capacity`` slots, the earliest first; ``(n_paths, n_steps)``.

    The running count of each path's arrivals is capped at ``capacity`` before any trade is
    materialised, so memory and time go with the kept trades, not with the rate (a rate of a
    million a year asked for 2.7 GB for a capacity of 96 trades a path).
    """
    cell = np.minimum(counts, capacity)  # a step never keeps more (and the sums cannot overflow)
    running = np.minimum(np.cumsum(cell, axis=1), capacity)
    return np.diff(running, axis=1, prepend=0)


class BookMarks(NamedTuple):
    """The book's value, greeks and cash flows on every path and step.

    Arrays are ``(n_paths, n_steps + 1)``.

    ``value`` is the mark of the options held after the step's arrivals and settlements;
    ``delta`` (units of the underlying), ``gamma`` (units per currency), ``vega`` (currency per
    1.00 of vol) and ``theta`` (currency per year) are the options' greeks (the book's stock
    position adds ``stock`` to the delta, not included here); ``premium`` is the cash the dealer
    receives for the options that arrive at the step (negative when it pays), ``spread_income``
    the half-spread it earns on them and ``settlement`` the cash paid to it by options expiring
    at the step.
    """

    value: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    premium: FloatArray
    spread_income: FloatArray
    settlement: FloatArray


BOOK_GREEKS = ("price", "delta", "gamma", "vega", "theta")
"""The greeks the book's marks need (the pricer skips the others)."""

_BLOCK = 65536
"""Options (steps x paths x instruments) priced per call of the pricer: a block's temporaries
stay in the CPU cache, and the sums over instruments are taken while the greeks are still there
(see ``black_scholes._CHUNK``, the same size; ShortCall's build of 16,384 paths: 39 ms, against
42 ms in blocks of 32,768)."""


def mark_book(instruments: BookPaths, market: MarketPaths) -> BookMarks:
    """Value the book on every path and step (vectorised over paths x steps x instruments).

    Args:
        instruments: the sampled book.
        market: the episode's market paths; options are marked at the surface's implied vol.

    Returns:
        The book's marks, greeks and cash flows, ``(n_paths, n_steps + 1)`` arrays (transposed
        views of :func:`mark_book_time_major`'s).
    """
    return BookMarks(*(values.T for values in mark_book_time_major(instruments, market)))


def mark_book_time_major(instruments: BookPaths, market: MarketPaths) -> BookMarks:
    """:func:`mark_book` with time-major arrays, ``(n_steps + 1, n_paths)`` (the core's layout).

    An instrument is held at steps ``start <= s < expiry``; it arrives (premium and half-spread)
    at ``start`` and settles (its intrinsic value, the price at ``tau = 0``) at ``expiry``.
    """
    n_rows, n_paths = market.n_steps + 1, market.n_paths
    # (1, n_paths or 1, n_instruments): the initial options are the same on every path.
    quantity, start, expiry, half_spread = (
        _uniform_rows(values)[None]
        for values in (
            instruments.quantity, instruments.start, instruments.expiry,
            instruments.half_spread_vol,
        )
    )
    # The marks and greeks are written on every step; the cash flows only at their steps.
    marks = BookMarks(
        *(np.empty((n_rows, n_paths)) for _ in BOOK_GREEKS),
        *(np.zeros((n_rows, n_paths)) for _ in BookMarks._fields[len(BOOK_GREEKS) :]),
    )
    arrival_rows = _step_flags(instruments.start, instruments.quantity, n_rows)
    settlement_rows = _step_flags(instruments.expiry, instruments.quantity, n_rows)
    for block in _book_blocks(instruments, market, (start, expiry, quantity, half_spread)):
        rows, greeks = block.rows, block.greeks
        steps, start_, expiry_, quantity_, spread_vol = block.slots
        held = held_quantity(steps, start_, expiry_, quantity_)
        for name, target in zip(BOOK_GREEKS, marks, strict=False):  # value <- price, then greeks
            block.sum(getattr(greeks, name), held, target[rows])
        if arrival_rows[rows].any():
            premium, spread = arrival_weights(steps, start_, expiry_, quantity_, spread_vol)
            block.sum(greeks.price, premium, marks.premium[rows])
            block.sum(greeks.vega, spread, marks.spread_income[rows])
        if settlement_rows[rows].any():
            block.sum(greeks.price, settlement_weights(steps, expiry_, quantity_),
                      marks.settlement[rows])
    return marks


SPARSE = 0.5
"""A block of the book's (step, path, instrument) slots is priced at its live slots only (an
option held, arriving or settling there) when fewer than this fraction are live, else whole.
A client-flow book is mostly padding, options yet to arrive and options settled: on
OptionBook-v0 about a quarter of the slots are live, and its build takes a third of the time
of pricing them all. Both give the same marks (to the last bits of the sums' order)."""


class _BookBlock(NamedTuple):
    """A block of steps of the book and its options' greeks, whole or at its live slots only.

    ``slots`` are the step, start, expiry, quantity and half-spread of the options priced: arrays
    broadcasting to ``(len(rows), n_paths, n_instruments)`` for a whole block, or ``(k,)`` for
    the ``k`` live slots, with ``cell`` their ``step * n_paths + path`` within the block.
    """

    rows: slice
    greeks: Greeks
    slots: tuple[Any, ...]
    cell: NDArray[np.intp] | None

    def sum(self, values: FloatArray, weights: FloatArray, out: FloatArray) -> None:
        """``out[s, p] = sum_i values * weights`` over the block's options at step s, path p."""
        if self.cell is None:
            _book_sum(values, weights, out)
        else:
            out[...] = np.bincount(self.cell, weights=values * weights,
                                   minlength=out.size).reshape(out.shape)


def _book_blocks(
    instruments: BookPaths, market: MarketPaths, fields: tuple[Any, ...]
) -> Iterator[_BookBlock]:
    """The book's greeks a block of steps at a time (:func:`price_on_grid`'s blocks).

    ``fields`` are the instruments' start, expiry, quantity and half-spread, ``(1, n_paths or 1,
    n_instruments)``. A block with fewer than :data:`SPARSE` of its slots live is priced at
    those only.
    """
    start, expiry, quantity, half_spread = fields
    grid = price_on_grid(market, instruments.strike, instruments.expiry, instruments.is_call,
                         BOOK_GREEKS, live=lambda steps: priced(steps, start, expiry, quantity))
    for rows, greeks, live in grid:
        steps = np.arange(rows.start, rows.stop)[:, None, None]
        if live is None:
            yield _BookBlock(rows, greeks, (steps, start, expiry, quantity, half_spread), None)
            continue
        slots = (rows.start + live.step, *(_at_slots(values, live)
                                           for values in (start, expiry, quantity, half_spread)))
        yield _BookBlock(rows, greeks, slots, live.cell)


# The book's rules, per instrument (arrays broadcast: steps against the instruments' fields).
# The marks are sums over instruments of a greek times these weights.
def held_quantity(steps: Any, start: Any, expiry: Any, quantity: Any) -> FloatArray:
    """Quantity held at ``steps``: ``quantity`` for ``start <= step < expiry``, else 0.

    The weight of the book's value (on prices) and of its greeks.
    """
    return np.where((steps >= start) & (steps < expiry), quantity, 0.0)


def arrival_weights(
    steps: Any, start: Any, expiry: Any, quantity: Any, half_spread_vol: Any
) -> tuple[FloatArray, FloatArray]:
    """Weights of the cash flows of the options arriving at ``steps`` (at ``start``, if held).

    Returns:
        ``(premium, spread)``: ``-quantity`` on prices (the dealer sells a client's bought
        option, ``quantity < 0``, and receives its mark) and ``|quantity| * half_spread_vol`` on
        vegas (the half-spread in vol points the dealer earns on either side).
    """
    arriving = (steps == start) & (steps < expiry)
    return (np.where(arriving, -quantity, 0.0),
            np.where(arriving, np.abs(quantity) * half_spread_vol, 0.0))


def settlement_weights(steps: Any, expiry: Any, quantity: Any) -> FloatArray:
    """Weight on prices (at ``tau = 0``: the payoff) of the options settling at ``steps``."""
    return np.where(steps == expiry, quantity, 0.0)


def priced(steps: Any, start: Any, expiry: Any, quantity: Any) -> NDArray[np.bool_]:
    """Where an option has a weight in the marks: held, arriving or settling at ``steps``.

    ``start <= step <= expiry`` with a quantity: the union of where :func:`held_quantity`,
    :func:`arrival_weights` and :func:`settlement_weights` can be non-zero.
    """
    return (quantity != 0) & (steps >= start) & (steps <= expiry)


def _step_flags(steps: NDArray[np.int64], quantity: FloatArray, n_rows: int) -> NDArray[np.bool_]:
    """``(n_rows,)`` flags of the steps at which some instrument of non-zero quantity is."""
    flags = np.zeros(n_rows + 1, dtype=bool)
    flags[np.minimum(steps[quantity != 0], n_rows)] = True
    return flags[:n_rows]


def _book_sum(values: FloatArray, weights: FloatArray, out: FloatArray) -> None:
    """``out[s, p] = sum_i values[s, p, i] * weights[s, p, i]`` (a product for one instrument)."""
    if values.shape[-1] == 1:
        np.multiply(values[..., 0], weights[..., 0], out=out)
    else:
        np.einsum("tpi,tpi->tp", values, np.broadcast_to(weights, values.shape), out=out)


def price_on_grid(
    market: MarketPaths,
    strike: FloatArray,
    expiry: NDArray[np.int64],
    is_call: NDArray[np.bool_] | bool,
    select: tuple[str, ...],
    live: Any = None,
) -> Iterator[tuple[slice, Greeks, Slots | None]]:
    """Black-Scholes greeks of options on every step and path, a block of steps at a time.

    Options are marked at the surface's implied vol; past their expiry ``tau`` is 0.

    Args:
        market: the market paths.
        strike: strikes, ``(n_paths, n_instruments)`` (or broadcastable), currency.
        expiry: expiry steps from the start (may lie past the grid), same shape.
        is_call: calls (True) or puts, a bool or a bool array of the same shape.
        select: the greeks to compute (see :func:`black_scholes_greeks`).
        live: None, or a function of the block's steps ``(len(rows), 1, 1)`` giving the slots
            (broadcasting to ``(len(rows), n_paths, n_instruments)``) whose greeks are needed:
            a block with fewer than :data:`SPARSE` of them live is priced there only.

    Yields:
        ``(rows, greeks, where)``: a slice of steps and the greeks there, ``(len(rows), n_paths,
        n_instruments)`` arrays with ``where`` None for a whole block, or ``(k,)`` arrays at the
        block's live :class:`Slots` ``where``.
    """
    spot, vol_state = time_major(market.spot), time_major(market.vol_state)
    expiry_time = expiry_years(market, _uniform_rows(expiry))[None]
    strike = _uniform_rows(np.asarray(strike, dtype=np.float64))[None]
    call = _uniform_rows(np.asarray(is_call))
    call_flag = bool(call.flat[0]) if call.size and (call == call.flat[0]).all() else call[None]
    per_row = spot.shape[1] * strike.shape[-1]
    n_rows = spot.shape[0]
    block = max(1, _BLOCK // max(per_row, 1))
    for lo in range(0, n_rows, block):
        rows = slice(lo, min(lo + block, n_rows))
        mask = None if live is None else live(np.arange(rows.start, rows.stop)[:, None, None])
        if mask is not None and np.mean(mask) < SPARSE:
            where = _live_slots(mask, (rows.stop - rows.start, *strike.shape[1:]), spot.shape[1])
            greeks = price_options(
                market, spot[rows].reshape(-1).take(where.cell), _at_slots(strike, where),
                np.maximum(_at_slots(expiry_time, where) - market.times[rows].take(where.step),
                           0.0),
                vol_state[rows].reshape(-1).take(where.cell), spot[0].take(where.path),
                call_flag if isinstance(call_flag, bool) else _at_slots(call_flag, where),
                select,
            )
            yield rows, greeks, where
            continue
        row_spot = spot[rows, :, None]
        tau = np.maximum(expiry_time - market.times[rows, None, None], 0.0)
        greeks = price_options(market, row_spot, strike, tau, vol_state[rows, :, None],
                               spot[:1, :, None], call_flag, select)
        yield rows, greeks, None


class Slots(NamedTuple):
    """The live slots of a block of ``(steps, n_paths, n_instruments)`` options, ``(k,)`` each.

    ``cell`` is ``step * n_paths + path`` (the slot's place in the block's ``(steps, n_paths)``
    marks), ``step`` the step within the block, ``path`` and ``option`` the path and instrument,
    ``slot`` ``path * n_instruments + option``.
    """

    cell: NDArray[np.intp]
    step: NDArray[np.intp]
    path: NDArray[np.intp]
    option: NDArray[np.intp]
    slot: NDArray[np.intp]


def _live_slots(mask: NDArray[np.bool_], shape: tuple[int, ...], n_paths: int) -> Slots:
    """The :class:`Slots` of ``n_paths`` paths where ``mask`` is True.

    ``mask`` broadcasts to ``(steps, n_paths or 1, n_instruments)``, which is ``shape``.
    """
    n_instruments = shape[-1]
    flat = np.flatnonzero(np.broadcast_to(mask, (shape[0], n_paths, n_instruments)))
    cell, option = np.divmod(flat, n_instruments)
    step, path = np.divmod(cell, n_paths)
    return Slots(cell, step, path, option, flat % (n_paths * n_instruments))


def _at_slots(values: NDArray[Any], where: Slots) -> Any:
    """An instrument field, ``(1, n_paths or 1, n_instruments)``, at the live slots ``where``."""
    return values.reshape(-1).take(where.slot if values.shape[1] > 1 else where.option)


def price_options(
    market: MarketPaths, spot: Any, strike: Any, tau: Any, level: Any, anchor: Any,
    is_call: Any, select: tuple[str, ...],
) -> Greeks:
    """Black-Scholes greeks of options marked at the market's surface (arrays broadcast).

    ``level`` and ``anchor`` are the surface's state and anchor spot
    (:meth:`hedgearena.envs.market.VolSurface.implied_vol`); empty inputs give empty greeks.
    """
    if not np.size(spot) or not np.size(strike):
        shape = np.broadcast_shapes(np.shape(spot), np.shape(strike), np.shape(tau))
        return Greeks(*(np.zeros(shape) if name in select else None for name in Greeks._fields))
    vol = market.surface.implied_vol(
        spot, strike, tau, level, anchor, market.rate, market.dividend
    )
    return black_scholes_greeks(
        spot, strike, tau, vol, market.rate, market.dividend, is_call, select=select
    )


def _uniform_rows(values: NDArray[Any]) -> NDArray[Any]:
    """``values[:1]`` when every row (path) of a 2-d array is the same, else ``values``.

    The initial options have the same expiry (and quantity) on every path: their time to
    expiry, and whether they are held, is then one number per step, not an array over paths.
    """
    if values.ndim == 2 and values.shape[0] > 1 and (values == values[:1]).all():
        return values[:1]
    return values


def expiry_years(market: MarketPaths, expiry_steps: NDArray[np.int64]) -> FloatArray:
    """Expiry in years from the episode start, for expiry steps possibly past the grid's end."""
    dt = float(market.times[1] - market.times[0]) if market.n_steps > 0 else 0.0
    return expiry_steps.astype(np.float64) * dt


@dataclass(frozen=True)
class HedgeOption:
    """A listed option the hedger may trade for gamma and vega (delta-gamma / delta-vega hedging).

    It is struck at ``moneyness`` times the episode's initial spot and expires ``expiry_steps``
    market steps after the start, which must lie beyond the episode's end (it is marked, not
    settled, at the end). Trading it costs ``half_spread_vol`` vol points times its vega per unit,
    times the market's liquidity multiplier (1 = normal): the rule of
    :class:`~hedgearena.envs.frictions.OptionSpreadCost` with ``vol_points``.

    Attributes:
        moneyness: strike / initial spot.
        expiry_steps: expiry in market steps from the start.
        is_call: call or put.
        half_spread_vol: half bid-ask spread paid when trading it, in vol points (0.01 = 1 vol
            point), in [0, 1].
    """

    moneyness: float = 1.0
    expiry_steps: int = 90
    is_call: bool = True
    half_spread_vol: float = 0.005

    def __post_init__(self) -> None:
        require_number("HedgeOption", "moneyness", self.moneyness, gt=0.0)
        require_integer("HedgeOption", "expiry_steps", self.expiry_steps, integral_floats=True)
        require_bool("HedgeOption", "is_call", self.is_call)
        _check_half_spread_vol("HedgeOption", self.half_spread_vol)


class HedgeOptionMarks(NamedTuple):
    """Mark and greeks of one unit of the hedging option; arrays ``(n_paths, n_steps + 1)``."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray


def mark_hedge_option(option: HedgeOption, market: MarketPaths) -> HedgeOptionMarks:
    """Mark the hedging option on every path and step, ``(n_paths, n_steps + 1)`` arrays."""
    return HedgeOptionMarks(*(v.T for v in mark_hedge_option_time_major(option, market)))


def mark_hedge_option_time_major(option: HedgeOption, market: MarketPaths) -> HedgeOptionMarks:
    """:func:`mark_hedge_option` with time-major arrays, ``(n_steps + 1, n_paths)``."""
    _require(
        option.expiry_steps > market.n_steps,
        f"HedgeOption.expiry_steps ({option.expiry_steps}) must exceed the episode's "
        f"{market.n_steps} steps",
    )
    marks = HedgeOptionMarks(*(np.empty((market.n_steps + 1, market.n_paths)) for _ in range(4)))
    strike = option.moneyness * market.spot[:, :1]
    expiry = np.array([[option.expiry_steps]], dtype=np.int64)
    for rows, greeks, _ in price_on_grid(
        market, strike, expiry, option.is_call, HedgeOptionMarks._fields
    ):
        for name, target in zip(HedgeOptionMarks._fields, marks, strict=True):
            target[rows] = getattr(greeks, name)[..., 0]
    return marks


# Re-exported for type hints of callers.
__all__ = [
    "BOOK_GREEKS",
    "BookMarks",
    "BookPaths",
    "ClientFlow",
    "ClientFlowCapacityWarning",
    "HedgeOption",
    "HedgeOptionMarks",
    "Option",
    "OptionBook",
    "arrival_weights",
    "expiry_years",
    "field",
    "held_quantity",
    "mark_book",
    "mark_book_time_major",
    "mark_hedge_option",
    "mark_hedge_option_time_major",
    "price_on_grid",
    "price_options",
    "priced",
    "sample_book",
    "sample_client_flow",
    "settlement_weights",
]
