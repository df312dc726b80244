"""The registered environments and their manuals (Gymnasium classic_control style).

Each id is a preset of :class:`hedgearena.envs.config.EnvConfig`; every field can be overridden
by a keyword of ``gym.make`` / ``gym.make_vec``. The manuals' observation tables, info keys and
mode lists are assembled from the tables the code uses; ``tests/envs/test_manuals.py`` checks the
rest of what they state against the running envs.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

from hedgearena.envs.config import PRESETS, EnvConfig, default_n_steps
from hedgearena.envs.core import ACTION_MODES, REWARD_MODES
from hedgearena.envs.episode import (
    EXOGENOUS_FEATURES,
    OPTION_FEATURES,
    OPTION_POSITION_FEATURES,
    PNL_FEATURES,
    POSITION_FEATURES,
    feature_names,
)
from hedgearena.envs.hedging_env import INFO_KEYS, HedgingEnv
from hedgearena.envs.vector_env import VecHedgingEnv

_COMMON = """
## Action Space

`Box(-1, 1, (d,), float32)`: d = 1 (the underlying) or 2 (the underlying, then the hedging
option when `hedge_option` is set). Values outside [-1, 1] are clipped; NaN or inf raise
`ValueError`. `action_mode` says what an action means (N = the book's notional in units of the
underlying, `model` = the model's position: minus the book delta, or delta-gamma neutral with a
hedging option):

| action_mode | position after the trade                                    | default range    |
|-------------|-------------------------------------------------------------|------------------|
| `target`    | `a * position_limit * N` (option: `option_position_limit`)  | +-1.5 N (+-10 N) |
| `trade`     | `previous + a * trade_limit * N`                            | trades of +-0.5 N |
| `fraction`  | `previous + (a + 1) / 2 * (model - previous)`               | 0 keep, 1 model  |
| `band`      | `previous` clipped into `model +- (a+1)/2 * band_limit * N` | half-width 0-0.5 N |

The ranges are those of `EnvConfig`'s defaults; `OptionBook-v0` sets `position_limit` to 10 N and
`trade_limit` and `band_limit` to 2 N (see its Description).

Trades are rounded to `lot_size` units when it is set. Every trade pays the cost model's cost.

Execution (all off by default; see `hedgearena.envs.core` and `hedgearena.envs.execution`):

- Fills (`MarketPaths.fill_fraction`, `fill_cap`, set by a market model or a scenario): an
  order `q` at step s fills `q * fill_fraction_s` (a fraction in [0, 1]), and nothing if that
  exceeds `fill_cap_s * N` (multiples of N); the rest stays as exposure. Costs are paid on the
  filled part. Default: everything fills.
- `execution`: `immediate` (default: all at the decision step), `twap` (`1 / rebalance_every`
  of the order at each market step of the interval) or `participation` (at most
  `execution_rate * N / liquidity_s` units a step, the rest carried within the interval and
  dropped at the next decision). Each child pays its own step's price and cost.
- `permanent_impact` k (default 0): each unit traded moves the log spot by `k / N` for the rest
  of the episode (buying pushes it up; selling N units multiplies the spot by `e^-k`, about
  `1 - k`); a trade executes at the average price along its own move, and the book is
  re-marked exactly at the moved spot (observations and `state` too, except `realised_vol`,
  which stays the market's, and the final observation after the unwind's sale (at expiry or
  when a risk limit ends the episode), which is never acted on: it shows the step as the last
  decision left it). What the hedger is paid on stays
  the market's: options settle at the market's spot, and the hedging option is quoted at it
  (its price, greeks and spread), so neither pushing the spot before an expiry nor pushing it
  while holding the option pays (see `hedgearena.envs.execution`). It needs `unwind=True`:
  held at the end, a position would be marked at the spot its own buying pushed up.

Fills and child orders apply to the hedging option's orders too (same fraction and caps, in its
units); only trades in the underlying move the spot. `risk_limits` may override the action: with
`action="flatten"` the decision after a breach trades to the model's position.

## Observation Space

`Box(-inf, inf, (n,), float32)`, n = {n_plain} (or {n_option} with a hedging option; one more,
`pnl`, last, with `observe_pnl=True`). Each index is the entry's position without a hedging
option (the default) / with one (`-`: absent without one); names and order are
`hedgearena.envs.episode.observation_names(config)`. T is the episode's length in years
(`n_steps / days_per_year`), S_t the spot, sigma_t the `implied_vol` entry (at the forward, for
the episode's time left), N the notional (units of the underlying). The greeks are the `state`
attribute's: delta in units of the underlying, gamma per currency of spot, vega in currency per
1.00 of vol, theta in currency per year; the hedging option's are those of one unit of it:

| index | name | definition |
|-------|------|------------|
{table}

The unnormalised state (spot, tau, greeks, cost coefficient, positions, cash...) is the env's
`state` attribute (a dict of floats; of arrays on the vector env), for classical hedgers.

## Rewards

P&L in currency divided by `reward_scale` (currency per unit of reward; by default the premium of
an at-the-money option on the notional, `0.4 sigma_0 sqrt(T) S_0 N` with sigma_0 the market's
initial vol (the square root of its initial variance, at least 1%) and S_0 its initial spot, the
median over 256 seeded starting states where they vary, as the replay's windows do; also in
`info["reward_scale"]`). `reward_mode`:
`pnl` (the decision interval's P&L: the objective of a risk-neutral hedger; sums to the
episode's P&L), `mean_variance` (`x - risk_aversion / 2 * x^2` with x the scaled step P&L, Kolm
and Ritter 2019: a local mean-variance objective whose sum penalises P&L variance), `terminal`
(the scaled episode P&L on the last step, 0 before: for objectives of the whole distribution),
`terminal_mean_variance` (x, and on the last step also `-risk_aversion / 2 * (X - m)^2` with X
the scaled episode P&L and m = `pnl_reference`: the rewards sum to `X - kappa/2 (X - m)^2`, whose
mean is the mean-variance criterion `E[X] - kappa/2 Var[X]` of the episode's P&L when m = E[X]
(Li and Ng 2000). `mean + c std` of the hedging cost is matched near `kappa = c / Std[X]`; the
best policy depends on the P&L so far, so use it with `observe_pnl=True`).
The P&L of a step is `option_mtm + hedge_pnl + carry + spread_income + impact_pnl - cost`
(see `hedgearena.envs.core`; `impact_pnl` is 0 without `permanent_impact`).

## Info

The same keys every step: {info_keys}. On the step that ends the episode with `terminated` (not on a
truncation by a time limit, which the env does not see coming) `totals` adds the episode's totals
(every component, `pnl`, `turnover` (the sum of the decisions' `|trade|`), `trades` (the number
of decisions that traded), `option_turnover` and `option_trades` (the same for the hedging
option; 0 without one), `unfilled` and `option_unfilled` as sums of absolute units (per order:
the decision's and the sale's at the end), `slippage`, `breaches` (a count), `terminal_pnl` =
final minus initial wealth, which equals the sum of `pnl`, and `initial_premium`). The unwind's
sale at the end is a cost (in `cost` and the P&L) but not a decision: it is in neither `trade`,
`turnover` nor `trades` (nor the option's).

Units: `pnl` and its components (the decision interval's, the unwind's sale included on the
last step), `cash`, `wealth` (`B + h S + g O + cash`: book, hedge, hedging option and cash;
0 at the start, or `stock * S_0` for a book holding stock), `spot`, `slippage` and
`initial_premium` in currency; `trade`, `hedge`,
`model_hedge` and `unfilled` in units of the underlying; `option_trade`, `option_position` and
`option_unfilled` in units of the hedging option (0 without one); `reward_scale` in currency per
unit of reward; `step` the market step reached (0 on reset, `n_steps` at the end). `hedge`,
`option_position`, `cash`, `spot`, `model_hedge` and `wealth` are the values at that step (after
the unwind on the last one: `hedge` is then 0). The reset's info has the same keys, its P&L
entries 0.

`impact_pnl` (currency, a P&L component, 0 without `permanent_impact`) is the revaluation of the
book and the positions caused by the hedger's own trades, net of the average execution price.
`trade` and `option_trade` are the units the decision executed (the unwind's not included);
`unfilled` and `option_unfilled` the units of the decision's orders not executed (with the unwind's
on the last step). `slippage` is the executed price minus the decision step's price, times the units
executed (currency; already in the P&L through the marks; 0 for immediate execution without impact).
`breach` is a bit mask of the risk limits crossed at this step (1 delta, 2 gamma, 4 vega, 8
drawdown; 0 = none; a limit counts again only after coming back within it); `termination_reason` is
`""`, `"expiry"` at the horizon, or the name of the limit that ended the episode.

## Episode End

`terminated` when the book's horizon (`n_steps` market steps) is reached; the hedge is then
sold at the last spot paying costs when `unwind=True` (subject to the last step's fills: what
does not fill stays held, marked at the last prices; under `permanent_impact` the sale fills
whole). With `risk_limits` and
`action="terminate"`, `terminated` also comes when a limit is crossed, after the decision's
interval: `info["termination_reason"]` names the limit and, with `unwind=True`, the positions
are sold at that step like the unwind (the book stays, marked). `truncated` is never set by the
env itself: `gym.make(..., max_episode_steps=k)` adds Gymnasium's `TimeLimit`, and the vector env
takes `max_episode_steps` (which `gym.make_vec` passes on) and truncates each row after k decisions
the same way.

## Arguments

Every field of `hedgearena.envs.config.EnvConfig` is a keyword: `market` (a `MarketModel` or
`"gbm"`, `"heston"`, `"sabr"`, `"merton"`, `"historical"` with `market_kwargs`, which update the
preset's market keywords; naming another market starts from its defaults), `book` (`OptionBook` or
dict), `cost` (a `CostModel`, a proportional rate, or a dict such as `{{"proportional": 0.001,
"spread": {{"half_spread": 5e-4}}}}`), `hedge_option`, `n_steps`, `days_per_year`,
`rebalance_every`, `initial_hedge` (`zero`, or `delta`: the first decision trades to the model's
position whatever the action and pays its cost; the reset observation shows the flat hedge before
it), `action_mode` ({actions}), `reward_mode` ({rewards}), `risk_aversion`, `position_limit`,
`option_position_limit` (the hedging option's `target` range and the cap on the model's position in
it, notionals; default 10), `trade_limit`, `band_limit`, `lot_size`, `unwind`, `reward_scale`,
`realised_vol_halflife`, `observe_pnl` (append the scaled P&L so far to the observation),
`pnl_reference` (m of `terminal_mean_variance`, in units of `reward_scale`), `permanent_impact` (>=
0, log move of the spot per notional traded; default 0), `execution` (`immediate`, `twap`,
`participation`), `execution_rate` (> 0, participation's child size as a fraction of N per market
step at normal liquidity; default 0.1), `risk_limits` (None, a `hedgearena.envs.limits.RiskLimits`
or a dict such as `{{"delta": 0.5, "drawdown": 500.0, "action": "terminate"}}`: `delta` max `|book
delta + hedge + g option delta| / N`, `gamma` max `|net gamma| * S * 1% / N`, `vega` max `|net
vega|` per vol point (currency), `drawdown` max fall of wealth below its episode peak (currency),
each optional; `action` `report`, `flatten` or `terminate`); or `config=EnvConfig(...)`; and
`render_mode` (`"ansi"`, `"rgb_array"`). The vector env adds `num_envs`, `autoreset_mode`
(`"next_step"`, the default, or `"same_step"`), `max_episode_steps` and `render_envs` (see
`hedgearena.envs.vector_env.VecHedgingEnv`); it handles fills, limits, breaches and time limits
per row.

{defaults}

## Version History

* v0: initial release; execution and risk mechanics (fills, child orders, permanent impact,
  risk limits) added as options, off by default (the default env is unchanged); the agent-view
  options `observe_pnl` and `reward_mode="terminal_mean_variance"` (off by default).
"""


def _table() -> str:
    """The observation table: each entry's index without and with a hedging option."""
    option_names = {name for name, _ in OPTION_FEATURES + OPTION_POSITION_FEATURES}
    plain = feature_names(False) + tuple(name for name, _ in PNL_FEATURES)
    full = feature_names(True) + tuple(name for name, _ in PNL_FEATURES)
    rows = (
        EXOGENOUS_FEATURES + OPTION_FEATURES + POSITION_FEATURES + OPTION_POSITION_FEATURES
        + PNL_FEATURES
    )
    lines = []
    for name, text in rows:
        index = "-" if name in option_names else str(plain.index(name))
        lines.append(f"| {index} / {full.index(name)} | `{name}` | {text} |")
    return "\n".join(lines)


_SCALAR_FIELDS = tuple(
    f.name for f in dataclasses.fields(EnvConfig)
    if f.name != "market" and (f.default is None or isinstance(f.default, bool | int | float | str))
)
"""The fields of :class:`EnvConfig` whose defaults the manuals list (not objects or dicts)."""


def _plain(value: Any) -> str:
    """A default as the manual shows it: numbers by ``:g``, words in backticks."""
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, dict):
        return f"`{value}`"
    return f"{value:g}"


def preset_defaults(preset: str) -> dict[str, Any]:
    """The values the id ``preset`` gives the scalar fields of :class:`EnvConfig`, unbuilt.

    From :data:`hedgearena.envs.config.PRESETS` over ``EnvConfig``'s defaults; ``n_steps``
    left unset by a preset is the latest expiry of its book's options (as ``EnvConfig`` sets
    it), so nothing is simulated or loaded (the manuals are built at import).
    """
    values: dict[str, Any] = {}
    for name in _SCALAR_FIELDS:
        values[name] = PRESETS[preset].get(
            name, EnvConfig.__dataclass_fields__[name].default
        )
    if values["n_steps"] is None:
        values["n_steps"] = default_n_steps(PRESETS[preset]["book"])
    return values


def _defaults(preset: str) -> str:
    """The Arguments section's line of this id's defaults."""
    values = preset_defaults(preset)
    return (
        "This id's values of the plain arguments (`gym.make` keywords override them): "
        + ", ".join(f"`{name}` {_plain(value)}" for name, value in values.items())
        + " (`reward_scale` None: the default scale of Rewards; `lot_size` 0: no rounding; "
        "`hedge_option` None: no hedging option)."
    )


def _manual(description: str, preset: str) -> str:
    common = _COMMON.format(
        defaults=_defaults(preset),
        n_plain=len(EXOGENOUS_FEATURES) + len(POSITION_FEATURES),
        n_option=len(
            EXOGENOUS_FEATURES + OPTION_FEATURES + POSITION_FEATURES + OPTION_POSITION_FEATURES
        ),
        table=_table(),
        info_keys=", ".join(f"`{k}`" for k in INFO_KEYS),
        actions=", ".join(f"`{m}`" for m in ACTION_MODES),
        rewards=", ".join(f"`{m}`" for m in REWARD_MODES),
    )
    # Gymnasium's order: Description, Action Space, Observation Space, Rewards, Starting State,
    # then Info, Episode End, Arguments, Version History
    head, starting = description.strip().split("\n## Starting State\n")
    head = head.rstrip()
    before, after = common.split("\n## Info\n")
    text = (
        f"{head}\n{before.rstrip()}\n\n## Starting State\n\n{starting.strip()}\n\n## Info\n"
        f"{after}"
    )
    # the generated lists make long lines: wrap them as the text around them is (not tables)
    return "\n".join(
        line if len(line) <= _WIDTH or line.startswith("|") else textwrap.fill(line, _WIDTH)
        for line in text.splitlines()
    )


_WIDTH = 100
"""Width the manuals' generated lines are wrapped to (table rows excepted)."""


_SHORT_CALL = """
`hedgearena/ShortCall-v0`: hedge one short European call with the underlying.

## Description

A dealer has sold one at-the-money call (1 contract on 100 shares, 20 trading days, 250 days a
year) and hedges it daily with the stock, paying 1% of traded value on every trade, including
the sale of the hedge at expiry. The stock follows geometric Brownian motion (mu = 5%, sigma =
20%, S0 = 100, r = q = 0), the option is marked by Black-Scholes at the market's implied vol.
This is the case of Cao, Chen, Hull and Poulos (2021), "Deep hedging of derivatives using
reinforcement learning": daily delta hedging overtrades under 1% costs, no hedging leaves the
whole risk; the agent learns how much to trade. Its defaults make the env the benchmark case.

## Starting State

Flat hedge (0 shares; with `initial_hedge="delta"` the first decision buys the model delta,
whatever the action), cash = the premium received; a new GBM path each episode.
"""

_OPTION_BOOK = """
`hedgearena/OptionBook-v0`: a market maker's option book fed by client flow.

## Description

Clients buy and sell calls and puts with the dealer at Poisson times (250 a year by default, several
may arrive at one step, at most 96 an episode; 60% buys), struck near the money (90%-110% of spot,
rounded to 1), expiring 20, 40 or 60 days after the trade. The dealer earns half a vol point of vega
on each (`spread_income`), and its exposure accumulates: mostly short gamma and vega. The market is
Heston (kappa 2, theta 0.04, xi 0.5, rho -0.7, v0 0.04, S0 = 100, r = q = 0), options are marked
at Heston's own prices for the path's current variance (`HestonSurface`: the semi-closed form
tabulated as implied vols, smile and term structure, within about 3e-4 in vol of QuantLib for
strikes within 3 standard deviations, 1 to 365 days and vols of 0.5% to 50%;
`market_kwargs={"surface": "term"}` marks at the expected average variance, flat in strike, and
steps the vector env about 1.6 times as fast). The episode lasts 60 days (252 a year).
Options expire and settle in cash inside the episode. Trading the underlying costs a 5 bp fee plus
a 5 bp half-spread, 0.1% of traded value in all. The notional N is one client trade (1 contract
on 100 units).
Pass `hedge_option=True` (or a `HedgeOption`) to trade a listed 90-day at-the-money call as well,
for delta-gamma hedging (the action gets a second dimension; trading it costs half a vol point of
its vega per unit). The model's position in it is gamma neutral within 10 notionals
(`option_position_limit`, also the option's `target` range; `position_limit` is 10 notionals here
too, as the book grows to several notionals of delta) and zero while it is too far out of the
money to carry gamma; `trade_limit` and `band_limit` are 2 notionals.

## Starting State

An empty book (no options, cash 0) and a flat hedge; clients arrive from the second market
step on (after the first decision), the last at the step before the end.
"""

_PORTFOLIO_INSURANCE = """
`hedgearena/PortfolioInsurance-v0`: deliver an insured equity payoff by trading the index.

## Description

A fund has promised its investors `N max(S_T, K)` in 3 months (63 trading days, 252 a year):
the upside of N = 100 units of an equity index, with the floor K = 90% of the initial level.
The book is what the fund owes, `N max(S_T, K) = N (K - S_T)^+ + N S_T`: a short put on N units
struck at K, and the promise of `N S_T` written as a short zero-strike call (a low-exercise-price
option, strike `1e-6 S_0`; its payoff differs from `N S_T` by `N * 1e-6 S_0`, 0.01 here). Both
legs are priced at the start, so the cash account opens with the investors' money, the
promise's fair value `N (S_0 e^{-qT} + put)` (less the low strike's `0.01 e^{-rT}`), and wealth
`book + hedge * S + cash` starts at 0: it is the fund's surplus, its assets (`hedge` units of the
index plus cash) minus the promise. The episode's P&L is the terminal assets minus
`N max(S_T, K)` (plus the 0.01): how far the strategy missed the promised payoff (costs
included; the fund sells its index at `T` to pay in cash).

The model hedge is `N e^{-q tau} N(d1)` units, the synthetic put of Rubinstein and Leland (1981);
CPPI (Perold 1986, Black and Jones 1987) is the model-free alternative (see
`hedgearena.baselines.portfolio_insurance`); it does not replicate `N max(S_T, K)` but keeps
part of the upside, so its P&L here counts the upside it gives up as well as any shortfall below
the floor (a gap of more than `1 / m`). The index follows geometric Brownian motion (mu =
5%, sigma = 20%, S0 = 100, r = 2%, q = 0); trading it costs 0.1% of traded value. Another floor,
size or horizon is a `book=OptionBook(options=(Option(moneyness=K / S0, is_call=False,
contracts=-N / 100, expiry_steps=T), Option(moneyness=1e-6, contracts=-N / 100,
expiry_steps=T)))`; the put must come first (`log_moneyness` is measured against its strike).

## Starting State

No index held (`initial_hedge="zero"`: the first decision buys the opening allocation and pays
its cost; `initial_hedge="delta"` opens at the synthetic put, which CPPI, choosing its own
opening position, refuses), cash = the investors' money; a new GBM path each episode.
"""

_HISTORICAL = """
`hedgearena/HistoricalReplay-v0`: hedge a short one-month call along real S&P 500 history.

## Description

Episodes are random 21-day windows of the S&P 500 daily closes shipped with `arch`
(`arch.data.sp500`, 1999-2018); the option is marked at VIX / 100 where VIX exists
(`arch.data.vix`, 2014-2018) and otherwise at a GARCH(1,1) forecast fitted in real time, on the
returns before each year, from 2001 on (1999-2000 on their own returns; see
`hedgearena.envs.historical.HistoricalReplay.sp500`). Costs are 0.1% of traded value by default.
The hedger faces real returns: fat tails, volatility clustering and, in the VIX years, the gap
between implied and realised volatility (VIX averaged 14.7% against 11.7% realised over the next
21 days); the GARCH years have almost no such gap (18.8% against 17.8%), and the marks step
where VIX takes over (11.9% to 13.8% on 2014-01-03).

`market_kwargs` choose the history (`HistoricalReplay.load`): `series="nasdaq"` (GARCH vol
throughout), `start` / `end` dates that cut it (e.g. `start="2008-01-01", end="2009-12-31"`),
or the user's own daily series, `csv="prices.csv"` with `date_column`, `date_format` (None:
inferred), `price_column`, `vol_column` (None: GARCH estimate), `vol_scale` (0.01 for vols in
percent) and `fill_missing_vol`; and `rate`, `dividend` (0 by default) and `surface` (a
`VolSurface` driven by the replayed vol; default `FlatVol`). A CSV's closes must lie within
1e-15 to 1e15 and move by at most a factor of 10 from one row to the next (no index or
split-adjusted stock does in a day); a close beyond is refused at load, naming the file, the
date and the value.

## Starting State

Flat hedge, cash = the premium received, a random window of history each episode.
"""


class ShortCallEnv(HedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "ShortCall"


class OptionBookEnv(HedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "OptionBook"


class PortfolioInsuranceEnv(HedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "PortfolioInsurance"


class HistoricalReplayEnv(HedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "HistoricalReplay"


class ShortCallVecEnv(VecHedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "ShortCall"


class OptionBookVecEnv(VecHedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "OptionBook"


class PortfolioInsuranceVecEnv(VecHedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "PortfolioInsurance"


class HistoricalReplayVecEnv(VecHedgingEnv):
    """Manual set below, from the shared tables."""

    preset = "HistoricalReplay"


for _cls, _text in (
    (ShortCallEnv, _SHORT_CALL),
    (OptionBookEnv, _OPTION_BOOK),
    (PortfolioInsuranceEnv, _PORTFOLIO_INSURANCE),
    (HistoricalReplayEnv, _HISTORICAL),
):
    _cls.__doc__ = _manual(_text, _cls.preset)
for _cls, _single in (
    (ShortCallVecEnv, ShortCallEnv),
    (OptionBookVecEnv, OptionBookEnv),
    (PortfolioInsuranceVecEnv, PortfolioInsuranceEnv),
    (HistoricalReplayVecEnv, HistoricalReplayEnv),
):
    _cls.__doc__ = (
        f"Native vector version of `{_single.__module__}.{_single.__name__}`: its manual "
        f"(`help({_single.__module__}.{_single.__name__})`) holds for every row. Observations, "
        "rewards, flags and infos are arrays over the rows; see "
        "`hedgearena.envs.vector_env.VecHedgingEnv` for autoreset, `final_obs` and the "
        "`_totals` mask."
    )

ENV_IDS = {
    "hedgearena/ShortCall-v0": (ShortCallEnv, ShortCallVecEnv),
    "hedgearena/OptionBook-v0": (OptionBookEnv, OptionBookVecEnv),
    "hedgearena/PortfolioInsurance-v0": (PortfolioInsuranceEnv, PortfolioInsuranceVecEnv),
    "hedgearena/HistoricalReplay-v0": (HistoricalReplayEnv, HistoricalReplayVecEnv),
}


def register_envs() -> None:
    """Register every id with Gymnasium (single and vector entry points); idempotent."""
    import gymnasium as gym

    for env_id, (single, vector) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=f"{single.__module__}:{single.__name__}",
            vector_entry_point=f"{vector.__module__}:{vector.__name__}",
        )
