"""Audit of the option book, its client flow and the hedging option, as the episode build has them.

References: QuantLib's ``BlackCalculator`` (Black-Scholes value and vega of one European option
from its forward, total deviation and discount factor) for a hand ledger of whole episodes on GBM
(flat vol: the marks are Black-Scholes, so QuantLib is exact); QuantLib's
``AnalyticHestonEngine`` (Heston 1993) for the hedging option's marks on OptionBook-v0's Heston
market, within the 3e-4 in vol that ``HestonSurface`` documents; Poisson, binomial and uniform
moments with their standard errors for the client flow; the normal density for the hedging
option's "usable" rule; pricing every slot (dense) for the sparse marking.
"""

from __future__ import annotations

import tracemalloc
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import QuantLib as ql  # noqa: N813

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs import book as book_module
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.book import (
    BookMarks,
    ClientFlow,
    ClientFlowCapacityWarning,
    HedgeOption,
    Option,
    OptionBook,
    mark_book_time_major,
    price_options,
    sample_book,
    sample_client_flow,
)
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import (
    EpisodeBatch,
    build_episodes,
    hedge_option_linear,
    hedge_option_usable,
)
from hedgearena.envs.gbm import GBM

DT = 1.0 / 252.0
R, Q, SIGMA = 0.04, 0.015, 0.25


def _black(spot: float, strike: float, tau: float, is_call: bool,
           vol: float = SIGMA, r: float = R, q: float = Q) -> tuple[float, float]:
    """(price, vega per 1.00 of vol) of one unit from QuantLib; the payoff at ``tau <= 0``."""
    if tau <= 0.0:
        return max(spot - strike if is_call else strike - spot, 0.0), 0.0
    kind = ql.Option.Call if is_call else ql.Option.Put
    calc = ql.BlackCalculator(ql.PlainVanillaPayoff(kind, float(strike)),
                              float(spot * np.exp((r - q) * tau)), float(vol * np.sqrt(tau)),
                              float(np.exp(-r * tau)))
    return calc.value(), calc.vega(float(tau))


# ----------------------------------------------------------------------------------- 1. ledger
LEDGER_BOOK = OptionBook(
    options=(Option(1.05, 9, -3.0, True, 50.0),    # short 150 calls, expires inside (step 9)
             Option(0.95, 40, 2.0, False, 100.0)),  # long 200 puts, outlives the episode
    stock=-20.0,
    client_flow=ClientFlow(rate=600.0, expiry_steps=(5, 12, 40), contracts=2.0, multiplier=25.0,
                           half_spread_vol=0.01, max_trades=100),
)
LEDGER_HEDGE = HedgeOption(moneyness=1.02, expiry_steps=50, is_call=False, half_spread_vol=0.007)
COST = 0.001


def _ledger(config: EnvConfig, batch: EpisodeBatch, path: int,
            targets: np.ndarray) -> dict[str, float]:
    """One path's episode by hand: QuantLib marks, cash account, costs, the unwind.

    At arrival step ``a`` a trade of signed quantity ``q`` (the dealer's side) and unit mark
    ``P`` pays the dealer ``-q P`` (premium) plus ``|q| h vega`` (half-spread income); at expiry
    ``e <= n_steps`` it pays ``q`` times the payoff. Cash earns ``e^{r dt} - 1``, the stock held
    (hedge and the book's own) ``(e^{q dt} - 1) S``. Trades pay ``COST |dq| S`` and, in the
    hedging option, ``half_spread_vol vega |dg|``; the positions are sold at the last step.
    """
    n_steps, ins, spot = config.n_steps, batch.instruments, batch.market.spot[path]
    assert n_steps is not None
    book = np.zeros(n_steps + 1)
    flow = np.zeros(n_steps + 1)
    income = np.zeros(n_steps + 1)
    for i in np.nonzero(ins.quantity[path])[0]:
        q, k, call = ins.quantity[path, i], ins.strike[path, i], bool(ins.is_call[path, i])
        start, expiry = int(ins.start[path, i]), int(ins.expiry[path, i])
        price, vega = _black(spot[start], k, (expiry - start) * DT, call)
        flow[start] -= q * price
        income[start] += abs(q) * ins.half_spread_vol[path, i] * vega
        if expiry <= n_steps:
            flow[expiry] += q * _black(spot[expiry], k, 0.0, call)[0]
        for s in range(start, min(expiry, n_steps + 1)):
            book[s] += q * _black(spot[s], k, (expiry - s) * DT, call)[0]
    stock = config.book.stock
    book += stock * spot
    option, option_vega = np.zeros(n_steps + 1), np.zeros(n_steps + 1)
    ho = config.hedge_option
    if ho is not None:
        for s in range(n_steps + 1):
            option[s], option_vega[s] = _black(spot[s], ho.moneyness * spot[0],
                                               (ho.expiry_steps - s) * DT, ho.is_call)
    spread = 0.0 if ho is None else ho.half_spread_vol
    h = g = 0.0
    cash = flow[0] + income[0]
    totals = dict.fromkeys(("option_mtm", "hedge_pnl", "carry", "spread_income", "cost"), 0.0)
    totals["initial_premium"] = cash
    wealth0 = book[0] + cash
    for t in range(n_steps):
        new_h, new_g = targets[t]
        cost = COST * abs(new_h - h) * spot[t] + spread * option_vega[t] * abs(new_g - g)
        cash -= (new_h - h) * spot[t] + (new_g - g) * option[t] + cost
        h, g = new_h, new_g
        carry = cash * (np.exp(R * DT) - 1.0) + (h + stock) * spot[t] * (np.exp(Q * DT) - 1.0)
        cash += carry + flow[t + 1] + income[t + 1]
        totals["cost"] += cost
        totals["carry"] += carry
        totals["spread_income"] += income[t + 1]
        totals["hedge_pnl"] += h * (spot[t + 1] - spot[t]) + g * (option[t + 1] - option[t])
        totals["option_mtm"] += book[t + 1] - book[t] + flow[t + 1]
    cost = COST * abs(h) * spot[-1] + spread * option_vega[-1] * abs(g)
    cash += h * spot[-1] + g * option[-1] - cost
    totals["cost"] += cost
    totals["terminal_pnl"] = book[-1] + cash - wealth0
    return totals


@pytest.mark.parametrize("hedge_option", [None, LEDGER_HEDGE], ids=["underlying", "with_option"])
def test_hand_ledger_of_book_paths_with_and_without_the_hedging_option(hedge_option) -> None:
    """Calls and puts, buys and sells, multipliers 25/50/100, options settling inside the episode
    and outliving it, r = 4% and q = 1.5%, the book's own stock: every total of ``info["totals"]``
    is the hand ledger's (QuantLib marks) to 1e-9, and the P&L components sum to the terminal
    P&L to 1e-9 relative."""
    n_paths, n_steps = 2, 24
    env = gym.make_vec(
        "hedgearena/OptionBook-v0", num_envs=n_paths, vectorization_mode="vector_entry_point",
        market="gbm", market_kwargs={"mu": 0.03, "sigma": SIGMA, "spot0": 100.0, "rate": R,
                                     "dividend": Q},
        book=LEDGER_BOOK, n_steps=n_steps, cost=COST, hedge_option=hedge_option,
        position_limit=5.0, option_position_limit=5.0, reward_scale=1.0,
    )
    env.reset(seed=3)
    config, batch = env.unwrapped.config, env.unwrapped.batch
    actions = np.random.default_rng(3).uniform(-1, 1, (n_steps, n_paths, config.action_dim))
    actions = actions.astype(np.float32)
    for t in range(n_steps):
        *_, info = env.step(actions[t])
    totals = info["totals"]
    limits = np.array([config.position_limit, config.option_position_limit])
    targets = actions.astype(np.float64) * limits[: config.action_dim] * config.book.notional
    if hedge_option is None:
        targets = np.concatenate([targets, np.zeros_like(targets)], axis=2)
    ins = batch.instruments
    live = ins.quantity != 0
    assert (ins.expiry[live] <= n_steps).sum() > 20
    assert (ins.expiry[live] > n_steps).sum() > 20
    assert {-50.0, 50.0, -150.0, 200.0} <= set(np.unique(ins.quantity[live]))
    assert ins.is_call[live].any()
    assert not ins.is_call[live].all()
    for path in range(n_paths):
        hand = _ledger(config, batch, path, targets[:, path])
        for name, value in hand.items():
            assert totals[name][path] == pytest.approx(value, rel=1e-9, abs=1e-9), name
        parts = sum(totals[k][path] for k in
                    ("option_mtm", "hedge_pnl", "carry", "spread_income", "impact_pnl"))
        assert parts - totals["cost"][path] == pytest.approx(totals["terminal_pnl"][path],
                                                            rel=1e-9)
        assert hand["spread_income"] > 0
        assert hand["carry"] != 0


# ------------------------------------------------------------------------------ 2. client flow
def _gbm(n_paths: int, n_steps: int = 60, seed: int = 0) -> Any:
    return GBM(mu=0.0, sigma=0.2, spot0=100.0).simulate(n_paths, n_steps, DT,
                                                        np.random.default_rng(seed))


def test_client_flow_statistics_match_their_stated_distributions() -> None:
    """A skewed flow (30% client buys, 70% calls, strikes 80%-115% rounded to 2.5, lags 5/17/90,
    3 contracts x 10): per path Poisson(300 / 252 x 59 = 70.24), mean and variance within 4
    standard errors (sqrt(mu / n) and mu sqrt(2 / n)); per step Poisson(1.19) on steps 1..59
    only; sides, types and lags binomial (4 sqrt(p (1 - p) / n)); strikes uniform in the range
    of the arrival spot (mean moneyness 0.975, sd 0.35 / sqrt(12)) and on the step's grid (within
    half a step of the range)."""
    n_paths, n_steps = 4000, 60
    flow = ClientFlow(rate=300.0, buy_probability=0.3, call_probability=0.7,
                      moneyness_range=(0.8, 1.15), strike_step=2.5, expiry_steps=(5, 17, 90),
                      contracts=3.0, multiplier=10.0, half_spread_vol=0.004, max_trades=130)
    market = _gbm(n_paths, n_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClientFlowCapacityWarning)  # 130 holds Poisson(70)
        trades = sample_client_flow(flow, market, np.random.default_rng(1))
    live = trades.quantity != 0
    counts = live.sum(axis=1)
    mu = flow.rate * DT * (n_steps - 1)
    assert abs(counts.mean() - mu) < 4 * np.sqrt(mu / n_paths)
    assert abs(counts.var() - mu) < 4 * mu * np.sqrt(2 / n_paths)
    rows, slots = np.nonzero(live)
    start = trades.start[rows, slots]
    assert start.min() == 1
    assert start.max() == n_steps - 1
    per_step = np.bincount(start, minlength=n_steps) / n_paths
    cell = flow.rate * DT
    assert np.all(np.abs(per_step[1:] - cell) < 4 * np.sqrt(cell / n_paths))
    n = live.sum()
    quantity = trades.quantity[live]
    assert set(np.unique(np.abs(quantity))) == {30.0}
    for share, p in (((quantity < 0).mean(), 0.3), (trades.is_call[live].mean(), 0.7)):
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n)
    lags = trades.expiry[live] - start
    assert set(np.unique(lags)) == {5, 17, 90}
    for lag in (5, 17, 90):
        assert abs((lags == lag).mean() - 1 / 3) < 4 * np.sqrt(2 / 9 / n)
    strike, arrival = trades.strike[live], market.spot[rows, start]
    np.testing.assert_allclose(strike / 2.5, np.round(strike / 2.5), atol=1e-9)
    assert np.all(strike >= 0.8 * arrival - 1.25)
    assert np.all(strike <= 1.15 * arrival + 1.25)
    moneyness = strike / arrival
    sd = np.sqrt((0.35**2 + (2.5 / 100) ** 2) / 12)  # the range's, and the rounding's at S 100
    assert abs(moneyness.mean() - 0.975) < 4 * sd / np.sqrt(n)
    np.testing.assert_array_equal(trades.half_spread_vol[live], 0.004)
    np.testing.assert_array_equal(trades.quantity[~live], 0.0)


def test_a_huge_rate_costs_the_capacity_not_the_rate_in_memory() -> None:
    """A million trades a year on 8 paths: the arrivals beyond ``max_trades`` were materialised
    before being dropped (80 MB here, 2.7 GB on a block of 256 paths, 25 GB at 10^7 a year: the
    build died); the capped running count keeps the memory to the 96 slots a path. The first
    96 arrivals are kept (the earliest), and the warning counts the others exactly."""
    market = _gbm(8)
    flow = ClientFlow(rate=1e6)
    tracemalloc.start()
    try:
        with pytest.warns(ClientFlowCapacityWarning, match=r"dropped (\d+) client trades "
                          r"\(the latest\) on 8 of 8 paths, which expect 2\.341e\+05 each") as w:
            trades = sample_client_flow(flow, market, np.random.default_rng(1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2e6
    assert np.all((trades.quantity != 0).sum(axis=1) == 96)
    counts = np.random.default_rng(1).poisson(1e6 * DT, (8, 60))  # the same first draw
    counts[:, 0] = 0
    dropped = int(str(w[0].message).split(" dropped ")[1].split()[0])
    assert dropped == counts.sum() - 8 * 96
    first = np.repeat(np.arange(60), counts[0])[:96]
    np.testing.assert_array_equal(trades.start[0], first)


# ---------------------------------------------------------------------------- 3. sparse marks
_GBM_KW = {"mu": 0.0, "sigma": 0.3, "spot0": 100.0, "rate": 0.03, "dividend": 0.02}
_TWO = [{"expiry_steps": 40}, {"expiry_steps": 30, "is_call": False, "contracts": 2.0}]
SPARSE_CASES: dict[str, tuple[dict[str, Any], int]] = {
    # name: (config keywords, paths)
    "option_book": ({"book": {"options": [], "client_flow": {}}, "n_steps": 40}, 12),
    "one_path": ({"book": {"options": [], "client_flow": {"rate": 2000.0, "max_trades": 200,
                                                           "expiry_steps": [2, 5]}},
                  "n_steps": 30}, 1),
    "initial_and_flow": ({"book": {"options": [{"expiry_steps": 15, "contracts": -2.0},
                                               {"moneyness": 1.1, "expiry_steps": 25,
                                                "is_call": False, "multiplier": 50.0}],
                                   "client_flow": {"rate": 800.0, "expiry_steps": [3, 8],
                                                   "max_trades": 40}},
                          "n_steps": 20}, 9),
    "all_live": ({"book": {"options": _TWO}, "n_steps": 20}, 7),
    "none_live": ({"book": {"options": [], "client_flow": {"rate": 0.0, "max_trades": 5}},
                   "n_steps": 10}, 6),
    "half_live": ({"book": {"options": _TWO, "client_flow": {"rate": 0.0, "max_trades": 2}},
                   "n_steps": 10}, 4),  # exactly SPARSE: 2 of 4 slots live on every step
    "below_half": ({"book": {"options": _TWO, "client_flow": {"rate": 0.0, "max_trades": 3}},
                    "n_steps": 10}, 4),
    # every path's trades at step 1: start, quantity, expiry one row; strikes and types not
    "mixed_rows": ({"book": {"options": [], "client_flow": {
        "rate": 1e6, "buy_probability": 1.0, "expiry_steps": [2], "max_trades": 3}},
        "n_steps": 20}, 5),
}


def _marks(config: EnvConfig, n_paths: int) -> BookMarks:
    rng = np.random.default_rng(7)
    market = config.market.simulate(n_paths, config.n_steps, config.dt, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClientFlowCapacityWarning)  # mixed_rows: on purpose
        instruments = sample_book(config.book, market, rng)
    return mark_book_time_major(instruments, market)


@pytest.mark.parametrize("case", sorted(SPARSE_CASES))
def test_sparse_marks_equal_dense_marks(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every mark, greek and cash flow priced at the live slots only (``SPARSE`` above any
    fraction), with the default rule, and in blocks of one step, equals pricing every slot
    (``SPARSE = 0``) to the sums' rounding; the spy checks which path each run took."""
    kwargs, n_paths = SPARSE_CASES[case]
    config = make_config(None, market="gbm", market_kwargs=_GBM_KW, **kwargs)
    shapes: list[int] = []
    price = book_module.price_options

    def spy(market: Any, spot: Any, strike: Any, *args: Any) -> Any:
        shapes.append(np.ndim(strike))
        return price(market, spot, strike, *args)

    monkeypatch.setattr(book_module, "price_options", spy)
    monkeypatch.setattr(book_module, "SPARSE", 0.0)
    dense = _marks(config, n_paths)
    assert set(shapes) == {3}  # (steps, paths, instruments): every slot
    runs = {}
    for name, sparse, block in (("sparse", 2.0, None), ("default", 0.5, None),
                                ("one_step", 2.0, 1)):
        shapes.clear()
        monkeypatch.setattr(book_module, "SPARSE", sparse)
        if block is not None:
            monkeypatch.setattr(book_module, "_BLOCK", block)
        runs[name] = _marks(config, n_paths)
        if sparse > 1:
            assert set(shapes) == {1}  # (k,) live slots only
    for run in runs.values():
        for field, want in zip(BookMarks._fields, dense, strict=True):
            np.testing.assert_allclose(getattr(run, field), want, rtol=1e-13,
                                       atol=1e-13 * max(1.0, np.abs(want).max()), err_msg=field)


# ----------------------------------------------------------------------- 4. the hedging option
@pytest.fixture(scope="module")
def heston_batch() -> tuple[EnvConfig, EpisodeBatch]:
    config = make_config("OptionBook", hedge_option=True,
                         market_kwargs={"rate": 0.03, "dividend": 0.01})
    return config, build_episodes(config, 200, np.random.default_rng(1), observations=False)


def _quantlib_heston(config: EnvConfig, spot: float, variance: float, strike: float,
                     days: int) -> tuple[float, float]:
    """A call's price under Heston from QuantLib's AnalyticHestonEngine, and its expiry in
    years (Actual/365 days from an arbitrary date)."""
    m = config.market
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    curves = [ql.YieldTermStructureHandle(ql.FlatForward(today, x, day_count))
              for x in (m.rate, m.dividend)]
    process = ql.HestonProcess(*curves, ql.QuoteHandle(ql.SimpleQuote(spot)), variance,
                               m.kappa, m.theta, m.xi, m.rho)
    option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, strike),
                              ql.EuropeanExercise(today + days))
    option.setPricingEngine(ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100000))
    return option.NPV(), day_count.yearFraction(today, today + days)


def test_hedging_option_marks_against_quantlib_heston(heston_batch) -> None:
    """The 90-day at-the-money call on OptionBook-v0's Heston market (r 3%, q 1%): the batch's
    marks are the surface's price at the grid's time to expiry, and the surface's price is
    QuantLib's AnalyticHestonEngine's at the path's spot and variance within 3e-4 in vol (times
    the option's vega; measured 0.7e-4 to 1.8e-4). Its cost per unit is half a vol point of its
    vega, the vega QuantLib's Black vega at the implied vol of the batch's own price."""
    config, batch = heston_batch
    market, episode = batch.market, batch.episode
    option = config.hedge_option
    for path, step in ((0, 0), (1, 10), (2, 30), (5, 59), (7, 60), (9, 45)):
        spot, variance = market.spot[path, step], market.vol_state[path, step]
        strike, anchor = option.moneyness * market.spot[path, 0], market.spot[path, :1]
        tau = (option.expiry_steps - step) * config.dt
        on_grid = price_options(market, np.array([spot]), strike, np.array([tau]),
                                np.array([variance]), anchor, True, ("price", "vega"))
        assert episode.option_price[step, path] == pytest.approx(on_grid.price[0], rel=1e-13)
        days = round((option.expiry_steps - step) * 365 / 252)
        reference, years = _quantlib_heston(config, spot, variance, strike, days)
        marked = price_options(market, np.array([spot]), strike, np.array([years]),
                               np.array([variance]), anchor, True, ("price", "vega"))
        assert abs(marked.price[0] - reference) < 3e-4 * marked.vega[0]
        forward = spot * np.exp((market.rate - market.dividend) * tau)
        discount = np.exp(-market.rate * tau)
        deviation = ql.blackFormulaImpliedStdDev(ql.Option.Call, strike, forward,
                                                 episode.option_price[step, path], discount,
                                                 0.0, 0.2 * np.sqrt(tau), 1e-14, 200)
        vega = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call, strike), forward,
                                  deviation, discount).vega(tau)
        assert episode.option_linear[step, path] == pytest.approx(0.005 * vega, rel=1e-7)


def test_gamma_neutral_model_position_its_cap_and_the_usable_rule(heston_batch) -> None:
    """Where the option is usable the model holds ``-Gamma_book / Gamma_option`` units (net gamma
    0) within the cap of 10 notionals (1,000 units; reached on about 28% of OptionBook's
    path-steps), else 0; the underlying cancels the delta of both. The rule: usable while
    ``vega / (S sqrt(tau)) = e^{-q tau} phi(d1) > 1e-4``, i.e. ``|d1| < 4.072`` at q = 0 (the
    normal density; the constant's docstring said 4.3)."""
    config, batch = heston_batch
    episode, features = batch.episode, batch.features
    cap = 10.0 * config.book.notional
    assert cap == 1000.0
    tau = config.hedge_option.expiry_steps * config.dt - batch.market.times[:, None]
    book_gamma, option_gamma = features.book_gamma.T, features.option_gamma.T
    density = features.option_vega.T / (episode.spot * np.sqrt(tau))
    usable = (density > 1e-4) & (option_gamma > 0)
    need = np.where(usable, -book_gamma / np.where(usable, option_gamma, 1.0), 0.0)
    np.testing.assert_array_equal(episode.model_option, np.clip(need, -cap, cap))
    capped = np.abs(need) >= cap
    assert 0.15 < capped.mean() < 0.45
    free = usable & ~capped
    net = book_gamma + episode.model_option * option_gamma
    np.testing.assert_allclose(net[free], 0.0, atol=1e-12 * np.abs(book_gamma).max())
    hedge = -(features.book_delta.T + episode.model_option * features.option_delta.T)
    np.testing.assert_allclose(episode.model_hedge, hedge, rtol=1e-15, atol=1e-12)
    # the rule against the normal density: strikes that put d1 just inside / outside 4.072
    spot, tau1, vol = 100.0, 0.25, 0.2
    d1 = np.array([-4.09, -4.06, 0.0, 4.06, 4.09])
    strike = spot * np.exp(-(d1 * vol * np.sqrt(tau1) - 0.5 * vol**2 * tau1))
    g = black_scholes_greeks(spot, strike, tau1, vol, 0.0, 0.0, True)
    np.testing.assert_allclose(g.vega / (spot * np.sqrt(tau1)),
                               np.exp(-d1**2 / 2) / np.sqrt(2 * np.pi), rtol=1e-12)
    np.testing.assert_array_equal(hedge_option_usable(g.vega, spot, tau1),
                                  [False, True, True, True, False])


def test_the_hedging_options_cost_is_its_half_spread_in_vol_points(heston_batch) -> None:
    """``half_spread_vol * vega * liquidity`` per unit (HedgeOption's docstring), one formula for
    the build and the re-marks: at liquidity 2 it doubles; without a hedging option it is 0."""
    config, batch = heston_batch
    vega = batch.features.option_vega.T
    liquidity = np.full_like(vega, 2.0)
    np.testing.assert_array_equal(hedge_option_linear(config, vega, liquidity),
                                  2.0 * batch.episode.option_linear)
    plain = make_config("OptionBook")
    np.testing.assert_array_equal(hedge_option_linear(plain, np.zeros(3), np.ones(3)), 0.0)


# ------------------------------------------------------------------------------ 5. bad inputs
_NUMBER = r"must be a finite number"
BAD_INPUTS = [  # (id, build, message)
    ("negative_rate", lambda: ClientFlow(rate=-1.0),
     rf"ClientFlow\.rate {_NUMBER} >= 0\.0, got -1\.0"),
    ("rate_from_a_dict",
     lambda: make_config("OptionBook", book={"options": [], "client_flow": {"rate": -5}}),
     rf"ClientFlow\.rate {_NUMBER} >= 0\.0, got -5"),
    ("buy_skew_above_1", lambda: ClientFlow(buy_probability=1.5),
     rf"ClientFlow\.buy_probability {_NUMBER} >= 0\.0 and <= 1\.0, got 1\.5"),
    ("call_share_below_0", lambda: ClientFlow(call_probability=-0.1),
     rf"ClientFlow\.call_probability {_NUMBER} >= 0\.0 and <= 1\.0, got -0\.1"),
    ("reversed_range", lambda: ClientFlow(moneyness_range=(1.1, 0.9)),
     r"ClientFlow\.moneyness_range must be a pair \(low, high\) of finite numbers, "
     r"0 < low <= high, got \(1\.1, 0\.9\)"),
    ("empty_range", lambda: ClientFlow(moneyness_range=()),
     r"ClientFlow\.moneyness_range must be a pair .*, got \(\)"),
    ("no_expiries", lambda: ClientFlow(expiry_steps=()),
     r"ClientFlow\.expiry_steps must be a non-empty list of integers >= 1, got \(\)"),
    ("expiry_0", lambda: ClientFlow(expiry_steps=(0, 20)),
     r"ClientFlow\.expiry_steps must be a non-empty list of integers >= 1, got \(0, 20\)"),
    ("no_contracts", lambda: ClientFlow(contracts=0.0),
     rf"ClientFlow\.contracts {_NUMBER} > 0\.0, got 0\.0"),
    ("no_capacity", lambda: ClientFlow(max_trades=0),
     r"ClientFlow\.max_trades must be an integer >= 1, got 0"),
    ("flow_spread_in_points", lambda: ClientFlow(half_spread_vol=5.0),  # 5 vol points: 0.05
     rf"ClientFlow\.half_spread_vol {_NUMBER} >= 0\.0 and <= 1\.0, got 5\.0"),
    ("option_spread_in_points", lambda: HedgeOption(half_spread_vol=2.0),
     rf"HedgeOption\.half_spread_vol {_NUMBER} >= 0\.0 and <= 1\.0, got 2\.0"),
    ("option_expiry_0", lambda: Option(expiry_steps=0),
     r"Option\.expiry_steps must be an integer >= 1, got 0"),
    ("one_option_not_a_sequence", lambda: OptionBook(options=Option()),  # was a TypeError
     r"OptionBook\.options must be a sequence of Option, got Option\(moneyness=1\.0"),
    ("empty_book", lambda: OptionBook(options=()),
     r"OptionBook needs at least one option or a client_flow"),
    ("hedge_option_inside_episode",
     lambda: make_config("OptionBook", hedge_option={"expiry_steps": 60}),
     r"hedge_option\.expiry_steps \(60\) must exceed n_steps \(60\)"),
]


@pytest.mark.parametrize(("build", "message"), [pytest.param(*case[1:], id=case[0])
                                                for case in BAD_INPUTS])
def test_bad_book_inputs_name_the_field_and_what_is_allowed(build, message: str) -> None:
    """A ValueError names the field, the value and what is allowed (never a TypeError, never
    accepted): half-spreads above 1 (100 vol points) are spreads quoted in points, refused as
    :class:`~hedgearena.envs.frictions.OptionSpreadCost` refuses them."""
    with pytest.raises(ValueError, match=message):
        build()
