"""The repricing hedgers' shared memo (``baselines/leland.py``): shared, exact, bounded, freed.

Leland, Zakamouline's family and the delta at realised vol reprice every held option of the book
at each decision; the surface's implied vol of each held option is the same for all of them on
one batch, so the arena computes it once a decision (:class:`_BatchMemo`). What may not change:
every number, to the bit, whether the vols come from the memo or are computed.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from hedgearena.baselines import leland
from hedgearena.baselines.arena import ArenaResult, run_arena
from hedgearena.baselines.hedger import State
from hedgearena.baselines.leland import BookSlots, Leland, RepricedDelta
from hedgearena.baselines.realised_delta import RealisedVolDelta
from hedgearena.baselines.zakamouline import Zakamouline
from hedgearena.envs.config import EnvConfig, make_config

PATHS = 48


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    """Each test starts and ends with an empty memo."""
    leland._MEMO.clear()
    yield
    leland._MEMO.clear()


def _hedgers() -> list[RepricedDelta]:
    return [Leland(), Zakamouline(0.1), RealisedVolDelta()]


def _count_vols(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the held slots' vols computed (not taken from the memo): one entry a call."""
    calls: list[int] = []
    compute = RepricedDelta.implied_vols

    def counted(self: RepricedDelta, state: State, slots: BookSlots) -> np.ndarray:
        calls.append(len(slots.path))
        return compute(self, state, slots)

    monkeypatch.setattr(RepricedDelta, "implied_vols", counted)
    return calls


def _run(config: EnvConfig, hedgers: Sequence[RepricedDelta]) -> ArenaResult:
    return run_arena(config, hedgers, PATHS, seed=5, progress=False)


def _assert_same(a: ArenaResult, b: ArenaResult, names: Sequence[str]) -> None:
    for name in names:
        for key, values in a.totals(name).items():
            np.testing.assert_array_equal(values, b.totals(name)[key], err_msg=f"{name} {key}")


def test_repricing_hedgers_compute_the_books_vols_once_a_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three repricing hedgers on OptionBook-v0 compute the held vols once per decision.

    Before the memo each hedger computed them at each of its decisions (three times as many).
    """
    config = make_config("OptionBook")
    calls = _count_vols(monkeypatch)
    shared = _run(config, _hedgers())
    decisions = config.n_steps // config.rebalance_every
    assert len(calls) == decisions
    monkeypatch.setattr(leland, "VOL_MEMO_BYTES", 0)  # nothing kept: every hedger computes
    calls.clear()
    alone = _run(config, _hedgers())
    assert len(calls) == 3 * decisions
    _assert_same(shared, alone, [h.name for h in _hedgers()])


def test_a_hedger_that_moved_the_spot_gets_its_own_vols(monkeypatch: pytest.MonkeyPatch) -> None:
    """With permanent impact each hedger's trades move its own spot: no vols are shared.

    Every hedger's totals equal those of the same hedger run alone on a fresh memo.
    """
    config = make_config("OptionBook", permanent_impact=0.002)
    calls = _count_vols(monkeypatch)
    together = _run(config, _hedgers()[:2])
    decisions = config.n_steps // config.rebalance_every
    assert len(calls) > decisions + 1  # the second hedger's spots differ after its first trade
    for hedger in _hedgers()[:2]:
        leland._MEMO.clear()
        _assert_same(together, _run(config, [hedger]), [hedger.name])


def test_the_memo_keeps_no_more_than_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of two decisions' vols keeps two; the rest are computed, the same numbers."""
    config = make_config("OptionBook")
    kept: list[int] = []
    held_vols = leland._BatchMemo.held_vols

    def spy(self: leland._BatchMemo, *args: object, **kwargs: object) -> np.ndarray:
        out = held_vols(self, *args, **kwargs)  # type: ignore[arg-type]
        kept.append(len(self._vols))
        return out

    monkeypatch.setattr(leland._BatchMemo, "held_vols", spy)
    shared = _run(config, _hedgers()[:2])
    one_step = max(kept)  # every decision kept at the default budget
    assert one_step == config.n_steps // config.rebalance_every
    budget = 2 * (PATHS * 8 * 2 + 20 * PATHS * 8)  # spots, steps and up to 20 slots a path
    monkeypatch.setattr(leland, "VOL_MEMO_BYTES", budget)
    leland._MEMO.clear()
    kept.clear()
    bounded = _run(config, _hedgers()[:2])
    assert 0 < max(kept) < one_step
    assert leland._MEMO._bytes <= budget
    _assert_same(shared, bounded, [h.name for h in _hedgers()[:2]])


def test_the_memo_lets_the_batch_go() -> None:
    """Once the hedgers and the result are gone, the batch's book is freed and the memo empty.

    (The module-level slots cache that the memo replaced held the last book for good.)
    """
    hedgers = _hedgers()
    result = _run(make_config("OptionBook"), hedgers)
    book = weakref.ref(hedgers[0].env.batch.instruments.strike)
    assert leland._MEMO._vols
    assert leland._MEMO._slots
    del hedgers, result
    gc.collect()
    assert book() is None
    assert not leland._MEMO._vols
    assert not leland._MEMO._slots


def test_another_batch_replaces_the_memo() -> None:
    """A hedger on another batch (another seed) never reads the previous batch's vols."""
    config = make_config("OptionBook")
    first = _run(config, [Leland()])
    second = run_arena(config, [Zakamouline(0.1)], PATHS, seed=6, progress=False)
    leland._MEMO.clear()
    alone = run_arena(config, [Zakamouline(0.1)], PATHS, seed=6, progress=False)
    _assert_same(second, alone, ["Zakamouline 0.1"])
    first_pnl, second_pnl = first.totals("Leland")["pnl"], second.totals("Zakamouline 0.1")["pnl"]
    assert not np.array_equal(first_pnl, second_pnl)


def test_the_vols_kept_are_read_only() -> None:
    """A hedger that wrote into the vols it was handed would change every later hedger's: the
    kept vols refuse it."""
    hedgers = _hedgers()
    _run(make_config("OptionBook"), hedgers)
    hedger = hedgers[0]
    state = hedger.env.state
    _, vols = hedger.held_implied_vols(state)
    _, again = hedgers[1].held_implied_vols(state)
    assert again is vols
    with pytest.raises(ValueError, match="read-only"):
        vols[0] = 0.5


def test_the_same_steps_at_other_spots_get_their_own_vols() -> None:
    """A direct caller at the decision's steps but other spots is not served the kept vols."""
    hedgers = _hedgers()
    _run(make_config("OptionBook"), hedgers)
    hedger = hedgers[0]
    state = hedger.env.state
    slots, kept = hedger.held_implied_vols(state)
    moved = {**state, "spot": np.asarray(state["spot"]) * 1.05}
    _, vols = hedger.held_implied_vols(moved)
    np.testing.assert_array_equal(vols, hedger.implied_vols(moved, slots))
    assert not np.array_equal(vols, kept)  # the smile moved with the spot
    _, again = hedger.held_implied_vols(state)
    assert again is kept


def test_the_memo_counts_each_kept_decision_once() -> None:
    """Vols at other spots for a kept decision are computed, neither kept nor counted: the
    budget counts what is kept (an overwrite counted twice would fill it early)."""
    hedgers = _hedgers()
    _run(make_config("OptionBook"), hedgers)
    hedger, memo = hedgers[0], leland._MEMO

    def kept_bytes() -> int:
        return sum(vols.nbytes + spot.nbytes + len(key)
                   for key, (spot, vols) in memo._vols.items())

    state = hedger.env.state
    hedger.held_implied_vols(state)  # the episode's end: kept too
    before = memo._bytes
    assert before == kept_bytes() > 0
    hedger.held_implied_vols({**state, "spot": np.asarray(state["spot"]) * 1.05})
    assert memo._bytes == kept_bytes() == before
