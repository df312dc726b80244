"""Greeks computed alone pay only for the normal cdfs they read, and equal the full pass's.

``black_scholes_greeks(select=...)`` skips ``N(w d1)`` and ``N(w d2)`` when no selected greek
reads them (an erfc an input each: the vega of the model's minimum-variance hedge, the deltas
of the repricing hedgers). The values must be the full pass's bit for bit, in numpy and torch,
with and without carry, for calls, puts and mixed books, expired options included.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hedgearena.envs import black_scholes
from hedgearena.envs.black_scholes import GREEKS, black_scholes_greeks


def _inputs(rng: np.random.Generator, n: int = 257) -> tuple[np.ndarray, ...]:
    spot = rng.uniform(60.0, 140.0, n)
    strike = rng.uniform(80.0, 120.0, n)
    tau = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.0, 2.0, n))  # some expired
    vol = rng.uniform(0.05, 0.6, n)
    return spot, strike, tau, vol, rng.random(n) < 0.5


SELECTS = [(name,) for name in GREEKS] + [("delta", "gamma"), ("vega", "vanna", "volga"),
                                          ("gamma", "theta")]


@pytest.mark.parametrize("select", SELECTS, ids="-".join)
@pytest.mark.parametrize(("rate", "dividend"), [(0.0, 0.0), (0.05, 0.0), (0.03, 0.02)])
@pytest.mark.parametrize("torch_inputs", [False, True])
def test_a_selection_equals_the_full_pass_bit_for_bit(select, rate, dividend,
                                                       torch_inputs) -> None:
    spot, strike, tau, vol, is_call = _inputs(np.random.default_rng(len(select)))
    args: tuple = (spot, strike, tau, vol)
    if torch_inputs:
        args = tuple(torch.tensor(a) for a in args)
        is_call = torch.tensor(is_call)
    full = black_scholes_greeks(*args, rate, dividend, is_call)
    part = black_scholes_greeks(*args, rate, dividend, is_call, select=select)
    for name in GREEKS:
        value = getattr(part, name)
        if name not in select:
            assert value is None
            continue
        expected = np.asarray(getattr(full, name))
        np.testing.assert_array_equal(np.asarray(value), expected, err_msg=name)


@pytest.mark.parametrize(("select", "rate", "calls"), [
    (("vega",), 0.05, 0), (("gamma", "vanna", "volga"), 0.0, 0), (("delta",), 0.05, 1),
    (("theta",), 0.0, 0), (("theta",), 0.05, 2), (("price",), 0.0, 2), (GREEKS, 0.0, 2),
])
def test_only_the_cdfs_a_selection_reads_are_computed(select, rate, calls, monkeypatch) -> None:
    seen: list[int] = []
    cdf = black_scholes.normal_cdf

    def counted(x):
        seen.append(1)
        return cdf(x)

    monkeypatch.setattr(black_scholes, "normal_cdf", counted)
    spot, strike, tau, vol, is_call = _inputs(np.random.default_rng(0))
    black_scholes_greeks(spot, strike, tau, vol, rate, 0.0, is_call, select=select)
    assert len(seen) == calls


def test_chunked_inputs_select_alike() -> None:
    """Inputs larger than a chunk go block by block through the same selection."""
    rng = np.random.default_rng(3)
    spot, strike, tau, vol, is_call = _inputs(rng, black_scholes._CHUNK + 1000)
    for select in itertools.islice(SELECTS, 0, None, 3):
        full = black_scholes_greeks(spot, strike, tau, vol, 0.01, 0.0, is_call)
        part = black_scholes_greeks(spot, strike, tau, vol, 0.01, 0.0, is_call, select=select)
        for name in select:
            np.testing.assert_array_equal(getattr(part, name), getattr(full, name))
