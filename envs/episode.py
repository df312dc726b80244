"""Building a batch of episodes: market paths, book marks, costs and observation features.

Everything here is exogenous to the hedger and computed once per batch, vectorised over paths
and steps; :mod:`hedgearena.envs.core` then steps only the hedger's positions and cash.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from hedgearena.envs.book import BookMarks, BookPaths, mark_book, mark_hedge_option, sample_book
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import Episode
from hedgearena.envs.market import FloatArray, MarketPaths

# Observation features, in order: (name, definition). The table is the env docs' source.
EXOGENOUS_FEATURES: tuple[tuple[str, str], ...] = (
    ("time_left", "decisions left / decisions per episode, in [0, 1]"),
    ("log_moneyness", "ln(S_t / K), K the first initial option's strike (else S_0)"),
    ("book_delta", "book delta (options and stock) / notional"),
    ("book_gamma", "book gamma * S_t * sigma_t * sqrt(T) / notional"),
    ("book_vega", "book vega / (notional * S_t * sqrt(T))"),
    ("book_theta", "book theta * sqrt(T) / (notional * S_t * sigma_t)"),
    ("model_hedge", "model (delta or delta-gamma) hedge in the underlying / notional"),
    ("implied_vol", "at-the-money implied vol sigma_t (annualised)"),
    ("realised_vol", "EWMA realised vol of daily log returns (annualised)"),
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


def feature_names(with_option: bool) -> tuple[str, ...]:
    """Names of the observation's entries, in order."""
    table = EXOGENOUS_FEATURES + (OPTION_FEATURES if with_option else ())
    table += POSITION_FEATURES + (OPTION_POSITION_FEATURES if with_option else ())
    return tuple(name for name, _ in table)


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
    observation with its position entries (the last one or two) left at 0 for the env to fill;
    ``initial_cash`` the
    cash at the start (premiums of the initial book), ``(n_paths,)``.
    """

    episode: Episode
    features: Features
    observations: NDArray[np.float32]
    initial_cash: FloatArray
    market: MarketPaths
    instruments: BookPaths


def build_episodes(config: EnvConfig, n_paths: int, rng: np.random.Generator) -> EpisodeBatch:
    """Simulate ``n_paths`` episodes of ``config`` from ``rng`` (market first, then client flow).

    Args:
        config: the env's configuration.
        n_paths: batch size.
        rng: the source of all randomness of the batch.

    Returns:
        The batch, with every array computed for every path and market step.
    """
    assert config.n_steps is not None
    market = config.market.simulate(n_paths, config.n_steps, config.dt, rng)
    instruments = sample_book(config.book, market, rng)
    marks = _mark_book_chunked(instruments, market)
    stock = np.full(n_paths, float(config.book.stock))
    value = marks.value + stock[:, None] * market.spot
    book_delta = marks.delta + stock[:, None]
    atm_vol = _atm_vol(market, config)
    option = _hedge_option_marks(config, market)
    model_option = (
        _gamma_neutral(marks.gamma, option[2]) if config.hedge_option else np.zeros_like(value)
    )
    model_hedge = -(book_delta + model_option * option[1])
    option_mtm = np.zeros_like(value)
    option_mtm[:, :-1] = np.diff(value, axis=1) + marks.premium[:, 1:] + marks.settlement[:, 1:]
    coefficients = config.cost.coefficients(market.spot, vol=atm_vol, liquidity=market.liquidity)
    half_spread = 0.0 if config.hedge_option is None else config.hedge_option.half_spread_vol
    episode = Episode(
        spot=_time_major(market.spot),
        option_price=_time_major(option[0]),
        model_hedge=_time_major(model_hedge),
        model_option=_time_major(model_option),
        book_value=_time_major(value),
        option_mtm=_time_major(option_mtm),
        cash_flow=_time_major(marks.premium + marks.settlement),
        spread_income=_time_major(marks.spread_income),
        linear=_time_major(_full(coefficients.linear, value)),
        quadratic=_time_major(_full(coefficients.quadratic, value)),
        three_halves=_time_major(_full(coefficients.three_halves, value)),
        fixed=_time_major(_full(coefficients.fixed, value)),
        option_linear=_time_major(half_spread * option[3] * market.liquidity),
        stock=stock,
        rate_growth=float(np.exp(market.rate * config.dt)),
        dividend_growth=float(np.exp(market.dividend * config.dt)),
    )
    features = Features(
        tau=np.broadcast_to(market.times[-1] - market.times, value.shape).copy(),
        book_delta=book_delta,
        book_gamma=marks.gamma,
        book_vega=marks.vega,
        book_theta=marks.theta,
        implied_vol=atm_vol,
        realised_vol=_realised_vol(market, atm_vol[:, 0], config),
        option_delta=option[1],
        option_gamma=option[2],
        option_vega=option[3],
        liquidity=market.liquidity,
    )
    observations = _observations(
        config, model_hedge, model_option, coefficients.linear, features, instruments, market
    )
    initial_cash = marks.premium[:, 0] + marks.spread_income[:, 0]
    return EpisodeBatch(episode, features, observations, initial_cash, market, instruments)


def _gamma_neutral(book_gamma: FloatArray, option_gamma: FloatArray) -> FloatArray:
    """Units of the hedging option that cancel the book's gamma (0 where its gamma vanishes)."""
    usable = np.abs(option_gamma) > 1e-12
    return np.where(usable, -book_gamma / np.where(usable, option_gamma, 1.0), 0.0)


def _time_major(values: FloatArray) -> FloatArray:
    """``(n_paths, n_steps + 1)`` -> contiguous ``(n_steps + 1, n_paths)`` (the core's layout)."""
    return np.ascontiguousarray(values.T)


def _full(values: FloatArray | float, like: FloatArray) -> FloatArray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), like.shape).copy()


def _mark_book_chunked(instruments: BookPaths, market: MarketPaths) -> BookMarks:
    """:func:`mark_book` in chunks of paths, so big batches of big books fit in memory."""
    per_path = (market.n_steps + 1) * instruments.strike.shape[1]
    chunk = max(1, 2_000_000 // max(per_path, 1))
    if market.n_paths <= chunk:
        return mark_book(instruments, market)
    parts = []
    for lo in range(0, market.n_paths, chunk):
        rows = slice(lo, lo + chunk)
        sub_market = market_rows(market, rows)
        sub_book = BookPaths(*(a[rows] for a in instruments))
        parts.append(mark_book(sub_book, sub_market))
    return BookMarks(*(np.concatenate(p, axis=0) for p in zip(*parts, strict=True)))


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
    )


def _atm_vol(market: MarketPaths, config: EnvConfig) -> FloatArray:
    """At-the-money implied vol for the time left in the episode (at least one step)."""
    tau = np.maximum(market.times[-1] - market.times, config.dt)[None, :]
    forward = market.spot * np.exp((market.rate - market.dividend) * tau)
    return market.implied_vol(forward, tau)


def _hedge_option_marks(config: EnvConfig, market: MarketPaths) -> tuple[FloatArray, ...]:
    if config.hedge_option is None:
        zeros = np.zeros_like(market.spot)
        return zeros, zeros, zeros, zeros
    marks = mark_hedge_option(config.hedge_option, market)
    return marks.price, marks.delta, marks.gamma, marks.vega


def _realised_vol(market: MarketPaths, initial_vol: FloatArray, config: EnvConfig) -> FloatArray:
    """EWMA of squared daily log returns, annualised, started at the initial implied vol.

    ``v_s = (1 - a) v_{s-1} + a r_s^2 / dt`` with ``a = 1 - 2^{-1/halflife}``; returns sqrt(v).
    """
    alpha = 1.0 - 0.5 ** (1.0 / config.realised_vol_halflife)
    returns2 = np.diff(np.log(market.spot), axis=1) ** 2 / config.dt
    variance = np.empty_like(market.spot)
    variance[:, 0] = initial_vol**2
    for s in range(market.n_steps):
        variance[:, s + 1] = (1.0 - alpha) * variance[:, s] + alpha * returns2[:, s]
    return np.sqrt(variance)


def _observations(
    config: EnvConfig,
    model_hedge: FloatArray,
    model_option: FloatArray,
    linear_cost: FloatArray | float,
    features: Features,
    instruments: BookPaths,
    market: MarketPaths,
) -> NDArray[np.float32]:
    """Observations of every step and path, ``(n_steps + 1, n_paths, n_features)`` float32.

    The exogenous entries are filled (see :data:`EXOGENOUS_FEATURES`), the positions left at 0.
    """
    assert config.n_steps is not None
    notional = config.book.notional
    spot = market.spot
    sigma = np.maximum(features.implied_vol, 1e-8)
    root_t = np.sqrt(config.n_steps * config.dt)
    strike = instruments.strike[:, :1] if config.book.options else spot[:, :1]
    steps = np.arange(config.n_steps + 1)
    time_left = (config.n_steps - steps) / config.n_steps
    columns = [
        np.broadcast_to(time_left, spot.shape),
        np.log(spot / strike),
        features.book_delta / notional,
        features.book_gamma * spot * sigma * root_t / notional,
        features.book_vega / (notional * spot * root_t),
        features.book_theta * root_t / (notional * spot * sigma),
        model_hedge / notional,
        features.implied_vol,
        features.realised_vol,
        np.broadcast_to(100.0 * linear_cost / spot, spot.shape),
        features.liquidity,
    ]
    if config.hedge_option is not None:
        columns += [
            model_option / notional,
            features.option_delta,
            features.option_gamma * spot * sigma * root_t,
            features.option_vega / (spot * root_t),
        ]
    with_option = config.hedge_option is not None
    out = np.zeros(
        (spot.shape[1], spot.shape[0], len(feature_names(with_option))), dtype=np.float32
    )
    for i, column in enumerate(columns):
        out[:, :, i] = column.T
    return out
