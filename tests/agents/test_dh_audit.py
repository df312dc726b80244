"""Audit of the deep-hedging trainer: the schedule's log, objectives on known samples, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.agents import deep_hedging
from hedgearena.agents.deep_hedging import DeepHedgingTrainer, TrainerConfig
from hedgearena.agents.objectives import Objective, entropic, expected_shortfall, parse_objective
from hedgearena.envs.config import make_config

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def short_call(n_steps: int = 5) -> Any:
    book = {"options": [{"moneyness": 1.0, "expiry_steps": n_steps, "contracts": -1.0}]}
    return make_config("ShortCall", n_steps=n_steps, book=book)


class _Writer:
    """A TensorBoard writer that keeps what it is given."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append((int(step), float(value)))

    def close(self) -> None:
        pass


def test_logged_learning_rate_is_the_one_each_step_used(monkeypatch,
                                                          learning_rates) -> None:
    """train/learning_rate at x = k is the step size gradient step k (1-based, like train/loss
    at x = k) was taken with; it was the next step's, so the last point showed
    final_learning_rate, which no step used (logged 0.00868 at x = 1 where 0.01 was used)."""
    writer = _Writer()
    monkeypatch.setattr(deep_hedging, "_summary_writer", lambda log_dir: writer)
    config = TrainerConfig(steps=4, batch_size=32, n_train=64, n_valid=64, eval_every=1,
                           learning_rate=1e-2, final_learning_rate=1e-3, seed=1)
    trainer = DeepHedgingTrainer(short_call(), config=config, progress=False, hidden=(4,),
                                 log_dir="unused")
    used = learning_rates(trainer.optimizer)
    trainer.train()
    logged = writer.scalars["train/learning_rate"]
    assert [x for x, _ in logged] == [x for x, _ in writer.scalars["train/loss"]] == [1, 2, 3, 4]
    np.testing.assert_allclose([value for _, value in logged], used, rtol=1e-12)
    assert used[0] == pytest.approx(1e-2)


@pytest.mark.parametrize("dtype", [["float32"], {"float32": 1}])
def test_unhashable_dtype_is_refused_by_name(dtype: Any) -> None:
    """`--set agent.hyperparams.dtype=[float32]` raised TypeError (unhashable type: 'list'):
    a traceback from train.py instead of a usage error naming the field."""
    with pytest.raises(ValueError, match="dtype must be one of float32, float64"):
        TrainerConfig(dtype=dtype)


@pytest.mark.parametrize(
    ("name", "parameter", "match"),
    [
        (["cvar"], 0.9, "objective must be one of"),  # was TypeError: unhashable
        ("cvar", "0.9", "alpha must be a number"),  # was TypeError: '<' not supported
        ("entropic", None, "a must be a number"),  # was TypeError from math.isfinite
        ("mean_std", True, "c must be a number"),  # was accepted as c = 1
    ],
)
def test_objective_refuses_bad_fields_by_name(name: Any, parameter: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Objective(name, parameter)


def test_objective_accepts_numpy_numbers() -> None:
    assert float(Objective("cvar", np.float32(0.5))(np.array([1.0, 2.0, 3.0, 4.0]))) == 3.5
    assert str(parse_objective(Objective("mean_std", 2))) == "mean_std:2"


# ---------------------------------------------------------- objectives against direct forms
def test_cvar_against_a_direct_sort_and_rockafellar_uryasev() -> None:
    rng = np.random.default_rng(0)
    cost = rng.standard_t(3, size=1000)
    worst = np.sort(cost)[::-1]
    assert float(expected_shortfall(cost, 0.95)) == pytest.approx(worst[:50].mean(), rel=1e-12)
    assert float(expected_shortfall(cost, 0.99)) == pytest.approx(worst[:10].mean(), rel=1e-12)
    for alpha in (0.9, 0.953, 0.999):  # tails of a fractional number of paths too
        grid = np.sort(cost)
        ru = min(w + np.maximum(cost - w, 0.0).mean() / (1 - alpha) for w in grid)
        assert float(expected_shortfall(cost, alpha)) == pytest.approx(ru, rel=1e-10)
    tensor = torch.tensor(cost, requires_grad=True)
    expected_shortfall(tensor, 0.95).backward()
    assert tensor.grad is not None
    assert float(tensor.grad.sum()) == pytest.approx(1.0)
    assert int((tensor.grad > 0).sum()) == 50  # the gradient is on the worst 5% only


@pytest.mark.parametrize("a", [1e-3, 0.1, 2.0])
def test_entropic_against_log_mean_exp(a: float) -> None:
    rng = np.random.default_rng(1)
    cost = rng.normal(3.0, 1.5, size=4096)
    direct = math.log(np.mean(np.exp(a * cost))) / a
    assert float(entropic(cost, a)) == pytest.approx(direct, rel=1e-12)
    tensor = torch.tensor(cost, requires_grad=True)
    entropic(tensor, a).backward()
    assert tensor.grad is not None
    weights = np.exp(a * cost) / np.exp(a * cost).sum()  # d rho / d C_i: the softmax weights
    np.testing.assert_allclose(tensor.grad.numpy(), weights, rtol=1e-10)
