"""Tests from a mutation round over the env configuration and its checks.

The modules: ``hedgearena.envs.config`` (EnvConfig, make_config, presets, validation),
``hedgearena.envs.checks`` (the checks and their messages), ``hedgearena.yaml_io`` (reading and
writing configs) and ``hedgearena.envs.market`` (MarketPaths' validation). Each test names the
mutant(s) it kills (a one-line change that the rest of the suite let through) and where its
expected values come from: README.md's table of ids, the manuals (class docstrings) of
``hedgearena.envs.registered``, the docstrings of the code, the YAML 1.2 core schema
(https://yaml.org/spec/1.2.2/#1032-tag-resolution) or a hand computation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hedgearena.envs.book import ClientFlow, HedgeOption, Option, OptionBook
from hedgearena.envs.checks import (
    holds_real_numbers,
    is_integer,
    is_number,
    require_bool,
    require_integer,
    require_number,
)
from hedgearena.envs.config import EnvConfig, make_book, make_config, plain_data
from hedgearena.envs.frictions import ProportionalCost
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.vol_surface import FlatVol
from hedgearena.yaml_io import dump_yaml, load_yaml

# ---------------------------------------------------------------- presets (README and manuals)


def test_short_call_preset_is_the_documented_benchmark_case() -> None:
    """Mutants: ShortCall's mu 0.05 -> 0.1, sigma 0.2 -> 0.25, expiry 20 -> 21, 250 -> 252 days.

    Source: README's table ("one short ATM call, 1 contract x 100, 20 days; GBM mu 5%, sigma
    20%; 1% of traded value") and ShortCallEnv's Description ("20 trading days, 250 days a year
    ... mu = 5%, sigma = 20%, S0 = 100, r = q = 0").
    """
    config = make_config("ShortCall")
    market = config.market
    assert (market.mu, market.sigma, market.spot0) == (0.05, 0.2, 100.0)  # type: ignore[attr-defined]
    assert (market.rate, market.dividend) == (0.0, 0.0)  # type: ignore[attr-defined]
    assert config.book.options == (Option(moneyness=1.0, expiry_steps=20, contracts=-1.0),)
    assert config.book.notional == 100.0  # 1 contract x 100
    assert config.n_steps == 20
    assert config.days_per_year == 250.0
    assert config.dt == pytest.approx(1 / 250)
    assert config.cost == ProportionalCost(0.01)
    assert config.hedge_option is None
    assert config.rebalance_every == 1  # "hedges it daily"


def test_option_book_preset_is_the_documented_market_maker() -> None:
    """Mutants: Heston's kappa 2 -> 1.5, rho -0.7 -> 0.7, xi 0.5 -> 0.3, v0 0.04 -> 0.09; the
    60-day episode -> 63; the half-spread 5 bp -> 50 bp; position_limit 10 -> 1.5; band_limit
    2 -> 0.5.

    Source: OptionBookEnv's Description ("Heston (kappa 2, theta 0.04, xi 0.5, rho -0.7, v0 0.04,
    S0 = 100, r = q = 0) ... The episode lasts 60 days (252 a year) ... a 5 bp fee plus a 5 bp
    half-spread ... `position_limit` is 10 notionals ... `trade_limit` and `band_limit` are 2
    notionals"; "an empty book"; clients "250 a year by default ... 60% buys").
    """
    config = make_config("OptionBook")
    m = config.market
    assert (m.kappa, m.theta, m.xi, m.rho, m.v0) == (2.0, 0.04, 0.5, -0.7, 0.04)  # type: ignore[attr-defined]
    assert (m.spot0, m.rate, m.dividend) == (100.0, 0.0, 0.0)  # type: ignore[attr-defined]
    assert (config.n_steps, config.days_per_year) == (60, 252.0)
    parts = {type(c).__name__: c for c in config.cost.components}
    assert parts["ProportionalCost"].rate == 0.0005
    assert parts["SpreadCost"].half_spread == 0.0005
    assert (config.position_limit, config.trade_limit, config.band_limit) == (10.0, 2.0, 2.0)
    assert config.option_position_limit == 10.0
    assert config.book.options == ()
    assert config.book.client_flow == ClientFlow()
    assert (config.book.client_flow.rate, config.book.client_flow.buy_probability) == (250.0, 0.6)
    assert config.book.notional == 100.0  # one client trade: 1 contract on 100 units
    assert config.hedge_option is None


def test_portfolio_insurance_preset_is_the_documented_fund() -> None:
    """Mutants: rate 0.02 -> 0; the floor 0.9 -> 0.8; the put made a call; the zero strike
    1e-6 -> 1e-3; cost 0.1% -> 1%.

    Source: PortfolioInsuranceEnv's Description ("N max(S_T, K) in 3 months (63 trading days,
    252 a year) ... N = 100 units ... K = 90% ... a short put on N units struck at K, and ... a
    short zero-strike call ... strike 1e-6 S_0 ... mu = 5%, sigma = 20%, S0 = 100, r = 2%, q = 0;
    trading it costs 0.1%").
    """
    config = make_config("PortfolioInsurance")
    m = config.market
    assert (m.mu, m.sigma, m.spot0, m.rate, m.dividend) == (0.05, 0.2, 100.0, 0.02, 0.0)  # type: ignore[attr-defined]
    put, call = config.book.options
    assert (put.moneyness, put.is_call, put.expiry_steps) == (0.9, False, 63)
    assert (call.moneyness, call.is_call, call.expiry_steps) == (1e-6, True, 63)
    assert put.contracts * put.multiplier == call.contracts * call.multiplier == -100.0
    assert (config.n_steps, config.days_per_year) == (63, 252.0)
    assert config.cost == ProportionalCost(0.001)
    # the promise's shortfall from N S_T: N * 1e-6 * S_0 = 100 * 1e-6 * 100 = 0.01
    assert -call.contracts * call.multiplier * call.moneyness * m.spot0 == pytest.approx(0.01)  # type: ignore[attr-defined]


def test_historical_replay_preset_is_the_documented_one_month_call() -> None:
    """Mutants: the 21-day call -> 20; cost 0.1% -> 1%.

    Source: README's table ("one short ATM call, 21 days ... S&P 500 replay ... 0.1%") and
    HistoricalReplayEnv's Description ("random 21-day windows of the S&P 500 ... Costs are 0.1%
    of traded value by default").
    """
    config = make_config("HistoricalReplay")
    assert config.book.options == (Option(moneyness=1.0, expiry_steps=21, contracts=-1.0),)
    assert (config.n_steps, config.days_per_year) == (21, 252.0)
    assert config.cost == ProportionalCost(0.001)
    assert config.market.name == "S&P 500"  # type: ignore[attr-defined]


# ---------------------------------------------------------------- EnvConfig's documented defaults


def test_env_config_defaults_are_the_documented_ones() -> None:
    """Mutants: the defaults initial_hedge zero -> delta, action_mode target -> trade,
    reward_mode pnl -> terminal, position_limit 1.5 -> 2, option_position_limit 10 -> 5,
    trade_limit 0.5 -> 1, band_limit 0.5 -> 0.25, unwind True -> False, observe_pnl False ->
    True, execution immediate -> twap, execution_rate 0.1 -> 0.2.

    Source: the manuals' Action Space table ("default range +-1.5 N (+-10 N); trades of +-0.5 N;
    half-width 0-0.5 N", "The ranges are those of EnvConfig's defaults"), their Arguments
    (`option_position_limit` "default 10", `execution_rate` "default 0.1"), "Execution (all off
    by default ... `immediate` (default ...)", Starting State ("Flat hedge (0 shares; with
    `initial_hedge="delta"` ..."), ShortCall's "including the sale of the hedge at expiry"
    (unwind), README ("without --env-kwargs it trains on the env's raw defaults (target
    positions, the per-step P&L as reward)") and EnvConfig's docstring (observe_pnl "default
    False", permanent_impact "default 0", risk_limits "default: no limits").
    """
    config = EnvConfig(book=OptionBook(options=(Option(),)))
    assert config.initial_hedge == "zero"
    assert (config.action_mode, config.reward_mode) == ("target", "pnl")
    assert (config.risk_aversion, config.pnl_reference) == (0.0, 0.0)
    assert (config.position_limit, config.option_position_limit) == (1.5, 10.0)
    assert (config.trade_limit, config.band_limit) == (0.5, 0.5)
    assert config.unwind is True
    assert config.observe_pnl is False
    assert (config.execution, config.execution_rate) == ("immediate", 0.1)
    assert (config.permanent_impact, config.risk_limits) == (0.0, None)
    assert (config.lot_size, config.reward_scale) == (0.0, None)
    assert config.n_steps == Option().expiry_steps  # the latest (only) expiry


def test_core_gets_each_field_under_its_own_name() -> None:
    """Mutants: in ``EnvConfig.core`` trade_limit <-> band_limit, risk_aversion <->
    pnl_reference, position_limit <-> option_position_limit (every preset has trade_limit ==
    band_limit, and risk_aversion == pnl_reference == 0, so the suite could not tell).

    Source: the field names themselves; the values are all distinct.
    """
    config = make_config("ShortCall", trade_limit=0.3, band_limit=0.7, position_limit=1.2,
                         option_position_limit=4.0, risk_aversion=2.0, pnl_reference=-0.5,
                         reward_mode="terminal_mean_variance")
    core = config.core(3.0)
    assert (core.trade_limit, core.band_limit) == (0.3, 0.7)
    assert (core.position_limit, core.option_position_limit) == (1.2, 4.0)
    assert (core.risk_aversion, core.pnl_reference) == (2.0, -0.5)
    assert (core.reward_scale, core.notional) == (3.0, 100.0)


# ---------------------------------------------------------------- EnvConfig's validation


def test_n_steps_defaults_to_the_latest_expiry_of_the_book() -> None:
    """Mutant: ``default_n_steps`` takes ``min`` for ``max`` (every preset's options share one
    expiry). Source: EnvConfig's docstring, "default: the latest expiry of the initial options"."""
    book = {"options": [{"expiry_steps": 10}, {"expiry_steps": 30}, {"expiry_steps": 20}]}
    assert make_config(None, book=book).n_steps == 30


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_steps": 0}, r"n_steps must be an integer >= 1, got 0$"),
        ({"n_steps": 20.0}, r"n_steps must be an integer >= 1, got 20.0$"),
        ({"reward_scale": 0.0}, r"reward_scale must be > 0 or None, got 0.0$"),
        ({"realised_vol_halflife": 0.0}, r"realised_vol_halflife must be a finite number > 0"),
        ({"execution_rate": 0.0}, r"execution_rate must be a finite number > 0"),
        ({"initial_hedge": "full"}, r"initial_hedge must be one of zero, delta; got 'full'"),
        ({"action_mode": "bogus"}, r"action_mode must be one of target, trade, fraction, band"),
        ({"rebalance_every": 3}, r"rebalance_every \(3\) must divide n_steps \(20\)"),
        ({"hedge_option": {"expiry_steps": 20}},
         r"hedge_option.expiry_steps \(20\) must exceed n_steps \(20\)"),
        ({"hedge_option": {"strike": 100.0}}, r"unknown hedge_option key\(s\) \['strike'\]"),
        ({"book": {"options": [{"contracts": 0.0}]}}, r"the book's notional .* must be a finite "
                                                      r"number > 0, got 0.0"),
        ({"cost": True}, r"cost must be a CostModel, a number or a dict of cost models; got True"),
        ({"market": "black"}, r"market must be one of gbm, heston, sabr, merton, historical or "
                              r"a MarketModel; got 'black'"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_each_bad_setting_is_refused_when_the_config_is_built(
    overrides: dict[str, Any], message: str
) -> None:
    """Mutants: ``if self.n_steps is None`` -> ``if not self.n_steps`` (0 taken for unset);
    is_integer with integral floats for n_steps; ``gt=0`` -> ``ge=0`` for reward_scale, the
    half-life, the execution rate and the notional; the initial_hedge check dropped;
    ``self.core(1.0)`` dropped (a bad action_mode passed until the env was built); the
    divisibility check dropped; ``expiry_steps <= n_steps`` -> ``<``; the hedge option's keys
    unchecked; bools taken as cost rates; a name dropped from MARKET_MODELS.

    Source: the bounds EnvConfig's docstring and the manuals state (n_steps >= 1 market steps,
    reward_scale > 0, half-life > 0, execution_rate > 0, hedge option expiring after the
    episode, "rebalance_every (must divide n_steps)", initial_hedge zero or delta).
    """
    with pytest.raises(ValueError, match=message):
        make_config("ShortCall", **overrides)


def test_good_edge_settings_are_accepted() -> None:
    """Mutants: ``isinstance(spec, int | float)`` -> ``float`` (an int cost refused),
    ``spec is True`` -> ``spec`` (a dict hedge option replaced by the default one),
    ``expiry_steps <= n_steps`` -> ``<`` seen from the accepting side.

    Source: make_cost's docstring ("a number (proportional rate)"), make_hedge_option's ("a dict
    of its fields"), the hedge option expiring one step after the episode is allowed.
    """
    assert make_config("ShortCall", cost=0).cost == ProportionalCost(0.0)
    option = make_config("ShortCall", hedge_option={"expiry_steps": 30, "moneyness": 1.1})
    assert option.hedge_option == HedgeOption(moneyness=1.1, expiry_steps=30)
    assert option.action_dim == 2
    assert make_config("ShortCall", hedge_option={"expiry_steps": 21}).n_steps == 20


def test_a_replay_too_short_for_the_episode_is_refused_with_the_config() -> None:
    """Mutant: ``window_starts(n_steps)`` dropped from ``_validate_grid`` (the error came only
    when paths were drawn). Source: hand count: 2008-01-02..2008-01-31 holds 21 trading days of
    the S&P 500 (no session on New Year's Day nor on Martin Luther King Day, Jan 21), and a
    21-step window needs 22 closes."""
    with pytest.raises(ValueError, match=r"n_steps \+ 1 = 22 rows, the series has 21"):
        make_config("HistoricalReplay", market_kwargs={"start": "2008-01-02", "end": "2008-01-31"})


def test_client_flow_lists_from_yaml_give_the_same_config_as_tuples() -> None:
    """Mutant: ``_make_flow`` keeps YAML's lists (the tuple conversion dropped): the book then
    differs from the same book written in Python (and cannot be hashed).

    Source: ClientFlow's fields are tuples (its dataclass annotations); a YAML config can only
    hold lists.
    """
    text = "client_flow: {moneyness_range: [0.95, 1.05], expiry_steps: [20, 40]}\noptions: []\n"
    book = make_book(load_yaml(text))
    flow = ClientFlow(moneyness_range=(0.95, 1.05), expiry_steps=(20, 40))
    assert book == OptionBook(options=(), client_flow=flow)
    hash(book)


def test_market_kwargs_merge_with_the_presets_and_a_new_name_starts_afresh() -> None:
    """Mutants: the merge ``{**preset, **given}`` reversed or dropped; the preset's keywords kept
    for another named market; ``==`` -> ``!=`` in ``same_market``.

    Source: make_config's docstring ("market_kwargs update the preset's market keywords (the
    others keep the preset's values) unless another market is named, which starts from that
    model's defaults").
    """
    market = make_config("ShortCall", market_kwargs={"sigma": 0.3}).market
    assert (market.mu, market.sigma, market.spot0) == (0.05, 0.3, 100.0)  # type: ignore[attr-defined]
    named = make_config("ShortCall", market="gbm", market_kwargs={"sigma": 0.3}).market
    assert named == market
    heston = make_config("ShortCall", market="heston", market_kwargs={"v0": 0.09}).market
    assert type(heston).__name__ == "Heston"
    assert heston.v0 == 0.09  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("gbm", "GBM"), ("heston", "Heston"), ("sabr", "SABR"), ("merton", "MertonJumpDiffusion")],
)
def test_each_market_name_builds_its_own_model(name: str, cls: str) -> None:
    """Mutant: ``_market_factory``'s branches crossed (sabr's taken for merton). Source: the
    manuals' Arguments ("gbm", "heston", "sabr", "merton", "historical")."""
    assert type(make_config("ShortCall", market=name).market).__name__ == cls


def test_replace_with_another_market_does_not_pass_the_old_markets_keywords() -> None:
    """A bug this round found: on a preset built from a name, ``replace(market="heston")``
    refused GBM's ``sigma`` and ``replace(market=Heston())`` said "market_kwargs is only used
    with a market name" (the old market's keywords were passed to the new one).

    Source: replace's docstring (the built market's keywords are not passed again; a new name
    starts from its model's defaults, as make_config does); Heston's defaults.
    """
    from hedgearena.envs.heston import Heston

    config = make_config("ShortCall")
    assert config.replace(market=Heston()).market == Heston()
    assert config.replace(market="heston").market == Heston()


# ---------------------------------------------------------------- to_dict / plain_data and YAML


def test_a_config_dict_survives_yaml_with_its_tuples_and_nones() -> None:
    """Mutants: ``plain_data`` writes tuples by their repr (``list | tuple`` -> ``list``), or
    None as ``'None'``.

    Source: plain_data's docstring ("tuples to lists"); YAML's null is None.
    """
    assert plain_data({"a": (0.9, 1.1), "b": None, 3: [None, np.float64(0.5)]}) == {
        "a": [0.9, 1.1], "b": None, "3": [None, 0.5]}
    data = make_config("ShortCall").to_dict()
    assert data["reward_scale"] is None
    assert data["hedge_option"] is None
    assert data["market_kwargs"] == {"mu": 0.05, "sigma": 0.2, "spot0": 100.0}
    assert load_yaml(dump_yaml(data)) == data


def test_yaml_reads_numbers_as_the_yaml_1_2_core_schema_does() -> None:
    """Mutants: ``\\.[0-9_]*`` -> ``\\.[0-9_]+`` (``1.`` a string), the sign of ``.inf`` dropped,
    ``0o[0-7]`` -> ``0o[0-9]`` (``0o9`` raised), the integer's sign dropped (``-5`` a string),
    the float's ``$`` dropped (``1.2.3`` raised), underscores kept in integers (``1__000``
    raised).

    Source: YAML 1.2.2, 10.3.2 (core schema): float ``[-+]? ( \\. [0-9]+ | [0-9]+ ( \\. [0-9]* )? )
    ( [eE] [-+]? [0-9]+ )?`` and ``[-+]? \\. (inf | Inf | INF)``; int ``[-+]? [0-9]+`` and
    ``0o [0-7]+``; anything else a string; yaml_io's docstring keeps ``_`` as digit separators.
    """
    got = load_yaml("[1., 2.e3, -.inf, +.inf, -5, +7, 0o9, 1.2.3, 1__000, -0o7]")
    assert got == [1.0, 2000.0, -math.inf, math.inf, -5, 7, "0o9", "1.2.3", 1000, "-0o7"]
    assert type(got[4]) is int
    assert math.isnan(load_yaml(".NaN"))
    assert load_yaml(dump_yaml({"v": "1.2.3", "w": "-5"})) == {"v": "1.2.3", "w": "-5"}


def test_yaml_merge_keys_and_a_repeated_keys_line() -> None:
    """Mutants: merge keys (``<<``) no longer skipped by the duplicate check (a config using an
    anchor failed to load); the first line of a repeated key off by one.

    Source: the YAML merge key (https://yaml.org/type/merge.html); hand count of the lines.
    """
    text = "base: &b {cost: 0.01, n_steps: 20}\nrun:\n  <<: *b\n  n_steps: 40\n"
    assert load_yaml(text) == {"base": {"cost": 0.01, "n_steps": 20},
                               "run": {"cost": 0.01, "n_steps": 40}}
    with pytest.raises(Exception, match=r"found the key 'cost' twice \(first on line 2\)"):
        load_yaml("env: 1\ncost: 0.1\nseed: 3\ncost: 0.2\n")


# ---------------------------------------------------------------- checks


def test_bounds_are_strict_or_inclusive_as_named() -> None:
    """Mutants: ``operator.ge`` -> ``gt``, ``lt`` -> ``le``, ``le`` -> ``lt`` in ``_BOUNDS``; the
    bounds zipped in another order (gt <-> ge); ``lt`` and ``le`` swapped in ``require_number``.

    Source: the meaning of >, >=, <, <= at the bound itself (hand evaluation).
    """
    assert is_number(0.0, ge=0.0)
    assert not is_number(0.0, gt=0.0)
    assert is_number(1.0, le=1.0)
    assert not is_number(1.0, lt=1.0)
    require_number("X", "y", 1.0, le=1.0)
    require_number("X", "y", 0.0, ge=0.0)
    with pytest.raises(ValueError, match=r"X.y must be a finite number < 1.0, got 1.0"):
        require_number("X", "y", 1.0, lt=1.0)
    with pytest.raises(ValueError, match=r"X.y must be a finite number >= 0.0 and <= 1.0, got 2"):
        require_number("X", "y", 2, ge=0.0, le=1.0)


def test_integer_and_real_checks_at_their_edges() -> None:
    """Mutants: ``value == int(value)`` dropped (2.5 an integer), ``math.isfinite`` dropped from
    is_integer (inf raised OverflowError), ``value >= ge`` -> ``>``, ``all`` -> ``any`` in
    holds_real_numbers, numpy booleans refused by require_bool.

    Source: the docstrings' definitions (integral floats are integers only when whole; an
    object array holds real numbers when every entry is one; "numpy booleans too").
    """
    assert not is_integer(2.5, integral_floats=True)
    assert not is_integer(math.inf, integral_floats=True)
    assert is_integer(np.int64(3))
    require_integer("X", "n", 1)
    with pytest.raises(ValueError, match=r"X.n must be an integer >= 2, got 1"):
        require_integer("X", "n", 1, ge=2)
    assert not holds_real_numbers(np.array([1.0, "a"], dtype=object))
    assert holds_real_numbers(np.array([1, 2.5], dtype=object))
    assert holds_real_numbers(np.array([3], dtype=np.uint8))
    require_bool("X", "flag", np.True_)
    with pytest.raises(ValueError, match=r"X.flag must be True or False, got 1"):
        require_bool("X", "flag", 1)


# ---------------------------------------------------------------- MarketPaths


def _paths(**changes: Any) -> MarketPaths:
    """Two paths of three points, dt = 0.1 year; ``changes`` replace fields."""
    shape = (2, 3)
    fields: dict[str, Any] = {
        "times": np.array([0.0, 0.1, 0.2]), "spot": np.array([[100.0, 101, 102], [100, 99, 98]]),
        "variance": np.full(shape, 0.04), "vol_state": np.full(shape, 0.2), "surface": FlatVol(),
    }
    return MarketPaths(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spot": np.full(3, 100.0)}, r"spot must have shape \(n_paths, n_steps \+ 1\)"),
        ({"times": np.array([0.0, 0.1, 0.1])}, "times must start at 0 and increase strictly"),
        ({"vol_state": np.full((2, 4), 0.2)}, r"vol_state must have shape \(2, 3\)"),
        ({"liquidity": np.array([[1.0, np.inf, 1.0]] * 2)}, "liquidity must be finite and >= 0"),
    ],
    ids=["1-d spot", "repeated time", "vol_state shape", "inf liquidity"],
)
def test_market_paths_refuse_bad_arrays(changes: dict[str, Any], message: str) -> None:
    """Mutants: the ``ndim`` check dropped, ``diff > 0`` -> ``>= 0``, vol_state's shape
    unchecked, the finiteness of the liquidity dropped. Source: MarketPaths' docstring
    (shapes ``(n_paths, n_steps + 1)``, liquidity "finite and >= 0")."""
    with pytest.raises(ValueError, match=message):
        _paths(**changes)


def test_market_paths_accept_the_closed_ends_of_their_ranges() -> None:
    """Mutants: liquidity ``>= 0`` -> ``> 0``, fill_fraction ``>= 0`` -> ``> 0`` and ``<= 1`` ->
    ``< 1``, fill_cap ``>= 0`` -> ``> 0``. Source: MarketPaths' docstring (liquidity ">= 0",
    fill_fraction "in [0, 1]", fill_cap ">= 0")."""
    edge = np.array([[0.0, 1.0, 0.5]] * 2)
    paths = _paths(liquidity=edge, fill_fraction=edge, fill_cap=edge)
    assert paths.n_paths == 2
    assert paths.n_steps == 2


class _Echo:
    """A surface that returns one of its inputs, to see what MarketPaths hands it."""

    def __init__(self, what: str) -> None:
        self.what = what

    def implied_vol(self, spot: Any, strike: Any, tau: Any, level: Any, anchor: Any,
                    rate: float, dividend: float) -> Any:
        values = {"spot": spot, "anchor": anchor, "rate": rate, "dividend": dividend}
        return np.broadcast_to(values[self.what], np.broadcast(spot, strike, tau).shape)


def test_implied_vol_hands_the_surface_the_initial_spot_and_the_rates_in_order() -> None:
    """Mutants: the anchor ``spot[:, :1]`` -> the step's spot; ``rate`` and ``dividend`` swapped.

    Source: VolSurface's docstring (the ``anchor`` is "the episode's initial spot"; the
    arguments are ``rate`` then ``dividend``); the spots of ``_paths`` by hand.
    """
    paths = _paths(rate=0.03, dividend=0.01)
    at = {what: MarketPaths(**{**paths.__dict__, "surface": _Echo(what)}) for what in
          ("spot", "anchor", "rate", "dividend")}
    assert at["spot"].implied_vol(100.0, 0.1, step=2).ravel().tolist() == [102.0, 98.0]
    assert at["anchor"].implied_vol(100.0, 0.1, step=2).ravel().tolist() == [100.0, 100.0]
    assert at["rate"].implied_vol(100.0, 0.1, step=1).ravel().tolist() == [0.03, 0.03]
    assert at["dividend"].implied_vol(100.0, 0.1, step=1).ravel().tolist() == [0.01, 0.01]


# ---------------------------------------------------------------- second round (fresh shadow)


def test_yaml_reads_the_core_schema_example_of_the_spec() -> None:
    """Mutants: hexadecimal digits lowercase only (``0x3A`` a string), ``TRUE`` / ``FALSE``
    dropped from the booleans; with them the float's ``\\.[0-9_]*`` -> ``+`` (``0.``), the
    exponent without a dot (``+12e03``), the sign of ``.inf``, ``.NAN``, the integer's sign
    (``-19``); and the dumper left on YAML 1.1 (``+12e03`` written plain came back a number).

    Source: YAML 1.2.2, Example 10.9 "Core Tag Resolution" (https://yaml.org/spec/1.2.2/,
    section 10.3.2), whose stated values are: nulls ``null`` and empty; ``""`` a string;
    booleans true, true, false, false; integers 0, 7, 58 (0x3A = 3 * 16 + 10), -19; floats 0.0,
    -0.0, 0.5, 12000 (12 * 10**3), -200000 (-2 * 10**5); inf, -inf, inf, nan.
    """
    text = (
        "A null: null\n"
        "Also a null: # Empty\n"
        'Not a null: ""\n'
        "Booleans: [ true, True, false, FALSE ]\n"
        "Integers: [ 0, 0o7, 0x3A, -19 ]\n"
        "Floats: [\n  0., -0.0, .5, +12e03, -2E+05 ]\n"
        "Also floats: [\n  .inf, -.Inf, +.INF, .NAN ]\n"
    )
    got = load_yaml(text)
    nan = got["Also floats"].pop()
    assert math.isnan(nan)
    assert got == {
        "A null": None, "Also a null": None, "Not a null": "",
        "Booleans": [True, True, False, False],
        "Integers": [0, 7, 58, -19],
        "Floats": [0.0, -0.0, 0.5, 12000.0, -200000.0],
        "Also floats": [math.inf, -math.inf, math.inf],
    }
    assert [type(v) for v in got["Integers"]] == [int] * 4
    assert [type(v) for v in got["Booleans"]] == [bool] * 4
    assert math.copysign(1.0, got["Floats"][1]) == -1.0
    assert load_yaml("[TRUE, 0xFF, 0xff]") == [True, 255, 255]
    # strings that read as YAML 1.2 scalars are written quoted, so they come back strings
    strings = ["+12e03", "FALSE", "0x3A", ".NAN", "-.Inf", "-19", "0."]
    assert load_yaml(dump_yaml(strings)) == strings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"liquidity": np.ones((2, 2))}, r"liquidity must have shape \(2, 3\), got \(2, 2\)"),
        ({"fill_fraction": np.ones((3, 2))},
         r"fill_fraction must have shape \(2, 3\), got \(3, 2\)"),
        ({"fill_cap": np.ones(2)}, r"fill_cap must have shape \(2, 3\), got \(2,\)"),
    ],
    ids=["liquidity shape", "fill_fraction shape", "fill_cap shape"],
)
def test_market_paths_refuse_liquidity_and_fills_of_the_wrong_shape(
    changes: dict[str, Any], message: str
) -> None:
    """Mutants: the liquidity's shape unchecked, the fill arrays' shapes unchecked (both let
    through by the suite).

    Source: MarketPaths' docstring (liquidity, fill_fraction and fill_cap are ``(n_paths,
    n_steps + 1)``: here (2, 3)).
    """
    with pytest.raises(ValueError, match=message):
        _paths(**changes)


def test_default_liquidity_is_ones_stored_time_major() -> None:
    """Mutant: the default liquidity built as ``np.ones(shape)`` (path-major) instead of the
    transpose of a time-major block: the same ones, but ``time_major`` must then copy.

    Source: the module docstring's "Memory layout" (a model stores ``(n_steps + 1, n_paths)``
    C-contiguous blocks and hands out their transposes; ``time_major`` gets the block back for
    free) and ``time_major``'s docstring (a view, no copy, for such arrays).
    """
    from hedgearena.envs.market import time_major

    paths = _paths()
    assert paths.liquidity.tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    assert np.shares_memory(time_major(paths.liquidity), paths.liquidity)


def test_an_unknown_preset_is_named_with_the_four_allowed() -> None:
    """Mutant: make_config's preset check dropped (a gym id given as the preset raised a bare
    ``KeyError: 'ShortCall-v0'``).

    Source: make_config's docstring ("``preset`` is ``ShortCall``, ``OptionBook``,
    ``PortfolioInsurance`` or ``HistoricalReplay``") and README's table of ids.
    """
    with pytest.raises(ValueError, match=r"preset must be one of ShortCall, OptionBook, "
                                         r"PortfolioInsurance, HistoricalReplay; got "
                                         r"'ShortCall-v0'$"):
        make_config("ShortCall-v0")


def test_a_repeated_key_points_at_its_mapping_and_at_the_second_key() -> None:
    """Mutant: the error's context mark taken from the repeated key instead of its mapping.

    Source: hand count of the document below (PyYAML's marks are 0-based: the mapping opens on
    line 0, column 0; the second ``cost`` is on line 3).
    """
    import yaml

    with pytest.raises(yaml.constructor.ConstructorError) as caught:
        load_yaml("env: 1\ncost: 0.1\nseed: 3\ncost: 0.2\n")
    error = caught.value
    assert error.context_mark is not None
    assert error.problem_mark is not None
    assert (error.context_mark.line, error.context_mark.column) == (0, 0)
    assert (error.problem_mark.line, error.problem_mark.column) == (3, 0)
