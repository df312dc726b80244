"""Fixtures of the env tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hedgearena.envs.config import EnvConfig


def _manual_entries(config: EnvConfig, s: dict[str, Any], strike: Any,
                    pnl: Any) -> dict[str, Any]:
    """Each observation entry by the manual's table, float64, from the env's state ``s``.

    ``strike`` is ``log_moneyness``' K, ``pnl`` the ``pnl`` entry (the P&L so far over the
    reward scale). Broadcasts over the state's arrays (a vector env's ``(n,)``).
    """
    notional, n = config.book.notional, config.n_steps
    assert n is not None
    root_t = math.sqrt(n * config.dt)  # T: the episode's length in years
    spot, sigma = np.asarray(s["spot"]), np.asarray(s["implied_vol"])
    return {
        "time_left": (n - np.asarray(s["step"])) / n,
        "log_moneyness": np.log(spot / strike),
        "book_delta": s["book_delta"] / notional,
        "book_gamma": s["book_gamma"] * spot * sigma * root_t / notional,
        "book_vega": s["book_vega"] / (notional * spot * root_t),
        "book_theta": s["book_theta"] * root_t / (notional * spot * sigma),
        "model_hedge": s["model_hedge"] / notional,
        "implied_vol": sigma,
        "realised_vol": s["realised_vol"],
        "cost_rate": 100.0 * s["cost_linear"] / spot,
        "liquidity": s["liquidity"],
        "model_option": s["model_option"] / notional,
        "option_delta": s["option_delta"],
        "option_gamma": s["option_gamma"] * spot * sigma * root_t,
        "option_vega": s["option_vega"] / (spot * root_t),
        "hedge": s["hedge"] / notional,
        "option_position": s["option_position"] / notional,
        "pnl": pnl,
    }


@pytest.fixture
def manual_entries() -> Callable[..., dict[str, Any]]:
    """``manual_entries(config, state, strike, pnl)``: the manual's observation entries."""
    return _manual_entries
