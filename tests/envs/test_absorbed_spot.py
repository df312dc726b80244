"""A market model that absorbs the price at 0 is named as such, not as a float64 overflow."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.config import make_config
from hedgearena.envs.episode import check_spot
from hedgearena.envs.sabr import SABR


def test_sabr_absorption_is_named_with_the_count_of_paths() -> None:
    """SABR with beta = 0 and a large vol of vol absorbs some paths at 0 within 20 days."""
    env = gym.make("hedgearena/ShortCall-v0", market=SABR(alpha0=150.0, beta=0.0, nu=1.5))
    with pytest.raises(ValueError, match=r"absorbed \d+ of 256 paths at a spot of 0") as error:
        env.reset(seed=0)
    assert "float64" not in str(error.value)


def test_overflow_is_still_named_as_such() -> None:
    """GBM underflowing to 0 is not an absorption; nor is SABR's NaN beside a zero."""
    config = make_config("ShortCall")
    spot = np.full((3, 21), 100.0)
    spot[1, 5] = np.inf
    with pytest.raises(ValueError, match="beyond what float64 can simulate"):
        check_spot(spot, config)
    spot[1, 5] = 0.0  # GBM does not absorb: an underflow
    with pytest.raises(ValueError, match=r"simulated a spot of 0\.0"):
        check_spot(spot, config)
    sabr = make_config("ShortCall", market=SABR())
    check_spot(np.full((3, 21), 100.0), sabr)
    spot[2, 7] = np.nan  # a zero beside a NaN: not an absorption
    with pytest.raises(ValueError, match="beyond what float64 can simulate"):
        check_spot(spot, sabr)
