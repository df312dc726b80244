"""Building a batch of episodes: market paths, book marks, costs and observation features.

Everything here is exogenous to the hedger and computed once per batch, vectorised over paths
and steps; :mod:`hedgearena.envs.core` then steps only the hedger's positions and cash.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hedgearena.envs.book import (
    BOOK_GREEKS,
    BookMarks,
    BookPaths,
    HedgeOptionMarks,
    arrival_weights,
    expiry_years,
    held_quantity,
    mark_book_time_major,
    mark_hedge_option_time_major,
    price_options,
    sample_book,
    settlement_weights,
)
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import Episode
from hedgearena.envs.frictions import CostCoefficients
from hedgearena.envs.market import FloatArray, MarketPaths, time_major

# Observation features, in order: (name, definition). The table is the env docs' source.
EXOGENOUS_FEATURES: tuple[tuple[str, str], ...] = (
    ("time_left", "decisions left / decisions per episode, in [0, 1]"),
    ("log_moneyness", "ln(S_t / K), K the first initial option's strike (else S_0)"),
    ("book_delta", "book delta (options and stock) / notional"),
    ("book_gamma", "book gamma * S_t * sigma_t * sqrt(T) / notional"),
    ("book_vega", "book vega / (notional * S_t * sqrt(T))"),
    ("book_theta", "book theta * sqrt(T) / (notional * S_t * sigma_t)"),
    ("model_hedge", "model (delta or delta-gamma) hedge in the underlying / notional"),
    ("implied_vol", "at-the-money (forward) implied vol sigma_t for the episode's time left "
                    "(at least one step), annualised"),
    ("realised_vol", "EWMA realised vol, annualised: sqrt of an EWMA of r_s^2 / dt (r_s the "
                     "market step's log return), half-life `realised_vol_halflife` steps, "
                     "started at the initial implied vol"),
    ("cost_rate", "linear cost coefficient / S_t, in percent of traded value"),
    ("liquidity", "liquidity multiplier of spreads and impact (1 = normal)"),
)
OPTION_FEATURES: tuple[tuple[str, str], ...] = (
    ("model_option", "model (gamma-neutral) position in the hedging option / notional"),
    ("option_delta", "hedging option's delta"),
    ("option_gamma", "hedging option's gamma * S_t * sigma_t * sqrt(T)"),
    ("option_vega", "hedging option's vega / (S_t * sqrt(T))"),
)
POSITION_FEATURES: tuple[tuple[str, str], ...] = (
    ("hedge", "position in the underlying / notional"),
)
OPTION_POSITION_FEATURES: tuple[tuple[str, str], ...] = (
    ("option_position", "position in the hedging option / notional"),
)


PNL_FEATURES: tuple[tuple[str, str], ...] = (
    ("pnl", "episode P&L so far (W_t - W_0) / reward_scale (with observe_pnl)"),
)
"""The agent-view entry appended by the envs when ``observe_pnl`` is set (not in batches)."""


def feature_names(with_option: bool) -> tuple[str, ...]:
    """Names of the observation's entries held by a batch (and the deep hedger's), in order."""
    table = EXOGENOUS_FEATURES + (OPTION_FEATURES if with_option else ())
    table += POSITION_FEATURES + (OPTION_POSITION_FEATURES if with_option else ())
    return tuple(name for name, _ in table)


def observation_names(config: EnvConfig) -> tuple[str, ...]:
    """Names of the envs' observation entries for ``config``, in order.

    :func:`feature_names`, then ``pnl`` when ``config.observe_pnl`` is set (the envs append
    it; it is not part of :attr:`EpisodeBatch.observations`).

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> observation_names(make_config("ShortCall", observe_pnl=True))[-3:]
        ('liquidity', 'hedge', 'pnl')
    """
    names = feature_names(config.hedge_option is not None)
    return names + tuple(name for name, _ in PNL_FEATURES) if config.observe_pnl else names


class Features(NamedTuple):
    """Unnormalised exogenous state for classical hedgers; arrays ``(n_paths, n_steps + 1)``.

    ``tau`` is the time left in the episode (years); ``book_*`` the book's greeks (delta
    includes the book's stock); ``implied_vol`` the at-the-money implied vol; ``option_*`` the
    hedging option's greeks (zeros without one).
    """

    tau: FloatArray
    book_delta: FloatArray
    book_gamma: FloatArray
    book_vega: FloatArray
    book_theta: FloatArray
    implied_vol: FloatArray
    realised_vol: FloatArray
    option_delta: FloatArray
    option_gamma: FloatArray
    option_vega: FloatArray
    liquidity: FloatArray


class EpisodeBatch(NamedTuple):
    """A batch of episodes: the core's arrays, the features, the observations' exogenous part.

    ``episode`` is time-major (see :class:`hedgearena.envs.core.Episode`); everything else is
    path-major, ``(n_paths, ...)``.

    ``observations`` is time-major ``(n_steps + 1, n_paths, n_features)`` float32, the whole
    observation with its position entries (the last one or two) left at 0 for the env to fill
    (``(n_steps + 1, n_paths, 0)`` when built without them, see :func:`build_episodes`);
    ``initial_cash`` the
    cash at the start (premiums of the initial book), ``(n_paths,)``.

    The path-major arrays are mostly transposed views of time-major ones (the layout the batch is
    computed in), and the fields that are 0 by construction (the hedging option's without one,
    the cost terms the cost model lacks) share one array of zeros: treat a batch as read-only
    (the vector env copies one before writing new paths into it).
    """

    episode: Episode
    features: Features
    observations: NDArray[np.float32]
    initial_cash: FloatArray
    market: MarketPaths
    instruments: BookPaths


def build_episodes(
    config: EnvConfig, n_paths: int, rng: np.random.Generator, observations: bool = True
) -> EpisodeBatch:
    """Simulate ``n_paths`` episodes of ``config`` from ``rng`` (market first, then client flow).

    Everything is computed time-major, ``(n_steps + 1, n_paths)``, the core's layout, so a step's
    values are contiguous; the path-major arrays of the batch (features, marks) are transposed
    views of time-major ones.

    Args:
        config: the env's configuration.
        n_paths: batch size.
        rng: the source of all randomness of the batch.
        observations: build the float32 observations too; without them (for hedgers that read
            the env's state only) ``observations`` is an empty ``(n_steps + 1, n_paths, 0)``
            array (see :func:`has_observations`, :func:`with_observations`). The other arrays
            are the same either way (the observations draw no random numbers).

    Returns:
        The batch, with every array computed for every path and market step.
    """
    assert config.n_steps is not None
    market = config.market.simulate(n_paths, config.n_steps, config.dt, rng)
    check_spot(market.spot, config)
    instruments = sample_book(config.book, market, rng)
    grid = _Grid(time_major(market.spot), time_major(market.liquidity))
    zeros = np.zeros(grid.spot.shape)  # shared by every field that is 0 by construction
    marks = _mark_book_chunked(instruments, market)
    option = _hedge_option_marks(config, market) or HedgeOptionMarks(zeros, zeros, zeros, zeros)
    stock = float(config.book.stock)
    value = marks.value + stock * grid.spot if stock else marks.value
    book_delta = marks.delta + stock if stock else marks.delta
    atm_vol = _atm_vol(market, grid.spot, config)
    if config.hedge_option is None:
        model_option, model_hedge = zeros, -book_delta
    else:
        tau = config.hedge_option.expiry_steps * config.dt - market.times[:, None]
        model_option = _gamma_neutral(marks.gamma, option, grid.spot, tau, _option_cap(config))
        model_hedge = delta_neutral_hedge(book_delta, model_option, option.delta)
    coefficients = config.cost.coefficients(grid.spot, vol=atm_vol, liquidity=grid.liquidity)
    costs = CostCoefficients(
        *(
            _coefficient(c, zeros, (grid.spot, atm_vol, grid.liquidity))
            for c in (
                coefficients.linear, coefficients.quadratic, coefficients.three_halves,
                coefficients.fixed,
            )
        )
    )
    episode = _episode(
        config, market, grid, marks, value, option, (model_hedge, model_option), costs
    )._replace(**_execution_fields(config, market, grid))
    features = Features(
        tau=_repeat_rows(market.times[-1] - market.times, n_paths).T,
        book_delta=book_delta.T,
        book_gamma=marks.gamma.T,
        book_vega=marks.vega.T,
        book_theta=marks.theta.T,
        implied_vol=atm_vol.T,
        realised_vol=_realised_vol(grid.spot, atm_vol[0], config).T,
        option_delta=option.delta.T,
        option_gamma=option.gamma.T,
        option_vega=option.vega.T,
        liquidity=market.liquidity,
    )
    initial_cash = marks.premium[0] + marks.spread_income[0]
    unobserved = np.empty((*grid.spot.shape, 0), np.float32)
    batch = EpisodeBatch(episode, features, unobserved, initial_cash, market, instruments)
    return with_observations(config, batch) if observations else batch


def check_spot(spot: FloatArray, config: EnvConfig) -> None:
    """Raise ``ValueError`` unless every simulated spot is a finite number > 0.

    A model that absorbs the price at 0 (its ``absorbs_at_zero``: SABR) is named as such, with
    the number of paths absorbed. Absurd parameters (a drift or volatility of 10^6 a year)
    overflow or underflow float64; the batch would carry NaN into marks, observations and
    rewards. Two reductions (min and max; NaN propagates through both) keep the check cheap.
    """
    low, high = float(np.min(spot)), float(np.max(spot))
    if low > 0.0 and math.isfinite(high):
        return
    path, step = np.argwhere(~(np.isfinite(spot) & (spot > 0.0)))[0]
    absorbs = bool(getattr(config.market, "absorbs_at_zero", False))
    if absorbs and spot[path, step] == 0.0 and np.isfinite(spot).all():
        absorbed = int(np.count_nonzero(spot[:, -1] == 0.0))
        raise ValueError(
            f"the market model {config.market!r} absorbed {absorbed} of {spot.shape[0]} paths "
            f"at a spot of 0 (the first: path {path}, step {step}); the env needs a spot > 0 "
            f"(its log-moneyness, greeks and costs); give parameters under which the price "
            f"stays positive over {config.n_steps} steps of {config.dt:.4g} years (e.g. a "
            f"smaller vol of vol or alpha, or beta = 1)"
        )
    raise ValueError(
        f"the market model {config.market!r} simulated a spot of {float(spot[path, step])!r} "
        f"(path {path}, step {step}): its parameters are beyond what float64 can simulate over "
        f"{config.n_steps} steps of {config.dt:.4g} years; give a smaller drift or volatility"
    )


def has_observations(batch: EpisodeBatch) -> bool:
    """Whether ``batch`` holds its observations (see ``build_episodes(observations=False)``)."""
    return batch.observations.shape[-1] > 0


def with_realised_vol(config: EnvConfig, batch: EpisodeBatch) -> EpisodeBatch:
    """``batch`` with its realised-vol feature (and observations) at ``config``'s half-life.

    The only feature a hedger's view of the env changes (``realised_vol_halflife``): the arena
    builds a batch once and gives a hedger with another half-life this copy of it. The EWMA
    starts at the initial implied vol, as :func:`build_episodes` does.
    """
    spot = np.ascontiguousarray(batch.market.spot.T)  # time-major, as the build's grid
    realised = _realised_vol(spot, batch.features.implied_vol[:, 0], config).T
    out = batch._replace(features=batch.features._replace(realised_vol=realised))
    if has_observations(batch):
        out = out._replace(observations=_observations(config, out))
    return out


def with_observations(config: EnvConfig, batch: EpisodeBatch) -> EpisodeBatch:
    """``batch`` with its observations (built from its arrays when it lacks them).

    Building them later gives the same float32 array as :func:`build_episodes` would have.
    """
    if has_observations(batch):
        return batch
    return batch._replace(observations=_observations(config, batch))


class _Grid(NamedTuple):
    """The market arrays every stage reads, time-major ``(n_steps + 1, n_paths)``."""

    spot: FloatArray
    liquidity: FloatArray


def _episode(
    config: EnvConfig,
    market: MarketPaths,
    grid: _Grid,
    marks: BookMarks,
    value: FloatArray,
    option: HedgeOptionMarks,
    model: tuple[FloatArray, FloatArray],
    costs: CostCoefficients,
) -> Episode:
    """The core's arrays, time-major; ``model`` is the model's hedge and option position."""
    option_mtm = np.empty_like(value)
    np.subtract(value[1:], value[:-1], out=option_mtm[:-1])
    option_mtm[:-1] += marks.premium[1:]
    option_mtm[:-1] += marks.settlement[1:]
    option_mtm[-1] = 0.0
    option_linear = hedge_option_linear(config, option.vega, grid.liquidity)
    return Episode(
        spot=grid.spot,
        option_price=option.price,
        model_hedge=model[0],
        model_option=model[1],
        book_value=value,
        option_mtm=option_mtm,
        cash_flow=marks.premium + marks.settlement,
        spread_income=marks.spread_income,
        linear=costs.linear,
        quadratic=costs.quadratic,
        three_halves=costs.three_halves,
        fixed=costs.fixed,
        option_linear=option_linear,
        stock=np.full(value.shape[1], float(config.book.stock)),
        rate_growth=float(np.exp(market.rate * config.dt)),
        dividend_growth=float(np.exp(market.dividend * config.dt)),
        with_option=config.hedge_option is not None,
    )


def hedge_option_linear(config: EnvConfig, vega: FloatArray, liquidity: FloatArray) -> FloatArray:
    """The hedging option's cost per unit traded (currency): its half-spread in vol points.

    ``half_spread_vol * vega * liquidity`` (:class:`hedgearena.envs.book.HedgeOption`; the rule
    of :class:`hedgearena.envs.frictions.OptionSpreadCost` with ``vol_points``), ``vega`` per
    unit of the option (currency per 1.00 of vol); ``vega`` itself (zeros) without a hedging
    option. Arrays broadcast.
    """
    if config.hedge_option is None:
        return vega
    return config.hedge_option.half_spread_vol * vega * liquidity


def _execution_fields(config: EnvConfig, market: MarketPaths, grid: _Grid) -> dict[str, FloatArray]:
    """The episode's fill and child-order caps, time-major (absent: the defaults, no limits).

    ``fill_cap`` and ``child_cap`` are converted from multiples of the notional to units.
    """
    notional, fields = config.book.notional, {}
    if market.fill_fraction is not None:
        fields["fill_fraction"] = time_major(market.fill_fraction)
    if market.fill_cap is not None:
        fields["fill_cap"] = time_major(market.fill_cap) * notional
    if config.execution == "participation":
        fields["child_cap"] = (config.execution_rate * notional) / grid.liquidity
    return fields


GAMMA_HEDGE_MIN_DENSITY = 1e-4
"""The hedging option is used for gamma only while ``vega / (S sqrt(tau))`` (the normal density
at its d1, times ``e^{-q tau}``) exceeds this: ``|d1| < 4.07`` at zero dividends (``phi(4.07) =
1e-4``, ``2.5e-4`` of the density at the money). Farther out of the money
its gamma is a rounding error and dividing by it would ask for absurd positions (e.g. 10^12
units when a Heston path's implied vol collapses to 1%)."""


def _option_cap(config: EnvConfig) -> float:
    """The largest model position in the hedging option, units: ``target`` mode's range for it.

    ``option_position_limit`` notionals, so that an agent can always reach the model's position.
    """
    return config.option_position_limit * config.book.notional


def hedge_option_usable(vega: FloatArray, spot: FloatArray, tau: FloatArray) -> NDArray[np.bool_]:
    """Where the hedging option carries enough gamma and vega to hedge with.

    ``vega / (S sqrt(tau)) > GAMMA_HEDGE_MIN_DENSITY`` (see the constant); arrays broadcast.
    """
    density = vega / (spot * np.sqrt(np.maximum(tau, 1e-12)))
    return np.asarray(density > GAMMA_HEDGE_MIN_DENSITY)


def delta_neutral_hedge(book_delta: Any, option_units: Any, option_delta: Any) -> Any:
    """Units of the underlying that cancel the delta of the book and the option held.

    ``h = -(Delta_book + n Delta_opt)`` (broadcast shape): the model hedge beside ``n`` units
    of the hedging option.

    Examples:
        A short call book of delta -51 holding 125 units of the option, of delta 0.52:
        ``-(-51 + 65) = -14`` (it sells 14 units of the underlying).

        >>> delta_neutral_hedge(np.array([-51.0]), np.array([125.0]), np.array([0.52]))
        array([-14.])
    """
    return -(book_delta + option_units * option_delta)


def _gamma_neutral(
    book_gamma: FloatArray, option: HedgeOptionMarks, spot: FloatArray, tau: FloatArray,
    cap: float,
) -> FloatArray:
    """Units of the hedging option that cancel the book's gamma, within ``+-cap`` units.

    Zero where the option is too far out of the money to carry gamma
    (:data:`GAMMA_HEDGE_MIN_DENSITY`); clipped to ``+-cap`` where cancelling would need more
    (a short-dated client option near the money can carry thousands of times the gamma of a
    three-month one). Arrays broadcast, time-major or flat alike.
    """
    usable = hedge_option_usable(option.vega, spot, tau) & (option.gamma > 0)
    units = np.where(usable, -book_gamma / np.where(usable, option.gamma, 1.0), 0.0)
    return np.clip(units, -cap, cap)


def _coefficient(
    values: FloatArray | float, zeros: FloatArray, inputs: tuple[FloatArray, ...]
) -> FloatArray:
    """A cost coefficient as a float64 array of the batch's (time-major) shape.

    A term the cost model lacks (the number 0) is the batch's shared ``zeros``; an array the
    model computed for the batch is used as it is; anything else (a number, an array that
    broadcasts, one of the model's ``inputs`` passed through) is copied into a new array.
    """
    if np.ndim(values) == 0 and float(values) == 0.0:
        return zeros
    array = np.asarray(values)
    own = array.flags.owndata and not any(array is x for x in inputs)
    if own and array.shape == zeros.shape and array.dtype == np.float64:
        return array
    return np.broadcast_to(np.asarray(values, dtype=np.float64), zeros.shape).copy()


def _repeat_rows(values: FloatArray, n_paths: int) -> FloatArray:
    """``(n,)`` -> ``(n, n_paths)``: ``values[s]`` on every path of row ``s``."""
    out = np.empty((values.shape[0], n_paths))
    out[:] = values[:, None]
    return out


_MARK_CHUNK = 2_000_000
"""Options of one step (paths x instruments) marked per chunk of paths."""


def _mark_book_chunked(instruments: BookPaths, market: MarketPaths) -> BookMarks:
    """:func:`mark_book_time_major` in chunks of paths, so big batches of big books fit in memory.

    Memory goes with a step's options, ``n_paths x n_instruments`` (the marking works a block of
    steps at a time); a chunk holds at most about :data:`_MARK_CHUNK`.
    """
    chunk = max(1, _MARK_CHUNK // max(instruments.strike.shape[1], 1))
    if market.n_paths <= chunk:
        return mark_book_time_major(instruments, market)
    parts = []
    for lo in range(0, market.n_paths, chunk):
        rows = slice(lo, lo + chunk)
        sub_market = market_rows(market, rows)
        sub_book = BookPaths(*(a[rows] for a in instruments))
        parts.append(mark_book_time_major(sub_book, sub_market))
    return BookMarks(*(np.concatenate(p, axis=1) for p in zip(*parts, strict=True)))


def market_rows(market: MarketPaths, rows: slice | NDArray[np.intp]) -> MarketPaths:
    """The paths ``rows`` of a batch of market paths."""
    return MarketPaths(
        times=market.times,
        spot=market.spot[rows],
        variance=market.variance[rows],
        vol_state=market.vol_state[rows],
        surface=market.surface,
        rate=market.rate,
        dividend=market.dividend,
        liquidity=market.liquidity[rows],
        dates=None if market.dates is None else market.dates[rows],
        fill_fraction=None if market.fill_fraction is None else market.fill_fraction[rows],
        fill_cap=None if market.fill_cap is None else market.fill_cap[rows],
    )


def _atm_vol(market: MarketPaths, spot: FloatArray, config: EnvConfig) -> FloatArray:
    """At-the-money implied vol for the time left in the episode (at least one step).

    ``spot`` is the market's spot, time-major; so is the result, ``(n_steps + 1, n_paths)``.
    """
    tau = np.maximum(market.times[-1] - market.times, config.dt)[:, None]
    return at_the_money_vol(market, spot, tau, time_major(market.vol_state), spot[:1])


def at_the_money_vol(
    market: MarketPaths, spot: FloatArray, tau: Any, level: Any, anchor: Any
) -> FloatArray:
    """The surface's implied vol at the forward, ``tau`` years out (arrays broadcast).

    ``level`` and ``anchor`` are the surface's state and anchor spot.
    """
    carry = market.rate - market.dividend
    forward = spot * np.exp(carry * tau) if carry else spot  # e^0 = 1: the forward is the spot
    vol = market.surface.implied_vol(
        spot, forward, tau, level, anchor, market.rate, market.dividend
    )
    return np.asarray(vol, dtype=np.float64)


def _hedge_option_marks(config: EnvConfig, market: MarketPaths) -> HedgeOptionMarks | None:
    """The hedging option's marks, time-major (None without a hedging option)."""
    if config.hedge_option is None:
        return None
    return mark_hedge_option_time_major(config.hedge_option, market)


def _realised_vol(spot: FloatArray, initial_vol: FloatArray, config: EnvConfig) -> FloatArray:
    """EWMA of squared log returns per market step, annualised, started at the initial implied vol.

    ``v_s = (1 - a) v_{s-1} + a r_s^2 / dt`` with ``a = 1 - 2^{-1/halflife}``; returns sqrt(v).
    ``spot`` is time-major, ``(n_steps + 1, n_paths)``, and so is the result: the recursion runs
    over the steps, each one vectorised over the paths (a contiguous row, its log return
    computed while it is in cache; two rows of logs are all the temporaries).
    """
    alpha = 1.0 - 0.5 ** (1.0 / config.realised_vol_halflife)
    variance = np.empty_like(spot)
    variance[0] = initial_vol**2
    previous, current = np.log(spot[0]), np.empty(spot.shape[1])
    for s in range(spot.shape[0] - 1):
        np.log(spot[s + 1], out=current)
        innovation = np.subtract(current, previous, out=previous)  # r_s (previous is done)
        np.square(innovation, out=innovation)
        innovation /= config.dt
        innovation *= alpha  # a r_s^2 / dt
        np.multiply(variance[s], 1.0 - alpha, out=variance[s + 1])
        variance[s + 1] += innovation
        np.sqrt(variance[s], out=variance[s])
        previous, current = current, previous
    np.sqrt(variance[-1], out=variance[-1])
    return variance


class FeatureInputs(NamedTuple):
    """What the observation's exogenous entries are computed from (arrays that broadcast).

    ``steps`` are market steps, ``strike`` the first initial option's strike (else the initial
    spot); the others are the batch's values of the same names (see :class:`Features` and
    :class:`hedgearena.envs.core.Episode`).
    """

    steps: NDArray[np.int64]
    spot: FloatArray
    strike: FloatArray
    implied_vol: FloatArray
    realised_vol: FloatArray
    liquidity: FloatArray
    linear: FloatArray
    book_delta: FloatArray
    book_gamma: FloatArray
    book_vega: FloatArray
    book_theta: FloatArray
    model_hedge: FloatArray
    model_option: FloatArray
    option_delta: FloatArray
    option_gamma: FloatArray
    option_vega: FloatArray


def _write_features(
    part: NDArray[np.float32], config: EnvConfig, batch: EpisodeBatch, rows: slice
) -> None:
    """Write the exogenous observation entries at the steps ``rows`` into ``part``.

    ``part[i]`` is entry ``i`` of :data:`EXOGENOUS_FEATURES` (then :data:`OPTION_FEATURES`), a
    ``(len(rows), n_paths)`` float32 block (see :func:`feature_entries`).
    """
    assert config.n_steps is not None
    episode, features = batch.episode, batch.features
    strike = batch.instruments.strike[:, 0] if config.book.options else episode.spot[0]
    inputs = FeatureInputs(
        steps=np.arange(config.n_steps + 1)[rows][:, None],
        spot=episode.spot[rows],
        strike=strike,
        implied_vol=features.implied_vol.T[rows],
        realised_vol=features.realised_vol.T[rows],
        liquidity=features.liquidity.T[rows],
        linear=episode.linear[rows],
        book_delta=features.book_delta.T[rows],
        book_gamma=features.book_gamma.T[rows],
        book_vega=features.book_vega.T[rows],
        book_theta=features.book_theta.T[rows],
        model_hedge=episode.model_hedge[rows],
        model_option=episode.model_option[rows],
        option_delta=features.option_delta.T[rows],
        option_gamma=features.option_gamma.T[rows],
        option_vega=features.option_vega.T[rows],
    )
    feature_entries(part, config, inputs)


def feature_entries(part: NDArray[np.float32], config: EnvConfig, x: FeatureInputs) -> None:
    """The exogenous observation entries (the table :data:`EXOGENOUS_FEATURES`) into ``part``.

    ``part[i]`` is entry ``i`` (then :data:`OPTION_FEATURES`'), a float32 array of the inputs'
    broadcast shape. Each entry is computed in float64 and rounded to float32 once, by its last
    operation (``out=``); products of constants are grouped, which may move an entry by a
    float64 rounding, far below float32's.
    """
    assert config.n_steps is not None
    notional, n_steps = config.book.notional, config.n_steps
    spot = x.spot
    sigma = np.maximum(x.implied_vol, 1e-8)
    root_t = np.sqrt(n_steps * config.dt)
    to32: dict[str, Any] = {"casting": "same_kind"}
    spot_sigma = spot * sigma  # shared by the gamma and theta entries
    part[0] = (n_steps - x.steps) / n_steps
    np.log(spot / x.strike, out=part[1], **to32)
    np.divide(x.book_delta, notional, out=part[2], **to32)
    np.multiply(x.book_gamma * spot_sigma, root_t / notional, out=part[3], **to32)
    np.divide(x.book_vega, spot * (notional * root_t), out=part[4], **to32)
    np.divide(x.book_theta * (root_t / notional), spot_sigma, out=part[5], **to32)
    np.divide(x.model_hedge, notional, out=part[6], **to32)
    part[7] = x.implied_vol
    part[8] = x.realised_vol
    np.divide(100.0 * x.linear, spot, out=part[9], **to32)
    part[10] = x.liquidity
    if config.hedge_option is not None:
        np.divide(x.model_option, notional, out=part[11], **to32)
        part[12] = x.option_delta
        np.multiply(x.option_gamma * spot_sigma, root_t, out=part[13], **to32)
        np.divide(x.option_vega, spot * root_t, out=part[14], **to32)


def _observations(config: EnvConfig, batch: EpisodeBatch) -> NDArray[np.float32]:
    """Observations of every step and path, ``(n_steps + 1, n_paths, n_features)`` float32.

    The exogenous entries are filled from the batch's arrays (see :func:`_write_features`), the
    positions (the entries after them) left at 0. The work goes a block of steps at a time, so
    its temporaries stay in cache: the entries are written feature-major (contiguous float32
    rows), then interleaved into the observations' rows.
    """
    n_rows, n_paths = batch.episode.spot.shape
    n_features = len(feature_names(config.hedge_option is not None))
    block = max(1, _BLOCK // n_paths)
    stack = np.zeros((n_features, min(block, n_rows), n_paths), dtype=np.float32)
    out = np.empty((n_rows, n_paths, n_features), dtype=np.float32)
    for lo in range(0, n_rows, block):
        rows = slice(lo, min(lo + block, n_rows))
        part = stack[:, : rows.stop - lo]
        _write_features(part, config, batch, rows)
        out[rows] = part.transpose(1, 2, 0)
    return out


_BLOCK = 32768
"""Observation entries (steps x paths) computed per block in :func:`_observations`."""


# ------------------------------------------------------------------ re-marking (own impact)
class StepMarks(NamedTuple):
    """Everything the batch holds about some (step, path) pairs, at a given spot; ``(k,)``.

    The hedging option's entries are at the market's spot whatever the given one (its quotes;
    see :func:`mark_step`).

    ``book_*`` are the book's marks and greeks (``book_delta`` with its stock), ``premium``,
    ``spread_income`` and ``settlement`` its cash flows at the step, ``option_*`` the hedging
    option's (zeros without one), ``implied_vol`` the at-the-money vol, ``model_*`` the model's
    positions, ``costs`` the cost polynomial's coefficients (numbers where the model lacks a
    term) and ``option_linear`` the hedging option's cost per unit.
    """

    spot: FloatArray
    book_value: FloatArray
    book_delta: FloatArray
    book_gamma: FloatArray
    book_vega: FloatArray
    book_theta: FloatArray
    premium: FloatArray
    spread_income: FloatArray
    settlement: FloatArray
    option_price: FloatArray
    option_delta: FloatArray
    option_gamma: FloatArray
    option_vega: FloatArray
    implied_vol: FloatArray
    model_hedge: FloatArray
    model_option: FloatArray
    costs: CostCoefficients
    option_linear: FloatArray


def mark_step(
    config: EnvConfig,
    market: MarketPaths,
    instruments: BookPaths,
    steps: NDArray[np.int64],
    rows: NDArray[np.intp],
    spot: FloatArray,
) -> StepMarks:
    """The book, the costs and the hedging option of paths ``rows`` at ``steps``, at ``spot``.

    What :func:`build_episodes` computes for a (step, path), with the spot replaced (the
    market's other state, the surface's level and anchor, stays): exactly the batch's numbers
    when ``spot`` is the market's (a test checks it), the exact re-marks at a spot moved by the
    hedger's own permanent impact otherwise, except what the hedger is paid on: options
    expiring at the step settle at the market's spot, and the hedging option (a listed option
    it trades) is quoted at the market's spot, which the hedger's trades do not move (else
    pushing the spot before an expiry and unwinding after it, a free round trip under linear
    permanent impact, would pay: marking the close; and buying the hedging option, pushing
    the spot and selling the option back would pay: manipulation through a derivative,
    Jarrow 1994, "Derivative security markets, market manipulation, and option pricing
    theory", J. Financial and Quantitative Analysis 29(2)).

    Args:
        config: the env's configuration.
        market: the batch's (exogenous) market paths.
        instruments: the batch's book.
        steps: market step of each pair, ``(k,)``.
        rows: path of each pair, ``(k,)``.
        spot: the spot to mark at, ``(k,)`` currency.
    """
    level, anchor = market.vol_state[rows, steps], market.spot[rows, 0]
    book = _book_at(config, market, instruments, (steps, rows), (spot, level, anchor))
    unmoved = market.spot[rows, steps]
    expiring = instruments.expiry[rows] == steps[:, None]
    if np.any(spot != unmoved) and np.any(expiring & (instruments.quantity[rows] != 0)):
        settlement = _book_at(config, market, instruments, (steps, rows),
                              (unmoved, level, anchor)).settlement
        book = book._replace(settlement=settlement)
    option = _hedge_option_at(config, market, steps, (unmoved, level, anchor))  # its quotes
    tau = np.maximum(market.times[-1] - market.times[steps], config.dt)
    atm_vol = at_the_money_vol(market, spot, tau, level, anchor)
    liquidity = market.liquidity[rows, steps]
    costs = config.cost.coefficients(spot, vol=atm_vol, liquidity=liquidity)
    book_delta = book.delta + float(config.book.stock)
    if config.hedge_option is None:
        model_option, model_hedge = np.zeros_like(spot), -book_delta
        option_linear = np.zeros_like(spot)
    else:
        option_tau = config.hedge_option.expiry_steps * config.dt - market.times[steps]
        model_option = _gamma_neutral(book.gamma, option, unmoved, option_tau,
                                      _option_cap(config))
        model_hedge = delta_neutral_hedge(book_delta, model_option, option.delta)
        option_linear = hedge_option_linear(config, option.vega, liquidity)
    return StepMarks(
        spot, book.value + float(config.book.stock) * spot, book_delta, book.gamma, book.vega,
        book.theta, book.premium, book.spread_income, book.settlement, option.price,
        option.delta, option.gamma, option.vega, atm_vol,
        model_hedge, model_option, costs, option_linear,
    )


def _book_at(
    config: EnvConfig,
    market: MarketPaths,
    instruments: BookPaths,
    where: tuple[NDArray[np.int64], NDArray[np.intp]],
    state: tuple[FloatArray, FloatArray, FloatArray],
) -> BookMarks:
    """The book's options at (step, path) pairs ``where``, marked at the market ``state``.

    ``state`` is the spot, the surface's level and its anchor, ``(k,)`` each. The rules of
    :func:`hedgearena.envs.book.mark_book_time_major`: an option is held at
    ``start <= s < expiry``, arrives (premium, half-spread) at ``start``, settles at ``expiry``.
    """
    steps, rows = where
    spot, level, anchor = (x[:, None] for x in state)
    strike, quantity = instruments.strike[rows], instruments.quantity[rows]
    start, expiry = instruments.start[rows], instruments.expiry[rows]
    step = steps[:, None]
    tau = np.maximum(expiry_years(market, expiry) - market.times[steps][:, None], 0.0)
    greeks = price_options(market, spot, strike, tau, level, anchor, instruments.is_call[rows],
                           BOOK_GREEKS)
    held = held_quantity(step, start, expiry, quantity)
    premium, spread = arrival_weights(step, start, expiry, quantity,
                                      instruments.half_spread_vol[rows])
    total = lambda values, weights: np.einsum("pi,pi->p", values, weights)  # noqa: E731
    return BookMarks(
        *(total(getattr(greeks, name), held) for name in BOOK_GREEKS),  # value <- price
        premium=total(greeks.price, premium),
        spread_income=total(greeks.vega, spread),
        settlement=total(greeks.price, settlement_weights(step, expiry, quantity)),
    )


def _hedge_option_at(
    config: EnvConfig,
    market: MarketPaths,
    steps: NDArray[np.int64],
    state: tuple[FloatArray, FloatArray, FloatArray],
) -> HedgeOptionMarks:
    """The hedging option's price and greeks at ``steps`` and the market ``state``.

    Zeros without a hedging option; ``state`` as in :func:`_book_at`.
    """
    spot, level, anchor = state
    if config.hedge_option is None:
        zeros = np.zeros_like(spot)
        return HedgeOptionMarks(zeros, zeros, zeros, zeros)
    option = config.hedge_option
    strike = option.moneyness * anchor
    expiry = expiry_years(market, np.array([option.expiry_steps], dtype=np.int64))
    tau = expiry - market.times[steps]
    greeks = price_options(market, spot, strike, tau, level, anchor, option.is_call,
                           HedgeOptionMarks._fields)
    return HedgeOptionMarks(*(getattr(greeks, name) for name in HedgeOptionMarks._fields))


class Remarker:
    """Re-marks (step, path) pairs of a batch at the spot moved by the hedger's own trades.

    The core calls ``remark(step, impact, mask, flows)`` (see
    :func:`hedgearena.envs.core.transition`): for the rows ``mask`` it marks step ``step`` at
    ``S_step e^impact`` (:func:`mark_step`) and writes the result into the batch, in place. After
    a trade at the step (``flows=False``) only the spot and the book's mark are written (the
    step's cash flows were booked before the trade); when a step is reached (``flows=True``)
    everything the batch holds of it: marks, greeks, model positions, cash flows, the previous
    step's ``option_mtm``, cost coefficients, features and the observation's exogenous entries
    (``realised_vol`` stays the market's). The hedging option's quotes, greeks and costs stay
    the market's (see :func:`mark_step`).

    The batch must be the caller's own (:func:`hedgearena.envs.source.copy_batch`): the market
    paths are read, never written; everything else is.

    Args:
        config: the env's configuration.
        batch: the batch to re-mark.
        rows: the batch's paths the calls' rows are (default: all, in order).
    """

    def __init__(
        self, config: EnvConfig, batch: EpisodeBatch, rows: NDArray[np.intp] | None = None
    ) -> None:
        self.config, self.batch = config, batch
        n_paths = batch.initial_cash.shape[0]
        self.rows = np.arange(n_paths) if rows is None else np.asarray(rows, dtype=np.intp)

    def restrict(self, rows: NDArray[np.intp]) -> Remarker:
        """The re-marker of some of this one's rows (for per-row steps)."""
        return Remarker(self.config, self.batch, self.rows[rows])

    def __call__(self, step: ArrayLike, impact: ArrayLike, mask: ArrayLike, flows: bool) -> None:
        """Re-mark step ``step`` (an int, or one per row) of the rows ``mask`` at ``impact``."""
        shape = self.rows.shape
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), shape)
        if not mask.any():
            return
        rows = self.rows[mask]
        steps = np.broadcast_to(np.asarray(step, dtype=np.int64), shape)[mask]
        impact = np.broadcast_to(np.asarray(impact, dtype=np.float64), shape)[mask]
        market = self.batch.market
        spot = market.spot[rows, steps] * np.exp(impact)
        marks = mark_step(self.config, market, self.batch.instruments, steps, rows, spot)
        episode = self.batch.episode
        episode.spot[steps, rows] = marks.spot
        episode.book_value[steps, rows] = marks.book_value
        if flows:
            self._write_step(steps, rows, marks)

    def _write_step(
        self, steps: NDArray[np.int64], rows: NDArray[np.intp], marks: StepMarks
    ) -> None:
        """Write everything else of a step reached (see the class docstring)."""
        episode, features, config = self.batch.episode, self.batch.features, self.config
        with_option = config.hedge_option is not None
        episode.model_hedge[steps, rows] = marks.model_hedge
        episode.cash_flow[steps, rows] = marks.premium + marks.settlement
        episode.spread_income[steps, rows] = marks.spread_income
        episode.option_mtm[steps - 1, rows] = (
            marks.book_value - episode.book_value[steps - 1, rows]
            + episode.cash_flow[steps, rows]
        )
        for name in CostCoefficients.__dataclass_fields__:
            value = getattr(marks.costs, name)
            if np.ndim(value) or value != 0:  # a term the model lacks stays the batch's 0
                getattr(episode, name)[steps, rows] = value
        if with_option:
            episode.model_option[steps, rows] = marks.model_option
        for name in ("book_delta", "book_gamma", "book_vega", "book_theta", "implied_vol"):
            getattr(features, name)[rows, steps] = getattr(marks, name)
        self._write_observations(steps, rows, marks)

    def _write_observations(
        self, steps: NDArray[np.int64], rows: NDArray[np.intp], marks: StepMarks
    ) -> None:
        """Recompute the observations' exogenous entries of the pairs (:func:`feature_entries`).

        A batch built without observations has none to recompute.
        """
        config, batch = self.config, self.batch
        if not has_observations(batch):
            return
        features, episode = batch.features, batch.episode
        strike = (
            batch.instruments.strike[rows, 0] if config.book.options else batch.market.spot[rows, 0]
        )
        inputs = FeatureInputs(
            steps=steps, spot=marks.spot, strike=strike, implied_vol=marks.implied_vol,
            realised_vol=features.realised_vol[rows, steps],
            liquidity=features.liquidity[rows, steps], linear=episode.linear[steps, rows],
            book_delta=marks.book_delta, book_gamma=marks.book_gamma, book_vega=marks.book_vega,
            book_theta=marks.book_theta, model_hedge=marks.model_hedge,
            model_option=marks.model_option, option_delta=marks.option_delta,
            option_gamma=marks.option_gamma, option_vega=marks.option_vega,
        )
        n_exogenous = len(EXOGENOUS_FEATURES) + (
            len(OPTION_FEATURES) if config.hedge_option is not None else 0
        )
        part = np.empty((n_exogenous, len(rows)), dtype=np.float32)
        feature_entries(part, config, inputs)
        batch.observations[steps, rows, :n_exogenous] = part.T
