"""Leland's hedge: the Black-Scholes delta at a volatility adjusted for transaction costs.

Leland (1985), "Option pricing and replication with transactions costs", J. Finance 40(5),
1283-1301: rebalancing every ``dt`` years with a round-trip proportional cost ``k``, a short
option is replicated (the costs included) by the Black-Scholes hedge at the larger volatility

    sigma_L^2 = sigma^2 (1 + sqrt(2 / pi) k / (sigma sqrt(dt)))

and a long one at the smaller ``sigma^2 (1 - ...)``; ``Le = sqrt(2 / pi) k / (sigma sqrt(dt))``
is the Leland number. Costs act like extra volatility for a hedger who is short gamma (each
rebalance buys high and sells low, plus the spread) and like less for one who is long gamma.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.delta import EnvHedger, FloatArray, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.book import BookPaths, expiry_years, held_quantity
from hedgearena.envs.checks import is_number
from hedgearena.envs.market import MarketPaths


def leland_volatility(
    vol: FloatArray | float,
    cost_round_trip: FloatArray | float,
    interval: float,
    short: NDArray[np.bool_] | bool = True,
) -> FloatArray:
    r"""Leland's (1985) cost-adjusted volatility.

    .. math::

        \sigma_L^2 = \sigma^2 \left(1 \pm \sqrt{2/\pi}\, \frac{k}{\sigma \sqrt{\Delta t}}\right)

    with ``+`` for a short option (the writer's hedge) and ``-`` for a long one. When the
    Leland number exceeds 1 for a long option, ``sigma_L^2 <= 0``: there is no real adjusted
    vol (Leland's replication breaks down; Hoggard, Whalley and Wilmott 1994 show the pricing
    equation is then ill-posed). We clip ``sigma_L^2`` at 0: the delta becomes its zero-vol
    limit ``e^{-q tau} 1{F > K}`` (for a call), a stop-loss hedge that buys as the forward
    crosses the strike, the limit of Leland's delta as ``sigma_L -> 0``.

    Args:
        vol: ``sigma``, annualised (> 0).
        cost_round_trip: ``k``, the round-trip proportional cost (twice the one-way rate:
            ``2 * cost_linear / S`` in the env's terms).
        interval: ``Delta t``, years between rebalances (> 0).
        short: True where the position is short the option (broadcast).

    Returns:
        ``sigma_L`` (>= 0), broadcast shape.

    Examples:
        Hand check (sigma = 20%, k = 2%, daily on 250 days): ``Le = 0.797885 * 0.02 /
        (0.2 * 0.0632456) = 1.261566``, ``sigma_L = 0.2 sqrt(2.261566) = 0.300770``.

        >>> round(float(leland_volatility(0.2, 0.02, 1 / 250)), 6)
        0.30077
        >>> float(leland_volatility(0.2, 0.02, 1 / 250, short=False))  # Le > 1: clipped to 0
        0.0

        Long, k = 0.2%: ``Le = 0.1261566``, ``sigma_L = 0.2 sqrt(0.8738434) = 0.186959``.

        >>> round(float(leland_volatility(0.2, 0.002, 1 / 250, short=False)), 6)
        0.186959
    """
    if not is_number(interval, gt=0.0):  # a string or None: this error, not a TypeError
        raise ValueError(f"interval must be a finite number of years > 0, got {interval!r}")
    if not (np.all(np.asarray(vol) >= 0) and np.all(np.asarray(cost_round_trip) >= 0)):
        raise ValueError("vol and cost_round_trip must be >= 0 (a NaN or negative was given)")
    sign = np.where(short, 1.0, -1.0)
    vol = np.asarray(vol, dtype=np.float64)
    # sigma^2 Le = sqrt(2 / pi) k sigma / sqrt(dt): written without dividing by sigma.
    extra = math.sqrt(2.0 / math.pi) * np.asarray(cost_round_trip) * vol / math.sqrt(interval)
    return np.sqrt(np.maximum(vol * vol + sign * extra, 0.0))


class BookSlots(NamedTuple):
    """Some (path, instrument) slots of the book and what repricing reads of them, ``(k,)`` each.

    ``path`` is the slot's path, ``tau`` the years to its expiry (0 once expired), ``held`` the
    quantity held at the path's current step (:func:`hedgearena.envs.book.held_quantity`).
    """

    path: NDArray[np.intp]
    option: NDArray[np.intp]
    strike: FloatArray
    tau: FloatArray
    is_call: NDArray[np.bool_]
    held: FloatArray


class _Slots(NamedTuple):
    """Slots of a batch's book, ``(k,)`` each: their path, instrument and fields."""

    path: NDArray[np.intp]
    option: NDArray[np.intp]
    strike: FloatArray
    start: NDArray[np.int64]
    expiry: NDArray[np.int64]
    expiry_time: FloatArray
    is_call: NDArray[np.bool_]
    quantity: FloatArray


VOL_MEMO_BYTES = 512 * 2**20
"""The most the memo of held slots' implied vols keeps (bytes): 60 decisions of an
OptionBook-v0 block of 16,384 paths hold about 200 MB. Past it, vols are computed, not kept."""


class _BatchMemo:
    """What every repricing hedger of one batch computes alike, computed once.

    In the arena the repricing hedgers (Leland, a tuned Zakamouline family's members, ...) run
    one after another on the same batch. They all read the book's slots (:meth:`slots`) and,
    at each decision, the surface's vol of every held slot (:meth:`held_vols`, 43% of a
    Zakamouline member's time on OptionBook-v0 before it was shared). The memo is keyed by
    the identity of the book's arrays and of the market (held as weak references: it empties
    itself when the batch is freed, and a new batch replaces it) and the vols by the decision's
    steps and spots, compared exactly: a hedger whose own trades moved the spot (permanent
    impact) gets its own vols, computed. A hit returns the very numbers a computation would.
    """

    def __init__(self) -> None:
        self._refs: tuple[weakref.ref[Any], ...] = ()
        self._slots: dict[bool, _Slots] = {}
        self._vols: dict[bytes, tuple[FloatArray, FloatArray]] = {}
        self._bytes = 0

    def _bind(self, book: BookPaths, market: MarketPaths) -> None:
        """Empty the memo unless it is ``book``'s on ``market`` (by identity)."""
        keys = (market, book.strike, book.quantity, book.is_call, book.start, book.expiry)
        if len(self._refs) == len(keys) and all(
            ref() is key for ref, key in zip(self._refs, keys, strict=True)
        ):
            return
        self.clear()
        self._refs = tuple(weakref.ref(key, self._forget) for key in keys)

    def _forget(self, _: weakref.ref[Any]) -> None:
        self.clear()

    def clear(self) -> None:
        """Drop everything kept."""
        self._refs, self._slots, self._vols, self._bytes = (), {}, {}, 0

    def slots(self, book: BookPaths, market: MarketPaths, quantity_only: bool) -> _Slots:
        """The batch's slots with a quantity (``quantity_only``), else all of them."""
        self._bind(book, market)
        if quantity_only not in self._slots:
            self._slots[quantity_only] = _book_slot_fields(book, market, quantity_only)
        return self._slots[quantity_only]

    def held_vols(
        self, book: BookPaths, market: MarketPaths, step: NDArray[Any], spot: FloatArray,
        compute: Callable[[], FloatArray],
    ) -> FloatArray:
        """The held slots' vols at the decision of ``step`` and ``spot``, each ``(n_paths,)``.

        ``compute`` gives them (in the held slots' order, ``(k,)``) when they are not kept;
        the vols kept are read-only.
        """
        self._bind(book, market)
        key = np.ascontiguousarray(step).tobytes()
        kept = self._vols.get(key)
        if kept is not None and np.array_equal(kept[0], spot):
            return kept[1]
        vols = compute()
        size = vols.nbytes + spot.nbytes + len(key)
        if kept is None and self._bytes + size <= VOL_MEMO_BYTES:
            vols.flags.writeable = False  # handed to every hedger of the batch: read-only
            self._vols[key] = (np.array(spot), vols)
            self._bytes += size
        return vols


_MEMO = _BatchMemo()
"""The memo of the last batch a repricing hedger read."""


def _book_slot_fields(book: BookPaths, market: MarketPaths, quantity_only: bool) -> _Slots:
    """The slots of ``book`` with a quantity (``quantity_only``), else all, path-major."""
    shape = book.strike.shape
    flat = np.flatnonzero(book.quantity) if quantity_only else np.arange(book.strike.size)
    path, option = np.divmod(flat, shape[1])

    def field(values: NDArray[Any]) -> NDArray[Any]:
        return np.broadcast_to(values, shape).reshape(-1).take(flat)

    expiry = field(book.expiry)
    return _Slots(path, option, field(book.strike), field(book.start), expiry,
                  expiry_years(market, expiry), field(book.is_call), field(book.quantity))


class RepricedDelta(EnvHedger):
    """Minus the book's delta with each option valued at a vol of the subclass's choosing.

    The base of hedgers that move the model's delta by changing the volatility it is computed
    at (Leland; Zakamouline's band centre; the delta at realised vol): a subclass gives
    :meth:`hedging_vols`, the vol to hedge some of the book's slots at from their implied vols
    (the surface that marks the book, :meth:`implied_vols`); :meth:`repriced_hedge` is
    ``-(sum_i q_i delta_i(sigma_i') + stock)`` over the instruments held, computed at the held
    slots only (a client-flow book is mostly padding, options yet to arrive and options
    settled). The held slots' implied vols of a decision are computed once for all the
    repricing hedgers of a batch (see :class:`_BatchMemo`).
    """

    uses_observations = False  # reads the state only

    def hedging_vols(self, state: State, slots: BookSlots, implied: FloatArray) -> FloatArray:
        """The vols to hedge the book's ``slots`` at, given their ``implied`` vols, ``(k,)``."""
        raise NotImplementedError

    def volatilities_at(self, state: State, slots: BookSlots) -> tuple[FloatArray, FloatArray]:
        """The implied and hedging vols of the book's ``slots``, ``(k,)`` each."""
        implied = self.implied_vols(state, slots)
        return implied, self.hedging_vols(state, slots, implied)

    def volatilities(self, state: State) -> tuple[FloatArray, FloatArray]:
        """The implied and hedging vols of every instrument, ``(n_paths, n_instruments)`` each."""
        shape = self.env.batch.instruments.strike.shape
        implied, hedging = self.volatilities_at(state, self.book_slots(state, held_only=False))
        return implied.reshape(shape), hedging.reshape(shape)

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """:meth:`repriced_hedge` in the underlying, no hedging option: ``(n_paths, action_dim)``.

        Leland's and the delta at realised vol's positions (Zakamouline clips it into a band).
        """
        hedge = self.repriced_hedge(state)
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)

    def repriced_hedge(self, state: State) -> FloatArray:
        """Minus the book's delta at the hedging vols (the book's own stock included), units."""
        batch = self.env.batch
        slots, implied = self.held_implied_vols(state)
        vol = self.hedging_vols(state, slots, implied)
        delta = black_scholes_greeks(
            state["spot"][slots.path], slots.strike, slots.tau, vol, batch.market.rate,
            batch.market.dividend, slots.is_call, select=("delta",),
        ).delta
        weighted = np.zeros(batch.instruments.strike.shape)  # the held options' q_i delta_i
        weighted[slots.path, slots.option] = slots.held * delta
        return -(np.sum(weighted, axis=1) + batch.episode.stock)

    def book_slots(self, state: State, held_only: bool) -> BookSlots:
        """The book's slots held at each path's step (``held_only``), else all of them.

        In path-major order (the order of ``np.nonzero`` on ``(n_paths, n_instruments)``).
        """
        market = self.env.batch.market
        step = np.asarray(state["step"])
        book = self._book_slots(quantity_only=held_only)
        at = step.take(book.path)
        held = held_quantity(at, book.start, book.expiry, book.quantity)
        picked = np.flatnonzero(held) if held_only else slice(None)
        at = at[picked]
        return BookSlots(
            book.path[picked], book.option[picked], book.strike[picked],
            np.maximum(book.expiry_time[picked] - market.times.take(at), 0.0),
            book.is_call[picked], held[picked],
        )

    def _book_slots(self, quantity_only: bool) -> _Slots:
        """The batch's slots with a quantity (else all of them), from the batch's memo.

        One memo for every repricing hedger (a tuned family's members run one after another
        on the same batch), keyed by the book's identity: a batch is read-only (the vector env
        copies one before writing new paths into it).
        """
        return _MEMO.slots(self.env.batch.instruments, self.env.batch.market, quantity_only)

    def held_implied_vols(self, state: State) -> tuple[BookSlots, FloatArray]:
        """The slots held at ``state``'s decision and their :meth:`implied_vols`, ``(k,)`` each.

        The vols come from the batch's memo when a hedger of this batch computed them at the
        same steps and spots (see :class:`_BatchMemo`): the same numbers, computed once. A
        subclass with its own :meth:`implied_vols` computes its own (the memo holds the
        surface's).
        """
        batch = self.env.batch
        slots = self.book_slots(state, held_only=True)
        if type(self).implied_vols is not RepricedDelta.implied_vols:
            return slots, self.implied_vols(state, slots)
        implied = _MEMO.held_vols(
            batch.instruments, batch.market, np.asarray(state["step"]),
            np.asarray(state["spot"], dtype=np.float64), lambda: self.implied_vols(state, slots),
        )
        return slots, implied

    def implied_vols(self, state: State, slots: BookSlots) -> FloatArray:
        """The surface's vol of the book's ``slots``, as the book is marked, ``(k,)``."""
        market = self.env.batch.market
        path = slots.path
        level = market.vol_state[path, np.asarray(state["step"])[path]]
        return np.asarray(
            market.surface.implied_vol(
                state["spot"][path], slots.strike, slots.tau, level, market.spot[path, 0],
                market.rate, market.dividend,
            ),
            dtype=np.float64,
        )


def book_is_short(state: State) -> NDArray[np.bool_]:
    """Paths whose book is short gamma (or flat: the writer's side), ``(n_paths,)``.

    A portfolio's costs follow its net gamma (Hoggard, Whalley and Wilmott 1994), so the sign
    of a cost-adjusted vol is the whole book's, not each option's.
    """
    return np.asarray(state["book_gamma"] <= 0)


class Leland(RepricedDelta):
    """Minus the book's delta with every option valued at its Leland volatility.

    Per instrument ``i`` held on the path: its implied vol ``sigma_i`` (the surface that marks
    the book), ``sigma_L,i`` from :func:`leland_volatility` with ``k = 2 * cost_linear / S``
    (``cost_linear / S`` is the proportional cost rate lambda of the step), ``dt`` the env's
    rebalancing interval (``config.dt * config.rebalance_every``) and the sign of the whole
    book's gamma on the path (short or no gamma: ``+``, long: ``-``; Hoggard, Whalley and Wilmott
    1994, "Hedging option portfolios in the presence of transaction costs", Advances in Futures
    and Options Research 7: a portfolio's costs follow its net gamma, so offsetting options
    keep offsetting); the hedge is ``-(sum_i q_i delta_i(sigma_L,i) + stock)``. Leland's hedge
    uses the underlying only: with a hedging option it holds none.
    """

    name = "Leland"

    def hedging_vols(self, state: State, slots: BookSlots, implied: FloatArray) -> FloatArray:
        """The Leland vols of the book's ``slots`` of ``implied`` vols, ``(k,)``."""
        path = slots.path
        cost_round_trip = 2.0 * state["cost_linear"][path] / state["spot"][path]
        interval = self.config.dt * self.config.rebalance_every
        return leland_volatility(implied, cost_round_trip, interval, book_is_short(state)[path])

