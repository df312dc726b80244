"""Tests written against the mutants that survived a mutation round over books of many options.

The round mutated the book (many-option) parts of ``baselines/minimum_variance.py`` (the pooled
rows, the book's hedge, the fit's refusals) and the repricing hedgers' shared memo of the held
options' implied vols in ``baselines/leland.py`` (:class:`_BatchMemo`); each test here failed
on a mutant the existing tests let through.

References:
- Hull and White (2017), "Optimal delta hedging for options", Journal of Banking and Finance 82,
  180-190: one ``(a, b, c)`` pooled across strikes and maturities, for a book the
  position-weighted sums of the options' regressors.
- The memo's contract (``baselines/leland.py``, :class:`_BatchMemo`): keyed by the identity of
  the book's arrays and of the market, the vols by the decision's steps and spots compared
  exactly; bounded by ``VOL_MEMO_BYTES``. Every expected vol here is the surface's own
  (``implied_vols`` computed afresh, never read through the memo) or a count written by hand.
"""

from __future__ import annotations

import dataclasses
import gc
import types
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from hedgearena.baselines import leland
from hedgearena.baselines.minimum_variance import (
    BookReader,
    MinimumVarianceDelta,
    _solve,
    book_option,
    book_regression_rows,
    fit_minimum_variance,
)
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import EpisodeBatch, build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    """Each test starts and ends with an empty memo."""
    leland._MEMO.clear()
    yield
    leland._MEMO.clear()


# --------------------------------------------------------------------- the book's regression
def test_one_option_with_client_flow_is_pooled_not_refused() -> None:
    # One option and a client flow is a book of many options (the flow brings more): pooled,
    # fitted and hedged. Taking it as the one-option form refused it ("this book has client
    # flow").
    config = make_config("OptionBook", n_steps=10, cost=0.0, book={
        "options": [{"moneyness": 1.0, "expiry_steps": 30, "contracts": -1.0}],
        "client_flow": {"rate": 500.0, "expiry_steps": [4, 30]}})
    assert book_option(config) is None
    fit = fit_minimum_variance(config, 40, seed=1)
    # the option outlives the episode: every one of the 10 decisions is a row on every path
    assert fit.n_observations == 10 * 40
    env = VecHedgingEnv(num_envs=3, config=config)
    env.reset(seed=0)
    hedger = MinimumVarianceDelta(-0.1, 0.0, 0.0)
    hedger.reset(env)
    positions = hedger.positions(env.state, np.zeros((3, 1), dtype=np.float32))
    assert positions.shape == (3, config.action_dim)
    assert np.isfinite(positions).all()


def test_the_books_rows_refuse_a_batch_of_other_steps() -> None:
    # A batch of 12 market steps is not the rows of a config of 9 (or 15): refused, as the
    # one-option rows refuse it (a weaker check let a longer batch through, its rows read at the
    # config's steps).
    config = make_config("OptionBook", n_steps=12, rebalance_every=3)
    batch = build_episodes(config, 4, np.random.default_rng(0), observations=False)
    for n_steps in (9, 15):
        other = make_config("OptionBook", n_steps=n_steps, rebalance_every=3)
        with pytest.raises(ValueError, match=f"the batch has 12 market steps, the config "
                                             f"{n_steps}"):
            book_regression_rows(other, batch)


def test_a_book_whose_options_all_settle_inside_the_interval_is_refused_as_a_book() -> None:
    # One decision over 10 steps: the short call settles at 10 and the long put at 7, both
    # inside the interval, so no row has an option with vega: the fit says so in a book's
    # terms (not the one-option "expired from the start?").
    config = make_config("ShortCall", n_steps=10, rebalance_every=10, cost=0.0, book={
        "options": [{"expiry_steps": 10, "contracts": -1.0},
                    {"expiry_steps": 7, "contracts": 1.0, "is_call": False}]})
    with pytest.raises(ValueError, match=r"the book holds no option with vega over any "
                                         r"decision .*each settles before the next decision"):
        fit_minimum_variance(config, 20, seed=1)


def test_collinear_rows_of_a_book_are_refused_in_a_books_terms() -> None:
    # x'x of rows whose (1, d, d^2) are the same on every row (rank 1): a book's message names
    # its options' call deltas, a single option's the option's delta.
    t = np.array([1.0, 0.5, 0.25])
    xx, xy = 7.0 * np.outer(t, t), 3.0 * t
    with pytest.raises(ValueError, match="the call deltas of the book's options barely differ"):
        _solve(xx, xy, book=True)
    with pytest.raises(ValueError, match="the option's delta barely moves"):
        _solve(xx, xy, book=False)
    with pytest.raises(ValueError, match="the book holds no option with vega"):
        _solve(np.diag([1.0, 0.0, 1.0]), xy, book=True)


def test_a_hedger_reset_on_a_one_option_env_lets_the_books_env_go() -> None:
    # Reset on a book of many options, then on ShortCall: the hedger keeps nothing of the book
    # (its reader, and through it the env and its paths: 250 MB an OptionBook block).
    book_env = VecHedgingEnv(num_envs=2, config=make_config("OptionBook", n_steps=6))
    book_env.reset(seed=0)
    single_env = VecHedgingEnv(num_envs=2, config=make_config("ShortCall"))
    single_env.reset(seed=0)
    hedger = MinimumVarianceDelta(0.0, 0.0, 0.0)
    hedger.reset(book_env)
    hedger.reset(single_env)
    gone = weakref.ref(book_env)
    del book_env
    gc.collect()
    assert gone() is None


# ------------------------------------------------------------------------- the memo, directly
class _Market:
    """A stand-in for a batch's market (the memo holds it by a weak reference only)."""


def _fake_book() -> types.SimpleNamespace:
    shape = (2, 1)
    return types.SimpleNamespace(strike=np.full(shape, 100.0), quantity=np.ones(shape),
                                 is_call=np.ones(shape, dtype=bool), start=np.zeros(shape),
                                 expiry=np.full(shape, 10))


class _Compute:
    """A ``compute`` of the memo: new vols each call, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return np.array([0.2, 0.25]) + self.calls


def _kept_bytes(memo: leland._BatchMemo) -> int:
    """What the memo keeps: each decision's vols, spots and step key."""
    return sum(vols.nbytes + spot.nbytes + len(key) for key, (spot, vols) in memo._vols.items())


def test_the_memo_compares_the_spots_exactly_and_keeps_its_own_copy() -> None:
    memo, book, market, compute = leland._BatchMemo(), _fake_book(), _Market(), _Compute()
    step, spot = np.array([3, 3]), np.array([100.0, 101.0])
    first = memo.held_vols(book, market, step, spot, compute)
    assert memo.held_vols(book, market, step, spot.copy(), compute) is first
    assert compute.calls == 1
    # one ulp off is another decision's spot (permanent impact): computed, not the kept vols
    moved = np.nextafter(spot, np.inf)
    assert memo.held_vols(book, market, step, moved, compute)[0] == 0.2 + 2
    # a caller that writes its spot buffer after the call does not change what was kept
    buffer = np.array([50.0, 51.0])
    memo.held_vols(book, market, np.array([4, 4]), buffer, compute)
    assert compute.calls == 3
    buffer[:] = [52.0, 53.0]
    assert memo.held_vols(book, market, np.array([4, 4]), buffer, compute)[0] == 0.2 + 4


def test_the_memo_counts_the_bytes_it_keeps_and_keeps_up_to_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo, book, market, compute = leland._BatchMemo(), _fake_book(), _Market(), _Compute()
    step = np.array([3, 3], dtype=np.int64)
    spots = [np.array([100.0, 101.0]), np.array([100.5, 101.0])]
    entry = 2 * 8 + 2 * 8 + 2 * 8  # vols (2 float64), spots (2 float64), step key (2 int64)
    monkeypatch.setattr(leland, "VOL_MEMO_BYTES", entry)  # exactly one decision fits
    memo.held_vols(book, market, step, spots[0], compute)
    assert memo._bytes == _kept_bytes(memo) == entry
    memo.held_vols(book, market, step, spots[1], compute)  # another hedger's spots: computed
    assert memo._bytes == _kept_bytes(memo) == entry
    memo.held_vols(book, market, step, spots[0], compute)  # the first is still kept
    assert compute.calls == 2
    memo.held_vols(book, market, np.array([4, 4]), spots[0], compute)  # over the budget
    assert memo._bytes == _kept_bytes(memo) == entry
    # another batch empties the memo, its count included: its decisions fit again
    other = _fake_book()
    memo.held_vols(other, market, step, spots[0], compute)
    assert compute.calls == 4
    assert memo._bytes == _kept_bytes(memo) == entry
    memo.held_vols(other, market, step, spots[0], compute)
    assert compute.calls == 4


# --------------------------------------------------------------- the memo, through the reader
def _batch(n_paths: int = 6) -> tuple[Any, EpisodeBatch]:
    config = make_config("OptionBook", n_steps=12, rebalance_every=3)
    return config, build_episodes(config, n_paths, np.random.default_rng(2), observations=False)


def _state(batch: EpisodeBatch, steps: Any) -> dict[str, Any]:
    steps = np.asarray(steps)
    return {"step": steps, "spot": batch.episode.spot[6]}  # one spot whatever the steps


def _by_hand(batch: EpisodeBatch, state: dict[str, Any], dt: float) -> dict[str, np.ndarray]:
    """The held slots (path-major) and the surface's vol of each, from the batch's arrays.

    Held: a quantity, ``start <= step < expiry``; ``tau = (expiry - step) dt``; the vol the
    surface gives at the path's vol level, spot and first spot (as the env marks the book).
    """
    book, market = batch.instruments, batch.market
    shape = book.strike.shape
    fields = {name: np.broadcast_to(getattr(book, name), shape)
              for name in ("strike", "quantity", "start", "expiry")}
    rows: dict[str, list[float]] = {"strike": [], "held": [], "vol": []}
    for path in range(shape[0]):
        step, spot = int(state["step"][path]), float(state["spot"][path])
        for i in range(shape[1]):
            held = fields["quantity"][path, i]
            if held == 0 or not fields["start"][path, i] <= step < fields["expiry"][path, i]:
                continue
            strike, tau = fields["strike"][path, i], (fields["expiry"][path, i] - step) * dt
            rows["strike"].append(strike)
            rows["held"].append(held)
            rows["vol"].append(float(market.surface.implied_vol(
                np.array([spot]), np.array([strike]), np.array([tau]),
                np.array([market.vol_state[path, step]]), np.array([market.spot[path, 0]]),
                market.rate, market.dividend)[0]))
    return {name: np.array(values) for name, values in rows.items()}


def _check(reader: BookReader, batch: EpisodeBatch, state: dict[str, Any], dt: float) -> None:
    slots, vols = reader.held_implied_vols(state)
    expected = _by_hand(batch, state, dt)
    assert len(expected["vol"]) > 0
    np.testing.assert_array_equal(slots.strike, expected["strike"])
    np.testing.assert_array_equal(slots.held, expected["held"])
    np.testing.assert_allclose(vols, expected["vol"], rtol=1e-12)


def test_the_memo_keys_the_vols_by_every_paths_step() -> None:
    # The same spots at other steps (paths of an env at different steps): other vols.
    config, batch = _batch()
    reader = BookReader.of_batch(batch)
    for steps in ([6] * 6, [6, 9, 9, 9, 9, 9], [6, 9, 9, 9, 9, 3]):
        _check(reader, batch, _state(batch, steps), config.dt)


@pytest.mark.parametrize("change", ["vol_state of the market", "strikes of the book",
                                    "quantities of the book"])
def test_the_memo_is_another_batchs_when_any_of_its_arrays_is_another(change: str) -> None:
    # A batch that shares the book's arrays but not the market (or the market and all but one
    # of the book's arrays), at the same steps and spots, gets its own slots and vols.
    config, batch = _batch()
    book, market = batch.instruments, batch.market
    other = {
        "vol_state of the market": batch._replace(market=dataclasses.replace(
            market, vol_state=market.vol_state * 1.5)),
        "strikes of the book": batch._replace(instruments=book._replace(
            strike=book.strike * 1.05)),
        "quantities of the book": batch._replace(instruments=book._replace(
            quantity=np.where(np.arange(book.quantity.shape[1]) % 2 == 0, book.quantity, 0.0))),
    }[change]
    state = _state(batch, [9] * 6)
    _check(BookReader.of_batch(batch), batch, state, config.dt)
    _check(BookReader.of_batch(other), other, state, config.dt)
    assert not np.allclose(_by_hand(batch, state, config.dt)["vol"][:3],
                           _by_hand(other, state, config.dt)["vol"][:3])


class _FlatVolDelta(leland.RepricedDelta):
    """A repricing hedger whose own ``implied_vols`` is a flat 30% (not the surface's)."""

    name = "flat 30%"

    def implied_vols(self, state: Any, slots: leland.BookSlots) -> np.ndarray:
        return np.full(len(slots.path), 0.3)

    def hedging_vols(self, state: Any, slots: leland.BookSlots, implied: Any) -> Any:
        return implied

    def positions(self, state: Any, obs: Any) -> Any:
        return self.repriced_hedge(state)[:, None]


def test_a_hedger_with_its_own_implied_vols_neither_reads_nor_writes_the_memo() -> None:
    # The memo shares the surface's vols (RepricedDelta.implied_vols); a subclass that
    # overrides implied_vols gets its own, whichever hedger of the batch runs first, and the
    # surface's hedgers keep the surface's. Before, the first to run set the vols of all.
    config, batch = _batch()
    state = _state(batch, [9] * 6)
    expected = _by_hand(batch, state, config.dt)["vol"]
    for flat_first in (True, False):
        leland._MEMO.clear()
        flat, surface = _FlatVolDelta(), BookReader.of_batch(batch)
        flat.reset(surface.env)
        order = [flat, surface] if flat_first else [surface, flat]
        vols = {id(hedger): hedger.held_implied_vols(state)[1] for hedger in order}
        np.testing.assert_array_equal(vols[id(flat)], 0.3)
        np.testing.assert_allclose(vols[id(surface)], expected, rtol=1e-12)
