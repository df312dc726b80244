"""bench/quality.py's two readings of the hedging cost, checked on a small arena run."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.metrics import cost_objective
from hedgearena.envs.config import make_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_bench", ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accounting_cost_is_minus_the_discounted_pnl_and_the_premium_a_shift(quality) -> None:
    # Cao et al.'s accounting reading: -(sum of V' - V + H dS - cost) = -e^{-rT} PnL_T; the
    # reports' cost counts the payout and not the premium: the two differ by the premium
    config = make_config("ShortCall", market_kwargs={"rate": 0.03})
    result = run_arena(config, [BlackScholesDelta()], 2048, seed=7, progress=False)
    totals = result.totals("delta")
    accounting = quality.cost_of(result, "delta", "accounting")
    gross = quality.cost_of(result, "delta", "including_premium")
    np.testing.assert_allclose(accounting, -np.exp(-0.03 * result.horizon) * totals["terminal_pnl"],
                               rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(gross - accounting, totals["initial_premium"], rtol=1e-12)
    assert np.ptp(totals["initial_premium"]) == 0.0  # one premium for every path
    scores = quality.score_all({"delta": gross, "shifted": gross - 100.0}, {"delta": {"x": 1}})
    assert scores["delta"]["x"] == 1
    assert scores["delta"]["improvement_vs_delta"] == 0.0
    assert scores["shifted"]["std"] == pytest.approx(scores["delta"]["std"], rel=1e-12)
    y = cost_objective(gross, quality.C).value
    assert scores["shifted"]["improvement_vs_delta"] == pytest.approx(100.0 / y, rel=1e-12)
