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

:func:`fit_minimum_variance` runs the regression on simulated (or replayed) paths of a config,
:class:`MinimumVarianceDelta` hedges with the coefficients; the benchmark's spec ``mv_delta:fit``
fits them on its tuning paths (the scoring paths are never seen), ``mv_delta:a:b:c`` takes them
as given. Refused: a book that never holds an option (its options all of 0 contracts and no
client flow, or a client flow of rate 0), and a one-option book of 0 contracts.
"""

from __future__ import annotations

import math
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
FIT_BYTES_PER_PATH = 240
"""Bytes :func:`fit_minimum_variance` keeps a path until the fit is solved: its ``x'y`` and
``x'x`` (12 float64) twice (the blocks' and their concatenation), its score and ``x'x b`` (3
each). The same for a book of many options: its rows are the book's sums, three regressors a
path and decision whatever the number of options. Building a block's rows touches every held
slot, but one decision at a time and one block (at most
:data:`~hedgearena.baselines.arena.PATH_BLOCK` paths) at a time: that memory goes with the
block, as the block's paths themselves do, not with ``n_paths``."""


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


class MinimumVarianceFit(NamedTuple):
    """Hull and White's regression on a config's paths (see :func:`fit_minimum_variance`).

    Attributes:
        coefficients: ``(a, b, c)``, ``(3,)`` (vol per unit of ``dS / S``, times ``sqrt(years)``).
        standard_errors: their standard errors, ``(3,)``, robust to heteroskedasticity and
            clustered by path (a path's decisions may be dependent). The replay's paths are
            windows of one history that overlap: their errors are too small there.
        covariance: the coefficients' covariance matrix, ``(3, 3)``, of which
            ``standard_errors`` are the roots of the diagonal (the terms are collinear: the
            error of ``a + b delta + c delta^2`` is ``sqrt(t' covariance t)``, ``t = (1,
            delta, delta^2)``, much smaller than the coefficients' own).
        n_observations: decisions regressed (paths times decisions with the option alive; for
            a book of many options, path-decisions at which some held option survives the
            interval: :attr:`BookRows.observed`).
        n_paths: paths.
        gain: ``1 - SSE(delta_MV) / SSE(delta_BS)``, the share of the Black-Scholes hedge's
            squared error the fit removes on these paths (Hull and White's "Gain").
    """

    coefficients: FloatArray
    standard_errors: FloatArray
    covariance: FloatArray
    n_observations: int
    n_paths: int
    gain: float


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
    """What a :class:`_BookReader` reads of an env (its batch), for a batch without an env."""

    batch: Any


class _BookReader(RepricedDelta):
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
    def of_batch(cls, batch: Any) -> _BookReader:
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


def held_greeks(reader: _BookReader, state: State, with_price: bool = False) -> HeldGreeks:
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


def _path_sums(path: NDArray[np.intp], values: FloatArray, n_paths: int) -> FloatArray:
    """``out[p, j] = sum of values[i, j] over i with path[i] = p``, ``(n_paths, 3)``."""
    return np.stack([np.bincount(path, weights=values[:, j], minlength=n_paths)
                     for j in range(values.shape[1])], axis=1)


def book_terms(reader: _BookReader, state: State) -> FloatArray:
    """The book's terms ``sum_i q_i vega_i / (S sqrt(T_i)) (1, d_i, d_i^2)``, ``(n_paths, 3)``.

    Over the options held on each path at ``state``; ``d_i`` the call's delta (see the
    module's docstring). The book's minimum-variance hedge is minus its delta less these terms
    times ``(a, b, c)``; 0 on a path that holds no option.
    """
    held = held_greeks(reader, state)
    return _path_sums(held.slots.path, held.terms(), len(state["spot"]))


class BookRows(NamedTuple):
    """Hull and White's rows of a book, one per path and decision (:func:`book_regression_rows`).

    Attributes:
        y: ``sum_i q_i (dV_i - delta_i dS)`` over the options held at the decision that survive
            the interval, ``(n_decisions, n_paths)``, currency.
        x: ``sum_i q_i vega_i / (S sqrt(T_i)) (1, d_i, d_i^2) dS`` over the same options,
            ``(n_decisions, n_paths, 3)``.
        observed: where some option survives the interval (a row), ``(n_decisions, n_paths)``;
            ``y`` and ``x`` are 0 elsewhere.
    """

    y: FloatArray
    x: FloatArray
    observed: NDArray[np.bool_]


def book_regression_rows(config: EnvConfig, batch: Any) -> BookRows:
    """Hull and White's pooled rows of a book of many options (the module's docstring).

    Each decision's rows are over the options held on the path at the decision (arrivals
    after it are not held yet) that are still held at the next decision: one that settles
    inside the interval is left out (its payoff does not depend on the vol). Their value
    change is repriced (Black-Scholes at the surface's vol, as the env marks them) at the
    decision and at the next one.

    Args:
        config: the env config the batch was built from.
        batch: a :class:`~hedgearena.envs.episode.EpisodeBatch` of ``config``.

    Returns:
        The rows (:class:`BookRows`).

    Raises:
        ValueError: a batch whose market steps are not the config's.
    """
    every, n_decisions = config.rebalance_every, config.n_decisions
    spot = np.asarray(batch.episode.spot)
    steps = spot.shape[0]
    _check_batch_steps(config, steps)
    n_paths = spot.shape[1]
    reader = _BookReader.of_batch(batch)
    instruments = batch.instruments
    n_instruments = instruments.strike.shape[1]
    expiry = np.broadcast_to(instruments.expiry, instruments.strike.shape)
    y = np.zeros((n_decisions, n_paths))
    x = np.zeros((n_decisions, n_paths, 3))
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
            x[k - 1] = _path_sums(path, start.terms(survives), n_paths) * move[:, None]
            observed[k - 1, path] = True
        before = held, key
    return BookRows(y, x, observed)


def fit_minimum_variance(
    config: EnvConfig, n_paths: int = 20_000, seed: int = 1
) -> MinimumVarianceFit:
    """Fit Hull and White's ``(a, b, c)`` on ``n_paths`` paths of ``config`` (their regression).

    The paths are built as the arena builds them (blocks of
    :data:`~hedgearena.baselines.arena.PATH_BLOCK`, block ``k`` from ``(seed, k)``): fit on
    a seed other than the scoring run's, as the benchmark does (``mv_delta:fit``: its tuning
    paths).

    Args:
        config: the env config: a book of one option (:func:`single_option`) or of many
            (client flow included; :func:`book_regression_rows`), see :func:`book_option`.
        n_paths: paths to regress on (an integer >= 2; each keeps
            :data:`FIT_BYTES_PER_PATH` bytes until the fit is solved).
        seed: seed of the paths (an integer >= 0).

    Returns:
        The coefficients, their standard errors and the fit's gain.

    Raises:
        ValueError: for a config that is not an :class:`EnvConfig`, a book that never holds an
            option (:func:`book_option`), too few paths (or more than fit in memory), a seed
            that is not an integer >= 0, or paths on which the regressors are collinear (the
            option's delta barely moves: deep in or out of the money on every path).
    """
    option = book_option(config)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 2:
        raise ValueError(f"n_paths must be an integer >= 2 (paths to fit on), got {n_paths!r}")
    if not (is_integer(seed) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0 (the seed of the paths), got {seed!r}")
    check_fit_memory(int(n_paths))
    per_path_xy, per_path_xx = [], []
    y_squared, n_observations = 0.0, 0
    for index, size in path_blocks(int(n_paths)):
        batch = build_episodes(config, size, block_generator(seed, index), observations=False)
        if option is None:
            y, x, observed = book_regression_rows(config, batch)
            n_observations += int(np.count_nonzero(observed))
        else:
            y, x = regression_rows(config, batch, option)
            n_observations += size * alive_decisions(config, option)
        del batch  # the rows are all the fit needs of the block
        per_path_xy.append(np.einsum("dpk,dp->pk", x, y))
        per_path_xx.append(np.einsum("dpk,dpl->pkl", x, x))
        y_squared += float(np.sum(y * y))
    xy, xx = np.concatenate(per_path_xy), np.concatenate(per_path_xx)
    coefficients, bread = _solve(xx.sum(axis=0), xy.sum(axis=0), option is None)
    scores = xy - xx @ coefficients  # each path's sum of x * residual, (n_paths, 3)
    covariance = bread @ (scores.T @ scores) @ bread
    explained = float(coefficients @ xy.sum(axis=0))  # SSE_BS - SSE_MV at the least squares
    return MinimumVarianceFit(
        coefficients, np.sqrt(np.diag(covariance)), covariance, n_observations, int(n_paths),
        explained / y_squared if y_squared > 0.0 else 0.0,
    )


def check_fit_memory(n_paths: int) -> None:
    """Raise ``ValueError`` before a fit whose per-path sums would not fit in memory.

    :func:`fit_minimum_variance` keeps :data:`FIT_BYTES_PER_PATH` bytes a path (for the
    path-clustered errors); the bound is the machine's physical memory (no check where the
    system does not say).
    """
    need, have = n_paths * FIT_BYTES_PER_PATH, physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"n_paths={n_paths:,} would keep about {need / 2**30:,.1f} GiB for the fit, more "
            f"than this machine's {have / 2**30:,.1f} GiB of memory: use fewer paths (about "
            f"{have // (2 * FIT_BYTES_PER_PATH):,} fit in half of it)"
        )


def _solve(
    xx: FloatArray, xy: FloatArray, book: bool = False
) -> tuple[FloatArray, FloatArray]:
    """The least-squares coefficients of the normal equations and ``(X'X)^-1``.

    ``book``: the rows are a book's of many options (the errors say so).
    """
    scale = np.sqrt(np.diag(xx))
    if not np.all(scale > 0.0):
        raise ValueError("cannot fit the minimum-variance delta: the book holds no option with "
                         "vega over any decision on these paths (none held, or each settles "
                         "before the next decision)" if book else
                         "cannot fit the minimum-variance delta: the option has no vega on "
                         "these paths (expired from the start?)")
    unit = xx / np.outer(scale, scale)  # the correlation-like matrix, unit diagonal
    if np.linalg.cond(unit) > 1e12:
        moves = ("the call deltas of the book's options barely differ or move" if book else
                 "the option's delta barely moves")
        raise ValueError("cannot fit the minimum-variance delta: its regressors (1, delta, "
                         f"delta^2) are collinear on these paths ({moves}); fit on paths where "
                         "it does, or give the coefficients")
    bread = np.linalg.inv(unit) / np.outer(scale, scale)
    return bread @ xy, bread


class MinimumVarianceDelta(EnvHedger):
    """Hull and White's minimum-variance delta hedge, with the underlying, at every decision.

    Holds ``-(delta_book + sum_j coefficient_j * term_j)``, the book's delta plus the terms of
    :func:`hull_white_terms`: minus the minimum-variance delta of the book's one option (and its
    stock), or of a book of many options the sum of its held options' (:func:`book_terms`; the
    module's docstring). With a hedging option it holds none, as
    :class:`~hedgearena.baselines.delta.BlackScholesDelta` does. ``a = b = c = 0`` is the
    Black-Scholes delta hedge.

    Args:
        a, b, c: Hull and White's coefficients (finite numbers; :func:`fit_minimum_variance`
            fits them).
        name: the label in tables (default ``"MV delta"``).
    """

    uses_observations = False  # reads the state only

    def __init__(self, a: float, b: float, c: float, name: str = "MV delta") -> None:
        values = []
        for label, value in (("a", a), ("b", b), ("c", c)):
            number = _finite_real(value)
            if number is None:
                raise ValueError(f"MinimumVarianceDelta: {label} must be a finite number (a "
                                 f"real one: Hull and White's coefficient), got {value!r}")
            values.append(number)
        self.a, self.b, self.c = values
        self.name = name
        self._option: SingleOption | None = None
        self._reader: _BookReader | None = None  # a book of many options (else _option)
        self._fit: MinimumVarianceFit | None = None

    @classmethod
    def fitted(
        cls, fit: MinimumVarianceFit, name: str = FITTED_NAME
    ) -> MinimumVarianceDelta:
        """The hedger of a fit's coefficients (it keeps the fit: :attr:`fit`)."""
        if not isinstance(fit, MinimumVarianceFit):
            raise ValueError("MinimumVarianceDelta.fitted takes a MinimumVarianceFit (of "
                             f"fit_minimum_variance), got {type(fit).__name__}")
        a, b, c = (float(value) for value in fit.coefficients)
        hedger = cls(a, b, c, name=name)
        hedger._fit = fit
        return hedger

    @property
    def fit(self) -> MinimumVarianceFit | None:
        """The fit the coefficients come from (:meth:`fitted`), or None if they were given."""
        return self._fit

    @property
    def coefficients(self) -> FloatArray:
        """``(a, b, c)``, ``(3,)``."""
        return np.array([self.a, self.b, self.c])

    def reset(self, env: VecHedgingEnv) -> None:
        """Read the book: its one option, or its many (a ``ValueError`` for a book of none).

        See :func:`book_option`.
        """
        option = book_option(env.config)
        super().reset(env)
        self._option, self._reader = option, None
        if option is None:
            self._reader = _BookReader()
            self._reader.reset(env)

    def positions(self, state: State, obs: NDArray[np.float32]) -> FloatArray:
        """Minus the minimum-variance delta of the book, ``(n_paths, action_dim)``.

        ``-(book delta + terms @ (a, b, c))``: the terms of the book's one option
        (:meth:`SingleOption.terms`) or of its many (:func:`book_terms`).
        """
        option, reader = self._option, self._reader
        book_delta = np.asarray(state["book_delta"])
        if option is not None:
            terms = option.terms(book_delta, np.asarray(state["book_vega"]),
                                 np.asarray(state["spot"]), np.asarray(state["step"]),
                                 float(state["dt"]))
        elif reader is not None:
            terms = book_terms(reader, state)
        else:
            raise RuntimeError("MinimumVarianceDelta: call reset(env) before positions()")
        hedge = -(book_delta + terms @ self.coefficients)
        return stack_positions(hedge, np.zeros_like(hedge), self.config.action_dim)


def _finite_real(value: Any) -> float | None:
    """``value`` as a float if it is a finite real number (not a bool, complex or string)."""
    if not is_real(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond the floats
        return None
    return number if math.isfinite(number) else None
