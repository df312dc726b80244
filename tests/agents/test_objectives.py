"""Risk measures of the hedging cost: numpy == torch, direct formulas, limits, the parser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hedgearena.agents.objectives import (
    OBJECTIVES,
    Objective,
    entropic,
    expected_shortfall,
    mean_std,
    mean_variance,
    parse_objective,
)

SPECS = ["mean_std:1.5", "entropic:0.05", "cvar:0.9", "expected_shortfall:0.97",
         "mean_variance:0.01"]


def sample(n: int = 101, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(200.0, 30.0, size=n)


@pytest.mark.parametrize("spec", SPECS)
def test_numpy_and_torch_agree(spec: str) -> None:
    objective = parse_objective(spec)
    costs = sample()
    from_numpy = float(objective(costs))
    from_torch = objective(torch.as_tensor(costs))
    assert isinstance(from_torch, torch.Tensor)
    assert from_torch.dtype == torch.float64
    assert float(from_torch) == pytest.approx(from_numpy, rel=1e-12)
    float32 = float(objective(torch.as_tensor(costs, dtype=torch.float32)))
    assert float32 == pytest.approx(from_numpy, rel=1e-5)


def test_mean_std_and_mean_variance_direct() -> None:
    costs = np.array([1.0, 2.0, 4.0, 9.0])
    mean = costs.sum() / 4
    var = ((costs - mean) ** 2).sum() / 4  # ddof = 0
    assert float(mean_std(costs, 1.5)) == pytest.approx(mean + 1.5 * math.sqrt(var))
    assert float(mean_std(costs, 0.0)) == pytest.approx(mean)
    assert float(mean_variance(costs, 0.2)) == pytest.approx(mean + 0.1 * var)


def test_entropic_direct_and_stable() -> None:
    costs = np.array([0.0, 1.0, 3.0])
    a = 0.7
    direct = math.log(sum(math.exp(a * c) for c in costs) / 3) / a
    assert float(entropic(costs, a)) == pytest.approx(direct, rel=1e-12)
    shifted = float(entropic(costs + 1e4, a))  # exp(7000) overflows a naive sum
    assert math.isfinite(shifted)
    assert shifted == pytest.approx(direct + 1e4, rel=1e-12)


@pytest.mark.parametrize("a", [1e-3, 1e-6, 1e-9])
def test_entropic_tends_to_the_mean(a: float) -> None:
    costs = sample()
    # second-order expansion: mean + a/2 var
    assert float(entropic(costs, a)) == pytest.approx(costs.mean(), abs=a * costs.var() + 1e-9)


def test_entropic_is_between_mean_and_max() -> None:
    costs = sample()
    value = float(entropic(costs, 0.1))
    assert costs.mean() < value < costs.max()


def rockafellar_uryasev(costs: np.ndarray, alpha: float) -> float:
    """min_w w + E[(C - w)^+] / (1 - alpha); the minimum is attained at a sample point."""
    return min(w + np.maximum(costs - w, 0.0).mean() / (1 - alpha) for w in costs)


@pytest.mark.parametrize("alpha", [0.5, 0.6, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("n", [4, 20, 101])
def test_expected_shortfall_matches_rockafellar_uryasev(alpha: float, n: int) -> None:
    costs = sample(n, seed=n)
    assert float(expected_shortfall(costs, alpha)) == pytest.approx(
        rockafellar_uryasev(costs, alpha), rel=1e-10
    )


def test_expected_shortfall_known_values() -> None:
    costs = np.array([3.0, 1.0, 4.0, 2.0])
    assert float(expected_shortfall(costs, 0.5)) == pytest.approx(3.5)
    assert float(expected_shortfall(costs, 0.75)) == pytest.approx(4.0)
    assert float(expected_shortfall(costs, 0.9)) == pytest.approx(4.0)  # beyond the worst path
    costs20 = np.arange(20.0)
    assert float(expected_shortfall(costs20, 0.9)) == pytest.approx(18.5)  # worst 2


def test_expected_shortfall_gradient_is_on_the_tail() -> None:
    costs = torch.tensor([3.0, 1.0, 4.0, 2.0], dtype=torch.float64, requires_grad=True)
    expected_shortfall(costs, 0.6).backward()  # m = 1.6: 4 weighs 1/1.6, 3 weighs 0.6/1.6
    np.testing.assert_allclose(costs.grad.numpy(), [0.375, 0.0, 0.625, 0.0])


@pytest.mark.parametrize("spec", SPECS)
def test_gradients_are_finite(spec: str) -> None:
    costs = torch.as_tensor(sample(), dtype=torch.float64).requires_grad_()
    parse_objective(spec)(costs).backward()
    assert torch.isfinite(costs.grad).all()


def test_registry_and_parser() -> None:
    assert set(OBJECTIVES) >= {"mean_std", "entropic", "cvar", "expected_shortfall",
                               "mean_variance"}
    assert parse_objective("mean_std:1.5") == Objective("mean_std", 1.5)
    assert parse_objective(" entropic : 0.01 ") == Objective("entropic", 0.01)
    assert parse_objective("mean_std") == Objective("mean_std", 1.5)
    assert str(parse_objective("cvar:0.95")) == "cvar:0.95"
    objective = parse_objective("mean_variance:0.01")
    assert parse_objective(objective) is objective


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("variance:1", "unknown name 'variance'"),
        ("entropic", "entropic needs its a"),
        ("cvar:", "cvar needs its alpha"),
        ("cvar:high", "alpha must be a number"),
        ("cvar:1.0", r"alpha must be a number in \(0, 1\)"),
        ("entropic:0", "a must be a finite number > 0"),
        ("mean_std:-1", "c must be a finite number >= 0"),
        ("mean_variance:nan", "kappa must be a finite number >= 0"),
    ],
)
def test_parser_errors(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_objective(spec)


def test_parser_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_objective(1.5)  # type: ignore[arg-type]
