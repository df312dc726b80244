"""The minimum-variance delta of Hull and White (2017): delta net of the expected vol move.

When implied vol moves with the spot (down as the spot rises, as equity vols do: Heston with
``rho < 0``, SABR, the S&P 500 and the VIX), the Black-Scholes delta hedge leaves the part of the
option's price change that the vol move explains, and that part is correlated with the spot
move: a better hedge takes it out. Hull and White ("Optimal delta hedging for options", Journal
of Banking and Finance 82, 2017, 180-190) write the expected change of implied vol given the
spot's return as ``(dS / S) (a + b delta + c delta^2) / sqrt(T)`` for an option of Black-Scholes
delta ``delta`` and time to expiry ``T`` (years), fit ``a, b, c`` by the regression

    ``dV - delta_BS dS = vega_BS / sqrt(T) * dS / S * (a + b delta_BS + c delta_BS^2) + e``,

and hedge with the minimum-variance delta

    ``delta_MV = delta_BS + vega_BS / (S sqrt(T)) * (a + b delta_BS + c delta_BS^2)``.

A book of one option (and no client flow: ShortCall-v0, HistoricalReplay-v0;
:func:`single_option`) is regressed as such: ``dV`` is its position's value change over a
decision (the env's ``option_mtm``, the settlement included where it expires inside the
interval), ``vega_BS`` the book's vega (currency per unit of vol, the position's) and
``delta_BS`` one unit's own delta (the book's delta less its stock, over the quantity; a put's
own, negative: a put's coefficients are a call's ``(a, b, c)`` mapped by put-call parity to
``(a + b + c, b + 2c, c)``).

Any other book (several options, client flow: OptionBook-v0, the market maker's case) is pooled
as Hull and White pool strikes and maturities: one ``(a, b, c)`` for the whole surface, the
book's hedge and rows its options' sums weighted by the positions,

    ``hedge = -(sum_i q_i [delta_i + vega_i / (S sqrt(T_i)) (a + b d_i + c d_i^2)] + stock)``,
    ``y = sum_i q_i (dV_i - delta_i dS)``,
    ``x = sum_i q_i vega_i / sqrt(T_i) * dS / S * (1, d_i, d_i^2)``,

over the options ``i`` held on the path at the decision (``q_i`` units, signed; ``delta_i`` and
``vega_i`` one unit's, Black-Scholes at the vol of the surface that marks the book). ``d_i`` is
the delta of the CALL of the option's strike and expiry, for a put its own delta plus
``e^{-q T_i}`` (Hull and White's convention: by put-call parity a put's value moves as the
call's less the underlying's, with the call's vega, so the vol move that the quadratic
describes is the one at the strike whichever the option: calls and puts share the
coefficients). In the rows, an option that settles before the next decision is left out (its
payoff does not depend on the vol, so it holds no vol exposure over the interval; the rest of
the path's book is kept), as are options that arrive after the decision (the hedge cannot hold
them yet); a path-decision at which no option held survives the interval is no row. The hedge
holds every option held (one settling before the next decision with its own adjustment, as
the one-option hedge does). The terms are computed at the held slots only, with the surface's
vols of :meth:`hedgearena.baselines.leland.RepricedDelta.implied_vols`.

Hull and White also fit by maturity bucket. With ``K - 1`` edges ``e_1 < ... < e_{K-1}``
(years of time to expiry; :func:`check_maturity_edges`) an option is in bucket ``k`` when
``e_{k-1} < T_i <= e_k`` (no lower edge for the first bucket, no upper one for the last: an
option exactly at an edge is in the shorter bucket), ``T_i`` its time to expiry at the
decision, and each bucket has its own ``(a_k, b_k, c_k)``: the rows have ``3K`` regressors,

    ``x = sum_i q_i vega_i / sqrt(T_i) * dS / S * (1, d_i, d_i^2) in the columns of k(i)``,

the same ``y``, all buckets in one regression (a path holding options of several buckets
gives one row across their columns), and the hedge gives each option its bucket's
coefficients, ``a_{k(i)} + b_{k(i)} d_i + c_{k(i)} d_i^2``. An option changes bucket as its
expiry nears, at the first decision past the edge; its row and its hedge at a decision use
the same bucket. ``K = 1`` (no edges) is the pooled fit above, by the same code.
:data:`OPTION_BOOK_EDGES` suit OptionBook-v0's flow (20-, 40- and 60-day options). A bucket
that no row reaches, or too few to identify its three coefficients, is refused by name.

:func:`fit_minimum_variance` runs the regression on simulated (or replayed) paths of a config,
:class:`MinimumVarianceDelta` hedges with the coefficients; the benchmark's spec ``mv_delta:fit``
fits them on its tuning paths (the scoring paths are never seen), ``mv_delta:fit:e_1:...``
fits them by maturity bucket there (:func:`fit_spec_edges`), ``mv_delta:a:b:c`` takes them as
given. Refused: a book that never holds an option (its options all of 0 contracts and no
client flow, or a client flow of rate 0), a one-option book of 0 contracts, and maturity edges
for a one-option book (one bucket).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, NamedTuple, cast

import numpy as np
from numpy.typing import NDArray

from hedgearena.baselines.arena import block_generator, path_blocks, physical_memory
from hedgearena.baselines.delta import EnvHedger, stack_positions
from hedgearena.baselines.hedger import State
from hedgearena.baselines.leland import BookSlots, RepricedDelta
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.checks import is_integer, is_real
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv

FloatArray = NDArray[np.float64]


FITTED_NAME = "MV delta (fitted)"
"""The name of a hedger of fitted coefficients (:meth:`MinimumVarianceDelta.fitted`)."""


def fit_bytes_per_path(n_buckets: int = 1) -> int:
    """Bytes :func:`fit_minimum_variance` keeps a path until the fit is solved, ``K`` buckets.

    Its ``x'y`` and ``x'x`` (``3K + 9K^2`` float64) twice (the blocks' and their
    concatenation), its score and ``x'x b`` (``3K`` each): ``48 K (3K + 2)``. The same for a
    book of many options: its rows are the book's sums, ``3K`` regressors a path and decision
    whatever the number of options. Building a block's rows touches every held slot, but one
    decision at a time and one block (at most :data:`~hedgearena.baselines.arena.PATH_BLOCK`
    paths) at a time: that memory goes with the block, as the block's paths themselves do, not
    with ``n_paths``.

    Examples:
        >>> fit_bytes_per_path(1), fit_bytes_per_path(3)
        (240, 1584)
    """
    return 48 * n_buckets * (3 * n_buckets + 2)


FIT_BYTES_PER_PATH = fit_bytes_per_path(1)
"""Bytes :func:`fit_minimum_variance` keeps a path for the pooled fit (one bucket): 240
(:func:`fit_bytes_per_path`)."""


class SingleOption(NamedTuple):
    """The book's one option: its position and expiry, and the book's own stock.

    Attributes:
        quantity: signed units of the underlying the option position is on (contracts times
            multiplier; negative = short).
        expiry_steps: its expiry, in market steps from the episode's start.
        stock: the book's stock position, units (its delta is in the book's delta).
    """

    quantity: float
    expiry_steps: int
    stock: float

    def terms(self, book_delta: Any, book_vega: Any, spot: Any, step: Any, dt: float) -> FloatArray:
        """:func:`hull_white_terms` of the option at market ``step`` (``dt`` years a step).

        Its time to expiry is ``(expiry_steps - step) dt`` and one unit's delta the book's
        delta less its stock, over the quantity. Arrays broadcast; ``(..., 3)``.
        """
        return hull_white_terms(book_vega, spot, (self.expiry_steps - step) * dt,
                                (book_delta - self.stock) / self.quantity)


def single_option(config: EnvConfig) -> SingleOption:
    """The book's one option, or a ``ValueError`` naming why the book has not exactly one.

    The one-option form of the regression and the hedge (:func:`book_option` picks it for a
    book of one option and no client flow).

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> single_option(make_config("ShortCall"))
        SingleOption(quantity=-100.0, expiry_steps=20, stock=0.0)
    """
    _check_env_config(config)
    book = config.book
    allowed = ("the one-option form of the minimum-variance delta (Hull and White 2017) takes "
               "a book of exactly one option (and optionally stock), as ShortCall-v0 and "
               "HistoricalReplay-v0 hold (other books are pooled over their options: "
               "book_option, book_regression_rows)")
    if book.client_flow is not None:
        raise ValueError(f"{allowed}; this book has client flow (many options)")
    if len(book.options) != 1:
        raise ValueError(f"{allowed}; this book has {len(book.options)} options")
    option = book.options[0]
    if option.contracts == 0:
        raise ValueError(f"{allowed}; this book's option has 0 contracts")
    return SingleOption(float(option.contracts * option.multiplier), int(option.expiry_steps),
                        float(book.stock))


def _check_env_config(config: Any) -> None:
    """Raise ``ValueError`` unless ``config`` is an :class:`EnvConfig`."""
    if not isinstance(config, EnvConfig):
        raise ValueError("config must be an EnvConfig (hedgearena.envs.config.make_config, e.g. "
                         f"make_config('ShortCall')), got {type(config).__name__}")


def _check_batch_steps(config: EnvConfig, steps: int) -> None:
    """Raise ``ValueError`` unless a batch of ``steps`` spots (market steps + 1) is ``config``'s."""
    if steps != config.n_decisions * config.rebalance_every + 1:
        raise ValueError(f"the batch has {steps - 1} market steps, the config {config.n_steps}: "
                         "build it from this config (build_episodes(config, ...))")


def book_option(config: EnvConfig) -> SingleOption | None:
    """The book's one option (the one-option regression), or None for a book of many options.

    A book of exactly one option and no client flow is regressed and hedged as one option
    (:func:`single_option`); any other book is pooled over its options (the module's docstring).

    Raises:
        ValueError: for a config that is not an :class:`EnvConfig`, a one-option book of 0
            contracts, or a book that never holds an option (every option of 0 contracts and
            no client flow, or a client flow of rate 0).

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> book_option(make_config("OptionBook")) is None
        True
    """
    _check_env_config(config)
    book, flow = config.book, config.book.client_flow
    if all(option.contracts == 0 for option in book.options) and (flow is None
                                                                  or flow.rate == 0):
        trades = "no client flow" if flow is None else "a client flow of rate 0"
        raise ValueError("the minimum-variance delta (Hull and White 2017) hedges the options of "
                         "a book: this book never holds one (its options all have 0 contracts "
                         f"and it has {trades}); give it an option or a client flow")
    if flow is None and len(book.options) == 1:
        return single_option(config)
    return None


def hull_white_terms(
    book_vega: Any, spot: Any, tau: Any, option_delta: Any
) -> FloatArray:
    """``vega / (S sqrt(T)) * (1, delta, delta^2)``: the regressors of Hull and White per unit dS.

    The minimum-variance delta is ``delta_BS`` plus these terms times ``(a, b, c)``; Hull and
    White's regressors are these terms times ``dS``.
    The terms are 0 where ``tau <= 0`` (an expired option has no vega).

    Args:
        book_vega: the option position's vega, currency per unit of vol, ``(n,)``.
        spot: the underlying's price, currency, ``(n,)``.
        tau: the option's time to expiry, years, ``(n,)`` (or a number).
        option_delta: one unit's Black-Scholes delta, ``(n,)``.

    Returns:
        ``(n, 3)`` terms, units of the underlying per unit of the coefficients.

    Examples:
        >>> hull_white_terms(np.array([-20.0, 5.0]), np.array([100.0, 100.0]),
        ...                  np.array([0.25, 0.0]), np.array([0.5, 0.9]))
        array([[-0.4, -0.2, -0.1],
               [ 0. ,  0. ,  0. ]])
    """
    tau = np.broadcast_to(np.asarray(tau, dtype=np.float64), np.shape(spot))
    alive = tau > 0.0
    scale = np.where(alive, book_vega / (spot * np.sqrt(np.where(alive, tau, 1.0))), 0.0)
    delta = np.asarray(option_delta, dtype=np.float64)
    return np.stack((scale, scale * delta, scale * delta * delta), axis=-1)


MATURITY_EDGES_ALLOWED = (
    "maturity_edges are years of time to expiry, finite numbers > 0 in strictly increasing "
    "order (e.g. (0.08, 0.16): the buckets T <= 0.08, 0.08 < T <= 0.16 and T > 0.16); () is "
    "one bucket, the pooled fit"
)
"""What :func:`check_maturity_edges` allows (its errors say it)."""

OPTION_BOOK_EDGES = (0.08, 0.16)
"""Maturity edges (years) for OptionBook-v0's client flow, whose options arrive with 20, 40 or
60 trading days to expiry (0.079, 0.159 and 0.238 years at 252 days a year): the buckets hold
the last month of an option's life (``T <= 0.08``), its second month and, for the 60-day
arrivals only, its first. The edges sit clear of the arrivals' maturities: no option is at an
edge but by the float rounding of ``T``."""


def check_maturity_edges(edges: Any) -> tuple[float, ...]:
    """Maturity-bucket edges (years of time to expiry), checked, as floats.

    ``K - 1`` edges ``e_1 < ... < e_{K-1}`` make ``K`` buckets of the time to expiry ``T``:
    ``T <= e_1``, ``e_{k-1} < T <= e_k`` and ``T > e_{K-1}``. An option exactly at an edge is
    in the shorter bucket (:func:`maturity_bucket`). No edges: one bucket, the pooled fit.

    Args:
        edges: a tuple, list or 1-D array of the edges, years.

    Raises:
        ValueError: naming the edge that is not a finite number > 0, or the pair of edges that
            are out of order (unsorted) or equal (duplicates).

    Examples:
        >>> check_maturity_edges([0.08, 0.16]), check_maturity_edges(())
        ((0.08, 0.16), ())
    """
    if not isinstance(edges, tuple | list | np.ndarray) or np.ndim(edges) != 1:
        raise ValueError(f"{MATURITY_EDGES_ALLOWED}; got {edges!r}")
    values = []
    for index, edge in enumerate(edges):
        number = _finite_real(edge)
        if number is None or number <= 0.0:
            raise ValueError(f"{MATURITY_EDGES_ALLOWED}; edge {index} is {edge!r}")
        values.append(number)
    for index, (low, high) in enumerate(pairwise(values)):
        if high <= low:
            fault = ("duplicates: edges {0} and {1} are both {2!r}" if high == low else
                     "unsorted: edge {1} ({3!r}) is below edge {0} ({2!r})")
            raise ValueError(f"{MATURITY_EDGES_ALLOWED}; "
                             + fault.format(index, index + 1, low, high))
    return tuple(values)


def maturity_bucket(tau: Any, edges: tuple[float, ...]) -> NDArray[np.intp]:
    """The maturity bucket of each time to expiry ``tau`` (years), ``0`` to ``len(edges)``.

    Bucket ``k`` holds ``edges[k-1] < tau <= edges[k]`` (no lower edge for the first, no upper
    one for the last): an option exactly at an edge is in the shorter bucket. ``edges`` are
    checked ones (:func:`check_maturity_edges`); no edges: every option in bucket 0.

    Examples:
        >>> maturity_bucket(np.array([0.05, 0.08, 0.1, 0.16, 0.2]), (0.08, 0.16))
        array([0, 0, 1, 1, 2])
    """
    return np.searchsorted(np.asarray(edges, dtype=np.float64), tau, side="left")


def bucket_labels(edges: tuple[float, ...]) -> tuple[str, ...]:
    """The buckets of ``edges`` in words, one a bucket.

    Examples:
        >>> bucket_labels((0.08, 0.16))
        ('T <= 0.08', '0.08 < T <= 0.16', 'T > 0.16')
        >>> bucket_labels(())
        ('every T',)
    """
    if not edges:
        return ("every T",)
    middle = tuple(f"{low:g} < T <= {high:g}" for low, high in pairwise(edges))
    return (f"T <= {edges[0]:g}", *middle, f"T > {edges[-1]:g}")


def fitted_name(edges: tuple[float, ...] = ()) -> str:
    """The name of a hedger of fitted coefficients: :data:`FITTED_NAME`, with its edges if any.

    Examples:
        >>> fitted_name(), fitted_name((0.08, 0.16))
        ('MV delta (fitted)', 'MV delta by maturity 0.08/0.16 (fitted)')
    """
    if not edges:
        return FITTED_NAME
    return f"MV delta by maturity {'/'.join(f'{edge:g}' for edge in edges)} (fitted)"


def _one_option_buckets(edges: tuple[float, ...]) -> ValueError:
    """The error of maturity buckets asked of a book of one option (one bucket)."""
    return ValueError(f"maturity_edges {edges} split a book of many options by its options' "
                      "times to expiry; this book has one option (and no client flow), one "
                      "bucket: give no edges (the one-option fit)")


class MinimumVarianceFit(NamedTuple):
    """Hull and White's regression on a config's paths (see :func:`fit_minimum_variance`).

    With ``K`` maturity buckets (``maturity_edges``, ``K - 1`` of them) the coefficients are
    each bucket's ``(a, b, c)`` in turn, ``(a_1, b_1, c_1, ..., a_K, b_K, c_K)``: the regression's
    ``3K`` columns (:attr:`bucket_coefficients` reads them as ``(K, 3)``). One bucket (no
    edges), the pooled fit: ``(a, b, c)``, ``(3,)``.

    Attributes:
        coefficients: ``(3K,)`` (vol per unit of ``dS / S``, times ``sqrt(years)``).
        standard_errors: their standard errors, ``(3K,)``, robust to heteroskedasticity and
            clustered by path (a path's decisions may be dependent). The replay's paths are
            windows of one history that overlap: their errors are too small there.
        covariance: the coefficients' covariance matrix, ``(3K, 3K)``, of which
            ``standard_errors`` are the roots of the diagonal (the terms are collinear: the
            error of ``a + b delta + c delta^2`` is ``sqrt(t' covariance t)``, ``t = (1,
            delta, delta^2)`` in the bucket's columns, much smaller than the coefficients' own).
        n_observations: decisions regressed (paths times decisions with the option alive; for
            a book of many options, path-decisions at which some held option survives the
            interval: :attr:`BookRows.observed`).
        n_paths: paths.
        gain: ``1 - SSE(delta_MV) / SSE(delta_BS)``, the share of the Black-Scholes hedge's
            squared error the fit removes on these paths (Hull and White's "Gain").
        maturity_edges: the buckets' edges, years of time to expiry (:func:`maturity_bucket`);
            ``()``: one bucket.
    """

    coefficients: FloatArray
    standard_errors: FloatArray
    covariance: FloatArray
    n_observations: int
    n_paths: int
    gain: float
    maturity_edges: tuple[float, ...] = ()

    @property
    def bucket_coefficients(self) -> FloatArray:
        """Each bucket's ``(a, b, c)``, ``(K, 3)`` (shortest bucket first)."""
        return np.reshape(self.coefficients, (-1, 3))

    @property
    def bucket_standard_errors(self) -> FloatArray:
        """Their standard errors, ``(K, 3)``."""
        return np.reshape(self.standard_errors, (-1, 3))

    def summary(self) -> str:
        """The coefficients and their errors in words, each bucket's with its label.

        Examples:
            >>> fit = MinimumVarianceFit(np.array([-0.16, 0.21, -0.2]), np.array([0.004, 0.017,
            ...                          0.017]), np.eye(3), 100, 10, 0.14)
            >>> fit.summary()
            'a -0.16 (0.004), b 0.21 (0.017), c -0.2 (0.017)'
            >>> fit._replace(coefficients=np.arange(6.0), standard_errors=np.ones(6),
            ...              maturity_edges=(0.1,)).summary()
            'T <= 0.1: a 0 (1), b 1 (1), c 2 (1); T > 0.1: a 3 (1), b 4 (1), c 5 (1)'
        """
        words = [", ".join(f"{label} {value:.3g} ({error:.2g})" for label, value, error
                           in zip("abc", values, errors, strict=True))
                 for values, errors in zip(self.bucket_coefficients, self.bucket_standard_errors,
                                           strict=True)]
        if not self.maturity_edges:
            return words[0]
        return "; ".join(f"{label}: {text}" for label, text
                         in zip(bucket_labels(self.maturity_edges), words, strict=True))


def regression_rows(
    config: EnvConfig, batch: Any, option: SingleOption
) -> tuple[FloatArray, FloatArray]:
    """Hull and White's regression rows of a batch, one per path and decision.

    Args:
        config: the env config the batch was built from.
        batch: a :class:`~hedgearena.envs.episode.EpisodeBatch` of ``config``
            (:func:`~hedgearena.envs.episode.build_episodes`).
        option: the book's one option (:func:`single_option` of ``config``).

    Returns:
        ``(y, x)``: ``y = dV - delta_book dS`` over each decision, ``(n_decisions, n_paths)``
        (currency), and ``x`` the regressors :func:`hull_white_terms` times ``dS``,
        ``(n_decisions, n_paths, 3)``; both 0 where the option has expired.

    Raises:
        ValueError: a batch whose market steps are not the config's.
    """
    every, n_decisions = config.rebalance_every, config.n_decisions
    episode, features = batch.episode, batch.features
    steps = np.shape(episode.spot)[0]
    _check_batch_steps(config, steps)
    starts = np.arange(n_decisions) * every
    spot = np.asarray(episode.spot)
    move = spot[starts + every] - spot[starts]  # (n_decisions, n_paths)
    mtm = np.asarray(episode.option_mtm)[: n_decisions * every]
    value_change = mtm.reshape(n_decisions, every, -1).sum(axis=1)
    book_delta = features.book_delta.T[starts]
    terms = option.terms(book_delta, features.book_vega.T[starts], spot[starts],
                         starts[:, None], config.dt)
    alive = np.broadcast_to((starts < option.expiry_steps)[:, None], move.shape)
    y = np.where(alive, value_change - book_delta * move, 0.0)
    return y, terms * move[..., None]


def alive_decisions(config: EnvConfig, option: SingleOption) -> int:
    """The decisions of an episode at which the option has not expired (regression rows a path)."""
    starts = np.arange(config.n_decisions) * config.rebalance_every
    return int(np.count_nonzero(starts < option.expiry_steps))


class _BatchView(NamedTuple):
    """What a :class:`BookReader` reads of an env (its batch), for a batch without an env."""

    batch: Any


class BookReader(RepricedDelta):
    """The book's held slots and the surface's vols of them (the repricing hedgers' own).

    Not a hedger of its own: :class:`MinimumVarianceDelta` and the book's regression read the
    book through it (:meth:`~hedgearena.baselines.leland.RepricedDelta.book_slots`,
    :meth:`~hedgearena.baselines.leland.RepricedDelta.implied_vols`).
    """

    name = "minimum-variance book reader"

    def hedging_vols(self, state: State, slots: BookSlots, implied: FloatArray) -> FloatArray:
        """The implied vols (the Black-Scholes delta's)."""
        return implied

    @classmethod
    def of_batch(cls, batch: Any) -> BookReader:
        """A reader of a batch's book (the regression's: no env)."""
        reader = cls()
        reader.reset(cast(VecHedgingEnv, _BatchView(batch)))
        return reader


class HeldGreeks(NamedTuple):
    """The options held on each path at one decision and their Black-Scholes greeks, ``(k,)``.

    ``slots`` are :meth:`~hedgearena.baselines.leland.RepricedDelta.book_slots` (path-major),
    ``price``, ``delta`` and ``vega`` one unit's (currency; units; currency per unit of vol) at
    the surface's vol, ``call_delta`` the delta of the call of the slot's strike and expiry
    (a put's delta plus ``e^{-q T}``), ``spot`` the slot's path's spot.
    """

    slots: BookSlots
    spot: FloatArray
    price: FloatArray
    delta: FloatArray
    vega: FloatArray
    call_delta: FloatArray

    def terms(self, picked: Any = slice(None)) -> FloatArray:
        """:func:`hull_white_terms` of the (``picked``) held positions, ``(k, 3)``."""
        return hull_white_terms(self.slots.held[picked] * self.vega[picked], self.spot[picked],
                                self.slots.tau[picked], self.call_delta[picked])


def held_greeks(reader: BookReader, state: State, with_price: bool = False) -> HeldGreeks:
    """:class:`HeldGreeks` of the book ``reader`` reads, at ``state`` (its ``step`` and ``spot``).

    ``price`` is computed with ``with_price`` only (else None).
    """
    market = reader.env.batch.market
    slots, vol = reader.held_implied_vols(state)
    spot = np.asarray(state["spot"], dtype=np.float64).take(slots.path)
    select = ("price", "delta", "vega") if with_price else ("delta", "vega")
    greeks = black_scholes_greeks(spot, slots.strike, slots.tau, vol, market.rate,
                                  market.dividend, slots.is_call, select=select)
    delta = np.asarray(greeks.delta, dtype=np.float64)
    call_delta = np.where(slots.is_call, delta,
                          delta + np.exp(-market.dividend * slots.tau))
    return HeldGreeks(slots, spot, greeks.price, delta, np.asarray(greeks.vega), call_delta)


def _path_sums(
    path: NDArray[np.intp], bucket: NDArray[np.intp], n_buckets: int, values: FloatArray,
    n_paths: int,
) -> FloatArray:
    """Sums by path and bucket, ``(n_paths, K * 3)``.

    ``out[p, 3 k + j]`` is the sum of ``values[i, j]`` over ``i`` with ``path[i] = p`` and
    ``bucket[i] = k`` (``values`` ``(m, 3)``, ``path`` and ``bucket`` ``(m,)``). One bucket
    (``bucket`` all 0): the sums by path.
    """
    index = path * n_buckets + bucket
    sums = np.stack([np.bincount(index, weights=values[:, j], minlength=n_paths * n_buckets)
                     for j in range(values.shape[1])], axis=1)
    return cast(FloatArray, sums.reshape(n_paths, n_buckets * values.shape[1]))


def book_terms(
    reader: BookReader, state: State, maturity_edges: tuple[float, ...] = ()
) -> FloatArray:
    """The book's terms ``sum_i q_i vega_i / (S sqrt(T_i)) (1, d_i, d_i^2)``, ``(n_paths, 3K)``.

    Over the options held on each path at ``state``, each option's in its maturity bucket's
    three columns (its ``T_i`` now: :func:`maturity_bucket` of the checked
    ``maturity_edges``); ``d_i`` the call's delta (see the module's docstring). The book's
    minimum-variance hedge is minus its delta less these terms times the buckets' ``(a, b,
    c)``; 0 on a path that holds no option.
    """
    held = held_greeks(reader, state)
    bucket = maturity_bucket(held.slots.tau, maturity_edges)
    return _path_sums(held.slots.path, bucket, len(maturity_edges) + 1, held.terms(),
                      len(state["spot"]))


class BookRows(NamedTuple):
    """Hull and White's rows of a book, one per path and decision (:func:`book_regression_rows`).

    Attributes:
        y: ``sum_i q_i (dV_i - delta_i dS)`` over the options held at the decision that survive
            the interval, ``(n_decisions, n_paths)``, currency.
        x: ``sum_i q_i vega_i / (S sqrt(T_i)) (1, d_i, d_i^2) dS`` over the same options,
            ``(n_decisions, n_paths, 3K)``: each option's in the three columns of its maturity
            bucket at the decision (``3k`` to ``3k + 2`` for bucket ``k``; ``K = 1``: pooled).
        observed: where some option survives the interval (a row), ``(n_decisions, n_paths)``;
            ``y`` and ``x`` are 0 elsewhere.
    """

    y: FloatArray
    x: FloatArray
    observed: NDArray[np.bool_]


def book_regression_rows(
    config: EnvConfig, batch: Any, maturity_edges: Sequence[float] = ()
) -> BookRows:
    """Hull and White's rows of a book of many options, pooled or by maturity bucket.

    Each decision's rows are over the options held on the path at the decision (arrivals
    after it are not held yet) that are still held at the next decision: one that settles
    inside the interval is left out (its payoff does not depend on the vol). Their value
    change is repriced (Black-Scholes at the surface's vol, as the env marks them) at the
    decision and at the next one. Each option's regressors go to the columns of its maturity
    bucket at the decision (its time to expiry then: :func:`maturity_bucket`), as the hedge
    reads them; its value change to the row's one ``y``.

    Args:
        config: the env config the batch was built from.
        batch: a :class:`~hedgearena.envs.episode.EpisodeBatch` of ``config``.
        maturity_edges: the buckets' edges, years (:func:`check_maturity_edges`); none: the
            pooled rows.

    Returns:
        The rows (:class:`BookRows`).

    Raises:
        ValueError: a batch whose market steps are not the config's, or bad edges.
    """
    edges = check_maturity_edges(maturity_edges)
    n_buckets = len(edges) + 1
    every, n_decisions = config.rebalance_every, config.n_decisions
    spot = np.asarray(batch.episode.spot)
    steps = spot.shape[0]
    _check_batch_steps(config, steps)
    n_paths = spot.shape[1]
    reader = BookReader.of_batch(batch)
    instruments = batch.instruments
    n_instruments = instruments.strike.shape[1]
    expiry = np.broadcast_to(instruments.expiry, instruments.strike.shape)
    y = np.zeros((n_decisions, n_paths))
    x = np.zeros((n_decisions, n_paths, 3 * n_buckets))
    observed = np.zeros((n_decisions, n_paths), dtype=bool)
    before: tuple[HeldGreeks, NDArray[np.intp]] | None = None
    for k in range(n_decisions + 1):
        step = k * every
        state = {"step": np.full(n_paths, step), "spot": spot[step]}
        held = held_greeks(reader, state, with_price=True)
        key = held.slots.path * n_instruments + held.slots.option  # sorted: path-major
        if before is not None:
            start, start_key = before
            survives = expiry[start.slots.path, start.slots.option] > step
            at = np.searchsorted(key, start_key[survives])  # the survivors, held now too
            path = start.slots.path[survives]
            move = spot[step] - spot[step - every]
            value = start.slots.held[survives] * (
                held.price[at] - start.price[survives] - start.delta[survives] * move[path])
            y[k - 1] = np.bincount(path, weights=value, minlength=n_paths)
            bucket = maturity_bucket(start.slots.tau[survives], edges)
            x[k - 1] = _path_sums(path, bucket, n_buckets, start.terms(survives),
                                  n_paths) * move[:, None]
            observed[k - 1, path] = True
        before = held, key
    return BookRows(y, x, observed)


def fit_minimum_variance(
    config: EnvConfig, n_paths: int = 20_000, seed: int = 1,
    maturity_edges: Sequence[float] = (),
) -> MinimumVarianceFit:
    """Fit Hull and White's ``(a, b, c)`` on ``n_paths`` paths of ``config`` (their regression).

    The paths are built as the arena builds them (blocks of
    :data:`~hedgearena.baselines.arena.PATH_BLOCK`, block ``k`` from ``(seed, k)``): fit on
    a seed other than the scoring run's, as the benchmark does (``mv_delta:fit``: its tuning
    paths). With ``maturity_edges`` a book of many options is fitted by maturity bucket, as
    Hull and White also fit theirs (one ``(a, b, c)`` a bucket, all in one regression: the
    module's docstring); without, pooled.

    Args:
        config: the env config: a book of one option (:func:`single_option`) or of many
            (client flow included; :func:`book_regression_rows`), see :func:`book_option`.
        n_paths: paths to regress on (an integer >= 2; each keeps
            :func:`fit_bytes_per_path` bytes until the fit is solved).
        seed: seed of the paths (an integer >= 0).
        maturity_edges: ``K - 1`` edges of ``K`` buckets of the time to expiry, years
            (:func:`check_maturity_edges`; :data:`OPTION_BOOK_EDGES` suit OptionBook-v0); a
            book of many options only.

    Returns:
        The coefficients (``(3K,)``, bucket by bucket), their standard errors and the fit's
        gain.

    Raises:
        ValueError: for a config that is not an :class:`EnvConfig`, a book that never holds an
            option (:func:`book_option`), too few paths (or more than fit in memory), a seed
            that is not an integer >= 0, bad edges or edges for a one-option book, or paths on
            which a bucket holds no option or its regressors are collinear (the options'
            deltas barely move or differ: deep in or out of the money on every path, or too
            few rows), named with the bucket.
    """
    option, edges = _fit_arguments(config, n_paths, seed, maturity_edges)
    per_path_xy, per_path_xx = [], []
    y_squared, n_observations = 0.0, 0
    for index, size in path_blocks(int(n_paths)):
        batch = build_episodes(config, size, block_generator(seed, index), observations=False)
        if option is None:
            y, x, observed = book_regression_rows(config, batch, edges)
            n_observations += int(np.count_nonzero(observed))
        else:
            y, x = regression_rows(config, batch, option)
            n_observations += size * alive_decisions(config, option)
        del batch  # the rows are all the fit needs of the block
        per_path_xy.append(np.einsum("dpk,dp->pk", x, y))
        per_path_xx.append(np.einsum("dpk,dpl->pkl", x, x))
        y_squared += float(np.sum(y * y))
    xy, xx = np.concatenate(per_path_xy), np.concatenate(per_path_xx)
    coefficients, bread = _solve(xx.sum(axis=0), xy.sum(axis=0), option is None, edges)
    scores = xy - xx @ coefficients  # each path's sum of x * residual, (n_paths, 3K)
    covariance = bread @ (scores.T @ scores) @ bread
    explained = float(coefficients @ xy.sum(axis=0))  # SSE_BS - SSE_MV at the least squares
    return MinimumVarianceFit(
        coefficients, np.sqrt(np.diag(covariance)), covariance, n_observations, int(n_paths),
        explained / y_squared if y_squared > 0.0 else 0.0, edges,
    )


def _fit_arguments(
    config: EnvConfig, n_paths: Any, seed: Any, maturity_edges: Any
) -> tuple[SingleOption | None, tuple[float, ...]]:
    """The book's one option (or None) and the checked edges of a fit, or a ``ValueError``."""
    option = book_option(config)
    edges = check_maturity_edges(maturity_edges)
    if option is not None and edges:
        raise _one_option_buckets(edges)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 2:
        raise ValueError(f"n_paths must be an integer >= 2 (paths to fit on), got {n_paths!r}")
    if not (is_integer(seed) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0 (the seed of the paths), got {seed!r}")
    check_fit_memory(int(n_paths), len(edges) + 1)
    return option, edges


def check_fit_memory(n_paths: int, n_buckets: int = 1) -> None:
    """Raise ``ValueError`` before a fit whose per-path sums would not fit in memory.

    :func:`fit_minimum_variance` keeps :func:`fit_bytes_per_path` bytes a path (for the
    path-clustered errors; ``n_buckets`` maturity buckets); the bound is the machine's
    physical memory (no check where the system does not say).
    """
    per_path = fit_bytes_per_path(n_buckets)
    need, have = n_paths * per_path, physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"n_paths={n_paths:,} would keep about {need / 2**30:,.1f} GiB for the fit, more "
            f"than this machine's {have / 2**30:,.1f} GiB of memory: use fewer paths (about "
            f"{have // (2 * per_path):,} fit in half of it)"
        )


def _solve(
    xx: FloatArray, xy: FloatArray, book: bool = False, edges: tuple[float, ...] = ()
) -> tuple[FloatArray, FloatArray]:
    """The least-squares coefficients of the normal equations and ``(X'X)^-1``.

    ``book``: the rows are a book's of many options (the errors say so); ``edges``: its
    maturity buckets' (each bucket's three columns are checked, its errors name it).
    """
    for bucket, label in enumerate(bucket_labels(edges)):
        columns = slice(3 * bucket, 3 * bucket + 3)
        _check_identified(xx[columns, columns], book, f" in the maturity bucket {label}"
                          if edges else "")
    scale, unit = _unit_diagonal(xx)
    if edges and np.linalg.cond(unit) > COLLINEAR_CONDITION:
        raise ValueError("cannot fit the minimum-variance delta by maturity: the buckets' "
                         f"regressors are collinear together on these paths (edges {edges}: "
                         "every path holds its buckets' options in the same proportions); "
                         "give other edges, or none (the pooled fit)")
    bread = np.linalg.inv(unit) / np.outer(scale, scale)
    return bread @ xy, bread


COLLINEAR_CONDITION = 1e12
"""The condition number of ``x'x`` scaled to a unit diagonal beyond which the regressors are
collinear (the fit is refused, naming why)."""


def _unit_diagonal(xx: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``x'x``'s scale (the square roots of its diagonal) and ``x'x`` scaled to a unit diagonal."""
    scale = np.sqrt(np.diag(xx))
    return scale, xx / np.outer(scale, scale)


def _check_identified(xx: FloatArray, book: bool, where: str) -> None:
    """Raise ``ValueError`` unless one bucket's ``(3, 3)`` ``x'x`` identifies its ``(a, b, c)``.

    ``where`` names the bucket in the errors (``""``: the only one, the pooled fit's).
    """
    scale = np.sqrt(np.diag(xx))
    edges = "; give edges that leave options in every bucket" if where else ""
    if not np.all(scale > 0.0):
        raise ValueError(f"cannot fit the minimum-variance delta: the book holds no option with "
                         f"vega{where} over any decision on these paths (none held, or each "
                         f"settles before the next decision){edges}" if book else
                         "cannot fit the minimum-variance delta: the option has no vega on "
                         "these paths (expired from the start?)")
    if np.linalg.cond(_unit_diagonal(xx)[1]) > COLLINEAR_CONDITION:
        moves = ("the call deltas of the book's options barely differ or move" if book else
                 "the option's delta barely moves")
        few = ", or the bucket has too few rows" if where else ""
        raise ValueError("cannot fit the minimum-variance delta: its regressors (1, delta, "
                         f"delta^2){where} are collinear on these paths ({moves}{few}); fit on "
                         f"paths where it does, or give the coefficients{edges}")


class MinimumVarianceDelta(EnvHedger):
    """Hull and White's minimum-variance delta hedge, with the underlying, at every decision.

    Holds ``-(delta_book + sum_j coefficient_j * term_j)``, the book's delta plus the terms of
    :func:`hull_white_terms`: minus the minimum-variance delta of the book's one option (and its
    stock), or of a book of many options the sum of its held options' (:func:`book_terms`; the
    module's docstring), each option's with its maturity bucket's ``(a, b, c)`` (its time to
    expiry at the decision: :func:`maturity_bucket`) when ``maturity_edges`` are given. With a
    hedging option it holds none, as :class:`~hedgearena.baselines.delta.BlackScholesDelta`
    does. ``a = b = c = 0`` is the Black-Scholes delta hedge.

    Args:
        a, b, c: Hull and White's coefficients (finite numbers; :func:`fit_minimum_variance`
            fits them). With ``K - 1`` maturity edges, each a sequence of ``K`` finite numbers,
            one a bucket, the shortest first.
        name: the label in tables (default ``"MV delta"``).
        maturity_edges: the buckets' edges, years of time to expiry
            (:func:`check_maturity_edges`); none (the default): one ``(a, b, c)`` for every
            option. A book of many options only: a one-option book is one bucket.

    Examples:
        >>> MinimumVarianceDelta([-0.2, -0.1], [0.3, 0.2], [-0.2, -0.1],
        ...                      maturity_edges=(0.1,)).coefficients
        array([-0.2,  0.3, -0.2, -0.1,  0.2, -0.1])
    """

    uses_observations = False  # reads the state only

    def __init__(
        self, a: Any, b: Any, c: Any, name: str = "MV delta",
        maturity_edges: Sequence[float] = (),
    ) -> None:
        edges = check_maturity_edges(maturity_edges)
        a, b, c = (_coefficient(label, value, edges)
                   for label, value in (("a", a), ("b", b), ("c", c)))
        self.a: float | tuple[float, ...] = a
        self.b: float | tuple[float, ...] = b
        self.c: float | tuple[float, ...] = c
        self.maturity_edges = edges
        self.name = name
        self._option: SingleOption | None = None
        self._reader: BookReader | None = None  # a book of many options (else _option)
        self._fit: MinimumVarianceFit | None = None
        self._awaits_fit = False

    @classmethod
    def fitted(
        cls, fit: MinimumVarianceFit, name: str | None = None
    ) -> MinimumVarianceDelta:
        """The hedger of a fit's coefficients (it keeps the fit: :attr:`fit`).

        ``name`` defaults to :func:`fitted_name` of the fit's edges (:data:`FITTED_NAME` for
        the pooled fit).
        """
        if not isinstance(fit, MinimumVarianceFit):
            raise ValueError("MinimumVarianceDelta.fitted takes a MinimumVarianceFit (of "
                             f"fit_minimum_variance), got {type(fit).__name__}")
        edges = fit.maturity_edges
        columns = [[float(value) for value in column] for column in fit.bucket_coefficients.T]
        a, b, c = (column if edges else column[0] for column in columns)
        hedger = cls(a, b, c, name=fitted_name(edges) if name is None else name,
                     maturity_edges=edges)
        hedger._fit = fit
        return hedger

    @classmethod
    def awaiting_fit(cls, maturity_edges: Sequence[float]) -> MinimumVarianceDelta:
        """The hedger of a spec ``mv_delta:fit[:edge...]`` before the benchmark fits it.

        Named as its fit will be (:func:`fitted_name`) and reset as it will be (a run's checks
        of its hedgers, :func:`hedgearena.training.check_hedgers`, read the book through it),
        but it refuses to hedge: the benchmark replaces it by :meth:`fitted` of
        :func:`fit_minimum_variance` on its tuning paths.
        """
        edges = check_maturity_edges(maturity_edges)
        zeros: float | list[float] = [0.0] * (len(edges) + 1) if edges else 0.0
        hedger = cls(zeros, zeros, zeros, name=fitted_name(edges), maturity_edges=edges)
        hedger._awaits_fit = True
        return hedger

    @property
    def fit(self) -> MinimumVarianceFit | None:
        """The fit the coefficients come from (:meth:`fitted`), or None if they were given."""
        return self._fit

    @property
    def coefficients(self) -> FloatArray:
        """``(a, b, c)`` of each bucket in turn, ``(3K,)`` (the fit's order); ``(3,)`` pooled."""
        columns = [np.atleast_1d(np.asarray(value, dtype=np.float64))
                   for value in (self.a, self.b, self.c)]
        return np.stack(columns, axis=1).reshape(-1)

    def reset(self, env: VecHedgingEnv) -> None:
        """Read the book: its one option, or its many (a ``ValueError`` for a book of none).

        See :func:`book_option`; maturity edges need a book of many options.
        """
        option = book_option(env.config)
        if option is not None and self.maturity_edges:
            raise _one_option_buckets(self.maturity_edges)
        super().reset(env)
        self._option, self._reader = option, None
        if option is None:
            self._reader = BookReader()
            self._reader.reset(env)

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """Minus the minimum-variance delta of the book, ``(n_paths, action_dim)``.

        ``-(book delta + terms @ coefficients)``: the terms of the book's one option
        (:meth:`SingleOption.terms`) or of its many (:func:`book_terms`, by bucket).
        """
        option, reader = self._option, self._reader
        if self._awaits_fit:
            raise RuntimeError(f"{self.name}: the benchmark fits its coefficients on its tuning "
                               "paths; to hedge with it outside the benchmark, fit them "
                               "(MinimumVarianceDelta.fitted(fit_minimum_variance(config, "
                               f"maturity_edges={self.maturity_edges})))")
        book_delta = np.asarray(state["book_delta"])
        if option is not None:
            terms = option.terms(book_delta, np.asarray(state["book_vega"]),
                                 np.asarray(state["spot"]), np.asarray(state["step"]),
                                 float(state["dt"]))
        elif reader is not None:
            terms = book_terms(reader, state, self.maturity_edges)
        else:
            raise RuntimeError("MinimumVarianceDelta: call reset(env) before positions()")
        hedge = -(book_delta + terms @ self.coefficients)
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)


def fit_spec_edges(spec: str) -> tuple[float, ...] | None:
    """The maturity edges of a spec the benchmark fits, ``mv_delta:fit[:edge...]``, else None.

    ``mv_delta:fit`` is the pooled fit (``()``), ``mv_delta:fit:0.08:0.16`` the fit by the
    buckets ``T <= 0.08``, ``0.08 < T <= 0.16`` and ``T > 0.16`` (years).

    Raises:
        ValueError: naming the spec and the edge that is not a number, or bad edges
            (:func:`check_maturity_edges`).

    Examples:
        >>> fit_spec_edges("mv_delta:fit"), fit_spec_edges(" mv_delta:fit:0.08:0.16 ")
        ((), (0.08, 0.16))
        >>> fit_spec_edges("mv_delta:0:0:0") is None
        True
    """
    name, *args = spec.strip().split(":")
    if name != "mv_delta" or args[:1] != ["fit"]:
        return None
    edges = []
    for text in args[1:]:
        try:
            edges.append(float(text))
        except ValueError:
            raise ValueError(f"hedger spec {spec!r}: maturity edge {text!r} is not a number "
                             "(years of time to expiry, e.g. mv_delta:fit:0.08:0.16)") from None
    try:
        return check_maturity_edges(edges)
    except ValueError as error:
        raise ValueError(f"hedger spec {spec!r}: {error}") from None


def _coefficient(label: str, value: Any, edges: tuple[float, ...]) -> float | tuple[float, ...]:
    """One of Hull and White's coefficients, checked: a number, or one a bucket of ``edges``."""
    if not edges:
        number = _finite_real(value)
        if number is None:
            raise ValueError(f"MinimumVarianceDelta: {label} must be a finite number (a "
                             f"real one: Hull and White's coefficient), got {value!r}")
        return number
    n_buckets = len(edges) + 1
    numbers = ([_finite_real(item) for item in value]
               if isinstance(value, tuple | list | np.ndarray) and np.ndim(value) == 1 else [])
    if len(numbers) != n_buckets or any(number is None for number in numbers):
        raise ValueError(f"MinimumVarianceDelta: {label} must be {n_buckets} finite numbers, "
                         f"one for each maturity bucket of edges {edges} "
                         f"({', '.join(bucket_labels(edges))}), got {value!r}")
    return tuple(cast(list[float], numbers))


def _finite_real(value: Any) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool, complex or string)."""
    if not is_real(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond the floats
        return None
    return number if math.isfinite(number) else None
