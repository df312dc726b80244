"""Audit of the option book, the client flow and the pricer against independent references.

References: QuantLib's ``BlackCalculator`` (value, delta, gamma, vega, theta per year of one
European option from its forward, total deviation and discount factor) for every mark and greek;
hand-computed payoffs and cash ledgers; Poisson, binomial and uniform moments with their standard
errors for the client flow. Every market below is GBM (flat vol), so the marks are Black-Scholes
at a known vol and QuantLib is an exact reference.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import QuantLib as ql  # noqa: N813

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.book import (
    BOOK_GREEKS,
    BookPaths,
    ClientFlowCapacityWarning,
    Option,
    OptionBook,
    mark_book,
    price_on_grid,
    sample_book,
)
from hedgearena.envs.implied_vol import implied_vol_status, implied_volatility
from hedgearena.envs.market import MarketPaths
from hedgearena.envs.vol_surface import FlatVol

DT = 1.0 / 252.0
R, Q, SIGMA = 0.03, 0.01, 0.25


def _quantlib(spot: float, strike: float, tau: float, vol: float, is_call: bool,
              r: float = R, q: float = Q) -> dict[str, float]:
    """Price and greeks of one unit from QuantLib's BlackCalculator (tau > 0)."""
    kind = ql.Option.Call if is_call else ql.Option.Put
    calc = ql.BlackCalculator(ql.PlainVanillaPayoff(kind, float(strike)),
                              float(spot * np.exp((r - q) * tau)), float(vol * np.sqrt(tau)),
                              float(np.exp(-r * tau)))
    return {"price": calc.value(), "delta": calc.delta(float(spot)),
            "gamma": calc.gamma(float(spot)), "vega": calc.vega(float(tau)),
            "theta": calc.theta(float(spot), float(tau))}


def _payoff(spot: float, strike: float, is_call: bool) -> float:
    return max((spot - strike) if is_call else (strike - spot), 0.0)


def _hand_market(spots: list[float]) -> MarketPaths:
    spot = np.array([spots])
    return MarketPaths(times=DT * np.arange(len(spots)), spot=spot,
                       variance=np.full(spot.shape, SIGMA**2),
                       vol_state=np.full(spot.shape, SIGMA), surface=FlatVol(), rate=R,
                       dividend=Q)


# ------------------------------------------------------------------------------ the static book
BOOK = OptionBook(options=(
    Option(1.0, 1, -2.0, True, 100.0),   # short 2 calls x 100, K 100, expires at step 1
    Option(1.0, 2, 3.0, False, 10.0),    # long 3 puts x 10, K 100, expires at the last step
    Option(0.9, 5, 1.0, False, 100.0),   # long 1 put x 100, K 90, outlives the episode
))


def test_hand_ledger_of_a_static_book_with_calls_puts_and_multipliers() -> None:
    """Spot 100 -> 105 -> 90. Settlements by hand: the short calls settle -200 x (105 - 100) =
    -1000 at step 1; the long puts expiring at the last step +30 x (100 - 90) = +300 at step 2
    (a put pays K - S to its holder: the sign of a long position; the multiplier counted once).
    Marks: QuantLib's, quantity x unit price over the options held (start <= s < expiry)."""
    market = _hand_market([100.0, 105.0, 90.0])
    instruments = sample_book(BOOK, market, np.random.default_rng(0))
    np.testing.assert_array_equal(instruments.quantity, [[-200.0, 30.0, 100.0]])
    marks = mark_book(instruments, market)
    spots = market.spot[0]
    expected = {name: np.zeros(3) for name in BOOK_GREEKS}
    for step in range(3):
        for option, quantity in zip(BOOK.options, instruments.quantity[0], strict=True):
            if step < option.expiry_steps:
                unit = _quantlib(spots[step], 100.0 * option.moneyness,
                                 (option.expiry_steps - step) * DT, SIGMA, option.is_call)
                for name in BOOK_GREEKS:
                    expected[name][step] += quantity * unit[name]
    for name, field in zip(BOOK_GREEKS, ("value", "delta", "gamma", "vega", "theta"),
                           strict=True):
        np.testing.assert_allclose(getattr(marks, field)[0], expected[name], rtol=1e-10,
                                   err_msg=field)
    np.testing.assert_allclose(marks.settlement[0], [0.0, -1000.0, 300.0], rtol=1e-12)
    assert _payoff(105.0, 100.0, True) == 5.0
    assert _payoff(90.0, 100.0, False) == 10.0
    # the initial book is bought/sold at its marks at step 0: the dealer receives -value
    np.testing.assert_allclose(marks.premium[0], [-expected["price"][0], 0.0, 0.0], rtol=1e-12)
    np.testing.assert_array_equal(marks.spread_income, 0.0)
    for values in marks:
        assert np.isfinite(values).all()


def test_marks_after_expiry_are_zero_and_the_last_step_settles() -> None:
    """A book whose every option has expired is worth exactly 0 (no NaN), greeks included; an
    option expiring exactly at the last step settles there and is not in the last mark."""
    book = OptionBook(options=(Option(1.0, 2, -1.0, True), Option(1.1, 4, 2.0, False, 50.0)))
    market = _hand_market([100.0, 120.0, 80.0, 95.0, 101.0, 99.0, 70.0])
    marks = mark_book(sample_book(book, market, np.random.default_rng(0)), market)
    for field in ("value", "delta", "gamma", "vega", "theta"):
        np.testing.assert_array_equal(getattr(marks, field)[0, 4:], 0.0, err_msg=field)
    np.testing.assert_allclose(marks.settlement[0], [0, 0, -100.0 * 0.0, 0, 100.0 * 9.0, 0, 0])
    book = OptionBook(options=(Option(1.0, 6, -1.0, False),))  # expires at the last step
    marks = mark_book(sample_book(book, market, np.random.default_rng(0)), market)
    assert marks.value[0, -1] == 0.0
    assert marks.settlement[0, -1] == -100.0 * 30.0
    assert np.count_nonzero(marks.settlement) == 1


def test_per_instrument_greeks_match_quantlib() -> None:
    """``price_on_grid`` gives every instrument's unit greeks on every step and path."""
    market = _hand_market([100.0, 104.0, 97.0, 99.0])
    strike = np.array([[80.0, 100.0, 125.0]])
    expiry = np.array([[2, 3, 40]])
    is_call = np.array([[True, False, True]])
    ((_rows, greeks, _where),) = list(price_on_grid(market, strike, expiry, is_call, BOOK_GREEKS))
    assert greeks.price.shape == (4, 1, 3)
    for step in range(4):
        for i in range(3):
            tau = max(expiry[0, i] - step, 0) * DT
            if tau == 0:
                assert greeks.price[step, 0, i] == _payoff(market.spot[0, step], strike[0, i],
                                                           is_call[0, i])
                continue
            unit = _quantlib(market.spot[0, step], strike[0, i], tau, SIGMA, is_call[0, i])
            for name in BOOK_GREEKS:
                assert getattr(greeks, name)[step, 0, i] == pytest.approx(unit[name], rel=1e-10,
                                                                          abs=1e-12)


def test_the_books_stock_adds_to_its_value_and_delta() -> None:
    env = gym.make_vec("hedgearena/ShortCall-v0", num_envs=2,
                       vectorization_mode="vector_entry_point",
                       book=OptionBook(options=(*BOOK.options[:1], Option(1.0, 20, 1.0)),
                                       stock=7.0))
    env.reset(seed=0)
    batch = env.batch
    marks = mark_book(batch.instruments, batch.market)
    np.testing.assert_allclose(batch.episode.book_value.T, marks.value + 7.0 * batch.market.spot,
                               rtol=1e-12)
    np.testing.assert_allclose(env.state["book_delta"], marks.delta[:, 0] + 7.0, rtol=1e-12)


# ------------------------------------------------------------------------------ the client flow
def _option_book_vec(n: int, **kwargs):
    market_kwargs = {"mu": 0.0, "sigma": SIGMA, "spot0": 100.0, "rate": R, "dividend": Q}
    return gym.make_vec("hedgearena/OptionBook-v0", num_envs=n,
                        vectorization_mode="vector_entry_point", market="gbm",
                        market_kwargs=market_kwargs, **kwargs)


@pytest.fixture(scope="module")
def flow_batch():
    env = _option_book_vec(1000)
    env.reset(seed=21)
    return env.batch, env.unwrapped.config


def test_client_arrivals_are_poisson_at_the_configured_rate(flow_batch) -> None:
    """Per step: Poisson(rate dt) = Poisson(250 / 252) on steps 1..59, none at 0 and 60.

    Over 1000 paths x 59 steps the mean's standard error is sqrt(0.992 / 59000) = 0.0041 and
    the variance-to-mean ratio's about sqrt((1 + 2 mu) / (mu n)) = 0.0071. Per path the count
    is Poisson(58.53): standard error of the mean 0.24.
    """
    batch, config = flow_batch
    flow = config.book.client_flow
    ins = batch.instruments
    live = ins.quantity != 0
    n_paths, n_steps = live.shape[0], config.n_steps
    per_step = np.zeros((n_paths, n_steps + 1))
    np.add.at(per_step, (np.nonzero(live)[0], ins.start[live]), 1.0)
    assert per_step[:, 0].sum() == 0
    assert per_step[:, -1].sum() == 0
    cells = per_step[:, 1:-1]
    mu = flow.rate * config.dt
    assert abs(cells.mean() - mu) < 4 * np.sqrt(mu / cells.size)
    assert abs(cells.var() / cells.mean() - 1.0) < 4 * np.sqrt((1 + 2 * mu) / (mu * cells.size))
    counts = live.sum(axis=1)
    expected = mu * (n_steps - 1)
    assert abs(counts.mean() - expected) < 4 * np.sqrt(expected / n_paths)


def test_client_sides_types_strikes_and_maturities(flow_batch) -> None:
    """60% of clients buy (the dealer is short), half the trades are calls, strikes are uniform
    in 90%-110% of the spot at arrival rounded to 1, maturities 20/40/60 steps each a third;
    each trade is 1 contract x 100 (the multiplier once). Standard errors: sqrt(p (1-p) / n)."""
    batch, _config = flow_batch
    ins, spot = batch.instruments, batch.market.spot
    live = ins.quantity != 0
    n = int(live.sum())
    q = ins.quantity[live]
    assert set(np.unique(q)) == {-100.0, 100.0}
    for observed, p in (((q < 0).mean(), 0.6), (ins.is_call[live].mean(), 0.5)):
        assert abs(observed - p) < 4 * np.sqrt(p * (1 - p) / n)
    lags = (ins.expiry - ins.start)[live]
    for lag in (20, 40, 60):
        assert abs((lags == lag).mean() - 1 / 3) < 4 * np.sqrt(2 / 9 / n)
    rows, slots = np.nonzero(live)
    arrival_spot = spot[rows, ins.start[rows, slots]]
    strike = ins.strike[live]
    np.testing.assert_array_equal(strike, np.round(strike))
    assert np.all(np.abs(strike - arrival_spot * np.clip(strike / arrival_spot, 0.9, 1.1)) <= 0.5)
    # uniform moneyness: mean 1.0, sd 0.2 / sqrt(12) (rounding to 1 adds 1/12 per unit^2)
    m = strike / arrival_spot
    assert abs(m.mean() - 1.0) < 4 * (0.2 / np.sqrt(12)) / np.sqrt(n) + 1e-3


def test_a_configured_rate_and_skew_reach_the_env() -> None:
    flow = {"buy_probability": 0.9, "rate": 500.0, "max_trades": 175}
    env = _option_book_vec(200, book={"options": [], "client_flow": flow})
    env.reset(seed=4)
    q = env.batch.instruments.quantity
    n = int((q != 0).sum())
    assert abs(n / 200 - 500 * DT * 59) < 4 * np.sqrt(500 * DT * 59 / 200)
    assert abs((q < 0).sum() / n - 0.9) < 4 * np.sqrt(0.09 / n)


def test_a_rate_beyond_the_capacity_says_its_trades_are_dropped() -> None:
    """500 trades a year expect 117 over 59 steps: the default capacity of 96 silently cut the
    flow to 96 a path on 252 of the 256 paths of a block (a realised rate of 410 a year)."""
    env = _option_book_vec(200, book={"options": [], "client_flow": {"rate": 500.0}})
    with pytest.warns(ClientFlowCapacityWarning, match=r"max_trades=96 dropped \d+ client "
                      r"trades \(the latest\) on 25\d of 256 paths, which expect 117.1 each"):
        env.reset(seed=4)
    counts = (env.batch.instruments.quantity != 0).sum(axis=1)
    assert counts.max() == 96
    assert counts.mean() > 95


def test_dealer_cash_ledger_half_spread_and_exposure_against_quantlib() -> None:
    """Zero hedge (target 0): the cash account is the premiums, half-spreads and settlements.

    At its arrival step a trade of signed quantity q (the dealer's side) and unit mark P pays
    the dealer -q P + |q| h, h = 0.005 x vega: it SELLS at P + h and BUYS at P - h. Cash earns
    r between steps. The book's delta, gamma, vega are the sums over the held trades."""
    env = _option_book_vec(3)
    env.reset(seed=5)
    batch, config = env.batch, env.unwrapped.config
    ins, spot, n_steps = batch.instruments, batch.market.spot, config.n_steps
    zero = np.zeros(env.action_space.shape, np.float32)
    cash, exposure, spread = [], [], []
    for _ in range(n_steps):
        exposure.append([env.state[k].copy() for k in ("book_delta", "book_gamma", "book_vega")])
        _, _, _, _, info = env.step(zero)
        cash.append(info["cash"].copy())
        spread.append(info["spread_income"].copy())
    sells = buys = 0
    for path in range(3):
        flows = np.zeros(n_steps + 1)
        income = np.zeros(n_steps + 1)
        greeks = np.zeros((n_steps, 3))
        for i in np.nonzero(ins.quantity[path])[0]:
            q, k, c = ins.quantity[path, i], ins.strike[path, i], bool(ins.is_call[path, i])
            start, expiry = ins.start[path, i], ins.expiry[path, i]
            unit = _quantlib(spot[path, start], k, (expiry - start) * DT, SIGMA, c)
            half = 0.005 * unit["vega"]
            if q < 0:  # the dealer sells at the mark plus the half-spread
                flows[start] += -q * (unit["price"] + half)
                sells += 1
            else:  # the dealer buys at the mark minus the half-spread
                flows[start] += -q * (unit["price"] - half)
                buys += 1
            income[start] += abs(q) * half
            if expiry <= n_steps:
                flows[expiry] += q * _payoff(spot[path, expiry], k, c)
            for s in range(start, min(expiry, n_steps)):
                g = _quantlib(spot[path, s], k, (expiry - s) * DT, SIGMA, c)
                greeks[s] += q * np.array([g["delta"], g["gamma"], g["vega"]])
        ledger = np.zeros(n_steps + 1)
        for s in range(n_steps):
            ledger[s + 1] = ledger[s] * np.exp(R * DT) + flows[s + 1]
        np.testing.assert_allclose(np.array(cash)[:, path], ledger[1:], rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(np.array(spread)[:, path], income[1:], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(np.array(exposure)[:, :, path], greeks, rtol=1e-9, atol=1e-9)
    assert sells > 20
    assert buys > 20


def test_client_flow_is_reproducible_by_seed() -> None:
    def draw(seed: int) -> BookPaths:
        env = _option_book_vec(4)
        env.reset(seed=seed)
        return env.batch.instruments

    a, b, c = draw(7), draw(7), draw(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.strike, c.strike)


# ------------------------------------------------------------------------ pricer at extremes
def test_an_infinite_strike_is_refused_not_a_nan_price() -> None:
    """It gave a call price of NaN (S N(d1) - inf x 0) and a NaN theta with rates; like an
    infinite spot, tau or vol it is refused, naming the argument. Huge finite strikes give the
    limits: a worthless call, a put worth K e^{-r tau} - S e^{-q tau} (QuantLib agrees)."""
    with pytest.raises(ValueError, match=r"strike must be finite and > 0.*got inf"):
        black_scholes_greeks(100.0, np.inf, 1.0, 0.2, 0.05, 0.02, True)
    for strike in (1e12, 1e100, 1e300):
        for is_call in (True, False):
            g = black_scholes_greeks(100.0, strike, 1.0, 0.2, 0.05, 0.02, is_call)
            for value in g:
                assert np.isfinite(value)
            ref = _quantlib(100.0, strike, 1.0, 0.2, is_call, 0.05, 0.02)
            assert float(g.price) == pytest.approx(ref["price"], rel=1e-12, abs=1e-300)
            assert float(g.delta) == pytest.approx(ref["delta"], rel=1e-12, abs=1e-300)


def test_implied_vol_of_long_dated_wing_options_beyond_a_total_vol_of_20() -> None:
    """A 25-year option at a vol of 4.4 (total vol 22) struck 5 to 7 standard deviations out of
    the money: its price still determines the vol (vega 6e-4 at 6 sd), but the solver's bracket
    stopped at a total vol of 20 and returned 4.0 (repricing 3e-5 off, no warning)."""
    spot, tau, vol, r, q = 100.0, 25.0, 4.4, 0.02, 0.01
    total = vol * np.sqrt(tau)
    z = np.array([5.0, 6.0, 7.0])
    strike = spot * np.exp((r - q) * tau) * np.exp(np.concatenate([z, -z]) * total)
    is_call = np.array([True] * 3 + [False] * 3)  # both out of the money
    g = black_scholes_greeks(spot, strike, tau, vol, r, q, is_call)
    assert (implied_vol_status(g.price, spot, strike, tau, r, q, is_call) == 0).all()
    found = implied_volatility(g.price, spot, strike, tau, r, q, is_call, errors="raise")
    informative = g.vega * vol * 1e-8 > 1e3 * 2.2e-16 * g.price
    assert informative.sum() >= 4
    np.testing.assert_allclose(found[informative], vol, rtol=1e-8)
    repriced = black_scholes_greeks(spot, strike, tau, found, r, q, is_call).price
    np.testing.assert_allclose(repriced, g.price, rtol=1e-13)


def test_a_client_flow_book_priced_at_its_live_slots_marks_as_priced_whole(monkeypatch) -> None:
    """OptionBook-v0's slots are mostly padding, options yet to arrive and options settled: its
    blocks are priced at the live slots only (``book.SPARSE``); every mark, greek and cash flow
    is the one of pricing every slot (``SPARSE = 0``), to the sums' rounding."""
    import hedgearena.envs.book as book_module
    from hedgearena.envs.config import make_config
    from hedgearena.envs.episode import build_episodes

    config = make_config("OptionBook", n_steps=30)
    sizes: list[int] = []
    price = book_module.price_options

    def spy(market, spot, strike, tau, *args):
        sizes.append(int(np.prod(np.broadcast_shapes(*map(np.shape, (spot, strike, tau))))))
        return price(market, spot, strike, tau, *args)

    monkeypatch.setattr(book_module, "price_options", spy)
    sparse = build_episodes(config, 64, np.random.default_rng(4))
    slots = 64 * sparse.instruments.strike.shape[1]
    assert sum(sizes) < 0.5 * 31 * slots  # the live slots only (about a quarter)
    monkeypatch.setattr(book_module, "SPARSE", 0.0)
    sizes.clear()
    whole = build_episodes(config, 64, np.random.default_rng(4))
    assert sum(sizes) >= 31 * slots  # every slot (and the hedging option's marks)
    for name, want in whole.episode._asdict().items():
        if isinstance(want, np.ndarray) and want.dtype.kind == "f":
            np.testing.assert_allclose(getattr(sparse.episode, name), want, rtol=1e-12,
                                       atol=1e-9, err_msg=name)
    for name in ("book_delta", "book_gamma", "book_vega", "book_theta"):
        np.testing.assert_allclose(getattr(sparse.features, name),
                                   getattr(whole.features, name), rtol=1e-12, atol=1e-12)
