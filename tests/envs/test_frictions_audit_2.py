"""Audit of the core's accounting, the frictions, execution and risk limits, to the last cent.

The reference below is written from scratch in plain numpy and scipy (it does not call
``hedgearena.envs.core``, the project's pricer nor its cost models). It takes only the env's
exogenous market arrays (``MarketPaths``: spot, liquidity, fill fractions and caps) and books
everything itself:

- Book: short 1 at-the-money call on ``N = 100`` units (strike ``K = S_0``), plus ``stock``
  units of the underlying; marked by Black-Scholes-Merton at the flat vol ``sigma`` with
  ``tau = (T - s) dt``, ``dt = 1 / days`` (250 or 252); at ``T`` it settles ``-N (S_T - K)^+``
  at the market's spot (never the moved one). Cash starts at the premium ``N C_0``.
- Hedging option (optional): a call struck at ``m S_0`` expiring ``E > T`` steps, marked alike;
  its half-spread is ``half_spread_vol * vega * liquidity`` per unit (vol points, the
  ``OptionSpreadCost(vol_points)`` rule). Model positions: gamma neutral
  ``g = -Gamma_book / Gamma_opt`` clipped to ``+-option_position_limit N`` (0 where
  ``vega / (S sqrt(tau)) <= 1e-4``), delta neutral ``h = -(Delta_book + g Delta_opt)``.
- Cost of ``q`` units at spot ``x`` (Almgren-Chriss 2000 linear impact; Torre 1997 / Almgren
  et al. 2005 square-root law; Stoll 1978 vol-widening spreads)::

    linear |q| + quadratic q^2 + three_halves |q|^1.5 + ticket 1[q != 0]
    linear = rate x + h0 m(vol) liq (x if relative else 1),  m = max(1 + a (vol/v0 - 1), floor)
    quadratic = eta x liq / ADV,  three_halves = Y sigma_d x liq / sqrt(ADV_s),
    sigma_d = daily_vol or vol / sqrt(252)

- Orders: ``lot`` rounding (ties to even) of the decision's order; child orders ``immediate``,
  ``twap`` (``parent / m`` a step) or ``participation`` (``clip(remaining, +-rate N / liq)``);
  fills ``q f_s``, nothing if ``|q f_s| > cap_s N``. Own permanent impact ``I += k q / N``: a
  trade executes at ``x (e^z - 1) / z`` (``z = k q / N``), the spot becomes ``S e^I``, the book
  re-marked there (the hedging option stays quoted at the market's spot, which the hedger's
  trades do not move); the revaluation is ``impact_pnl``.
- Holding ``(s, s+1]``: ``cash += cash (e^{r dt} - 1) + (h + stock) x_s (e^{q dt} - 1)``, then
  the settlement; ``hedge_pnl = h (x_{s+1} - x_s) + g (O_{s+1} - O_s)``.
- Unwind at ``T`` (subject to the step's fills); risk limits after each decision (exposures in
  the ``hedgearena.envs.limits`` table, edge-triggered, ``report`` / ``flatten`` /
  ``terminate`` with the positions sold at the breach step when ``unwind``).

Every per-step info entry and every episode total is compared on every path with
``|env - reference| <= 1e-9 (1 + |reference|)`` (currency or units), and the accounting
identity ``sum(components) == terminal_pnl`` to the same tolerance. Measured worst misses over
the 27 cases: 1.1e-11 (episode totals and the identity), 6e-12 (step P&L), 1e-14 (costs).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from hedgearena.envs.book import HedgeOption, Option, OptionBook
from hedgearena.envs.config import make_config
from hedgearena.envs.core import CoreConfig
from hedgearena.envs.episode import market_rows
from hedgearena.envs.frictions import (
    CostModel,
    FixedCost,
    LinearImpact,
    ProportionalCost,
    SpreadCost,
    SquareRootImpact,
    cost_model_from_config,
)
from hedgearena.envs.gbm import GBM
from hedgearena.envs.hedging_env import HedgingEnv
from hedgearena.envs.limits import RiskLimits
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.registered import ShortCallEnv
from hedgearena.envs.vector_env import VecHedgingEnv

N = 100.0  # one contract of 100 units
TOL = 1e-9  # |env - reference| <= TOL * (1 + |reference|)


# --------------------------------------------------------------------------- the test market
@dataclass(frozen=True)
class AuditMarket:
    """GBM paths with exogenous liquidity in [1, 3], fill fractions and caps (for the audit).

    ``record`` keeps the paths of the last simulation (the single env's episode with
    ``block=1``), so the reference reads exactly what the env simulated.
    """

    sigma: float = 0.2
    rate: float = 0.0
    dividend: float = 0.0
    liquidity: bool = False
    fraction: tuple[float, float] | None = None
    cap: tuple[float, float] | None = None  # multiples of N
    record: list = field(default_factory=list, compare=False, repr=False, hash=False)

    def simulate(self, n_paths: int, n_steps: int, dt: float, rng: np.random.Generator):
        paths = GBM(mu=0.05, sigma=self.sigma, spot0=100.0, rate=self.rate,
                    dividend=self.dividend).simulate(n_paths, n_steps, dt, rng)
        extra = np.random.default_rng(int(rng.integers(2**31)))
        shape, changes = paths.spot.shape, {}
        if self.liquidity:
            changes["liquidity"] = extra.uniform(1.0, 3.0, shape)
        if self.fraction is not None:
            changes["fill_fraction"] = extra.uniform(*self.fraction, shape)
        if self.cap is not None:
            changes["fill_cap"] = extra.uniform(*self.cap, shape)
        paths = dataclasses.replace(paths, **changes)
        self.record[:] = [paths]
        return paths


@dataclass(frozen=True)
class Spec:
    """The env's settings, as plain numbers the reference reads."""

    n_steps: int = 20
    days: float = 250.0
    sigma: float = 0.2
    rate: float = 0.0
    dividend: float = 0.0
    stock: float = 0.0
    proportional: float = 0.0
    spread: float = 0.0
    spread_relative: bool = True
    spread_sensitivity: float = 0.0
    spread_reference: float = 0.2
    spread_floor: float = 0.5
    ticket: float = 0.0
    eta: float = 0.0
    eta_adv: float = 1.0
    sqrt_y: float = 0.0
    sqrt_adv: float = 1.0
    sqrt_daily_vol: float | None = None
    option: bool = False
    option_moneyness: float = 1.0
    option_expiry: int = 60
    option_half_spread_vol: float = 0.005
    action_mode: str = "target"
    position_limit: float = 1.5
    option_position_limit: float = 10.0
    trade_limit: float = 0.5
    band_limit: float = 0.5
    lot: float = 0.0
    unwind: bool = True
    every: int = 1
    initial: str = "zero"
    execution: str = "immediate"
    execution_rate: float = 0.1
    impact: float = 0.0
    limits: dict | None = None

    @property
    def dt(self) -> float:
        return 1.0 / self.days

    def market(self, **kwargs: Any) -> AuditMarket:
        return AuditMarket(sigma=self.sigma, rate=self.rate, dividend=self.dividend, **kwargs)

    def cost_model(self) -> CostModel:
        parts: list[CostModel] = [ProportionalCost(self.proportional)]
        if self.spread:
            parts.append(SpreadCost(self.spread, self.spread_relative, self.spread_sensitivity,
                                    self.spread_reference, self.spread_floor))
        if self.ticket:
            parts.append(FixedCost(self.ticket))
        if self.eta:
            parts.append(LinearImpact(self.eta, self.eta_adv))
        if self.sqrt_y:
            parts.append(SquareRootImpact(self.sqrt_y, self.sqrt_adv, self.sqrt_daily_vol))
        return sum(parts[1:], parts[0])

    def env_kwargs(self, market: AuditMarket) -> dict[str, Any]:
        option = (HedgeOption(self.option_moneyness, self.option_expiry, True,
                              self.option_half_spread_vol) if self.option else None)
        return dict(
            market=market, book=OptionBook((Option(1.0, self.n_steps, -1.0),), stock=self.stock),
            cost=self.cost_model(), n_steps=self.n_steps, days_per_year=self.days,
            hedge_option=option, action_mode=self.action_mode,
            position_limit=self.position_limit, option_position_limit=self.option_position_limit,
            trade_limit=self.trade_limit, band_limit=self.band_limit, lot_size=self.lot,
            unwind=self.unwind, rebalance_every=self.every, initial_hedge=self.initial,
            execution=self.execution, execution_rate=self.execution_rate,
            permanent_impact=self.impact, risk_limits=self.limits,
        )


# ------------------------------------------------------------------- Black-Scholes-Merton
def bsm(spot: np.ndarray, strike: np.ndarray, tau: float, sigma: float, r: float, q: float):
    """Price, delta, gamma, vega of one call (``tau = 0``: the payoff and its delta)."""
    if tau <= 0:
        zero = np.zeros_like(spot)
        return np.maximum(spot - strike, 0.0), (spot > strike) * 1.0, zero, zero
    s = sigma * math.sqrt(tau)
    d1 = (np.log(spot / strike) + (r - q) * tau) / s + 0.5 * s
    dq = math.exp(-q * tau)
    price = spot * dq * norm.cdf(d1) - strike * math.exp(-r * tau) * norm.cdf(d1 - s)
    return price, dq * norm.cdf(d1), dq * norm.pdf(d1) / (spot * s), spot * dq * norm.pdf(d1) * (
        math.sqrt(tau))


class World:
    """Marks, model positions and cost coefficients at any (step, spot), from the spec."""

    def __init__(self, spec: Spec, market: MarketPaths) -> None:
        self.spec, self.market = spec, market
        self.strike = market.spot[:, 0].copy()
        self.option_strike = spec.option_moneyness * market.spot[:, 0]

    def book(self, s: int, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Value, delta, gamma, vega of the book at step ``s``, spot ``x`` (0 once expired)."""
        sp = self.spec
        if s >= sp.n_steps:
            zero = np.zeros_like(x)
            return sp.stock * x, zero + sp.stock, zero, zero
        p, d, g, v = bsm(x, self.strike, (sp.n_steps - s) * sp.dt, sp.sigma, sp.rate,
                         sp.dividend)
        return -N * p + sp.stock * x, -N * d + sp.stock, -N * g, -N * v

    def settlement(self, s: int) -> np.ndarray | float:
        """The short call's payoff at expiry, at the market's spot."""
        if s != self.spec.n_steps:
            return 0.0
        return -N * np.maximum(self.market.spot[:, s] - self.strike, 0.0)

    def option(self, s: int) -> tuple[np.ndarray, ...]:
        """The hedging option's quotes at step ``s``: at the market's spot, never the moved one."""
        sp, x = self.spec, self.market.spot[:, s]
        if not sp.option:
            zero = np.zeros_like(x)
            return zero, zero, zero, zero
        return bsm(x, self.option_strike, (sp.option_expiry - s) * sp.dt, sp.sigma, sp.rate,
                   sp.dividend)

    def model(self, s: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sp = self.spec
        _, book_delta, book_gamma, _ = self.book(s, x)
        if not sp.option:
            return -book_delta, np.zeros_like(x)
        _, delta, gamma, vega = self.option(s)
        quote = self.market.spot[:, s]  # the option's own spot
        usable = (vega / (quote * math.sqrt((sp.option_expiry - s) * sp.dt)) > 1e-4) & (gamma > 0)
        units = np.where(usable, -book_gamma / np.where(usable, gamma, 1.0), 0.0)
        units = np.clip(units, -sp.option_position_limit * N, sp.option_position_limit * N)
        return -(book_delta + units * delta), units

    def cost(self, s: int, x: np.ndarray, q: np.ndarray, q_option: np.ndarray) -> np.ndarray:
        """The cost of trading ``q`` units and ``q_option`` options at step ``s``, spot ``x``."""
        sp, liq, vol = self.spec, self.market.liquidity[:, s], self.spec.sigma  # flat surface
        widening = 1.0
        if sp.spread_sensitivity:
            widening = max(1 + sp.spread_sensitivity * (vol / sp.spread_reference - 1),
                           sp.spread_floor)
        half = sp.spread * widening * liq
        linear = sp.proportional * x + (half * x if sp.spread_relative else half)
        daily = sp.sqrt_daily_vol if sp.sqrt_daily_vol is not None else vol / math.sqrt(252)
        cost = (linear * abs(q) + sp.eta * x / sp.eta_adv * liq * q * q
                + sp.sqrt_y * daily * x / math.sqrt(sp.sqrt_adv) * liq * abs(q) ** 1.5
                + sp.ticket * (q != 0))
        if sp.option:
            cost = cost + sp.option_half_spread_vol * self.option(s)[3] * liq * abs(q_option)
        return cost


STEP_KEYS = ("option_mtm", "hedge_pnl", "carry", "impact_pnl", "cost", "pnl", "trade",
             "option_trade", "unfilled", "option_unfilled", "slippage", "hedge",
             "option_position", "cash", "wealth", "breach")


class Ledger:
    """The reference's cash account of every path, decision by decision."""

    def __init__(self, spec: Spec, market: MarketPaths) -> None:
        self.spec, self.world = spec, World(spec, market)
        self.spot = market.spot
        n = self.spot.shape[0]
        ones = np.ones_like(self.spot)
        self.fraction = market.fill_fraction if market.fill_fraction is not None else ones
        self.cap = market.fill_cap * N if market.fill_cap is not None else ones * np.inf
        self.impact, self.hedge, self.option = np.zeros(n), np.zeros(n), np.zeros(n)
        self.cash = N * bsm(self.spot[:, 0], self.world.strike, spec.n_steps * spec.dt,
                            spec.sigma, spec.rate, spec.dividend)[0]
        self.initial_premium = self.cash.copy()
        self.wealth0 = self.wealth(0)
        self.peak, self.over = self.wealth0.copy(), np.zeros(n, dtype=np.int64)
        self.forced = np.zeros(n, dtype=bool)
        self.stopped = np.zeros(n, dtype=bool)
        self.terminal = np.full(n, np.nan)
        self.rec: dict[str, Any] = {}

    def moved(self, s: int) -> np.ndarray:
        return self.spot[:, s] * np.exp(self.impact)

    def wealth(self, s: int) -> np.ndarray:
        x = self.moved(s)
        return (self.world.book(s, x)[0] + self.hedge * x + self.option * self.world.option(s)[0]
                + self.cash)

    def execute(self, s: int, q: np.ndarray, q_option: np.ndarray, decision: Any,
                fills: bool = True) -> tuple:
        """Fill, cost and book an order at step ``s`` (``decision``: prices for slippage)."""
        if fills:
            q, q_option = q * self.fraction[:, s], q_option * self.fraction[:, s]
            q = q * (abs(q) <= self.cap[:, s])
            q_option = q_option * (abs(q_option) <= self.cap[:, s])
        x, world, rec = self.moved(s), self.world, self.rec
        cost = world.cost(s, x, q, q_option)
        z = self.spec.impact * q / N
        price = x * np.where(z != 0, np.expm1(z) / np.where(z != 0, z, 1.0), 1.0)
        o = world.option(s)[0]
        before = world.book(s, x)[0] + self.hedge * x + self.option * o
        self.impact = self.impact + z
        x1 = self.moved(s)
        after = (world.book(s, x1)[0] + (self.hedge + q) * x1
                 + (self.option + q_option) * world.option(s)[0])
        rec["impact_pnl"] += after - before - q * price - q_option * o
        rec["cost"] += cost
        if decision is not None:
            rec["slippage"] += q * (price - decision[0]) + q_option * (o - decision[1])
        self.cash = self.cash - q * price - q_option * o - cost
        self.hedge, self.option = self.hedge + q, self.option + q_option
        return q, q_option

    def hold(self, s: int) -> None:
        """Book the market step ``(s, s+1]`` at the impact now."""
        sp, world, rec = self.spec, self.world, self.rec
        x, x1 = self.moved(s), self.moved(s + 1)
        rec["option_mtm"] += world.book(s + 1, x1)[0] - world.book(s, x)[0] + world.settlement(
            s + 1)
        rec["hedge_pnl"] += self.hedge * (x1 - x) + self.option * (
            world.option(s + 1)[0] - world.option(s)[0])
        interest = self.cash * (math.exp(sp.rate * sp.dt) - 1)
        dividends = (self.hedge + sp.stock) * x * (math.exp(sp.dividend * sp.dt) - 1)
        rec["carry"] += interest + dividends
        self.cash = self.cash + interest + dividends + world.settlement(s + 1)

    def targets(self, t: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The positions an action asks for (the action modes of ``CoreConfig``)."""
        sp = self.spec
        model_hedge, model_option = self.world.model(t, self.moved(t))
        hedge = _target(sp, actions[:, 0], self.hedge, model_hedge, sp.position_limit)
        option = (_target(sp, actions[:, 1], self.option, model_option, sp.option_position_limit)
                  if sp.option else np.zeros_like(hedge))
        forced = self.forced | (t == 0 and sp.initial == "delta")
        self.forced = np.zeros_like(self.forced)
        return np.where(forced, model_hedge, hedge), np.where(forced, model_option, option)

    def decide(self, t: int, actions: np.ndarray) -> dict[str, Any]:
        """One decision at step ``t`` and its interval; the record of its info entries."""
        sp, n = self.spec, len(self.hedge)
        self.rec = rec = {key: np.zeros(n) for key in STEP_KEYS}
        before = self.wealth(t)
        hedge, option = self.targets(t, actions)
        parent = hedge - self.hedge
        if sp.lot:  # whole lots, ties to even (numpy's round)
            parent = np.round(parent / sp.lot) * sp.lot
        option_parent = option - self.option
        decision = self.moved(t), self.world.option(t)[0]
        for k in range(sp.every):
            if k == 0 or sp.execution != "immediate":
                child = self._child(t + k, parent - rec["trade"], parent)
                option_child = self._child(t + k, option_parent - rec["option_trade"],
                                           option_parent)
                q, q_option = self.execute(t + k, child, option_child, decision)
                rec["trade"] += q
                rec["option_trade"] += q_option
            self.hold(t + k)
        rec["unfilled"] = parent - rec["trade"]
        rec["option_unfilled"] = option_parent - rec["option_trade"]
        rec["unfilled_abs"] = abs(rec["unfilled"])  # per order: the sales' are added apart
        rec["option_unfilled_abs"] = abs(rec["option_unfilled"])
        end = t + sp.every
        if end >= sp.n_steps and sp.unwind:
            self._sell(end, np.ones(n, dtype=bool))
        if sp.limits is not None:
            self._watch(end)
        rec["pnl"] = self.wealth(end) - before
        rec.update(hedge=self.hedge, option_position=self.option, cash=self.cash,
                   wealth=self.wealth(end))
        return rec

    def _child(self, s: int, remaining: np.ndarray, parent: np.ndarray) -> np.ndarray:
        sp = self.spec
        if sp.execution == "twap":
            return parent / sp.every
        if sp.execution == "participation":
            cap = sp.execution_rate * N / self.world.market.liquidity[:, s]
            return np.clip(remaining, -cap, cap)
        return remaining

    def _sell(self, s: int, where: np.ndarray) -> None:
        """Sell the positions; under own impact the sale fills whole (nothing left marked up)."""
        orders = -self.hedge * where, -self.option * where
        q, q_option = self.execute(s, *orders, None, fills=not self.spec.impact)
        for key, order, done in (("unfilled", orders[0], q), ("option_unfilled", orders[1],
                                                              q_option)):
            self.rec[key] += order - done
            self.rec[f"{key}_abs"] += abs(order - done)

    def _watch(self, s: int) -> None:
        """The risk limits after a decision (see ``hedgearena.envs.limits``)."""
        limits, world = self.spec.limits or {}, self.world
        now = self.wealth(s)
        self.peak = np.maximum(self.peak, now)
        x = self.moved(s)
        _, book_delta, book_gamma, book_vega = world.book(s, x)
        _, delta, gamma, vega = world.option(s)
        exposure = {
            "delta": abs(book_delta + self.hedge + self.option * delta) / N,
            "gamma": abs(book_gamma + self.option * gamma) * x * 0.01 / N,
            "vega": abs(book_vega + self.option * vega) * 0.01,
            "drawdown": self.peak - now,
        }
        over = sum((exposure[name] > limits[name]) * (1 << i)
                   for i, name in enumerate(exposure) if limits.get(name) is not None)
        over = over + np.zeros_like(self.over)
        breach, self.over = over & ~self.over, over
        self.rec["breach"] = breach
        action = limits.get("action", "report")
        self.forced = (breach != 0) if action == "flatten" else self.forced
        if action == "terminate":
            stop = (breach != 0) & (s < self.spec.n_steps)
            if self.spec.unwind and stop.any():
                self._sell(s, stop)
            self.terminal = np.where(stop & ~self.stopped, self.wealth(s) - self.wealth0,
                                     self.terminal)
            self.stopped = self.stopped | stop


def _target(sp: Spec, a: np.ndarray, position: np.ndarray, model: np.ndarray, limit: float):
    if sp.action_mode == "target":
        return a * limit * N
    if sp.action_mode == "trade":
        return position + a * sp.trade_limit * N
    fraction = (a + 1) / 2
    if sp.action_mode == "fraction":
        return position + fraction * (model - position)
    width = fraction * sp.band_limit * N
    return np.clip(position, model - width, model + width)


def reference(spec: Spec, market: MarketPaths, actions: np.ndarray) -> tuple[list, Ledger]:
    """The records of every decision and the ledger (its ``terminal`` P&L filled in)."""
    ledger = Ledger(spec, market)
    records = []
    for j, t in enumerate(range(0, spec.n_steps, spec.every)):
        records.append(ledger.decide(t, actions[j]))
        records[-1]["stopped"] = ledger.stopped.copy()
    end = ledger.wealth(spec.n_steps) - ledger.wealth0
    ledger.terminal = np.where(ledger.stopped, ledger.terminal, end)
    return records, ledger


def close(got: Any, want: Any, rows: Any = slice(None)) -> float:
    """The largest ``|got - want| / (1 + |want|)`` over ``rows``."""
    got = np.atleast_1d(np.asarray(got, dtype=float))[rows]
    want = np.atleast_1d(np.asarray(want, dtype=float))[rows]
    return float(np.max(np.abs(got - want) / (1 + np.abs(want)), initial=0.0))


TOTALS = {
    "turnover": lambda r: abs(r["trade"]), "trades": lambda r: (r["trade"] != 0) * 1.0,
    "option_turnover": lambda r: abs(r["option_trade"]),
    "option_trades": lambda r: (r["option_trade"] != 0) * 1.0,
    "unfilled": operator.itemgetter("unfilled_abs"),
    "option_unfilled": operator.itemgetter("option_unfilled_abs"),
    "breaches": lambda r: np.array([bin(int(b)).count("1") for b in r["breach"]], dtype=float),
    **{key: operator.itemgetter(key) for key in (
        "option_mtm", "hedge_pnl", "carry", "impact_pnl", "cost", "pnl", "slippage")},
}
COMPONENTS = ("option_mtm", "hedge_pnl", "carry", "spread_income", "impact_pnl")


def check_totals(info: dict, records: list, ledger: Ledger, rows: np.ndarray) -> float:
    """Worst relative miss of the episode totals (and the identity) of ``rows``."""
    totals, worst = info["totals"], 0.0
    for key, entry in TOTALS.items():
        alive = [~records[i - 1]["stopped"] if i else True for i in range(len(records))]
        want = sum(entry(r) * a for r, a in zip(records, alive, strict=False))
        worst = max(worst, close(totals[key], want, rows))
    identity = sum(totals[c] for c in COMPONENTS) - totals["cost"]
    worst = max(worst, close(identity, totals["terminal_pnl"], rows))
    worst = max(worst, close(totals["terminal_pnl"], ledger.terminal, rows))
    return max(worst, close(totals["initial_premium"], ledger.initial_premium, rows))


def run_vector(spec: Spec, market: AuditMarket, n: int = 24, seed: int = 3):
    """Step the vector env and the reference on the same paths; the worst misses."""
    env = VecHedgingEnv(num_envs=n, observations=False, **spec.env_kwargs(market))
    env.reset(seed=seed)
    n_decisions, dim = spec.n_steps // spec.every, 2 if spec.option else 1
    actions = np.random.default_rng(seed).uniform(-1, 1, (n_decisions, n, dim))
    records, ledger = reference(spec, env.batch.market, actions)
    worst: dict[str, float] = {}
    done = np.zeros(n, dtype=bool)
    for j in range(n_decisions):
        _, _, terminated, _, info = env.step(actions[j])
        for key in STEP_KEYS:
            worst[key] = max(worst.get(key, 0.0), close(info[key], records[j][key], ~done))
        np.testing.assert_array_equal(info["step"][~done], (j + 1) * spec.every)
        ending = terminated & ~done
        if ending.any():
            worst["totals"] = max(worst.get("totals", 0.0),
                                  check_totals(info, records[: j + 1], ledger, ending))
        done |= terminated
    assert done.all()
    return worst, records, ledger


R = dict(rate=0.05, dividend=0.02)
ALL_COSTS = dict(proportional=1e-3, spread=4e-4, spread_sensitivity=1.2, ticket=0.5, eta=0.05,
                 eta_adv=2e4, sqrt_y=0.6, sqrt_adv=3e4)
CASES: dict[str, tuple[Spec, dict[str, Any]]] = {
    "spread_widening_with_vol_and_liquidity": (
        Spec(spread=5e-4, spread_sensitivity=1.5, spread_reference=0.15), dict(liquidity=True)),
    "absolute_spread_at_its_floor": (
        Spec(spread=0.02, spread_relative=False, spread_sensitivity=3.0, spread_reference=0.4,
             spread_floor=0.3), dict(liquidity=True)),
    "tickets_and_fees": (Spec(ticket=2.5, proportional=1e-3), {}),
    "linear_impact": (Spec(eta=0.1, eta_adv=1e4), dict(liquidity=True)),
    "square_root_impact": (Spec(sqrt_y=1.0, sqrt_adv=1e4, days=252.0), dict(liquidity=True)),
    "square_root_impact_fixed_daily_vol": (
        Spec(sqrt_y=0.7, sqrt_adv=5e3, sqrt_daily_vol=0.02), dict(liquidity=True)),
    "every_cost_with_carry_252_days": (Spec(**ALL_COSTS, days=252.0, **R), dict(liquidity=True)),
    "lots_in_trade_mode": (Spec(proportional=1e-3, lot=7.0, action_mode="trade"), {}),
    "option_spread_in_vol_points": (
        Spec(proportional=1e-3, option=True, option_moneyness=1.05, **R), dict(liquidity=True)),
    "fraction_with_option": (Spec(proportional=1e-3, action_mode="fraction", option=True), {}),
    "band_with_option_and_carry": (Spec(proportional=1e-3, action_mode="band", option=True, **R),
                                   {}),
    "every_5_from_the_model_delta": (
        Spec(proportional=1e-3, every=5, initial="delta", **R), {}),
    "no_unwind_with_stock": (Spec(proportional=1e-3, unwind=False, stock=40.0, **R), {}),
    "negative_rate": (Spec(proportional=1e-3, rate=-0.01, dividend=0.04), {}),
    "fills_and_caps_with_option": (
        Spec(proportional=1e-3, ticket=1.0, option=True),
        dict(fraction=(0.3, 1.0), cap=(0.1, 3.0), liquidity=True)),
    "twap_with_fills_and_impact_costs": (
        Spec(proportional=1e-3, eta=0.1, eta_adv=1e4, every=4, execution="twap"),
        dict(fraction=(0.3, 1.0), cap=(0.05, 0.5), liquidity=True)),
    "participation_with_option": (
        Spec(proportional=1e-3, every=5, execution="participation", execution_rate=0.07,
             option=True), dict(liquidity=True, fraction=(0.5, 1.0))),
    "own_impact_with_option_and_carry": (
        Spec(proportional=1e-3, impact=0.02, option=True, stock=30.0, **R), dict(liquidity=True)),
    "own_impact_every_4_immediate": (Spec(proportional=1e-3, impact=0.02, every=4, **R), {}),
    "own_impact_participation": (
        Spec(proportional=1e-3, impact=0.02, every=5, execution="participation"),
        dict(liquidity=True)),
    "own_impact_trade_lots_sqrt_capped_unwind": (  # permanent impact needs unwind=True
        Spec(sqrt_y=1.0, sqrt_adv=1e4, impact=0.03, action_mode="trade", lot=5.0),
        dict(liquidity=True, cap=(0.05, 0.4))),
    "limits_report": (Spec(proportional=1e-3, limits=dict(delta=0.3, drawdown=50.0)), {}),
    "limits_flatten_with_option": (
        Spec(proportional=1e-3, option=True, limits=dict(delta=0.3, vega=5.0, action="flatten")),
        {}),
    "limits_terminate_no_unwind": (
        Spec(proportional=1e-3, unwind=False, limits=dict(delta=0.6, action="terminate")), {}),
    "limits_terminate_with_impact_and_fills": (
        Spec(proportional=1e-3, impact=0.02, limits=dict(drawdown=100.0, action="terminate")),
        dict(fraction=(0.5, 1.0))),
    "everything_at_once": (
        Spec(**ALL_COSTS, impact=0.02, every=4, execution="twap", lot=3.0, option=True,
             days=252.0, stock=25.0, initial="delta",
             limits=dict(delta=0.4, gamma=0.05, action="flatten"), **R),
        dict(liquidity=True, fraction=(0.4, 1.0), cap=(0.05, 2.0))),
    "everything_participation_band_terminate": (
        Spec(**ALL_COSTS, impact=0.01, every=5, execution="participation", execution_rate=0.05,
             option=True, action_mode="band", limits=dict(drawdown=60.0, action="terminate"),
             **R), dict(liquidity=True, fraction=(0.4, 1.0))),
}


def _is_live(spec: Spec, records: list, ledger: Ledger) -> None:
    """The mechanics under test did something (the comparison is not vacuous)."""
    total = {key: sum(abs(r[key]) for r in records) for key in ("cost", "impact_pnl", "unfilled")}
    assert np.ptp(ledger.terminal) > 100.0
    assert total["cost"].min() > 0 or spec.proportional == 0
    assert (total["impact_pnl"].max() > 1.0) == (spec.impact > 0)
    if spec.limits is not None:
        assert sum((r["breach"] != 0).sum() for r in records) > 0
    if spec.limits and spec.limits.get("action") == "terminate":
        assert records[-2]["stopped"].any()


@pytest.mark.parametrize("name", list(CASES))
def test_vector_env_books_every_cent_as_the_reference_ledger(name: str) -> None:
    spec, market = CASES[name]
    worst, records, ledger = run_vector(spec, spec.market(**market))
    assert max(worst.values()) <= TOL, {k: v for k, v in worst.items() if v > TOL}
    _is_live(spec, records, ledger)


SINGLE = ("every_cost_with_carry_252_days", "fills_and_caps_with_option",
          "twap_with_fills_and_impact_costs", "own_impact_with_option_and_carry",
          "limits_terminate_with_impact_and_fills", "everything_at_once")


@pytest.mark.parametrize("name", SINGLE)
def test_single_env_books_every_cent_as_the_reference_ledger(name: str) -> None:
    """The single env's scalar path (Python floats), episode after episode, on its own paths."""
    spec, kwargs = CASES[name]
    market = spec.market(**kwargs)
    env = HedgingEnv(block=1, **spec.env_kwargs(market))
    rng = np.random.default_rng(5)
    n_decisions, dim = spec.n_steps // spec.every, 2 if spec.option else 1
    worst = 0.0
    for episode in range(4):
        env.reset(seed=5 if episode == 0 else None)
        actions = rng.uniform(-1, 1, (n_decisions, 1, dim))
        records, ledger = reference(spec, market.record[0], actions)
        for j in range(n_decisions):
            _, _, terminated, _, info = env.step(actions[j][0])
            worst = max(worst, *(close(info[key], records[j][key][0]) for key in STEP_KEYS))
            if terminated:
                worst = max(worst, check_totals(
                    {"totals": {k: np.atleast_1d(v) for k, v in info["totals"].items()}},
                    records[: j + 1], ledger, np.array([True])))
                break
    assert worst <= TOL


def test_rows_at_different_steps_book_as_the_reference() -> None:
    """Episodes after early terminations (rows at different steps: per-row views of the core)."""
    spec, kwargs = CASES["everything_participation_band_terminate"]
    market = spec.market(**kwargs)
    n, dim = 6, 2
    env = VecHedgingEnv(num_envs=n, observations=False, **spec.env_kwargs(market))
    env.reset(seed=11)
    rng = np.random.default_rng(11)
    started = {r: (market_rows(env.batch.market, slice(r, r + 1)), []) for r in range(n)}
    worst, checked = 0.0, 0
    for _ in range(20):
        actions = rng.uniform(-1, 1, (n, dim))
        _, _, terminated, _, info = env.step(actions)
        for r in range(n):
            if r in started:
                started[r][1].append(actions[r])
            if terminated[r]:
                paths, taken = started.pop(r)
                padded = taken + [np.zeros(dim)] * (spec.n_steps // spec.every - len(taken))
                _, ledger = reference(spec, paths, np.array(padded)[:, None, :])
                worst = max(worst, close(info["totals"]["terminal_pnl"][r], ledger.terminal[0]))
                checked += 1
            elif r not in started and info["step"][r] == 0:  # reset on this step (NEXT_STEP)
                started[r] = (market_rows(env.batch.market, slice(r, r + 1)), [])
    assert checked >= 6
    assert worst <= TOL


# --------------------------------------------------------------------------------- rewards
@pytest.mark.parametrize("mode", ["pnl", "mean_variance", "terminal", "terminal_mean_variance"])
@pytest.mark.parametrize(("every", "days"), [(1, 250.0), (4, 252.0)])
def test_rewards_and_reward_scale_from_the_reference_pnl(mode: str, every: int, days: float):
    """Rewards from the reference's step P&L x = dPnL / scale (Kolm and Ritter 2019).

    ``pnl``: x; ``mean_variance``: x - kappa/2 x^2; ``terminal``: X on the last step;
    ``terminal_mean_variance``: x, and -kappa/2 (X - m)^2 on the last step; the default scale
    is ``0.4 sigma sqrt(T) S_0 N`` (Brenner and Subrahmanyam 1988), in ``info``.
    """
    spec, n, kappa, m = Spec(proportional=1e-3, every=every, days=days), 8, 0.7, -0.3
    env = VecHedgingEnv(num_envs=n, observations=False, reward_mode=mode, risk_aversion=kappa,
                        pnl_reference=m, **spec.env_kwargs(spec.market()))
    env.reset(seed=1)
    actions = np.random.default_rng(2).uniform(-1, 1, (20 // every, n, 1))
    records, _ = reference(spec, env.batch.market, actions)
    scale = 0.4 * 0.2 * math.sqrt(20 / days) * 100.0 * N
    episode = np.zeros(n)
    for j, record in enumerate(records):
        _, reward, terminated, _, info = env.step(actions[j])
        np.testing.assert_allclose(info["reward_scale"], scale, rtol=1e-12)
        x = record["pnl"] / scale
        episode += x
        want = {"pnl": x, "mean_variance": x - kappa / 2 * x * x, "terminal": terminated * episode,
                "terminal_mean_variance": x - terminated * kappa / 2 * (episode - m) ** 2}[mode]
        assert close(reward, want) <= TOL
    assert terminated.all()


# ------------------------------------------------------------------------ defects (fixed)
def test_a_boolean_is_not_a_risk_limit() -> None:
    """``{"delta": true}`` (YAML) was taken as a delta limit of 1 notional; bools are refused
    like every other numeric field (tests/envs/test_mutants_frictions.py)."""
    with pytest.raises(ValueError, match=r"risk_limits\.delta must be a finite number >= 0"):
        RiskLimits(delta=True)
    with pytest.raises(ValueError, match=r"risk_limits\.drawdown"):
        make_config("ShortCall", risk_limits={"drawdown": False})


def test_risk_limits_take_numpy_numbers() -> None:
    """numpy numbers are numbers (as in every other config field); np.float32(0.5) was refused."""
    limits = RiskLimits(delta=np.float32(0.5), drawdown=np.int64(100))
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", observations=False, risk_limits=limits)
    env.reset(seed=0)
    *_, info = env.step_targets(np.zeros((4, 1)))  # unhedged short call: |delta| ~ 0.5
    assert info["breach"].dtype.kind == "i"


def test_core_config_converts_or_refuses_its_risk_limits() -> None:
    """A dict became a truthy non-RiskLimits (stressed, nothing checked), a str was accepted."""
    assert CoreConfig(risk_limits={"delta": 0.5}).risk_limits == RiskLimits(delta=0.5)
    with pytest.raises(ValueError, match="risk_limits must be a RiskLimits, a dict or None"):
        CoreConfig(risk_limits="delta")


@pytest.mark.parametrize("single", [False, True])
def test_own_impact_past_float64_range_raises_naming_permanent_impact(single: bool) -> None:
    """A valid ``permanent_impact`` and always buying moved the spot by e^{I}, I = k h / N:
    past I ~ 710 the pricer failed with "spot must be finite" (vector env) or an
    ``OverflowError: math range error`` (single env), and below it the P&L reached -1e220."""
    kwargs = dict(permanent_impact=100.0, action_mode="trade")
    if single:
        env: Any = ShortCallEnv(**kwargs)
        buy = np.ones(1)
    else:
        env = VecHedgingEnv(num_envs=2, preset="ShortCall", observations=False, **kwargs)
        buy = np.ones((2, 1))
    env.reset(seed=0)

    def buy_every_step() -> None:
        for _ in range(20):  # +50 units a step: I = 50, 100, 150
            env.step(buy)

    with pytest.raises(ValueError, match=r"permanent_impact=100\.0: .* log spot by 150 "):
        buy_every_step()


def test_impact_within_the_bound_is_unchanged() -> None:
    """Close to the bound (I = 96) the episode runs and stays finite."""
    env = VecHedgingEnv(num_envs=2, preset="ShortCall", observations=False, permanent_impact=64.0)
    env.reset(seed=0)
    for _ in range(20):  # target 1.5 N: I = 64 * 1.5 = 96
        *_, info = env.step(np.ones((2, 1)))
    assert np.isfinite(info["totals"]["terminal_pnl"]).all()


# ------------------------------------------------------- errors and extreme valid values
@pytest.mark.parametrize(("build", "message"), [
    (lambda: CoreConfig(permanent_impact=True), "permanent_impact must be a finite number >= 0"),
    (lambda: CoreConfig(lot_size=math.nan), "lot_size must be a finite number >= 0"),
    (lambda: CoreConfig(execution="TWAP"), "execution must be one of immediate, twap"),
    (lambda: CoreConfig(reward_mode="sharpe"), "reward_mode must be one of pnl, mean_variance"),
    (lambda: CoreConfig(unwind=1), "unwind must be True or False"),
    (lambda: RiskLimits(action="stop"), "risk_limits.action must be one of report, flatten"),
    (lambda: RiskLimits.from_spec({"delt": 1.0}), r"unknown risk_limits key\(s\) \['delt'\]"),
    (lambda: SpreadCost(1e-3, floor=2.0), r"SpreadCost.floor must be a number in \[0.0, 1.0\]"),
    (lambda: SquareRootImpact(1.0, 1e4, 0.0), r"daily_vol must be a number in \(0.0, 1.0\]"),
    (lambda: cost_model_from_config({"spread": {}}), "spread: .*half_spread"),
    (lambda: cost_model_from_config({"tax": 0.1}), "unknown cost model 'tax'; known:"),
    (lambda: make_config("ShortCall", execution_rate=0.0), "execution_rate must be a finite"),
])
def test_bad_values_are_refused_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("kwargs", [
    dict(permanent_impact=1.0, hedge_option=True),
    dict(market_kwargs=dict(sigma=1e-4)),
    dict(market_kwargs=dict(sigma=3.0), hedge_option=True, option_position_limit=1e6),
    dict(lot_size=1e9),
    dict(cost={"fixed": 1e15, "spread": {"half_spread": 1e15, "relative": False}},
         reward_mode="mean_variance", risk_aversion=1e15),
    dict(rebalance_every=4, execution="participation", execution_rate=1e-9),
    dict(cost={"spread": {"half_spread": 0.5, "vol_sensitivity": 1e6, "floor": 0.0},
               "linear_impact": {"eta": 1.0, "daily_volume": 1e-6}}),
    dict(market_kwargs=dict(rate=5.0, dividend=3.0), reward_mode="mean_variance",
         risk_aversion=1e6),
    dict(risk_limits=dict(delta=0.0, gamma=0.0, vega=0.0, drawdown=0.0, action="terminate"),
         permanent_impact=0.1, hedge_option=True),
])
def test_extreme_valid_settings_leave_no_nan_and_keep_the_identity(kwargs: dict) -> None:
    env = VecHedgingEnv(num_envs=8, preset="ShortCall", **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(30):
        actions = rng.uniform(-1, 1, (8, env.config.action_dim))
        obs, reward, terminated, _, info = env.step(actions)
        assert np.isfinite(obs).all()
        assert np.isfinite(reward).all()
        for key, value in info.items():
            if np.asarray(value).dtype.kind == "f":
                assert np.isfinite(value).all(), key
        if terminated.any():
            totals = info["totals"]
            identity = sum(totals[c] for c in COMPONENTS) - totals["cost"]
            assert close(identity, totals["terminal_pnl"], terminated) <= TOL
            assert all(np.isfinite(v[terminated]).all() for v in totals.values())
            ended += terminated.sum()
    assert ended >= 8


# ------------------------------------------ manipulation through own impact (closed, pinned)
def _impact_gain(plan: dict, n: int = 64) -> np.ndarray:
    """P&L with ``permanent_impact=0.05`` minus without it, same paths, same targets."""
    pnl = []
    for impact in (0.05, 0.0):
        env = VecHedgingEnv(num_envs=n, preset="ShortCall", observations=False, cost=1e-3,
                            permanent_impact=impact, hedge_option={"half_spread_vol": 0.005})
        env.reset(seed=4)
        for t in range(20):
            *_, info = env.step_targets(np.tile(np.array(plan.get(t, (0.0, 0.0))), (n, 1)))
        pnl.append(info["totals"]["terminal_pnl"])
    return pnl[0] - pnl[1]


def test_a_round_trip_in_the_underlying_alone_does_not_pay() -> None:
    """Buy 1.5 N (pushing the spot e^0.075), sell it back a step later: second order only.

    Huberman and Stanzl (2004): trades at the average price along their own move make a round
    trip free of manipulation profit; measured on these 64 paths: mean -1.3 a path (-16 to
    +16, second-order market noise), against +5,074 through the hedging option below.
    """
    gain = _impact_gain({0: (150.0, 0.0)})
    assert abs(gain.mean()) < 5.0


def test_pushing_the_spot_while_holding_the_hedging_option_does_not_pay() -> None:
    """Buy 10 N options; push with 1.5 N stock; sell the options; unwind the stock.

    Jarrow (1994), "Derivative security markets, market manipulation, and option pricing
    theory", JFQA 29(2): with the option re-marked at the moved spot this paid +5,074 a path
    on average (min +3,929), almost all of it in ``impact_pnl``, with 10 bp stock costs and
    half a vol point of option spread. The option is now quoted at the market's spot
    (``hedgearena.envs.episode.mark_step``): what is left is the stock's round trip (second
    order, as in the test above) and the option's spread, a loss.
    """
    gain = _impact_gain({0: (0.0, 1000.0), 1: (150.0, 1000.0), 2: (150.0, 0.0)})
    assert gain.mean() < 5.0


def test_the_hedging_options_quotes_and_greeks_stay_the_markets_under_own_impact() -> None:
    """The re-marks move the spot and the book, never the hedging option (its price, greeks,
    cost per unit): the same arrays as without impact, after a plan that pushes the spot."""
    plan = {0: (150.0, 1000.0), 5: (-100.0, -500.0), 10: (80.0, 0.0)}
    batches = []
    for impact in (0.05, 0.0):
        env = VecHedgingEnv(num_envs=16, preset="ShortCall", cost=1e-3, permanent_impact=impact,
                            hedge_option=True)
        env.reset(seed=7)
        for t in range(19):
            env.step_targets(np.tile(np.array(plan.get(t, (0.0, 0.0))), (16, 1)))
        batches.append(env.batch)
    moved, market = batches
    assert not np.array_equal(moved.episode.spot, market.episode.spot)  # the spot did move
    for name in ("option_price", "option_linear"):
        np.testing.assert_array_equal(getattr(moved.episode, name),
                                      getattr(market.episode, name))
    for name in ("option_delta", "option_gamma", "option_vega"):
        np.testing.assert_array_equal(getattr(moved.features, name),
                                      getattr(market.features, name))


def test_buying_at_the_last_decision_does_not_mark_up_a_held_position() -> None:
    """Held at the end, a position bought at the last decision was marked at the spot its own
    buying pushed up: +35,000 a path for 1,000 units at ``permanent_impact`` 0.05 with
    ``unwind=False``. Permanent impact now needs ``unwind=True``; unwound, the purchase pays
    its costs and the second-order remainder of the round trip (a loss)."""
    with pytest.raises(ValueError, match="permanent_impact needs unwind=True"):
        VecHedgingEnv(num_envs=2, preset="ShortCall", permanent_impact=0.05, unwind=False)
    with pytest.raises(ValueError, match="permanent_impact needs unwind=True"):
        CoreConfig(permanent_impact=0.05, unwind=False)
    pnl = []
    for impact in (0.05, 0.0):
        env = VecHedgingEnv(num_envs=64, preset="ShortCall", observations=False, cost=1e-3,
                            permanent_impact=impact)
        env.reset(seed=4)
        for t in range(20):
            *_, info = env.step_targets(np.full((64, 1), 1000.0 if t == 19 else 0.0))
        pnl.append(info["totals"]["terminal_pnl"])
    assert (pnl[0] - pnl[1]).mean() < 0.0


def _last_decision_gain(fraction: float, n: int = 64) -> tuple[np.ndarray, dict]:
    """Buy 10 N at the last decision at ``fraction`` fills, no cost: P&L with
    ``permanent_impact`` 0.05 minus without it (same paths), and the impact run's totals."""
    pnl, totals = [], {}
    for impact in (0.05, 0.0):
        env = VecHedgingEnv(num_envs=n, preset="ShortCall", observations=False, cost=0.0,
                            permanent_impact=impact,
                            market=AuditMarket(fraction=(fraction, fraction)))
        env.reset(seed=4)
        for t in range(20):
            *_, info = env.step_targets(np.full((n, 1), 1000.0 if t == 19 else 0.0))
        pnl.append(info["totals"]["terminal_pnl"])
        totals = totals or info["totals"]
    return pnl[0] - pnl[1], totals


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.2])
def test_a_partly_filled_unwind_leaves_nothing_marked_up_under_own_impact(
    fraction: float,
) -> None:
    """With half fills the unwind sold half of the 500 units bought at the last decision and
    the rest stayed held, marked at the spot its own buying pushed up: +1,698 a path (every
    path up, at least +1,436). Under own impact the sale now fills whole, so the purchase and
    its sale are a round trip (Huberman and Stanzl 2004): second order, a small loss."""
    gain, totals = _last_decision_gain(fraction)
    assert gain.mean() < 5.0
    bought = 1000.0 * fraction  # the decision's fill; its unfilled part counts, the sale's is 0
    np.testing.assert_allclose(totals["unfilled"], 1000.0 - bought, rtol=1e-12)


def test_unfilled_totals_count_each_order_not_their_net() -> None:
    """Without own impact the unwind is subject to the fills: at fill 0.5 the decision leaves
    +500 of its 1,000 unexecuted and the unwind -250 of its -500; the total is 750 units (it
    was their net, 250)."""
    env = VecHedgingEnv(num_envs=8, preset="ShortCall", observations=False, cost=0.0,
                        market=AuditMarket(fraction=(0.5, 0.5)))
    env.reset(seed=4)
    for t in range(20):
        *_, info = env.step_targets(np.full((8, 1), 1000.0 if t == 19 else 0.0))
    np.testing.assert_allclose(info["totals"]["unfilled"], 750.0, rtol=1e-12)
    np.testing.assert_allclose(info["hedge"], 250.0, rtol=1e-12)  # what the unwind left
